// Bad input and faults against the real calibd binary on 127.0.0.1: each test provokes one
// fault through the generated stubs, asserts the exact gRPC status code (of the call, or of the
// one frame inside a Calibrate stream), then asserts that the server still serves: health
// SERVING and a light frame calibrated to its closed-form value on a new stream.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "core/status/status_matchers.h"
#include "core/hash/sha256.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/grpc_matchers.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::integration {
namespace {

using ::calibd::testing::CalibdProcess;
using ::calibd::testing::CalibdProcessOptions;
using ::calibd::testing::StatusIs;
using ::testing::Eq;

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<CalibdProcess>> p = CalibdProcess::Start(Options());
    ASSERT_TRUE(p.ok()) << p.status();
    calibd_ = std::move(*p);
    client_ = std::make_unique<Client>(calibd_->address());
  }
  void TearDown() override {
    if (HasFailure() && calibd_ != nullptr) {
      std::string log = calibd_->Log();
      if (log.size() > 4000) log = log.substr(log.size() - 4000);
      std::cerr << "---- calibd log (tail) ----\n" << log << "\n";
    }
  }
  virtual CalibdProcessOptions Options() { return {}; }
  void StillServing() { ExpectStillServing(*client_, calibd_->address()); }

  std::unique_ptr<CalibdProcess> calibd_;
  std::unique_ptr<Client> client_;
};

// ---- PutMaster --------------------------------------------------------------------------------

