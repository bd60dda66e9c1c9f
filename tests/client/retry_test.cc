// The client's retries and endpoint lists against the real calibd binary on 127.0.0.1: a
// server killed and restarted mid-batch costs retries, not frames (every file calibrated
// exactly once, in order, identical to an undisturbed run); a list of endpoints with a dead
// one is balanced round-robin over the live one; read calls retry UNAVAILABLE; the frames of
// a broken stream come back UNAVAILABLE and are sent again in CalibrateWithRetries' rounds.
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/convert.h"
#include "client/retry.h"
#include "client/samples.h"
#include "core/status/status_matchers.h"
#include "core/store/detector.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::client {
namespace {

using ::calibd::testing::CalibdProcess;
using ::calibd::testing::PickFreePort;
using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;

class RetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SampleOptions o;
    o.data_width = 64;
    o.height = 48;
    o.overscan_width = 8;
    o.n_bias = o.n_dark = o.n_flat = 1;
    o.n_light = 12;
    o.stars = 4;
    o.cosmic_rays = 2;
    ASSERT_OK_AND_ASSIGN(samples_, MakeSamples(dir_.File("night"), o));
    std::ifstream in(samples_.spec_path);
    std::stringstream ss;
    ss << in.rdbuf();
    ASSERT_OK_AND_ASSIGN(spec_, store::DetectorSpecFromJson(ss.str()));
    ASSERT_OK_AND_ASSIGN(server_, CalibdProcess::Start());
    ASSERT_OK(PutSpec(server_->address()));
    // Overscan and trim only: no masters needed, the point is the transport.
    options_.detector = spec_.name;
    options_.recipe.set_bias(false);
    options_.recipe.set_dark(false);
    options_.recipe.set_flat(false);
  }

  absl::Status PutSpec(const std::string& address) {
    ClientOptions co;
    co.server = address;
    absl::StatusOr<std::unique_ptr<CalibdClient>> c = CalibdClient::Connect(co);
    if (!c.ok()) return c.status();
    return (*c)->PutDetector(DetectorSpecToProto(spec_)).status();
  }

  std::unique_ptr<CalibdClient> Client(const std::string& server, int attempts = 8) {
    ClientOptions co;
    co.server = server;
    co.max_attempts = attempts;
    co.timeout = absl::Seconds(20);
    co.stream_timeout = absl::Seconds(60);
    absl::StatusOr<std::unique_ptr<CalibdClient>> c = CalibdClient::Connect(co);
    EXPECT_OK(c.status());
    return c.ok() ? *std::move(c) : nullptr;
  }

  // path → the data plane's bytes, for every result; fails the test on a failed frame.
  using Results = std::vector<std::pair<std::string, std::string>>;
  // Holds the sender after `frames` frames until Release(): the results already sent cannot
  // all be in the client's buffers before the test breaks the stream.
  void HoldSenderAfter(int frames) {
    options_.progress = [this, frames](int64_t done, int64_t total) {
      absl::MutexLock lock(&mu_);
      (released_ ? progress_after_ : progress_before_).emplace_back(done, total);
      if (++sent_ <= frames) return;
      mu_.AwaitWithTimeout(absl::Condition(&released_), absl::Seconds(30));
    };
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

  // Every progress call was over the whole batch; after Release() (the broken stream) each
  // went on from the bytes of the first `delivered_files` files, and the last was the total.
  void ExpectBatchProgress(size_t delivered_files) {
    absl::MutexLock lock(&mu_);
    const int64_t all = FileBytes(samples_.light);
    const int64_t delivered =
        FileBytes({samples_.light.begin(), samples_.light.begin() + delivered_files});
    ASSERT_FALSE(progress_after_.empty());
    for (const auto& [done, total] : progress_before_) EXPECT_EQ(total, all);
    for (const auto& [done, total] : progress_after_) {
      EXPECT_EQ(total, all);
      EXPECT_GT(done, delivered) << "a retry round started over";
    }
    EXPECT_EQ(progress_after_.back().first, all);
  }

  static void Keep(Results& out, const CalibrateResult& r) {
    EXPECT_OK(r.status) << r.path;
    std::string bytes;
    if (r.status.ok()) {
      bytes.assign(reinterpret_cast<const char*>(r.frame.data.data()),
                   size_t(r.frame.width()) * r.frame.height() * sizeof(float));
    }
    out.emplace_back(r.path, std::move(bytes));
  }

  TempDir dir_;
  SampleSet samples_;
  store::DetectorSpec spec_;
  std::unique_ptr<CalibdProcess> server_;
  CalibrateOptions options_;
  absl::Mutex mu_;
  int sent_ = 0;
  bool released_ = false;
  // (done, total) of every progress call, before and after Release().
  std::vector<std::pair<int64_t, int64_t>> progress_before_, progress_after_;
};

