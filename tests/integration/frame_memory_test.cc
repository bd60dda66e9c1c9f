// The frame-memory budget against the real binary: 64 concurrent Calibrate streams share a
// budget of a few frames. Every frame is calibrated exactly (the closed-form 2000 ADU) or
// refused with RESOURCE_EXHAUSTED — none lost, none wrong —, health answers throughout, a frame
// bigger than the whole budget is refused alone, and the server's peak RSS stays bounded.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/calibd_process.h"

namespace calibd::integration {
namespace {

using ::calibd::testing::CalibdProcess;
using ::calibd::testing::CalibdProcessOptions;
using ::calibd::testing::HealthState;

constexpr int kStreams = 64;
constexpr int kFramesPerStream = 3;
// Bytes one test frame holds in flight: raw uint16 + data, variance (float) + DQ.
constexpr int64_t kFrameBytes = int64_t{kRawWidth} * kRawHeight * (2 + 4 + 4 + 2);
constexpr int64_t kBudget = 4 * kFrameBytes;

// VmHWM (peak resident set) of `pid` in bytes; -1 when unreadable.
int64_t PeakRss(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmHWM:")) {
      v = absl::StripAsciiWhitespace(v);
      absl::ConsumeSuffix(&v, " kB");
      int64_t kb = 0;
      if (absl::SimpleAtoi(v, &kb)) return kb * 1024;
    }
  }
  return -1;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

TEST(FrameMemoryTest, SixtyFourStreamsOnASmallBudget) {
  CalibdProcessOptions options;
  options.extra_args = {absl::StrCat("--frame-memory-bytes=", kBudget),
                        "--frame-memory-wait-seconds=5", "--buffer-pool-bytes=8388608",
                        "--cache-bytes=16777216", "--workers=2"};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start(options));
  Client client(calibd->address());
  ASSERT_OK(client.SetUpTestDetector());
  {  // Warm up: one frame, so the baseline includes the decoded masters.
    CalibrateCall call(&client);
    ASSERT_TRUE(call.SendFrame(LightHeader("warm"), LightPixels()));
    FrameResult r = call.ReadResult();
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.header.status().code(), 0) << r.header.status().message();
    ASSERT_TRUE(call.Finish().ok());
  }
  const int64_t baseline = PeakRss(calibd->pid());
  ASSERT_GT(baseline, 0);

  // Health, every 20 ms, throughout.
  std::atomic<bool> stop{false};
  std::atomic<int> health_checks{0}, health_failures{0};
  std::atomic<int64_t> health_worst_us{0};
  std::thread prober([&] {
    while (!stop.load()) {
      const auto t = std::chrono::steady_clock::now();
      absl::StatusOr<HealthState> h = calibd::testing::CheckHealth(calibd->address(),
                                                                    absl::Seconds(2));
      const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now() - t).count();
      health_worst_us = std::max<int64_t>(health_worst_us.load(), us);
      ++health_checks;
      if (!h.ok() || *h != HealthState::kServing) ++health_failures;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  std::atomic<int> calibrated{0}, refused{0}, wrong{0}, lost{0};
  std::mutex mu;
  std::vector<double> latency_ms;
  std::vector<std::thread> streams;
  for (int s = 0; s < kStreams; ++s) {
    streams.emplace_back([&, s] {
      CalibrateCall call(&client, /*deadline_seconds=*/30);
      std::vector<std::chrono::steady_clock::time_point> sent;
      int got = 0;
      bool stream_refused = false;
      for (int f = 0; f < kFramesPerStream; ++f) {
        sent.push_back(std::chrono::steady_clock::now());
        if (!call.SendFrame(LightHeader(absl::StrCat("s", s, "f", f)), LightPixels())) break;
      }
      for (int f = 0; f < kFramesPerStream; ++f) {
        FrameResult r = call.ReadResult();
        if (!r.ok) break;
        ++got;
        if (r.header.status().code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++refused;
          continue;
        }
        const bool exact = r.header.status().code() == 0 &&
                           r.header.frame_id() == absl::StrCat("s", s, "f", f) &&
                           r.data.size() == size_t(kWidth) * kHeight &&
                           std::all_of(r.data.begin(), r.data.end(),
                                       [](float v) { return v == kExpectedLight; });
        if (!exact) ++wrong;
        ++calibrated;
        std::lock_guard<std::mutex> lock(mu);
        latency_ms.push_back(std::chrono::duration<double, std::milli>(
                                 std::chrono::steady_clock::now() - sent[f]).count());
      }
      const grpc::Status end = call.Finish();
      if (end.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        stream_refused = true;
        refused += kFramesPerStream - got;  // the stream was refused: its remaining frames
      } else if (!end.ok() || got != kFramesPerStream) {
        lost += kFramesPerStream - got;
        ADD_FAILURE() << "stream " << s << ": " << end.error_code() << " " << end.error_message();
      }
      (void)stream_refused;
    });
  }
  for (std::thread& t : streams) t.join();
  stop = true;
  prober.join();

  const int64_t peak = PeakRss(calibd->pid());
  std::cout << "frame memory: " << calibrated << " calibrated, " << refused << " refused; p50 "
            << Percentile(latency_ms, 0.5) << " ms, p99 " << Percentile(latency_ms, 0.99)
            << " ms; health checks " << health_checks << " (worst "
            << health_worst_us / 1000.0 << " ms); peak RSS " << peak / (1 << 20)
            << " MiB (baseline " << baseline / (1 << 20) << " MiB)\n";
  EXPECT_EQ(calibrated + refused, kStreams * kFramesPerStream);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(lost, 0);
  // Tiny frames calibrate in milliseconds: with a correct budget nearly all get memory well
  // within the 5 s wait. A budget held by frames already sent (a leaked lease) refuses most.
  EXPECT_GE(calibrated, kStreams * kFramesPerStream * 9 / 10) << refused << " refused";
  EXPECT_GT(health_checks, 0);
  EXPECT_EQ(health_failures, 0);
  // Frames in flight are bounded by the budget; 64 streams' gRPC buffers and threads add a
  // few MiB each at most.
  EXPECT_LT(peak, baseline + kBudget + (int64_t{128} << 20));

  // A frame bigger than the whole budget is refused alone; the stream goes on.
  ASSERT_OK(client.PutDetector("itest/big", 512, 512, 8));
  CalibrateCall call(&client);
  v1::FrameHeader big = LightHeader("big", 50.0, "itest/big", 512, 512);
  big.mutable_recipe()->set_bias(false);
  big.mutable_recipe()->set_dark(false);
  big.mutable_recipe()->set_flat(false);
  ASSERT_TRUE(call.SendFrame(big, LightPixels(512, 512)));
  ASSERT_TRUE(call.SendFrame(LightHeader("after"), LightPixels()));
  FrameResult r1 = call.ReadResult();
  ASSERT_TRUE(r1.ok);
  EXPECT_EQ(r1.header.status().code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << r1.header.status().message();
  FrameResult r2 = call.ReadResult();
  ASSERT_TRUE(r2.ok);
  EXPECT_EQ(r2.header.status().code(), 0) << r2.header.status().message();
  EXPECT_TRUE(call.Finish().ok());
}

// A client opening more streams on one connection than --max-streams-per-connection gets the
// rest queued on its own side (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): the server holds at most
// the limit (calibd_inflight_streams), nothing is refused, and every stream completes once the
// earlier ones end.
TEST(FrameMemoryTest, StreamsBeyondTheConnectionLimitWaitOnTheClient) {
  constexpr int kLimit = 3, kOpened = 7;
  CalibdProcessOptions options;
  options.extra_args = {absl::StrCat("--max-streams-per-connection=", kLimit)};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start(options));
  Client client(calibd->address());
  ASSERT_OK(client.SetUpTestDetector());
  auto inflight = [&]() -> double {
    absl::StatusOr<std::string> text = ScrapeMetrics(calibd->metrics_port());
    if (!text.ok()) return -1;
    absl::StatusOr<double> v =
        MetricValue(*text, "calibd_inflight_streams", {{"method", "Calibrate"}});
    return v.ok() ? *v : 0;
  };
  // Every stream sends its header, then holds until released: the server sees the first
  // kLimit of them; the others wait in the client's transport.
  std::atomic<bool> release{false};
  std::atomic<int> ok{0};
  std::vector<std::thread> streams;
  for (int i = 0; i < kOpened; ++i) {
    streams.emplace_back([&, i] {
      CalibrateCall call(&client, /*deadline_seconds=*/60);
      if (!call.SendHeader(LightHeader(absl::StrCat("c", i)))) return;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (!call.SendChunks(LightPixels())) return;
      FrameResult r = call.ReadResult();
      if (r.ok && r.header.status().code() == 0 && call.Finish().ok()) ++ok;
    });
  }
  double seen = -1;
  for (int attempt = 0; attempt < 100 && seen != kLimit; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    seen = inflight();
  }
  EXPECT_EQ(seen, kLimit) << "streams the server holds";
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(inflight(), kLimit) << "never more than the limit";
  release = true;
  for (std::thread& t : streams) t.join();
  EXPECT_EQ(ok, kOpened) << "every stream, queued or not, calibrated its frame";
  EXPECT_EQ(inflight(), 0);
}

}  // namespace
}  // namespace calibd::integration