TEST_F(FaultTest, NotFitsUploadIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  std::string junk(20000, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 7919) % 251);
  EXPECT_THAT(client_->PutMasterBytes("bias", junk).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, TruncatedFitsUploadIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  const std::string fits = BiasFits();
  ASSERT_GT(fits.size(), 3u * 2880);
  // The header and one block of the data: a consistent upload (size and sha256 match what is
  // sent) of a FITS file that ends early.
  const std::string truncated = fits.substr(0, 2 * 2880);
  EXPECT_THAT(client_->PutMasterBytes("bias", truncated).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, MasterShapeMismatchIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  const std::string narrow = MasterFits("bias", [](int, int) { return 100.0; }, 0.0,
                                        kWidth - 8, kHeight);
  EXPECT_THAT(client_->PutMasterBytes("bias", narrow).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, NanFlatIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  const std::string nan_flat = MasterFits(
      "flat",
      [](int x, int y) {
        return x == 5 && y == 7 ? std::numeric_limits<double>::quiet_NaN() : 1.0;
      },
      1.0);
  EXPECT_THAT(client_->PutMasterBytes("flat", nan_flat).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, Sha256MismatchIsDataLossAndStoresNothing) {
  ASSERT_OK(client_->PutDetector());
  const std::string fits = BiasFits();
  std::string wrong_sha(64, 'a');
  EXPECT_THAT(client_->PutMasterBytes("bias", fits, kDetector, wrong_sha).status(),
              StatusIs(absl::StatusCode::kDataLoss));
  v1::ListMastersRequest req;
  req.set_detector(kDetector);
  v1::ListMastersResponse resp;
  auto ctx = client_->Context();
  ASSERT_OK(FromGrpc(client_->store()->ListMasters(ctx.get(), req, &resp)));
  EXPECT_EQ(resp.versions_size(), 0);
  ASSERT_OK(client_->SetUpTestDetector());
  StillServing();
}

TEST_F(FaultTest, PutMasterChunkBeforeHeaderIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  auto ctx = client_->Context();
  v1::PutMasterResponse resp;
  auto writer = client_->store()->PutMaster(ctx.get(), &resp);
  v1::PutMasterRequest chunk;
  chunk.set_chunk(BiasFits());
  writer->Write(chunk);
  writer->WritesDone();
  EXPECT_THAT(FromGrpc(writer->Finish()), StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, PutMasterLargerThanDeclaredIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  const std::string fits = BiasFits();
  auto ctx = client_->Context();
  v1::PutMasterResponse resp;
  auto writer = client_->store()->PutMaster(ctx.get(), &resp);
  v1::PutMasterRequest req;
  req.mutable_header()->set_detector(kDetector);
  req.mutable_header()->set_kind("bias");
  req.mutable_header()->set_total_bytes(static_cast<int64_t>(fits.size()) - 2880);
  writer->Write(req);
  v1::PutMasterRequest chunk;
  chunk.set_chunk(fits);
  writer->Write(chunk);
  writer->WritesDone();
  EXPECT_THAT(FromGrpc(writer->Finish()), StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, PutMasterForUnknownDetectorIsNotFound) {
  ASSERT_OK(client_->SetUpTestDetector());
  EXPECT_THAT(client_->PutMasterBytes("bias", BiasFits(), "nosuch/ccd").status(),
              StatusIs(absl::StatusCode::kNotFound));
  v1::GetDetectorRequest req;
  req.set_name("nosuch/ccd");
  v1::DetectorSpec spec;
  auto ctx = client_->Context();
  EXPECT_THAT(FromGrpc(client_->store()->GetDetector(ctx.get(), req, &spec)),
              StatusIs(absl::StatusCode::kNotFound));
  StillServing();
}

// ---- Calibrate: per-frame errors (the stream goes on) -----------------------------------------

TEST_F(FaultTest, UnknownDetectorFrameIsNotFoundAndStreamContinues) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  ASSERT_TRUE(call.SendFrame(LightHeader("unknown", 50, "nosuch/ccd"), LightPixels()));
  ASSERT_TRUE(call.SendFrame(LightHeader("good"), LightPixels()));
  FrameResult bad = call.ReadResult();
  ASSERT_TRUE(bad.ok);
  EXPECT_EQ(bad.header.frame_id(), "unknown");
  EXPECT_EQ(bad.header.status().code(), grpc::StatusCode::NOT_FOUND) << bad.header.status().message();
  FrameResult good = call.ReadResult();
  ASSERT_TRUE(good.ok);
  EXPECT_EQ(good.header.frame_id(), "good");
  EXPECT_EQ(good.header.status().code(), 0) << good.header.status().message();
  EXPECT_OK(FromGrpc(call.Finish()));
  StillServing();
}

TEST_F(FaultTest, FrameShapeMismatchIsInvalidArgumentAndStreamContinues) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  ASSERT_TRUE(call.SendFrame(LightHeader("narrow", 50, kDetector, kRawWidth - 2, kRawHeight),
                             LightPixels(kRawWidth - 2, kRawHeight)));
  ASSERT_TRUE(call.SendFrame(LightHeader("good"), LightPixels()));
  FrameResult bad = call.ReadResult();
  ASSERT_TRUE(bad.ok);
  EXPECT_EQ(bad.header.status().code(), grpc::StatusCode::INVALID_ARGUMENT)
      << bad.header.status().message();
  FrameResult good = call.ReadResult();
  ASSERT_TRUE(good.ok);
  EXPECT_EQ(good.header.status().code(), 0) << good.header.status().message();
  EXPECT_OK(FromGrpc(call.Finish()));
  StillServing();
}

TEST_F(FaultTest, MissingExptimeIsInvalidArgumentAndStreamContinues) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  ASSERT_TRUE(call.SendFrame(LightHeader("no-exptime", /*exptime=*/-1), LightPixels()));
  ASSERT_TRUE(call.SendFrame(LightHeader("good"), LightPixels()));
  FrameResult bad = call.ReadResult();
  ASSERT_TRUE(bad.ok);
  EXPECT_EQ(bad.header.status().code(), grpc::StatusCode::INVALID_ARGUMENT)
      << bad.header.status().message();
  FrameResult good = call.ReadResult();
  ASSERT_TRUE(good.ok);
  EXPECT_EQ(good.header.status().code(), 0) << good.header.status().message();
  EXPECT_OK(FromGrpc(call.Finish()));
  StillServing();
}

TEST_F(FaultTest, NoCertifiedMasterUnderStrictIsFailedPrecondition) {
  ASSERT_OK(client_->SetUpTestDetector(/*certify=*/false));
  CalibrateCall call(client_.get());
  ASSERT_TRUE(call.SendFrame(LightHeader("strict"), LightPixels()));
  v1::FrameHeader nearest = LightHeader("nearest");
  nearest.mutable_selection()->set_policy(v1::SELECTION_POLICY_NEAREST);
  ASSERT_TRUE(call.SendFrame(nearest, LightPixels()));
  FrameResult strict = call.ReadResult();
  ASSERT_TRUE(strict.ok);
  EXPECT_EQ(strict.header.status().code(), grpc::StatusCode::FAILED_PRECONDITION)
      << strict.header.status().message();
  // The same frame under NEAREST falls back to the uncertified versions and is right.
  FrameResult fallback = call.ReadResult();
  ASSERT_TRUE(fallback.ok);
  ASSERT_EQ(fallback.header.status().code(), 0) << fallback.header.status().message();
  ASSERT_FALSE(fallback.data.empty());
  EXPECT_NEAR(fallback.data[0], kExpectedLight, 1e-3);
  EXPECT_OK(FromGrpc(call.Finish()));
  for (const char* kind : {"bias", "dark", "flat"}) ASSERT_OK(client_->Certify(kind, 1));
  StillServing();
}

// ---- Calibrate: protocol errors (the stream ends) ----------------------------------------------

TEST_F(FaultTest, ChunkBeforeHeaderIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  v1::CalibrateRequest chunk;
  chunk.mutable_chunk()->set_data(LightPixels());
  call.Send(chunk);
  EXPECT_THAT(FromGrpc(call.Finish()), StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, StreamLargerThanDeclaredIsInvalidArgument) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  ASSERT_TRUE(call.SendHeader(LightHeader("too-long")));
  call.SendChunks(LightPixels() + std::string(2, '\0'));
  EXPECT_THAT(FromGrpc(call.Finish()), StatusIs(absl::StatusCode::kInvalidArgument));
  StillServing();
}

TEST_F(FaultTest, OversizedMessageIsResourceExhausted) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  ASSERT_TRUE(call.SendHeader(LightHeader("huge")));
  v1::CalibrateRequest chunk;
  chunk.mutable_chunk()->set_data(std::string(5 << 20, '\0'));  // > gRPC's 4 MiB cap
  call.Send(chunk);
  EXPECT_THAT(FromGrpc(call.Finish()), StatusIs(absl::StatusCode::kResourceExhausted));
  StillServing();
}

// ---- Calibrate: the client goes away or runs out of time ---------------------------------------

TEST_F(FaultTest, ClientCancelMidStream) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  const std::string pixels = LightPixels();
  ASSERT_TRUE(call.SendHeader(LightHeader("cancelled")));
  ASSERT_TRUE(call.SendChunks(pixels.substr(0, pixels.size() / 2), 1024));
  call.context().TryCancel();
  EXPECT_THAT(FromGrpc(call.Finish()), StatusIs(absl::StatusCode::kCancelled));
  StillServing();
}

