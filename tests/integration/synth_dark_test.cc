// Noise.SynthesizeDark through the generated stub against a real calibd: a noise_model product
// with closed-form maps (written by core/noise, stored with PutMaster, certified) gives a dark
// whose every pixel is F/g + t·D + C and whose variance is aᵀΣa, a = (1/g, t, 1) — computed
// here in double from the same maps — sent as a header and then ≤ 1 MiB chunks plane by plane;
// fewer planes when asked; the frame-memory budget refuses a dark larger than itself with
// RESOURCE_EXHAUSTED; a client that cancels mid-stream leaves the server serving.
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "calibd/v1/noise.grpc.pb.h"
#include "core/image/dq.h"
#include "core/noise/noise_product.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::integration {
namespace {

using ::calibd::testing::CalibdProcess;
using ::calibd::testing::CalibdProcessOptions;
using ::calibd::testing::TempDir;

constexpr char kSynthDetector[] = "itest/emccd";
constexpr int kRawW = 520, kRawH = 600, kOs = 8, kW = kRawW - kOs, kH = kRawH;

double F(int x, int y) { return 10 + (x % 7) + 0.1 * (y % 3); }
double D(int x, int y) { return 0.01 * (1 + y % 5); }
double C(int x, int y) { return 0.05 + 0.001 * (x % 3); }
constexpr double kFe = 0.5, kDe = 0.001, kCe = 0.02, kCfd = -1e-4, kCfc = 1e-3, kCdc = -1e-5;

// The product's FITS bytes: closed-form maps, one pixel unfitted (DQ bad|no_data).
std::string ModelBytes(TempDir& dir) {
  noise::NoiseProduct p = noise::NoiseProduct::Create(noise::kKindNoiseModel, kW, kH);
  struct M {
    const char* name;
    const char* unit;
    double (*value)(int, int);
    double constant;
  };
  const M maps[] = {{"FPN", "electron", F, 0},          {"FPN_ERR", "electron", nullptr, kFe},
                    {"DARK_CURRENT", "electron/s", D, 0}, {"DARK_CURRENT_ERR", "electron/s", nullptr, kDe},
                    {"CIC", "electron", C, 0},           {"CIC_ERR", "electron", nullptr, kCe},
                    {"COV_F_D", "electron2/s", nullptr, kCfd},
                    {"COV_F_C", "electron2", nullptr, kCfc},
                    {"COV_D_C", "electron2/s", nullptr, kCdc}};
  for (const M& m : maps) {
    Image<float>& img = p.AddMap(m.name, m.unit);
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        img.at(x, y) = static_cast<float>(m.value ? m.value(x, y) : m.constant);
      }
    }
  }
  for (const char* name : {"FPN", "DARK_CURRENT", "CIC"}) p.FindMutable(name)->at(3, 4) = 0;
  p.dq.at(3, 4) = kDqBad | kDqNoData;
  p.header.Set("READMODE", "fast");
  p.header.Set("DATE-OBS", kDateObs);
  const std::string path = dir.File("model.fits");
  EXPECT_OK(noise::WriteNoiseProduct(path, p, /*overwrite=*/true));
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The detector and its certified noise model on `client`'s server.
void PutModel(Client& client, TempDir& dir) {
  ASSERT_OK(client.PutDetector(kSynthDetector, kRawW, kRawH, kOs));
  ASSERT_OK_AND_ASSIGN(v1::PutMasterResponse put,
                       client.PutMasterBytes("noise_model", ModelBytes(dir), kSynthDetector));
  ASSERT_OK(client.Certify("noise_model", put.version().version(), kSynthDetector));
}

struct Received {
  grpc::Status status;
  v1::SynthesizeDarkHeader header;
  std::vector<float> data, variance;
  std::vector<uint16_t> dq;
  std::vector<v1::Plane> chunk_planes;
  size_t largest_chunk = 0;
};

Received Synthesize(Client& client, const v1::SynthesizeDarkRequest& req) {
  std::unique_ptr<v1::Noise::Stub> stub = v1::Noise::NewStub(client.channel());
  auto ctx = client.Context();
  auto reader = stub->SynthesizeDark(ctx.get(), req);
  Received r;
  v1::SynthesizeDarkResponse resp;
  std::string bytes[4];
  while (reader->Read(&resp)) {
    if (resp.has_header()) {
      r.header = resp.header();
      continue;
    }
    const v1::ResultChunk& c = resp.chunk();
    if (r.chunk_planes.empty() || r.chunk_planes.back() != c.plane()) {
      r.chunk_planes.push_back(c.plane());
    }
    r.largest_chunk = std::max(r.largest_chunk, c.data().size());
    bytes[c.plane()] += c.data();
  }
  r.status = reader->Finish();
  auto copy = [](const std::string& b, auto& v) {
    v.resize(b.size() / sizeof(v[0]));
    std::memcpy(v.data(), b.data(), v.size() * sizeof(v[0]));
  };
  copy(bytes[v1::PLANE_DATA], r.data);
  copy(bytes[v1::PLANE_VARIANCE], r.variance);
  copy(bytes[v1::PLANE_DQ], r.dq);
  return r;
}

