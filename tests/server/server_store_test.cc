// Service tests of the Store RPCs through the real services: PutMaster's checks, exact codes,
// tokens, and what an error tells the client (a request id, never server detail).
#include "tests/server/server_fixture.h"

namespace calibd::server {
namespace {

TEST_F(ServerTest, PutMasterChecksItsInput) {
  ASSERT_GRPC_OK(PutDetector(ccd_));
  CalibratedFrame bias = MakeMaster(ccd_, [](int, int) { return 2.0f; }, 0.1f, 0, "bias");
  const std::string path = dir_.File("b.fits");
  ASSERT_OK(fits::WriteCalibratedFrame(path, bias));
  v1::PutMasterResponse resp;
  // sha256 differs from the bytes: damaged in transit.
  EXPECT_THAT(PutMasterFile(path, "bias", &resp, kDetector, std::string(64, 'a')), GrpcIs(grpc::StatusCode::DATA_LOSS));
  // More bytes than declared.
  EXPECT_THAT(PutMasterFile(path, "bias", &resp, kDetector, "", -10), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  // Fewer bytes than declared (truncated upload).
  EXPECT_THAT(PutMasterFile(path, "bias", &resp, kDetector, "", +10), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  // Unknown detector.
  EXPECT_THAT(PutMasterFile(path, "bias", &resp, "nosuch/detector"), GrpcIs(grpc::StatusCode::NOT_FOUND));
  // Not FITS.
  const std::string junk = dir_.File("junk.fits");
  {
    std::FILE* f = std::fopen(junk.c_str(), "wb");
    std::string text(5000, 'x');
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  EXPECT_THAT(PutMasterFile(junk, "bias", &resp), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  // A NaN not flagged in DQ.
  CalibratedFrame nan_flat = MakeMaster(ccd_, [](int x, int y) {
    return (x == 3 && y == 4) ? std::nanf("") : 1.0f; }, 0.1f, 1, "flat");
  EXPECT_THAT(PutMaster(nan_flat, "flat", &resp), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  // A chunk before the header.
  {
    grpc::ClientContext ctx;
    auto w = store_->PutMaster(&ctx, &resp);
    v1::PutMasterRequest req;
    req.set_chunk("SIMPLE");
    w->Write(req);
    w->WritesDone();
    EXPECT_THAT(w->Finish(), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  }
  // And the good upload works, twice (idempotent).
  ASSERT_GRPC_OK(PutMasterFile(path, "bias", &resp));
  EXPECT_EQ(resp.version().version(), 1);
  EXPECT_FALSE(resp.already_existed());
  ASSERT_GRPC_OK(PutMasterFile(path, "bias", &resp));
  EXPECT_EQ(resp.version().version(), 1);
  EXPECT_TRUE(resp.already_existed());
  // GetMaster returns the same bytes.
  grpc::ClientContext ctx;
  v1::GetMasterRequest get;
  get.set_detector(kDetector);
  get.set_kind("bias");
  get.set_version(1);
  auto reader = store_->GetMaster(&ctx, get);
  v1::GetMasterResponse part;
  std::string bytes;
  ASSERT_TRUE(reader->Read(&part));
  ASSERT_TRUE(part.has_metadata());
  EXPECT_EQ(part.metadata().sha256(), Sha256Hex(ReadFile(path)));
  while (reader->Read(&part)) bytes += part.chunk();
  ASSERT_GRPC_OK(reader->Finish());
  EXPECT_EQ(bytes, ReadFile(path));
}

TEST_F(ServerTest, FlatWithZeroMeanIsInvalidArgument) {
  ASSERT_GRPC_OK(PutDetector(ccd_));
  CalibratedFrame zero = MakeMaster(ccd_, [](int, int) { return 0.0f; }, 0.0f, 1, "flat");
  v1::PutMasterResponse resp;
  ASSERT_GRPC_OK(PutMaster(zero, "flat", &resp));
  ASSERT_GRPC_OK(Certify("flat", 1, "2026-01-01T00:00:00"));
  RawFrame a = SimulateFrame(ccd_, FrameKind::kLight, 13);
  grpc::ClientContext ctx;
  auto stream = calibrator_->Calibrate(&ctx);
  v1::CalibrateRequest h = HeaderRequest(a, "flat-only");
  h.mutable_header()->mutable_recipe()->set_bias(false);
  h.mutable_header()->mutable_recipe()->set_dark(false);
  ASSERT_TRUE(SendFrame(stream.get(), h, a.pixels));
  stream->WritesDone();
  std::vector<Received> got = ReadAll(stream.get());
  ASSERT_GRPC_OK(stream->Finish());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.status().code(), int(grpc::StatusCode::INVALID_ARGUMENT))
      << got[0].header.status().message();
}

TEST_F(ServerTest, StoreCallsReportExactCodes) {
  SetUpMasters(/*certify=*/false);
  {
    grpc::ClientContext ctx;
    v1::GetDetectorRequest req;
    req.set_name("nosuch/detector");
    v1::DetectorSpec resp;
    EXPECT_THAT(store_->GetDetector(&ctx, req, &resp), GrpcIs(grpc::StatusCode::NOT_FOUND));
  }
  {
    grpc::ClientContext ctx;
    v1::SelectRequest req;
    req.set_detector("nosuch/detector");
    HeaderToProto(SimulateFrame(ccd_, FrameKind::kLight, 1).header, req.mutable_cards());
    v1::SelectResponse resp;
    EXPECT_THAT(store_->Select(&ctx, req, &resp), GrpcIs(grpc::StatusCode::NOT_FOUND));
  }
  ASSERT_GRPC_OK(Certify("bias", 1, "2026-01-01T00:00:00"));
  // Overlapping certification of the same series.
  EXPECT_THAT(Certify("bias", 1, "2026-02-01T00:00:00"), GrpcIs(grpc::StatusCode::ALREADY_EXISTS));
  EXPECT_THAT(Certify("bias", 7, "2027-01-01T00:00:00"), GrpcIs(grpc::StatusCode::NOT_FOUND));
  {  // Select explains: bias certified, dark and flat missing under strict.
    grpc::ClientContext ctx;
    v1::SelectRequest req;
    req.set_detector(kDetector);
    HeaderToProto(SimulateFrame(ccd_, FrameKind::kLight, 1).header, req.mutable_cards());
    v1::SelectResponse resp;
    ASSERT_GRPC_OK(store_->Select(&ctx, req, &resp));
    // bias, dark, flat, then the optional noise products Calibrate would use (none stored).
    ASSERT_EQ(resp.trail_size(), 6);
    EXPECT_EQ(resp.trail(3).kind(), "read_noise");
    EXPECT_EQ(resp.trail(4).kind(), "gain");
    EXPECT_EQ(resp.trail(5).kind(), "bad_pixels");
    for (int i = 3; i < 6; ++i) EXPECT_EQ(resp.trail(i).outcome(), v1::SELECTION_OUTCOME_MISS);
    EXPECT_EQ(resp.trail(0).kind(), "bias");
    EXPECT_EQ(resp.trail(0).outcome(), v1::SELECTION_OUTCOME_CERTIFIED);
    EXPECT_EQ(resp.trail(1).outcome(), v1::SELECTION_OUTCOME_MISS);
    EXPECT_EQ(resp.trail(1).status().code(), int(grpc::StatusCode::FAILED_PRECONDITION));
    ASSERT_EQ(resp.masters_size(), 1);
  }
  {
    grpc::ClientContext ctx;
    v1::ListMastersRequest req;
    req.set_detector(kDetector);
    v1::ListMastersResponse resp;
    ASSERT_GRPC_OK(store_->ListMasters(&ctx, req, &resp));
    EXPECT_EQ(resp.versions_size(), 3);
  }
  {
    grpc::ClientContext ctx;
    v1::GetDqBitsResponse resp;
    ASSERT_GRPC_OK(store_->GetDqBits(&ctx, {}, &resp));
    ASSERT_GE(resp.bits_size(), 8);
    EXPECT_EQ(resp.bits(0).bit(), 1u);
  }
}

TEST_F(ServerTest, TokensGuardReadsAndWrites) {
  ServerOptions options;
  ASSERT_OK_AND_ASSIGN(options.auth, TokenAuth::Parse("# tokens\nadm1n admin alice\nr3ad read bob\n"));
  StartServer(std::move(options));
  auto list = [&](const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::ListDetectorsResponse resp;
    return store_->ListDetectors(&ctx, {}, &resp).error_code();
  };
  EXPECT_EQ(list(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("wrong"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("r3ad"), grpc::StatusCode::OK);
  EXPECT_EQ(list("adm1n"), grpc::StatusCode::OK);
  EXPECT_THAT(PutDetector(ccd_, kDetector, ""), GrpcIs(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_THAT(PutDetector(ccd_, kDetector, "r3ad"), GrpcIs(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_GRPC_OK(PutDetector(ccd_, kDetector, "adm1n"));
  {  // Streams too.
    grpc::ClientContext ctx;
    auto stream = calibrator_->Calibrate(&ctx);
    stream->WritesDone();
    ReadAll(stream.get());
    EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::UNAUTHENTICATED));
  }
  // Health needs no token.
  EXPECT_EQ(HealthOf(channel_), grpc::StatusCode::OK);
}

TEST_F(ServerTest, ErrorsCarryTheRequestIdInMessageAndTrailers) {
  grpc::ClientContext ctx;
  v1::GetDetectorRequest req;
  req.set_name("no/such");
  v1::DetectorSpec resp;
  const grpc::Status s = store_->GetDetector(&ctx, req, &resp);
  ASSERT_THAT(s, GrpcIs(grpc::StatusCode::NOT_FOUND));
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find("calibd-request-id");
  ASSERT_NE(it, trailers.end());
  const std::string id(it->second.data(), it->second.size());
  EXPECT_EQ(id.size(), 16u);
  EXPECT_THAT(s.error_message(), ::testing::EndsWith("[request id " + id + "]"));
}

TEST_F(ServerTest, UnavailableIsASentenceWithoutServerDetail) {
  StartServer(ServerOptions(), /*open_store=*/false);
  grpc::ClientContext ctx;
  v1::ListDetectorsResponse resp;
  const grpc::Status s = store_->ListDetectors(&ctx, {}, &resp);
  ASSERT_THAT(s, GrpcIs(grpc::StatusCode::UNAVAILABLE));
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("the calibration service or its store is "
                                                       "unavailable; retry shortly [request id "));
  EXPECT_THAT(s.error_message(), ::testing::Not(::testing::HasSubstr(dir_.path())));
}

}  // namespace
}  // namespace calibd::server