TEST_F(FaultTest, DeadlineExceededMidFrame) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get(), /*deadline_seconds=*/0.5);
  const std::string pixels = LightPixels();
  ASSERT_TRUE(call.SendHeader(LightHeader("late")));
  ASSERT_TRUE(call.SendChunks(pixels.substr(0, pixels.size() / 2), 1024));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // the rest never comes
  EXPECT_THAT(FromGrpc(call.Finish()), StatusIs(absl::StatusCode::kDeadlineExceeded));
  StillServing();
}

// A client that sends 1024×1024 frames and never reads its results meets back-pressure: it can
// only get a bounded number of frames in, the server's memory stays bounded, and another
// client's stream proceeds meanwhile.
TEST_F(FaultTest, SlowReaderIsBoundedAndOthersProceed) {
  ASSERT_OK(client_->SetUpTestDetector());
  constexpr int kBig = 1024;
  ASSERT_OK(client_->PutDetector("itest/big", kBig, kBig, /*overscan=*/0));
  v1::FrameHeader big = LightHeader("big", 50, "itest/big", kBig, kBig);
  big.mutable_recipe()->set_bias(false);
  big.mutable_recipe()->set_dark(false);
  big.mutable_recipe()->set_flat(false);
  const std::string pixels(static_cast<size_t>(kBig) * kBig * 2, '\x10');

  // Warm-up: one big frame read normally, so pools and caches are at their working size.
  {
    Client warm(calibd_->address());
    CalibrateCall call(&warm);
    ASSERT_TRUE(call.SendFrame(big, pixels));
    FrameResult r = call.ReadResult();
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.header.status().code(), 0) << r.header.status().message();
    ASSERT_OK(FromGrpc(call.Finish()));
  }
  ASSERT_OK_AND_ASSIGN(const int64_t rss_before, ResidentBytes(calibd_->pid()));

  Client slow_client(calibd_->address());
  CalibrateCall slow(&slow_client, /*deadline_seconds=*/60);
  std::atomic<int> frames_sent{0};
  std::thread writer([&] {
    for (int i = 0; i < 400; ++i) {
      if (!slow.SendFrame(big, pixels)) return;
      frames_sent = i + 1;
    }
  });
  // While the slow stream is stuck, another client calibrates frames normally.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  for (int i = 0; i < 3; ++i) {
    CalibrateCall call(client_.get(), 20);
    ASSERT_TRUE(call.SendFrame(LightHeader("other"), LightPixels()));
    FrameResult r = call.ReadResult();
    ASSERT_TRUE(r.ok) << "another stream did not proceed while a reader was slow";
    EXPECT_EQ(r.header.status().code(), 0) << r.header.status().message();
    EXPECT_OK(FromGrpc(call.Finish()));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int sent = frames_sent.load();
  ASSERT_OK_AND_ASSIGN(const int64_t rss_during, ResidentBytes(calibd_->pid()));
  slow.context().TryCancel();
  writer.join();
  slow.Finish();

  RecordProperty("slow_reader_frames_sent", sent);
  RecordProperty("slow_reader_rss_growth_mb", static_cast<int>((rss_during - rss_before) >> 20));
  std::cerr << "slow reader: " << sent << " frames sent; server RSS " << (rss_before >> 20)
            << " -> " << (rss_during >> 20) << " MB\n";
  // Unbounded buffering would take every one of the 400 frames (800 MB in, 4 GB of results)
  // within these two seconds of loopback; back-pressure holds the writer to a few.
  EXPECT_LT(sent, 60) << "the server kept reading from a client that does not read";
  EXPECT_LT(rss_during - rss_before, int64_t{300} << 20)
      << "server RSS grew from " << (rss_before >> 20) << " MB to " << (rss_during >> 20)
      << " MB with a slow reader (" << sent << " frames sent)";
  StillServing();
}