// A round's progress is the batch's: on top of the files already delivered, out of all.
TEST(RoundProgressTest, ARoundGoesOnFromTheDeliveredFiles) {
  TempDir dir;
  std::vector<std::string> all;
  for (int i = 1; i <= 3; ++i) {
    all.push_back(dir.File(absl::StrCat("f", i)));
    std::ofstream(all.back()) << std::string(100 * i, 'x');
  }
  EXPECT_EQ(FileBytes(all), 600);
  EXPECT_EQ(FileBytes({dir.File("missing")}), 0) << "unreadable files count nothing";
  std::vector<std::pair<int64_t, int64_t>> seen;
  ProgressFn batch = [&](int64_t done, int64_t total) { seen.emplace_back(done, total); };
  // The first file was delivered; the round re-sends the other two and has sent 50 bytes.
  ProgressFn round = RoundProgress(batch, all, {all[1], all[2]});
  round(50, 500);
  round(500, 500);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(int64_t{150}, int64_t{600}));
  EXPECT_EQ(seen[1], std::make_pair(int64_t{600}, int64_t{600}));
  EXPECT_EQ(RoundProgress(nullptr, all, all), nullptr);
}

TEST_F(RetryTest, ServerRestartedMidBatchCostsRetriesNotFrames) {
  std::unique_ptr<CalibdClient> client = Client(server_->address());
  ASSERT_NE(client, nullptr);
  Results reference;
  ASSERT_OK(
      client->Calibrate(samples_.light, options_, [&](CalibrateResult r) { Keep(reference, r); }));
  ASSERT_EQ(reference.size(), samples_.light.size());
  EXPECT_EQ(client->retries(), 0);

  Results got;
  CalibrateStats stats;
  options_.stats = &stats;
  HoldSenderAfter(3);  // one chunk per frame: progress is called once per frame
  absl::Status s = client->Calibrate(samples_.light, options_, [&](CalibrateResult r) {
    Keep(got, r);
    if (got.size() == 3) {  // the server dies with results still to come
      server_->Kill();
      EXPECT_OK(server_->Restart());
      Release();
    }
  });
  ASSERT_OK(s) << server_->Log();
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, samples_.light[i]) << "in order, each exactly once";
    EXPECT_TRUE(got[i].second == reference[i].second) << "identical pixels: " << got[i].first;
  }
  EXPECT_GE(stats.streams, 2);
  // Frame 4 was sent before the hold, so its result may have come before the kill.
  EXPECT_GE(stats.frames_resent, static_cast<int64_t>(samples_.light.size()) - 4);
  EXPECT_LE(stats.frames_resent, static_cast<int64_t>(samples_.light.size()) - 3);
  EXPECT_EQ(client->retries(), stats.frames_resent);
  EXPECT_EQ(stats.frames, static_cast<int64_t>(samples_.light.size()));

  // Progress is over the whole batch in every round: the second stream goes on from the three
  // frames delivered before the kill instead of starting again from zero, and ends at the total.
  ExpectBatchProgress(3);
}

TEST_F(RetryTest, RetryRoundsGoOnFromTheDeliveredFiles) {
  // One attempt per stream: when the server dies, the frames without a result come back
  // UNAVAILABLE and CalibrateWithRetries sends them again in later rounds (on the restarted
  // server), each round's progress on top of the files already delivered.
  std::unique_ptr<CalibdClient> client = Client(server_->address(), /*attempts=*/1);
  ASSERT_NE(client, nullptr);
  FrameRetryPolicy policy;
  policy.max_attempts = 6;
  policy.backoff = absl::Milliseconds(200);
  CalibrateRetryReport report;
  Results got;
  HoldSenderAfter(3);
  absl::Status s = CalibrateWithRetries(
      *client, samples_.light, options_,
      [&](CalibrateResult r) {
        Keep(got, r);
        if (got.size() == 3) {  // the server dies with results still to come
          server_->Kill();
          EXPECT_OK(server_->Restart());
          Release();
        }
      },
      policy, &report);
  ASSERT_OK(s) << server_->Log();
  ASSERT_EQ(got.size(), samples_.light.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, samples_.light[i]) << "each exactly once, in order";
  }
  EXPECT_GE(report.rounds, 2);
  EXPECT_GE(report.frames_retried, static_cast<int64_t>(samples_.light.size()) - 4);
  ExpectBatchProgress(3);
}

