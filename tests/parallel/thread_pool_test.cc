#include "core/parallel/thread_pool.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace calibd {
namespace {

TEST(ThreadPoolTest, ParallelForCoversEveryIndexOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 7, 64, 1000, 12345}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, 5, [&](int64_t b, int64_t e) {
      ASSERT_LT(b, e);
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPoolTest, NestedParallelForOnEveryWorkerDoesNotDeadlock) {
  // Every worker runs a task that itself calls ParallelFor on the same pool: the helpers they
  // queue can only run after those tasks finish, so the callers must not wait for them.
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  std::atomic<int> finished{0};
  for (int t = 0; t < 4; ++t) {
    pool.Schedule([&] {
      pool.ParallelFor(1000, 10, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
      finished.fetch_add(1);
    });
  }
  while (finished.load() < 4) std::this_thread::yield();
  EXPECT_EQ(sum.load(), 4000);
}

TEST(ThreadPoolTest, DestructorRunsQueuedTasks) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(1);
    for (int i = 0; i < 50; ++i) pool.Schedule([&] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 50);
}

TEST(ThreadPoolTest, NullPoolRunsInline) {
  int64_t covered = 0;
  ParallelFor(nullptr, 10, 1, [&](int64_t b, int64_t e) { covered += e - b; });
  EXPECT_EQ(covered, 10);
}

}  // namespace
}  // namespace calibd