// ---- Process faults ----------------------------------------------------------------------------

TEST_F(FaultTest, SigkillMidUploadLeavesNoPartialVersion) {
  ASSERT_OK(client_->SetUpTestDetector());
  constexpr int kBig = 1024;
  ASSERT_OK(client_->PutDetector("itest/big", kBig, kBig, /*overscan=*/0));
  const std::string fits =
      MasterFits("bias", [](int x, int y) { return 100.0 + (x + y) % 7; }, 0.0, kBig, kBig);
  ASSERT_GT(fits.size(), 4u << 20);
  {
    auto ctx = client_->Context();
    v1::PutMasterResponse resp;
    auto writer = client_->store()->PutMaster(ctx.get(), &resp);
    v1::PutMasterRequest req;
    req.mutable_header()->set_detector("itest/big");
    req.mutable_header()->set_kind("bias");
    req.mutable_header()->set_total_bytes(static_cast<int64_t>(fits.size()));
    req.mutable_header()->set_sha256(hash::Sha256Hex(fits));
    ASSERT_TRUE(writer->Write(req));
    for (int i = 0; i < 2; ++i) {
      v1::PutMasterRequest chunk;
      chunk.set_chunk(fits.substr(static_cast<size_t>(i) << 20, 1 << 20));
      ASSERT_TRUE(writer->Write(chunk));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    calibd_->Kill();
    writer->WritesDone();
    // The server died mid-upload: the channel reports the broken connection.
    EXPECT_THAT(writer->Finish(), ::calibd::testing::GrpcIs(grpc::StatusCode::UNAVAILABLE));
  }
  ASSERT_OK(calibd_->Restart());
  client_ = std::make_unique<Client>(calibd_->address());
  v1::ListMastersRequest list;
  list.set_detector("itest/big");
  v1::ListMastersResponse listed;
  {
    auto ctx = client_->Context();
    ASSERT_OK(FromGrpc(client_->store()->ListMasters(ctx.get(), list, &listed)));
  }
  EXPECT_EQ(listed.versions_size(), 0) << "a killed upload left a version behind";
  // The next put of the same bytes works and is the series' first version.
  ASSERT_OK_AND_ASSIGN(v1::PutMasterResponse put,
                       client_->PutMasterBytes("bias", fits, "itest/big", "", 1 << 20));
  EXPECT_EQ(put.version().version(), 1);
  EXPECT_FALSE(put.already_existed());
  EXPECT_EQ(put.version().sha256(), hash::Sha256Hex(fits));
  StillServing();
}

// A spool directory that does not exist yet (a fresh volume) is made at startup, so the first
// upload works; one that cannot be made (under a regular file) stops the server at startup.
TEST(SpoolDirTest, MissingSpoolDirIsMadeAtStartupAndUnmakeableOneIsAStartupError) {
  ::calibd::testing::TempDir dir;
  const std::string spool = dir.path() + "/fresh/volume/spool";
  CalibdProcessOptions options;
  options.extra_args = {"--spool_dir=" + spool};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start(options));
  Client client(calibd->address());
  ASSERT_OK(client.SetUpTestDetector());  // PutMaster spools under --spool_dir
  EXPECT_TRUE(std::filesystem::is_directory(spool));

  const std::string file = dir.path() + "/a-file";
  { std::ofstream(file) << "not a directory"; }
  CalibdProcessOptions bad;
  bad.extra_args = {"--spool_dir=" + file + "/spool"};
  bad.startup_timeout = absl::Seconds(10);
  EXPECT_FALSE(CalibdProcess::Start(bad).ok()) << "calibd served with an unusable spool dir";
}

