// Service tests for calibd's Calibrate: the real services (CalibdServer) over an in-process
// channel. Numbers are checked against core's calib::Calibrate run directly on the same inputs
// (core's own tests check calib::Calibrate against ccdproc); every error path asserts its exact
// code. The fixture is tests/server/server_fixture.h.
#include "tests/server/server_fixture.h"

namespace calibd::server {
namespace {

TEST_F(ServerTest, HealthIsNotServingUntilTheStoreOpens) {
  StartServer(ServerOptions(), /*open_store=*/false);
  EXPECT_EQ(HealthOf(channel_), grpc::StatusCode::UNAVAILABLE);
  {
    grpc::ClientContext ctx;
    v1::ListDetectorsResponse resp;
    EXPECT_THAT(store_->ListDetectors(&ctx, {}, &resp), GrpcIs(grpc::StatusCode::UNAVAILABLE));
  }
  ASSERT_OK(server_->OpenStore());
  EXPECT_EQ(HealthOf(channel_), grpc::StatusCode::OK);
}

TEST_F(ServerTest, CalibrateRoundTripMatchesCoreCalibrate) {
  SetUpMasters();
  ccd_.exptime = 30;
  RawFrame light = SimulateFrame(ccd_, FrameKind::kLight, 11);
  grpc::ClientContext ctx;
  auto stream = calibrator_->Calibrate(&ctx);
  ASSERT_TRUE(SendFrame(stream.get(), HeaderRequest(light, "light-1"), light.pixels));
  stream->WritesDone();
  std::vector<Received> got = ReadAll(stream.get());
  grpc::Status s = stream->Finish();
  ASSERT_GRPC_OK(s);
  ASSERT_EQ(got.size(), 1u);
  const v1::ResultHeader& h = got[0].header;
  ASSERT_EQ(h.status().code(), 0) << h.status().message();
  EXPECT_EQ(h.frame_id(), "light-1");
  EXPECT_EQ(h.unit(), v1::OUTPUT_UNIT_ADU);
  ASSERT_EQ(h.masters_size(), 3);
  for (const v1::AppliedMaster& m : h.masters()) {
    EXPECT_EQ(m.version(), 1);
    EXPECT_EQ(m.sha256().size(), 64u);
    EXPECT_EQ(m.outcome(), v1::SELECTION_OUTCOME_CERTIFIED);
  }
  // Provenance in the header: versions and HISTORY.
  bool has_bias_version = false, has_history = false;
  for (const v1::HeaderCard& c : h.cards()) {
    if (c.key() == "BIASVER" && c.int_value() == 1) has_bias_version = true;
    if (c.key() == "HISTORY" && c.comment().find("calibd: flat v1") != std::string::npos) {
      has_history = true;
    }
  }
  EXPECT_TRUE(has_bias_version);
  EXPECT_TRUE(has_history);
  ExpectSame(got[0], Expected(light, calib::RecipeOptions::Unit::kAdu));
  EXPECT_NEAR(h.statistics().dark_scale(), 30.0 / 100.0, 1e-12);
}

TEST_F(ServerTest, ElectronsAndDataOnly) {
  SetUpMasters();
  RawFrame light = SimulateFrame(ccd_, FrameKind::kLight, 12);
  grpc::ClientContext ctx;
  auto stream = calibrator_->Calibrate(&ctx);
  v1::CalibrateRequest header = HeaderRequest(light, "e");
  header.mutable_header()->set_unit(v1::OUTPUT_UNIT_ELECTRON);
  header.mutable_header()->add_planes(v1::PLANE_DATA);
  ASSERT_TRUE(SendFrame(stream.get(), header, light.pixels));
  stream->WritesDone();
  std::vector<Received> got = ReadAll(stream.get());
  ASSERT_GRPC_OK(stream->Finish());
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].header.status().code(), 0) << got[0].header.status().message();
  EXPECT_EQ(got[0].header.unit(), v1::OUTPUT_UNIT_ELECTRON);
  EXPECT_TRUE(got[0].variance.empty());
  EXPECT_TRUE(got[0].dq.empty());
  CalibratedFrame want = Expected(light, calib::RecipeOptions::Unit::kElectron);
  ASSERT_EQ(got[0].data.size(), size_t(want.data.num_pixels()));
  for (size_t i = 0; i < got[0].data.size(); ++i) ASSERT_EQ(got[0].data[i], want.data.data()[i]);
}

