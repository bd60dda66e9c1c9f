// MasterCache: byte budget with LRU eviction, one load per key under concurrency, errors not
// cached.
#include <atomic>
#include <thread>
#include <vector>

#include "core/status/status_matchers.h"
#include "core/store/master_cache.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::store {
namespace {

using ::calibd::testing::StatusIs;

CalibratedFrame Frame(int w, int h, float v) {
  CalibratedFrame f;
  f.data = Image<float>::Filled(w, h, v);
  return f;
}

TEST(MasterCacheTest, EvictsLeastRecentlyUsedWithinBudget) {
  const size_t one = 100 * 100 * sizeof(float);
  MasterCache cache(3 * one);
  int loads = 0;
  auto loader = [&](float v) {
    return [&loads, v]() -> absl::StatusOr<CalibratedFrame> {
      ++loads;
      return Frame(100, 100, v);
    };
  };
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(cache.GetOrLoad(std::to_string(i), loader(i)).status());
  }
  EXPECT_EQ(cache.bytes(), 3 * one);
  ASSERT_NE(cache.Lookup("0"), nullptr);  // 0 is now the most recent; 1 the oldest
  ASSERT_OK(cache.GetOrLoad("3", loader(3)).status());
  EXPECT_EQ(cache.entries(), 3);
  EXPECT_EQ(cache.Lookup("1"), nullptr);
  EXPECT_NE(cache.Lookup("0"), nullptr);
  EXPECT_EQ(loads, 4);
  ASSERT_OK_AND_ASSIGN(auto f, cache.GetOrLoad("0", loader(99)));
  EXPECT_EQ(f->data.data()[0], 0.0f);  // cached, not reloaded
  EXPECT_EQ(loads, 4);
  // Too big for the budget: returned but not kept.
  ASSERT_OK_AND_ASSIGN(auto big, cache.GetOrLoad("big", [] {
    return absl::StatusOr<CalibratedFrame>(Frame(400, 400, 1));
  }));
  EXPECT_EQ(big->width(), 400);
  EXPECT_EQ(cache.Lookup("big"), nullptr);
  EXPECT_LE(cache.bytes(), 3 * one);
}

TEST(MasterCacheTest, ConcurrentLoadsRunOnceAndErrorsAreNotCached) {
  MasterCache cache(1 << 20);
  std::atomic<int> loads{0};
  std::vector<std::thread> threads;
  std::vector<const CalibratedFrame*> got(8);
  std::vector<absl::Status> statuses(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = cache.GetOrLoad("k", [&]() -> absl::StatusOr<CalibratedFrame> {
        ++loads;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return Frame(10, 10, 1);
      });
      statuses[i] = r.status();
      got[i] = r.ok() ? r->get() : nullptr;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(loads.load(), 1);
  // Every caller got the one loaded frame (a null from a failed load must fail here).
  ASSERT_NE(got[0], nullptr) << statuses[0];
  EXPECT_EQ(got[0]->width(), 10);
  EXPECT_EQ(got[0]->data.data()[0], 1.0f);
  for (int i = 0; i < 8; ++i) {
    EXPECT_OK(statuses[i]);
    EXPECT_EQ(got[i], got[0]) << i;
  }

  EXPECT_THAT(cache.GetOrLoad("bad", [] {
    return absl::StatusOr<CalibratedFrame>(absl::DataLossError("corrupt"));
  }),
              StatusIs(absl::StatusCode::kDataLoss));
  ASSERT_OK(cache.GetOrLoad("bad", [] { return absl::StatusOr<CalibratedFrame>(Frame(2, 2, 0)); })
                .status());
}

}  // namespace
}  // namespace calibd::store