TEST_F(FaultTest, SigtermDrainsInFlightCalibrationThenExitsZero) {
  ASSERT_OK(client_->SetUpTestDetector());
  CalibrateCall call(client_.get());
  const std::string pixels = LightPixels();
  // A whole frame first: its result proves the stream is running on the server (client writes
  // are buffered, so without it the signal could overtake the call itself).
  ASSERT_TRUE(call.SendHeader(LightHeader("warm-up")));
  ASSERT_TRUE(call.SendChunks(pixels, 1 << 20));
  FrameResult warm = call.ReadResult();
  ASSERT_TRUE(warm.ok);
  ASSERT_EQ(warm.header.status().code(), 0) << warm.header.status().message();
  ASSERT_TRUE(call.SendHeader(LightHeader("in-flight")));
  ASSERT_TRUE(call.SendChunks(pixels.substr(0, pixels.size() / 2), 1024));
  ASSERT_OK(calibd_->Signal(SIGTERM));
  // Health stops saying SERVING (NOT_SERVING, or no new calls accepted at all).
  bool stopped_serving = false;
  for (int i = 0; i < 50 && !stopped_serving; ++i) {
    absl::StatusOr<calibd::testing::HealthState> h =
        calibd::testing::CheckHealth(calibd_->address(), absl::Seconds(1));
    stopped_serving = !h.ok() || *h != calibd::testing::HealthState::kServing;
    if (!stopped_serving) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(stopped_serving) << "health still SERVING 5 s after SIGTERM";
  // The in-flight frame completes.
  ASSERT_TRUE(call.SendChunks(pixels.substr(pixels.size() / 2), 1024));
  FrameResult r = call.ReadResult();
  ASSERT_TRUE(r.ok) << "the in-flight calibration was not completed";
  ASSERT_EQ(r.header.status().code(), 0) << r.header.status().message();
  ASSERT_FALSE(r.data.empty());
  EXPECT_NEAR(r.data[0], kExpectedLight, 1e-3);
  EXPECT_OK(FromGrpc(call.Finish()));
  ASSERT_OK_AND_ASSIGN(int code, calibd_->Wait(absl::Seconds(30)));
  EXPECT_EQ(code, 0);
}

}  // namespace
}  // namespace calibd::integration
