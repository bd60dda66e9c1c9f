// Tokens scoped to instruments: a valid token for another instrument gets PERMISSION_DENIED on
// every RPC that names a detector, and lists show only what it may read.
#include <memory>
#include <string>

#include "calibd/v1/builder.grpc.pb.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "calibd/v1/store.grpc.pb.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/grpc_matchers.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::GrpcIs;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr auto kDenied = grpc::StatusCode::PERMISSION_DENIED;

class TokenScopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.listen = "";
    options.metrics_listen = "";
    options.workers = 1;
    options.spool_dir = dir_.path();
    options.store_url = dir_.File("store");
    ASSERT_OK_AND_ASSIGN(options.auth, TokenAuth::Parse("root admin ops\n"
                                                        "lfc-w write lfcpipe lfc/*\n"
                                                        "lfc-a admin lfcops lfc\n"
                                                        "hsc-r read hscread hsc/*\n"));
    ASSERT_OK_AND_ASSIGN(server_, CalibdServer::Start(std::move(options), &buffers_));
    ASSERT_OK(server_->OpenStore());
    channel_ = server_->InProcessChannel();
    store_ = v1::Store::NewStub(channel_);
    calibrator_ = v1::Calibrator::NewStub(channel_);
    builder_ = v1::Builder::NewStub(channel_);
    for (const char* name : {"lfc/chip0", "hsc/ccd1"}) ASSERT_GRPC_OK(PutDetector(name, "root"));
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  grpc::Status PutDetector(const std::string& name, const std::string& token) {
    v1::PutDetectorRequest req;
    v1::DetectorSpec* s = req.mutable_spec();
    s->set_name(name);
    s->set_width(8);
    s->set_height(4);
    s->set_gain(1);
    s->set_read_noise(1);
    v1::PutDetectorResponse resp;
    return store_->PutDetector(Ctx(token).get(), req, &resp);
  }

  calibd::testing::TempDir dir_;
  BufferPool buffers_{size_t{16} << 20};
  std::unique_ptr<CalibdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Store::Stub> store_;
  std::unique_ptr<v1::Calibrator::Stub> calibrator_;
  std::unique_ptr<v1::Builder::Stub> builder_;
};

TEST_F(TokenScopeTest, ListsShowOnlyWhatTheTokenMayRead) {
  v1::ListDetectorsResponse all, lfc, hsc;
  ASSERT_GRPC_OK(store_->ListDetectors(Ctx("root").get(), {}, &all));
  ASSERT_GRPC_OK(store_->ListDetectors(Ctx("lfc-w").get(), {}, &lfc));
  ASSERT_GRPC_OK(store_->ListDetectors(Ctx("hsc-r").get(), {}, &hsc));
  auto names = [](const v1::ListDetectorsResponse& r) {
    std::vector<std::string> out;
    for (const v1::DetectorSpec& d : r.detectors()) out.push_back(d.name());
    return out;
  };
  EXPECT_THAT(names(all), UnorderedElementsAre("lfc/chip0", "hsc/ccd1"));
  EXPECT_THAT(names(lfc), ElementsAre("lfc/chip0"));
  EXPECT_THAT(names(hsc), ElementsAre("hsc/ccd1"));
  v1::ListMastersRequest req;
  v1::ListMastersResponse resp;
  EXPECT_GRPC_OK(store_->ListMasters(Ctx("hsc-r").get(), req, &resp));
  req.set_detector("lfc/chip0");
  EXPECT_THAT(store_->ListMasters(Ctx("hsc-r").get(), req, &resp), GrpcIs(kDenied));
}

