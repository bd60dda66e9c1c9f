// Service tests for calibd: the real services (CalibdServer) over an in-process channel.
// Numbers are checked against core's calib::Calibrate run directly on the same inputs (core's
// own tests check calib::Calibrate against ccdproc); every error path asserts its exact code.
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "calibd/v1/builder.grpc.pb.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "calibd/v1/store.grpc.pb.h"
#include "core/calib/recipe.h"
#include "core/combine/combine.h"
#include "core/hash/sha256.h"
#include "core/fits/fits.h"
#include "core/image/section.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/convert.h"
#include "server/server.h"
#include "tests/testing/grpc_matchers.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::hash::Sha256Hex;
using ::calibd::testing::CcdModel;
using ::calibd::testing::GrpcIs;
using ::calibd::testing::FrameKind;
using ::calibd::testing::SimulateFrame;
using ::calibd::testing::TempDir;

constexpr char kDetector[] = "test/ccd";
constexpr size_t kChunk = 1000;  // small chunks: many per frame, rows split across chunks

std::string ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

google::protobuf::Timestamp Ts(const std::string& iso) {
  return TimeMicrosToProto(*store::ParseTime(iso));
}

// A trimmed-shape master whose pixel (x, y) is value(x, y), variance `var`, DQ clear.
CalibratedFrame MakeMaster(const CcdModel& ccd, const std::function<float(int, int)>& value,
                           float var, double exptime, const std::string& type) {
  CalibratedFrame f;
  const int w = ccd.data_width, h = ccd.height;
  f.data = Image<float>::Allocate(w, h);
  f.variance = Image<float>::Filled(w, h, var);
  f.dq = Image<uint16_t>::Filled(w, h, 0);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) f.data.at(x, y) = value(x, y);
  }
  f.header.Set("IMAGETYP", type);
  f.header.Set("EXPTIME", exptime);
  f.header.Set("DATE-OBS", "2026-01-15T00:00:00");
  return f;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(ServerOptions()); }

  void StartServer(ServerOptions options, bool open_store = true) {
    channel_.reset();
    server_.reset();
    options.listen = "";
    options.metrics_listen = "";
    options.store_url = dir_.File("store");
    options.workers = 2;
    options.spool_dir = dir_.path();
    ASSERT_OK_AND_ASSIGN(server_, CalibdServer::Start(std::move(options), &buffers_));
    if (open_store) {
      ASSERT_OK(server_->OpenStore());
    }
    channel_ = server_->InProcessChannel();
    calibrator_ = v1::Calibrator::NewStub(channel_);
    store_ = v1::Store::NewStub(channel_);
    builder_ = v1::Builder::NewStub(channel_);
  }

  void TearDown() override {
    calibrator_.reset();
    store_.reset();
    builder_.reset();
    channel_.reset();
    server_.reset();
  }

  grpc::Status PutDetector(const CcdModel& ccd, const std::string& name = kDetector,
                           const std::string& token = "") {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::PutDetectorRequest req;
    v1::DetectorSpec* s = req.mutable_spec();
    s->set_name(name);
    s->set_width(ccd.width());
    s->set_height(ccd.height);
    s->set_overscan_section(FormatFitsSection(Section{ccd.data_width, ccd.width(), 0, ccd.height}));
    s->set_trim_section(FormatFitsSection(Section{0, ccd.data_width, 0, ccd.height}));
    s->set_gain(ccd.gain);
    s->set_read_noise(ccd.read_noise);
    s->set_saturation(65000);
    (*s->mutable_configuration_keys())["default"];  // no configuration keys: one series per kind
    v1::PutDetectorResponse resp;
    return store_->PutDetector(&ctx, req, &resp);
  }

  // Uploads a FITS file through PutMaster.
  grpc::Status PutMasterFile(const std::string& path, const std::string& kind,
                             v1::PutMasterResponse* resp, const std::string& detector = kDetector,
                             const std::string& sha_override = "", int64_t declared_delta = 0) {
    const std::string bytes = ReadFile(path);
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientWriter<v1::PutMasterRequest>> w = store_->PutMaster(&ctx, resp);
    v1::PutMasterRequest req;
    req.mutable_header()->set_detector(detector);
    req.mutable_header()->set_kind(kind);
    req.mutable_header()->set_total_bytes(int64_t(bytes.size()) + declared_delta);
    req.mutable_header()->set_sha256(sha_override.empty() ? Sha256Hex(bytes) : sha_override);
    w->Write(req);
    for (size_t off = 0; off < bytes.size(); off += 100000) {
      req.Clear();
      req.set_chunk(bytes.substr(off, 100000));
      if (!w->Write(req)) break;
    }
    w->WritesDone();
    return w->Finish();
  }

  grpc::Status PutMaster(const CalibratedFrame& frame, const std::string& kind,
                         v1::PutMasterResponse* resp) {
    const std::string path = dir_.File(kind + "-" + std::to_string(counter_++) + ".fits");
    EXPECT_OK(fits::WriteCalibratedFrame(path, frame));
    return PutMasterFile(path, kind, resp);
  }

  grpc::Status Certify(const std::string& kind, int64_t version, const std::string& begin) {
    grpc::ClientContext ctx;
    v1::CertifyRequest req;
    req.set_detector(kDetector);
    req.set_kind(kind);
    req.set_version(version);
    *req.mutable_begin() = Ts(begin);
    v1::CertifyResponse resp;
    return store_->Certify(&ctx, req, &resp);
  }

  // Stores and certifies bias, dark, flat masters; keeps them for the oracle.
  void SetUpMasters(bool certify = true) {
    ASSERT_GRPC_OK(PutDetector(ccd_));
    bias_ = std::make_shared<CalibratedFrame>(
        MakeMaster(ccd_, [](int x, int y) { return 3.0f + 0.01f * x; }, 0.04f, 0, "bias"));
    dark_ = std::make_shared<CalibratedFrame>(
        MakeMaster(ccd_, [](int x, int y) { return 20.0f + 0.1f * y; }, 0.5f, 100, "dark"));
    flat_ = std::make_shared<CalibratedFrame>(MakeMaster(
        ccd_, [&](int x, int y) { return float(20000 * testing::FlatResponse(ccd_, x, y)); },
        400.0f, 5, "flat"));
    for (auto& [kind, frame] : std::vector<std::pair<std::string, std::shared_ptr<CalibratedFrame>>>{
             {"bias", bias_}, {"dark", dark_}, {"flat", flat_}}) {
      v1::PutMasterResponse resp;
      grpc::Status s = PutMaster(*frame, kind, &resp);
      ASSERT_GRPC_OK(s);
      EXPECT_EQ(resp.version().version(), 1);
      if (certify) {
        grpc::Status c = Certify(kind, 1, "2026-01-01T00:00:00");
        ASSERT_GRPC_OK(c);
      }
    }
  }

  // The oracle: core's Calibrate with hand-made options (not the server's recipe builder).
  CalibratedFrame Expected(const RawFrame& raw, calib::RecipeOptions::Unit unit) {
    calib::RecipeOptions o;
    o.overscan.statistic = calib::OverscanOptions::Statistic::kMedian;
    o.overscan.region = Section{ccd_.data_width, ccd_.width(), 0, ccd_.height};
    o.trim = Section{0, ccd_.data_width, 0, ccd_.height};
    o.gain = ccd_.gain;
    o.read_noise = ccd_.read_noise;
    o.saturation = 65000;
    o.output_unit = unit;
    o.exptime = *raw.header.GetDouble("EXPTIME");
    calib::Masters m;
    // Masters as stored (read back from FITS like the server does).
    m.bias = bias_;
    m.dark = dark_;
    m.flat = flat_;
    m.dark_exptime = 100;
    absl::StatusOr<CalibratedFrame> out = calib::Calibrate(raw, m, o);
    EXPECT_OK(out.status());
    return *std::move(out);
  }

  static v1::CalibrateRequest HeaderRequest(const RawFrame& raw, const std::string& id,
                                            const std::string& detector = kDetector) {
    v1::CalibrateRequest req;
    v1::FrameHeader* h = req.mutable_header();
    h->set_frame_id(id);
    h->set_detector(detector);
    HeaderToProto(raw.header, h->mutable_cards());
    h->set_width(raw.pixels.width());
    h->set_height(raw.pixels.height());
    h->set_pixel_type(PixelTypeToProto(raw.pixels.type()));
    return req;
  }

  // Writes one frame (header + chunks) on a Calibrate stream.
  static bool SendFrame(grpc::ClientReaderWriter<v1::CalibrateRequest, v1::CalibrateResponse>* s,
                        const v1::CalibrateRequest& header, const RawImage& pixels) {
    if (!s->Write(header)) return false;
    const char* p = static_cast<const char*>(pixels.data());
    const size_t n = pixels.size_bytes();
    for (size_t off = 0; off < n; off += kChunk) {
      v1::CalibrateRequest c;
      c.mutable_chunk()->set_data(p + off, std::min(kChunk, n - off));
      if (!s->Write(c)) return false;
    }
    return true;
  }

  struct Received {
    v1::ResultHeader header;
    std::vector<float> data, variance;
    std::vector<uint16_t> dq;
  };

  // Reads every response of a stream into frames.
  static std::vector<Received> ReadAll(
      grpc::ClientReaderWriter<v1::CalibrateRequest, v1::CalibrateResponse>* s) {
    std::vector<Received> out;
    v1::CalibrateResponse r;
    while (s->Read(&r)) {
      if (r.has_header()) {
        out.emplace_back();
        out.back().header = r.header();
        continue;
      }
      EXPECT_FALSE(out.empty()) << "chunk before a result header";
      if (out.empty()) continue;
      const std::string& d = r.chunk().data();
      Received& f = out.back();
      switch (r.chunk().plane()) {
        case v1::PLANE_DATA:
          f.data.insert(f.data.end(), reinterpret_cast<const float*>(d.data()),
                        reinterpret_cast<const float*>(d.data() + d.size()));
          break;
        case v1::PLANE_VARIANCE:
          f.variance.insert(f.variance.end(), reinterpret_cast<const float*>(d.data()),
                            reinterpret_cast<const float*>(d.data() + d.size()));
          break;
        case v1::PLANE_DQ:
          f.dq.insert(f.dq.end(), reinterpret_cast<const uint16_t*>(d.data()),
                      reinterpret_cast<const uint16_t*>(d.data() + d.size()));
          break;
        default:
          ADD_FAILURE() << "unknown plane";
      }
    }
    return out;
  }

  // Runs `write` (then WritesDone) on its own thread while this thread reads every response:
  // a bidi client must read while it writes, or flow control stops both sides.
  template <typename F>
  static std::vector<Received> Exchange(
      grpc::ClientReaderWriter<v1::CalibrateRequest, v1::CalibrateResponse>* s, F write) {
    std::thread writer([&] {
      write();
      s->WritesDone();
    });
    std::vector<Received> got = ReadAll(s);
    writer.join();
    return got;
  }

  static void ExpectSame(const Received& got, const CalibratedFrame& want) {
    ASSERT_EQ(got.header.width(), want.width());
    ASSERT_EQ(got.header.height(), want.height());
    ASSERT_EQ(got.data.size(), size_t(want.data.num_pixels()));
    ASSERT_EQ(got.variance.size(), size_t(want.variance.num_pixels()));
    ASSERT_EQ(got.dq.size(), size_t(want.dq.num_pixels()));
    for (int y = 0; y < want.height(); ++y) {
      for (int x = 0; x < want.width(); ++x) {
        const size_t i = size_t(y) * want.width() + x;
        ASSERT_EQ(got.data[i], want.data.at(x, y)) << x << "," << y;
        ASSERT_EQ(got.variance[i], want.variance.at(x, y)) << x << "," << y;
        ASSERT_EQ(got.dq[i], want.dq.at(x, y)) << x << "," << y;
      }
    }
  }

  TempDir dir_;
  BufferPool buffers_{size_t{64} << 20};
  std::unique_ptr<CalibdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Calibrator::Stub> calibrator_;
  std::unique_ptr<v1::Store::Stub> store_;
  std::unique_ptr<v1::Builder::Stub> builder_;
  CcdModel ccd_;
  std::shared_ptr<CalibratedFrame> bias_, dark_, flat_;
  int counter_ = 0;
};

