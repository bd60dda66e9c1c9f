// ServerTest: the fixture of the service tests — the real services (CalibdServer) over an
// in-process channel, a synthetic CCD with its masters in the store, and helpers that stream
// frames and compare results with core's calib::Calibrate on the same inputs.
//
//   TEST_F(ServerTest, Something) {
//     StartServer(ServerOptions());
//     ...
//   }
//
// Thread safety: one fixture per test, as gtest makes them.
#ifndef CALIBD_TESTS_SERVER_SERVER_FIXTURE_H_
#define CALIBD_TESTS_SERVER_SERVER_FIXTURE_H_

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

using ::calibd::hash::Sha256Hex;
using ::calibd::testing::CcdModel;
using ::calibd::testing::GrpcIs;
using ::calibd::testing::FrameKind;
using ::calibd::testing::SimulateFrame;
using ::calibd::testing::TempDir;

constexpr char kDetector[] = "test/ccd";
constexpr size_t kChunk = 1000;  // small chunks: many per frame, rows split across chunks

inline std::string ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

inline google::protobuf::Timestamp Ts(const std::string& iso) {
  return TimeMicrosToProto(*store::ParseTime(iso));
}

// A trimmed-shape master whose pixel (x, y) is value(x, y), variance `var`, DQ clear.
inline CalibratedFrame MakeMaster(const CcdModel& ccd, const std::function<float(int, int)>& value,
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

  // The oracle's options, made by hand (not by the server's recipe builder): median overscan
  // per row, trim, the CCD's gain and read noise.
  calib::RecipeOptions OracleOptions(calib::RecipeOptions::Unit unit) const {
    calib::RecipeOptions o;
    o.overscan.statistic = calib::OverscanOptions::Statistic::kMedian;
    o.overscan.region = Section{ccd_.data_width, ccd_.width(), 0, ccd_.height};
    o.trim = Section{0, ccd_.data_width, 0, ccd_.height};
    o.gain = ccd_.gain;
    o.read_noise = ccd_.read_noise;
    o.saturation = 65000;
    o.output_unit = unit;
    return o;
  }

  // The oracle: core's Calibrate with OracleOptions and the stored masters.
  CalibratedFrame Expected(const RawFrame& raw, calib::RecipeOptions::Unit unit) {
    calib::RecipeOptions o = OracleOptions(unit);
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

inline grpc::StatusCode HealthOf(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  EXPECT_GRPC_OK(s);
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? grpc::StatusCode::OK
                                                                        : grpc::StatusCode::UNAVAILABLE;
}

}  // namespace calibd::server

#endif  // CALIBD_TESTS_SERVER_SERVER_FIXTURE_H_