TEST_F(RetryTest, GivesUpAfterMaxAttemptsWithUnavailableForTheRest) {
  std::unique_ptr<CalibdClient> client = Client(server_->address(), /*attempts=*/2);
  ASSERT_NE(client, nullptr);
  Results ok;
  std::vector<absl::Status> failed;
  HoldSenderAfter(2);
  absl::Status s = client->Calibrate(samples_.light, options_, [&](CalibrateResult r) {
    if (r.status.ok()) {
      ok.emplace_back(r.path, "");
    } else {
      failed.push_back(r.status);
    }
    if (ok.size() == 2 && failed.empty()) {
      server_->Kill();  // and it stays dead
      Release();
    }
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_GE(ok.size(), 2u);
  EXPECT_LE(ok.size(), 3u);
  EXPECT_EQ(ok.size() + failed.size(), samples_.light.size()) << "every file reported once";
  for (const absl::Status& f : failed) EXPECT_THAT(f, StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RetryTest, EndpointListSkipsADeadReplica) {
  ASSERT_OK_AND_ASSIGN(int dead, PickFreePort());
  std::unique_ptr<CalibdClient> client =
      Client(absl::StrCat("127.0.0.1:", dead, ",", server_->address()));
  ASSERT_NE(client, nullptr);
  Results got;
  ASSERT_OK(client->Calibrate(samples_.light, options_, [&](CalibrateResult r) { Keep(got, r); }));
  EXPECT_EQ(got.size(), samples_.light.size());
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::ListDetectorsResponse r, client->ListDetectors());
    EXPECT_EQ(r.detectors_size(), 1);
  }
}

TEST_F(RetryTest, ReadCallsRetryUnavailable) {
  std::unique_ptr<CalibdClient> client = Client(server_->address(), /*attempts=*/12);
  ASSERT_NE(client, nullptr);
  ASSERT_OK(client->GetDetector(spec_.name).status());  // connected, then the server goes away
  server_->Kill();
  // The call runs on its own thread; the restart stays on this one (the child gets SIGKILL
  // when the thread that started it ends: PR_SET_PDEATHSIG).
  absl::StatusOr<v1::DetectorSpec> spec;
  std::thread call([&] { spec = client->GetDetector(spec_.name); });
  absl::SleepFor(absl::Milliseconds(300));  // the first attempts meet a dead server
  EXPECT_OK(server_->Restart());
  call.join();
  ASSERT_OK(spec.status());
  EXPECT_EQ(spec->name(), spec_.name);
  EXPECT_GE(client->retries(), 1);
}

TEST(ChannelTargetTest, ListsNamesAndPlainAddresses) {
  bool rr = true;
  ASSERT_OK_AND_ASSIGN(std::string t, ChannelTarget("calibd.local:50051", &rr));
  EXPECT_EQ(t, "calibd.local:50051");
  EXPECT_FALSE(rr);
  ASSERT_OK_AND_ASSIGN(t, ChannelTarget("10.0.0.1:5,10.0.0.2:6", &rr));
  EXPECT_EQ(t, "ipv4:10.0.0.1:5,10.0.0.2:6");
  EXPECT_TRUE(rr);
  ASSERT_OK_AND_ASSIGN(t, ChannelTarget("[::1]:5,[::1]:6", &rr));
  EXPECT_EQ(t, "ipv6:[::1]:5,[::1]:6");
  ASSERT_OK_AND_ASSIGN(t, ChannelTarget("dns:///calibd.ns.svc:50051", &rr));
  EXPECT_EQ(t, "dns:///calibd.ns.svc:50051");
  EXPECT_TRUE(rr);
  EXPECT_THAT(ChannelTarget("a.example:1,b.example:2", &rr),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("dns:///")));
  EXPECT_THAT(ChannelTarget("10.0.0.1:5,", &rr), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ChannelTarget("10.0.0.1:5,[::1]:6", &rr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace calibd::client