TEST_F(ServerTest, OneBadFrameInTheMiddleDoesNotStopTheStream) {
  SetUpMasters();
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 1);
  RawFrame b = SimulateFrame(ccd_, FrameKind::kLight, 2);
  RawFrame c = SimulateFrame(ccd_, FrameKind::kLight, 3);
  RawFrame d = SimulateFrame(ccd_, FrameKind::kLight, 4);
  c.header.Erase("EXPTIME");
  grpc::ClientContext ctx;
  auto stream = calibrator_->Calibrate(&ctx);
  std::vector<Received> got = Exchange(stream.get(), [&] {
    SendFrame(stream.get(), HeaderRequest(a, "a"), a.pixels);
    SendFrame(stream.get(), HeaderRequest(b, "b", "nosuch/detector"), b.pixels);
    SendFrame(stream.get(), HeaderRequest(c, "c"), c.pixels);
    SendFrame(stream.get(), HeaderRequest(d, "d"), d.pixels);
  });
  ASSERT_GRPC_OK(stream->Finish());
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].header.frame_id(), "a");
  EXPECT_EQ(got[0].header.status().code(), 0);
  EXPECT_EQ(got[1].header.frame_id(), "b");
  EXPECT_EQ(got[1].header.status().code(), int(grpc::StatusCode::NOT_FOUND));
  EXPECT_TRUE(got[1].data.empty());
  EXPECT_EQ(got[2].header.frame_id(), "c");
  EXPECT_EQ(got[2].header.status().code(), int(grpc::StatusCode::INVALID_ARGUMENT))
      << got[2].header.status().message();
  EXPECT_THAT(got[2].header.status().message(), ::testing::HasSubstr("EXPTIME"));
  EXPECT_EQ(got[3].header.frame_id(), "d");
  EXPECT_EQ(got[3].header.status().code(), 0);
  ExpectSame(got[0], Expected(a, calib::RecipeOptions::Unit::kAdu));
  ExpectSame(got[3], Expected(d, calib::RecipeOptions::Unit::kAdu));
}

TEST_F(ServerTest, StrictWithoutCertifiedMasterFailsAndNearestFallsBack) {
  SetUpMasters(/*certify=*/false);
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 5);
  grpc::ClientContext ctx;
  auto stream = calibrator_->Calibrate(&ctx);
  v1::CalibrateRequest nearest = HeaderRequest(a, "nearest");
  nearest.mutable_header()->mutable_selection()->set_policy(v1::SELECTION_POLICY_NEAREST);
  std::vector<Received> got = Exchange(stream.get(), [&] {
    SendFrame(stream.get(), HeaderRequest(a, "strict"), a.pixels);
    SendFrame(stream.get(), nearest, a.pixels);
  });
  ASSERT_GRPC_OK(stream->Finish());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].header.status().code(), int(grpc::StatusCode::FAILED_PRECONDITION))
      << got[0].header.status().message();
  ASSERT_FALSE(got[0].header.trail().empty());
  EXPECT_EQ(got[0].header.trail(0).outcome(), v1::SELECTION_OUTCOME_MISS);
  ASSERT_EQ(got[1].header.status().code(), 0) << got[1].header.status().message();
  for (const v1::AppliedMaster& m : got[1].header.masters()) {
    EXPECT_EQ(m.outcome(), v1::SELECTION_OUTCOME_NEAREST);
  }
  ExpectSame(got[1], Expected(a, calib::RecipeOptions::Unit::kAdu));
}

TEST_F(ServerTest, ShapeMismatchWithTheMastersIsInvalidArgument) {
  ASSERT_GRPC_OK(PutDetector(ccd_));
  // A bias of the wrong shape cannot even be stored.
  CcdModel small = ccd_;
  small.data_width = 32;
  CalibratedFrame wrong = MakeMaster(small, [](int, int) { return 1.0f; }, 0.1f, 0, "bias");
  v1::PutMasterResponse resp;
  EXPECT_THAT(PutMaster(wrong, "bias", &resp), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
}

TEST_F(ServerTest, ProtocolErrorsEndTheStream) {
  SetUpMasters();
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 6);
  {  // A chunk before any header.
    grpc::ClientContext ctx;
    auto stream = calibrator_->Calibrate(&ctx);
    v1::CalibrateRequest c;
    c.mutable_chunk()->set_data(std::string(100, '\0'));
    stream->Write(c);
    stream->WritesDone();
    ReadAll(stream.get());
    EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  }
  {  // More bytes than the header declared.
    grpc::ClientContext ctx;
    auto stream = calibrator_->Calibrate(&ctx);
    ASSERT_TRUE(SendFrame(stream.get(), HeaderRequest(a, "a"), a.pixels));
    v1::CalibrateRequest c;
    c.mutable_chunk()->set_data(std::string(10, '\0'));
    stream->Write(c);
    stream->WritesDone();
    ReadAll(stream.get());
    EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  }
  {  // A frame that is never completed.
    grpc::ClientContext ctx;
    auto stream = calibrator_->Calibrate(&ctx);
    stream->Write(HeaderRequest(a, "half"));
    stream->WritesDone();
    ReadAll(stream.get());
    EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  }
  {  // No pixel type.
    grpc::ClientContext ctx;
    auto stream = calibrator_->Calibrate(&ctx);
    v1::CalibrateRequest h = HeaderRequest(a, "notype");
    h.mutable_header()->set_pixel_type(v1::PIXEL_TYPE_UNSPECIFIED);
    stream->Write(h);
    stream->WritesDone();
    ReadAll(stream.get());
    EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  }
}

