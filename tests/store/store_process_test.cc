// Multi-process behaviour of both backends: two processes putting into one series at once get
// dense, unique versions and every put lands exactly once; a writer killed with SIGKILL at
// random instants of a put leaves whole versions only (no catalog row without its blob, no
// leftovers after reopening), and the next put works.
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status/status_matchers.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"

namespace calibd::store::testing {
namespace {

using ::testing::SizeIs;

// Runs `body` in a child process; its return value is the exit code. The child never runs
// destructors or atexit handlers (_exit), so the parent's connections and servers are untouched.
pid_t Fork(const std::function<int()>& body) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

absl::StatusOr<MasterVersion> PutSeed(CalibrationStore* store, int seed) {
  CalibratedFrame f = MakeMaster(seed);
  PutMasterRequest req;
  req.detector = kDetector;
  req.kind = "bias";
  req.header = FrameHeader("2026-03-01T00:00:00");
  req.frame = &f;
  return store->PutMaster(req, absl::StrCat("writer-", getpid()));
}

class StoreProcessTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(h_, OpenTestStore(GetParam()));
    ASSERT_OK(h_.store->PutDetector(TestSpec(), "alice").status());
  }
  StoreHandle h_;
};

TEST_P(StoreProcessTest, ConcurrentWritersGetDenseUniqueVersions) {
  constexpr int kPerWriter = 12;
  const std::string url = h_.url;
  std::vector<pid_t> pids;
  for (int w = 0; w < 2; ++w) {
    pids.push_back(Fork([url, w]() -> int {
      absl::StatusOr<std::unique_ptr<CalibrationStore>> store = OpenStore(url);
      if (!store.ok()) return 2;
      for (int i = 0; i < kPerWriter; ++i) {
        absl::StatusOr<MasterVersion> v = PutSeed(store->get(), 1000 * (w + 1) + i);
        if (!v.ok()) {
          fprintf(stderr, "writer %d put %d: %s\n", w, i, v.status().ToString().c_str());
          return 3;
        }
        if (!v->created) return 4;
      }
      return 0;
    }));
  }
  for (pid_t pid : pids) EXPECT_EQ(WaitExit(pid), 0);
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> all, AllMasters(*h_.store, {}));
  ASSERT_THAT(all, SizeIs(2 * kPerWriter));
  std::set<std::string> shas;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].series_id, all[0].series_id);
    EXPECT_EQ(all[i].version, static_cast<int64_t>(i) + 1);
    shas.insert(all[i].sha256);
  }
  EXPECT_EQ(shas.size(), all.size());
  // Every writer's content is there exactly once: re-putting any seed is idempotent.
  for (int w = 0; w < 2; ++w) {
    for (int i = 0; i < kPerWriter; i += 5) {
      ASSERT_OK_AND_ASSIGN(MasterVersion again, PutSeed(h_.store.get(), 1000 * (w + 1) + i));
      EXPECT_FALSE(again.created);
    }
  }
}

TEST_P(StoreProcessTest, KilledWriterLeavesWholeVersionsOnly) {
  const int kRounds = GetParam() == Backend::kEmbedded ? 50 : 15;
  const std::string url = h_.url;
  // How long one open + put takes here, to spread the kills over it.
  auto start = std::chrono::steady_clock::now();
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibrationStore> s, OpenStore(url));
    ASSERT_OK(PutSeed(s.get(), 1).status());
  }
  const int64_t put_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  h_.store.reset();  // the parent must not hold the store while children write
  std::mt19937 rng(12345);
  int64_t expected_min = 1;
  for (int round = 0; round < kRounds; ++round) {
    pid_t pid = Fork([url, round]() -> int {
      absl::StatusOr<std::unique_ptr<CalibrationStore>> store = OpenStore(url);
      if (!store.ok()) return 2;
      for (int i = 0;; ++i) {
        if (!PutSeed(store->get(), 100000 + round * 100 + i).ok()) return 3;
      }
    });
    const int64_t delay = std::uniform_int_distribution<int64_t>(0, 3 * put_us)(rng);
    std::this_thread::sleep_for(std::chrono::microseconds(delay));
    kill(pid, SIGKILL);
    EXPECT_EQ(WaitExit(pid), 100 + SIGKILL);

    ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibrationStore> store, OpenStore(url));
    ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> all, AllMasters(*store, {}));
    ASSERT_GE(static_cast<int64_t>(all.size()), expected_min);
    std::set<std::string> shas;
    for (size_t i = 0; i < all.size(); ++i) {
      ASSERT_EQ(all[i].version, static_cast<int64_t>(i) + 1) << "round " << round;
      // No catalog row without its (intact) blob.
      ASSERT_OK(store->MaterializeBlob(all[i].sha256).status()) << "round " << round;
      shas.insert(all[i].sha256);
    }
    if (GetParam() == Backend::kEmbedded) {
      // No temp files, no orphan blobs left after the reopen.
      int temps = 0, blobs = 0;
      for (const auto& e : std::filesystem::directory_iterator(url + "/tmp")) {
        (void)e;
        ++temps;
      }
      for (const auto& sub : std::filesystem::directory_iterator(url + "/blobs")) {
        for (const auto& f : std::filesystem::directory_iterator(sub.path())) {
          (void)f;
          ++blobs;
        }
      }
      EXPECT_EQ(temps, 0) << "round " << round;
      EXPECT_EQ(blobs, static_cast<int>(shas.size())) << "round " << round;
    }
    // The next put works and gets the next version.
    ASSERT_OK_AND_ASSIGN(MasterVersion next, PutSeed(store.get(), 900000 + round));
    ASSERT_EQ(next.version, static_cast<int64_t>(all.size()) + 1);
    expected_min = next.version;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreProcessTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return BackendName(info.param);
                         });

}  // namespace
}  // namespace calibd::store::testing