grpc::StatusCode HealthOf(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  EXPECT_GRPC_OK(s);
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? grpc::StatusCode::OK
                                                                        : grpc::StatusCode::UNAVAILABLE;
}

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

TEST_F(ServerTest, BuildMasterCombinesPreprocessedFrames) {
  ASSERT_GRPC_OK(PutDetector(ccd_));
  std::vector<RawFrame> raws;
  for (int i = 0; i < 3; ++i) raws.push_back(SimulateFrame(ccd_, FrameKind::kBias, 100 + i));
  grpc::ClientContext ctx;
  v1::BuildMasterResponse resp;
  auto w = builder_->BuildMaster(&ctx, &resp);
  v1::BuildMasterRequest req;
  v1::BuildOptions* o = req.mutable_options();
  o->set_detector(kDetector);
  o->set_kind("bias");
  o->mutable_combine()->set_method("mean");
  o->mutable_combine()->mutable_sigma_clip()->set_enabled(false);
  *o->mutable_certify_begin() = Ts("2026-01-01T00:00:00");
  ASSERT_TRUE(w->Write(req));
  for (size_t i = 0; i < raws.size(); ++i) {
    v1::CalibrateRequest h = HeaderRequest(raws[i], "bias" + std::to_string(i));
    req.Clear();
    *req.mutable_frame() = h.header();
    ASSERT_TRUE(w->Write(req));
    const char* p = static_cast<const char*>(raws[i].pixels.data());
    const size_t n = raws[i].pixels.size_bytes();
    for (size_t off = 0; off < n; off += kChunk) {
      req.Clear();
      req.mutable_chunk()->set_data(p + off, std::min(kChunk, n - off));
      ASSERT_TRUE(w->Write(req));
    }
  }
  w->WritesDone();
  grpc::Status s = w->Finish();
  ASSERT_GRPC_OK(s);
  EXPECT_EQ(resp.version().version(), 1);
  EXPECT_EQ(resp.statistics().inputs(), 3);
  EXPECT_EQ(resp.input_sha256_size(), 3);
  EXPECT_TRUE(resp.has_certification());
  // The stored provenance records the options that ran (no clipping here: it was switched off).
  const auto& prov = resp.version().provenance().options();
  ASSERT_EQ(prov.count("combine.method"), 1u);
  EXPECT_EQ(prov.at("combine.method"), "mean");
  EXPECT_EQ(prov.at("combine.sigma_clip"), "off");
  EXPECT_EQ(prov.at("preprocess.masters"), "none");
  EXPECT_THAT(resp.version().provenance().software_version(), ::testing::StartsWith("calibd "));

  // Oracle: overscan-subtract and trim each frame with core, then combine::Combine (mean).
  std::vector<std::unique_ptr<combine::FrameSource>> sources;
  for (const RawFrame& raw : raws) {
    calib::RecipeOptions opt;
    opt.overscan.statistic = calib::OverscanOptions::Statistic::kMedian;
    opt.overscan.region = Section{ccd_.data_width, ccd_.width(), 0, ccd_.height};
    opt.trim = Section{0, ccd_.data_width, 0, ccd_.height};
    opt.gain = ccd_.gain;
    opt.read_noise = ccd_.read_noise;
    opt.saturation = 65000;
    opt.output_unit = calib::RecipeOptions::Unit::kAdu;
    opt.compute_variance = false;
    ASSERT_OK_AND_ASSIGN(CalibratedFrame f, calib::Calibrate(raw, calib::Masters{}, opt));
    sources.push_back(combine::MemorySource(std::make_shared<CalibratedFrame>(std::move(f))));
  }
  combine::CombineOptions co;
  co.method = combine::CombineOptions::Method::kMean;
  co.sigma_clip.enabled = false;
  ASSERT_OK_AND_ASSIGN(combine::CombineResult want, combine::Combine(std::move(sources), co));

  // The stored master, read back through GetMaster.
  grpc::ClientContext gctx;
  v1::GetMasterRequest get;
  get.set_detector(kDetector);
  get.set_kind("bias");
  *get.mutable_at() = Ts("2026-03-01T00:00:00");
  auto reader = store_->GetMaster(&gctx, get);
  v1::GetMasterResponse part;
  std::string bytes;
  while (reader->Read(&part)) {
    if (part.has_metadata()) continue;
    bytes += part.chunk();
  }
  ASSERT_GRPC_OK(reader->Finish());
  const std::string path = dir_.File("built.fits");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  ASSERT_OK_AND_ASSIGN(CalibratedFrame got, fits::ReadCalibratedFrame(path));
  ASSERT_EQ(got.width(), want.frame.width());
  ASSERT_EQ(got.height(), want.frame.height());
  for (int y = 0; y < got.height(); ++y) {
    for (int x = 0; x < got.width(); ++x) {
      ASSERT_EQ(got.data.at(x, y), want.frame.data.at(x, y)) << x << "," << y;
    }
  }
}

TEST_F(ServerTest, BuildMasterErrors) {
  {  // Unknown detector.
    grpc::ClientContext ctx;
    v1::BuildMasterResponse resp;
    auto w = builder_->BuildMaster(&ctx, &resp);
    v1::BuildMasterRequest req;
    req.mutable_options()->set_detector("nosuch/detector");
    req.mutable_options()->set_kind("bias");
    w->Write(req);
    w->WritesDone();
    EXPECT_THAT(w->Finish(), GrpcIs(grpc::StatusCode::NOT_FOUND));
  }
  ASSERT_GRPC_OK(PutDetector(ccd_));
  {  // No inputs.
    grpc::ClientContext ctx;
    v1::BuildMasterResponse resp;
    auto w = builder_->BuildMaster(&ctx, &resp);
    v1::BuildMasterRequest req;
    req.mutable_options()->set_detector(kDetector);
    req.mutable_options()->set_kind("bias");
    w->Write(req);
    w->WritesDone();
    EXPECT_THAT(w->Finish(), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
  }
}

}  // namespace
}  // namespace calibd::server

namespace calibd::server {
namespace {

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