TEST_F(ServerTest, OversizedMessageIsResourceExhausted) {
  SetUpMasters();
  grpc::ClientContext ctx;
  auto stream = calibrator_->Calibrate(&ctx);
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 7);
  stream->Write(HeaderRequest(a, "a"));
  v1::CalibrateRequest c;
  c.mutable_chunk()->set_data(std::string(5 << 20, '\0'));  // over gRPC's 4 MiB cap
  stream->Write(c);
  stream->WritesDone();
  ReadAll(stream.get());
  EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_EQ(HealthOf(channel_), grpc::StatusCode::OK);
}

TEST_F(ServerTest, LimitsAreResourceExhausted) {
  ServerOptions options;
  options.limits.max_frame_pixels = 1000;  // a 72×48 frame has 3456
  options.limits.max_stream_bytes = 10000;
  options.limits.max_concurrent_streams = 1;
  StartServer(std::move(options));
  SetUpMasters();
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 8);
  {  // Frame too large: that frame's status; the stream goes on.
    grpc::ClientContext ctx;
    auto stream = calibrator_->Calibrate(&ctx);
    ASSERT_TRUE(SendFrame(stream.get(), HeaderRequest(a, "big"), a.pixels));
    stream->WritesDone();
    std::vector<Received> got = ReadAll(stream.get());
    ASSERT_GRPC_OK(stream->Finish());
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].header.status().code(), int(grpc::StatusCode::RESOURCE_EXHAUSTED));
  }
  {  // Stream bytes: the second frame crosses 10000 bytes.
    grpc::ClientContext ctx;
    auto stream = calibrator_->Calibrate(&ctx);
    Exchange(stream.get(), [&] {
      SendFrame(stream.get(), HeaderRequest(a, "1"), a.pixels);
      SendFrame(stream.get(), HeaderRequest(a, "2"), a.pixels);
    });
    EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::RESOURCE_EXHAUSTED));
  }
  {  // Concurrent streams: the second open stream is refused.
    // The slots of the streams above are released in their OnDone, which may run after the
    // client saw Finish; so open the first stream until it is admitted, proven by a frame
    // result (a too-large frame: its own status, the stream stays open).
    std::unique_ptr<grpc::ClientReaderWriter<v1::CalibrateRequest, v1::CalibrateResponse>> first;
    std::unique_ptr<grpc::ClientContext> attempt_ctx;
    bool admitted = false;
    for (int attempt = 0; attempt < 100 && !admitted; ++attempt) {
      attempt_ctx = std::make_unique<grpc::ClientContext>();
      first = calibrator_->Calibrate(attempt_ctx.get());
      SendFrame(first.get(), HeaderRequest(a, "open"), a.pixels);
      v1::CalibrateResponse r;
      admitted = first->Read(&r) && r.has_header();
      if (!admitted) {
        first->Finish();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    ASSERT_TRUE(admitted) << "the first stream was never admitted";
    grpc::ClientContext ctx2;
    auto second = calibrator_->Calibrate(&ctx2);
    second->WritesDone();
    ReadAll(second.get());
    EXPECT_THAT(second->Finish(), GrpcIs(grpc::StatusCode::RESOURCE_EXHAUSTED));
    attempt_ctx->TryCancel();
    ReadAll(first.get());
    first->Finish();
  }
}

TEST_F(ServerTest, ClientCancelMidStreamLeavesTheServerServing) {
  SetUpMasters();
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 9);
  grpc::ClientContext ctx;
  auto stream = calibrator_->Calibrate(&ctx);
  ASSERT_TRUE(SendFrame(stream.get(), HeaderRequest(a, "done"), a.pixels));
  stream->Write(HeaderRequest(a, "half"));
  v1::CalibrateRequest c;
  c.mutable_chunk()->set_data(std::string(kChunk, '\0'));
  stream->Write(c);
  v1::CalibrateResponse r;
  ASSERT_TRUE(stream->Read(&r));  // the first frame's result header arrives
  EXPECT_TRUE(r.has_header());
  ctx.TryCancel();
  while (stream->Read(&r)) {
  }
  EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::CANCELLED));
  EXPECT_EQ(HealthOf(channel_), grpc::StatusCode::OK);
  // And the next stream works.
  grpc::ClientContext ctx2;
  auto again = calibrator_->Calibrate(&ctx2);
  ASSERT_TRUE(SendFrame(again.get(), HeaderRequest(a, "again"), a.pixels));
  again->WritesDone();
  std::vector<Received> got = ReadAll(again.get());
  ASSERT_GRPC_OK(again->Finish());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.status().code(), 0);
}

TEST_F(ServerTest, DeadlineExceededStopsTheStream) {
  SetUpMasters();
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 10);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  auto stream = calibrator_->Calibrate(&ctx);
  stream->Write(HeaderRequest(a, "slow"));  // then nothing: the deadline passes
  v1::CalibrateResponse r;
  while (stream->Read(&r)) {
  }
  EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_EQ(HealthOf(channel_), grpc::StatusCode::OK);
}

}  // namespace
}  // namespace calibd::server