TEST_F(TokenScopeTest, EveryRpcNamingAnotherInstrumentsDetectorIsDenied) {
  const std::string det = "lfc/chip0";
  const std::string tok = "hsc-r";  // valid, but for hsc
  {
    v1::GetDetectorRequest r;
    r.set_name(det);
    v1::DetectorSpec resp;
    EXPECT_THAT(store_->GetDetector(Ctx(tok).get(), r, &resp), GrpcIs(kDenied));
    EXPECT_GRPC_OK(store_->GetDetector(Ctx("lfc-w").get(), r, &resp));
  }
  {
    v1::HistoryRequest r;
    r.set_detector(det);
    r.set_kind("bias");
    v1::HistoryResponse resp;
    EXPECT_THAT(store_->History(Ctx(tok).get(), r, &resp), GrpcIs(kDenied));
  }
  {
    v1::SelectRequest r;
    r.set_detector(det);
    v1::SelectResponse resp;
    EXPECT_THAT(store_->Select(Ctx(tok).get(), r, &resp), GrpcIs(kDenied));
  }
  {
    v1::GetDqBitsRequest r;
    r.set_detector(det);
    v1::GetDqBitsResponse resp;
    EXPECT_THAT(store_->GetDqBits(Ctx(tok).get(), r, &resp), GrpcIs(kDenied));
  }
  {  // Admin calls, with an admin token for the other instrument.
    v1::CertifyRequest c;
    c.set_detector("hsc/ccd1");
    c.set_kind("bias");
    c.set_version(1);
    c.mutable_begin()->set_seconds(1);
    v1::CertifyResponse cr;
    EXPECT_THAT(store_->Certify(Ctx("lfc-a").get(), c, &cr), GrpcIs(kDenied));
    v1::DecertifyRequest d;
    d.set_detector("hsc/ccd1");
    d.set_kind("bias");
    d.set_version(1);
    v1::DecertifyResponse dr;
    EXPECT_THAT(store_->Decertify(Ctx("lfc-a").get(), d, &dr), GrpcIs(kDenied));
    EXPECT_THAT(PutDetector("hsc/ccd2", "lfc-a"), GrpcIs(kDenied));
    EXPECT_GRPC_OK(PutDetector("lfc/chip1", "lfc-a"));
  }
  {
    v1::GetMasterRequest r;
    r.set_detector(det);
    r.set_kind("bias");
    auto ctx = Ctx(tok);
    auto reader = store_->GetMaster(ctx.get(), r);
    v1::GetMasterResponse part;
    while (reader->Read(&part)) {
    }
    EXPECT_THAT(reader->Finish(), GrpcIs(kDenied));
  }
  {  // PutMaster: the header names the detector.
    auto ctx = Ctx("lfc-w");
    v1::PutMasterResponse resp;
    auto w = store_->PutMaster(ctx.get(), &resp);
    v1::PutMasterRequest h;
    h.mutable_header()->set_detector("hsc/ccd1");
    h.mutable_header()->set_kind("bias");
    h.mutable_header()->set_total_bytes(2880);
    w->Write(h);
    w->WritesDone();
    EXPECT_THAT(w->Finish(), GrpcIs(kDenied));
  }
  {  // BuildMaster: the options name the detector.
    auto ctx = Ctx("lfc-w");
    v1::BuildMasterResponse resp;
    auto w = builder_->BuildMaster(ctx.get(), &resp);
    v1::BuildMasterRequest o;
    o.mutable_options()->set_detector("hsc/ccd1");
    o.mutable_options()->set_kind("bias");
    w->Write(o);
    w->WritesDone();
    EXPECT_THAT(w->Finish(), GrpcIs(kDenied));
  }
  {  // Calibrate: a frame header for the other instrument ends the stream.
    auto ctx = Ctx(tok);
    auto s = calibrator_->Calibrate(ctx.get());
    v1::CalibrateRequest req;
    v1::FrameHeader* h = req.mutable_header();
    h->set_frame_id("f");
    h->set_detector(det);
    h->set_width(8);
    h->set_height(4);
    h->set_pixel_type(v1::PIXEL_TYPE_UINT16);
    s->Write(req);
    s->WritesDone();
    v1::CalibrateResponse resp;
    while (s->Read(&resp)) {
    }
    EXPECT_THAT(s->Finish(), GrpcIs(kDenied));
  }
}

}  // namespace
}  // namespace calibd::server