TEST(SynthDarkTest, ClosedFormPixelsInChunksOfAtMostOneMebibyte) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start());
  Client client(calibd->address());
  PutModel(client, dir);

  v1::SynthesizeDarkRequest req;
  req.set_detector(kSynthDetector);
  const double t = 45, g = 300;
  req.set_exptime(t);
  req.set_em_gain(g);
  Received r = Synthesize(client, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  const v1::ResultHeader& h = r.header.result();
  EXPECT_EQ(h.status().code(), 0);
  EXPECT_EQ(h.width(), kW);
  EXPECT_EQ(h.height(), kH);
  EXPECT_EQ(h.unit(), v1::OUTPUT_UNIT_ELECTRON);
  EXPECT_THAT(h.planes(), ::testing::ElementsAre(v1::PLANE_DATA, v1::PLANE_VARIANCE, v1::PLANE_DQ));
  ASSERT_EQ(h.masters_size(), 1);
  EXPECT_EQ(h.masters(0).kind(), "noise_model");
  EXPECT_EQ(h.masters(0).version(), 1);
  EXPECT_EQ(h.masters(0).sha256(), r.header.model().sha256());
  EXPECT_EQ(h.masters(0).outcome(), v1::SELECTION_OUTCOME_CERTIFIED);
  EXPECT_EQ(r.header.model().certifications_size(), 1);
  EXPECT_EQ(h.statistics().flagged(), 1);
  bool synthdrk = false, bunit = false;
  for (const v1::HeaderCard& c : h.cards()) {
    synthdrk |= c.key() == "SYNTHDRK" && c.bool_value();
    bunit |= c.key() == "BUNIT" && c.string_value() == "electron";
  }
  EXPECT_TRUE(synthdrk);
  EXPECT_TRUE(bunit);
  // Whole planes in order, data in two chunks (1.2 MB), none above 1 MiB.
  EXPECT_THAT(r.chunk_planes,
              ::testing::ElementsAre(v1::PLANE_DATA, v1::PLANE_VARIANCE, v1::PLANE_DQ));
  EXPECT_LE(r.largest_chunk, size_t{1} << 20);
  EXPECT_EQ(r.largest_chunk, size_t{1} << 20);
  ASSERT_EQ(r.data.size(), size_t{kW} * kH);
  ASSERT_EQ(r.variance.size(), size_t{kW} * kH);
  ASSERT_EQ(r.dq.size(), size_t{kW} * kH);
  const double a0 = 1 / g, a1 = t, a2 = 1;
  const double var = a0 * a0 * kFe * kFe + a1 * a1 * kDe * kDe + a2 * a2 * kCe * kCe +
                     2 * (a0 * a1 * kCfd + a0 * a2 * kCfc + a1 * a2 * kCdc);
  int64_t bad = 0;
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      const size_t i = size_t(y) * kW + x;
      if (x == 3 && y == 4) {
        EXPECT_EQ(r.dq[i], kDqBad | kDqNoData);
        EXPECT_EQ(r.data[i], 0.0f);
        continue;
      }
      // The maps are float32: the closed form from the stored (rounded) values.
      const double f = float(F(x, y)), d = float(D(x, y)), c = float(C(x, y));
      const double want = a0 * f + a1 * d + a2 * c;
      bad += std::abs(r.data[i] - want) > 2e-6 * std::abs(want) || r.dq[i] != 0 ||
             std::abs(r.variance[i] - var) > 1e-5 * var;
    }
  }
  EXPECT_EQ(bad, 0);

  // Only the data plane.
  req.add_planes(v1::PLANE_DATA);
  Received d = Synthesize(client, req);
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  EXPECT_THAT(d.header.result().planes(), ::testing::ElementsAre(v1::PLANE_DATA));
  EXPECT_THAT(d.chunk_planes, ::testing::ElementsAre(v1::PLANE_DATA));
  EXPECT_EQ(d.data, r.data);
  EXPECT_TRUE(d.variance.empty());
  req.clear_planes();
  req.add_planes(static_cast<v1::Plane>(7));
  EXPECT_EQ(Synthesize(client, req).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A client that stops after the header: the server goes on serving.
  {
    req.clear_planes();
    std::unique_ptr<v1::Noise::Stub> stub = v1::Noise::NewStub(client.channel());
    auto ctx = client.Context();
    auto reader = stub->SynthesizeDark(ctx.get(), req);
    v1::SynthesizeDarkResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    EXPECT_TRUE(resp.has_header());
    ctx->TryCancel();
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(Synthesize(client, req).status.ok());
}

TEST(SynthDarkTest, TheFrameMemoryBudgetRefusesADarkLargerThanItself) {
  TempDir dir;
  CalibdProcessOptions options;
  options.extra_args = {"--frame-memory-bytes=4000000"};  // the dark needs ~17 MB
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start(options));
  Client client(calibd->address());
  PutModel(client, dir);
  v1::SynthesizeDarkRequest req;
  req.set_detector(kSynthDetector);
  req.set_exptime(10);
  Received r = Synthesize(client, req);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << r.status.error_message();
  // The small test detector's Calibrate still works on the same server.
  ASSERT_OK(client.SetUpTestDetector());
  ExpectStillServing(client, calibd->address());
}

}  // namespace
}  // namespace calibd::integration
