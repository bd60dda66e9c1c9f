// Dark policies against the real binary: an EMCCD detector with a certified noise_model (maps
// drawn from known truth F, D, C plus noise at their stated standard errors) and a measured
// master dark (the mean of 16 simulated darks); lights calibrated with MEASURED, SYNTHESIZED and
// MEASURED_ELSE_SYNTHESIZED on one stream, then the failures (no dark under STRICT, no model,
// a required read-noise map missing) with exact codes while the stream goes on.
//
// The statistics (ADU; gain k = 2 e⁻/ADU from the harness detector, EM gain g = 10, t = 50 s):
//   truth dark   K = (F + g·t·D + g·C)/k,  F = 20 + 0.2x e⁻, D = 0.5 + 0.005y e⁻/s, C = 2 e⁻
//   model maps   F̂ = F + 1.0·N, D̂ = D + 0.002·N, Ĉ = C + 0.05·N (their _ERR maps say so)
//     → the synthesized dark's error σ_s² = (g/k)²·(σF²/g² + t²σD² + σC²) = 25·0.0225
//       = 0.5625 ADU² (no covariances: independent draws)
//   measured     mean of N = 16 darks with σ = 3 ADU each → σ_m² = 9/16 = 0.5625 ADU²
//   lights       1000 overscan + 100 bias + K + 500 sky + 3 ADU noise, rounded to uint16
// Calibration is linear, so per pixel light(SYNTHESIZED) − light(MEASURED) = K_m − K_s exactly:
// standard error √(σ_s² + σ_m²) = 1.0607 ADU, whatever the light's own noise. Over 3072 pixels
// z = difference / SE must have |mean| < 4/√3072, standard deviation within 0.92…1.08 (its SE is
// 1/√(2·3072) = 0.013) and ≥ 99 % within 3 (expected 99.73 %). A wrong conversion of the e⁻
// dark to ADU (missing g or k) shifts the difference by ~100 ADU and fails all three.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/fits/fits.h"
#include "core/noise/noise_product.h"
#include "core/random/gaussian.h"
#include "core/status/macros.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::integration {
namespace {

using ::calibd::testing::CalibdProcess;
using ::testing::HasSubstr;

constexpr char kEmccd[] = "itest/emccd";
constexpr char kNoDark[] = "itest/emccd-nodark";
constexpr char kNoModel[] = "itest/emccd-nomodel";
constexpr double kK = 2.0, kG = 10, kT = 50, kSky = 500, kSigma = 3;
constexpr int kDarks = 16;
constexpr double kSigF = 1.0, kSigD = 0.002, kSigC = 0.05;

double F(int x, int) { return 20 + 0.2 * x; }
double D(int, int y) { return 0.5 + 0.005 * y; }
double C(int, int) { return 2.0; }
double TruthDarkAdu(int x, int y) { return (F(x, y) + kG * kT * D(x, y) + kG * C(x, y)) / kK; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The noise_model product's FITS bytes: maps drawn around the truth at their stated errors.
std::string NoiseModelFits() {
  noise::NoiseProduct p = noise::NoiseProduct::Create("noise_model", kWidth, kHeight);
  Image<float>& f = p.AddMap("FPN", "electron");
  Image<float>& fe = p.AddMap("FPN_ERR", "electron");
  Image<float>& d = p.AddMap("DARK_CURRENT", "electron/s");
  Image<float>& de = p.AddMap("DARK_CURRENT_ERR", "electron/s");
  Image<float>& c = p.AddMap("CIC", "electron");
  Image<float>& ce = p.AddMap("CIC_ERR", "electron");
  p.AddMap("COV_F_D", "");
  p.AddMap("COV_F_C", "");
  p.AddMap("COV_D_C", "");
  random::Gaussian n(2026);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      f.at(x, y) = static_cast<float>(F(x, y) + kSigF * n.Next());
      d.at(x, y) = static_cast<float>(D(x, y) + kSigD * n.Next());
      c.at(x, y) = static_cast<float>(C(x, y) + kSigC * n.Next());
      fe.at(x, y) = kSigF;
      de.at(x, y) = kSigD;
      ce.at(x, y) = kSigC;
    }
  }
  p.header.Set("READMODE", "fast");
  p.header.Set("DATE-OBS", kDateObs);
  calibd::testing::TempDir dir;
  const std::string path = dir.File("nm.fits");
  EXPECT_OK(noise::WriteNoiseProduct(path, p));
  return ReadFile(path);
}

// The measured master dark: the mean of kDarks simulated darks (bias subtracted, ADU).
std::string MeasuredDarkFits() {
  CalibratedFrame m;
  m.data = Image<float>::Allocate(kWidth, kHeight);
  random::Gaussian n(77);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      double sum = 0;
      for (int i = 0; i < kDarks; ++i) sum += TruthDarkAdu(x, y) + kSigma * n.Next();
      m.data.at(x, y) = static_cast<float>(sum / kDarks);
    }
  }
  m.header.Set("IMAGETYP", "dark");
  m.header.Set("READMODE", "fast");
  m.header.Set("DATE-OBS", kDateObs);
  m.header.Set("EXPTIME", kT);
  m.header.Set("EMGAIN", kG);
  calibd::testing::TempDir dir;
  const std::string path = dir.File("dark.fits");
  EXPECT_OK(fits::WriteCalibratedFrame(path, m));
  return ReadFile(path);
}

std::string LightBytes(uint64_t seed) {
  std::string bytes(static_cast<size_t>(kRawWidth) * kRawHeight * 2, '\0');
  random::Gaussian n(seed);
  for (int y = 0; y < kRawHeight; ++y) {
    for (int x = 0; x < kRawWidth; ++x) {
      const double v = x >= kWidth ? 1000.0
                                   : 1000 + 100 + TruthDarkAdu(x, y) + kSky + kSigma * n.Next();
      const uint16_t u = static_cast<uint16_t>(std::lround(v));
      const size_t i = (static_cast<size_t>(y) * kRawWidth + x) * 2;
      bytes[i] = static_cast<char>(u & 0xFF);
      bytes[i + 1] = static_cast<char>(u >> 8);
    }
  }
  return bytes;
}

v1::FrameHeader EmHeader(const std::string& id, const std::string& detector, v1::DarkPolicy p) {
  v1::FrameHeader h = LightHeader(id, kT, detector);
  v1::HeaderCard* c = h.add_cards();
  c->set_key("EMGAIN");
  c->set_double_value(kG);
  h.mutable_recipe()->set_flat(false);
  h.mutable_recipe()->set_dark_policy(p);
  return h;
}

absl::Status SetUpDetector(Client& client, const std::string& name, bool dark, bool model) {
  CALIBD_RETURN_IF_ERROR(client.PutDetector(name));
  CALIBD_ASSIGN_OR_RETURN(v1::PutMasterResponse b, client.PutMasterBytes("bias", BiasFits(), name));
  CALIBD_RETURN_IF_ERROR(client.Certify("bias", b.version().version(), name));
  if (dark) {
    CALIBD_ASSIGN_OR_RETURN(v1::PutMasterResponse d,
                            client.PutMasterBytes("dark", MeasuredDarkFits(), name));
    CALIBD_RETURN_IF_ERROR(client.Certify("dark", d.version().version(), name));
  }
  if (model) {
    CALIBD_ASSIGN_OR_RETURN(v1::PutMasterResponse m,
                            client.PutMasterBytes("noise_model", NoiseModelFits(), name));
    CALIBD_RETURN_IF_ERROR(client.Certify("noise_model", m.version().version(), name));
  }
  return absl::OkStatus();
}

const v1::AppliedMaster* UsedAs(const v1::ResultHeader& h, const std::string& used_as) {
  for (const v1::AppliedMaster& m : h.masters()) {
    if (m.used_as() == used_as) return &m;
  }
  return nullptr;
}

const v1::SelectionTrailEntry* TrailOf(const v1::ResultHeader& h, const std::string& kind) {
  for (const v1::SelectionTrailEntry& e : h.trail()) {
    if (e.kind() == kind) return &e;
  }
  return nullptr;
}

std::string Card(const v1::ResultHeader& h, const std::string& key) {
  for (const v1::HeaderCard& c : h.cards()) {
    if (c.key() == key) return c.has_string_value() ? c.string_value() : "";
  }
  return "<absent>";
}

struct ZStats {
  double mean = 0, sd = 0, within3 = 0;
};
ZStats Z(const std::vector<double>& z) {
  ZStats s;
  for (double v : z) s.mean += v;
  s.mean /= z.size();
  for (double v : z) {
    s.sd += (v - s.mean) * (v - s.mean);
    s.within3 += std::abs(v) < 3;
  }
  s.sd = std::sqrt(s.sd / (z.size() - 1));
  s.within3 /= z.size();
  return s;
}

TEST(NoiseCalibrateTest, SynthesizedAndMeasuredDarksAgreeWithinTheirErrors) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start());
  Client client(calibd->address());
  ASSERT_OK(SetUpDetector(client, kEmccd, /*dark=*/true, /*model=*/true));
  ASSERT_OK(SetUpDetector(client, kNoDark, /*dark=*/false, /*model=*/true));
  ASSERT_OK(SetUpDetector(client, kNoModel, /*dark=*/false, /*model=*/false));

  const std::string light = LightBytes(5);
  CalibrateCall call(&client);
  ASSERT_TRUE(call.SendFrame(EmHeader("measured", kEmccd, v1::DARK_POLICY_MEASURED), light));
  ASSERT_TRUE(call.SendFrame(EmHeader("synth", kEmccd, v1::DARK_POLICY_SYNTHESIZED), light));
  ASSERT_TRUE(call.SendFrame(
      EmHeader("either", kEmccd, v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED), light));
  // Failures and the fallback, on the same stream.
  ASSERT_TRUE(call.SendFrame(EmHeader("no-dark", kNoDark, v1::DARK_POLICY_MEASURED), light));
  ASSERT_TRUE(call.SendFrame(
      EmHeader("fallback", kNoDark, v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED), light));
  ASSERT_TRUE(call.SendFrame(EmHeader("no-model", kNoModel, v1::DARK_POLICY_SYNTHESIZED), light));
  v1::FrameHeader need_rn = EmHeader("need-rn", kNoDark, v1::DARK_POLICY_SYNTHESIZED);
  need_rn.mutable_recipe()->set_read_noise_map(true);
  ASSERT_TRUE(call.SendFrame(need_rn, light));
  ASSERT_TRUE(call.SendFrame(EmHeader("after", kNoDark, v1::DARK_POLICY_SYNTHESIZED), light));

  const FrameResult measured = call.ReadResult();
  const FrameResult synth = call.ReadResult();
  const FrameResult either = call.ReadResult();
  const FrameResult no_dark = call.ReadResult();
  const FrameResult fallback = call.ReadResult();
  const FrameResult no_model = call.ReadResult();
  const FrameResult no_rn = call.ReadResult();
  const FrameResult after = call.ReadResult();
  ASSERT_TRUE(call.Finish().ok());
  for (const FrameResult* r : {&measured, &synth, &either, &fallback, &after}) {
    ASSERT_TRUE(r->ok);
    ASSERT_EQ(r->header.status().code(), 0) << r->header.frame_id() << ": "
                                            << r->header.status().message();
    ASSERT_EQ(r->data.size(), size_t{kWidth} * kHeight);
  }

  // Synthesized vs measured: the difference is K_m − K_s, within √(σ_s² + σ_m²).
  const double se_diff = std::sqrt(0.5625 + 0.5625);
  const double se_truth = std::sqrt(kSigma * kSigma + 1.0 / 12 + 0.5625);
  std::vector<double> z_diff, z_truth;
  for (size_t i = 0; i < synth.data.size(); ++i) {
    z_diff.push_back((synth.data[i] - measured.data[i]) / se_diff);
    z_truth.push_back((synth.data[i] - kSky) / se_truth);
  }
  const ZStats d = Z(z_diff), t = Z(z_truth);
  const double n = static_cast<double>(z_diff.size());
  std::cout << "z(synthesized - measured): mean " << d.mean << " sd " << d.sd << " within 3 "
            << d.within3 << "; z(synthesized - truth): mean " << t.mean << " sd " << t.sd << "\n";
  EXPECT_LT(std::abs(d.mean), 4 / std::sqrt(n)) << "mean z " << d.mean;
  EXPECT_GT(d.sd, 0.92);
  EXPECT_LT(d.sd, 1.08);
  EXPECT_GE(d.within3, 0.99);
  EXPECT_LT(std::abs(t.mean), 4 / std::sqrt(n)) << "mean z vs truth " << t.mean;
  EXPECT_GT(t.sd, 0.92);
  EXPECT_LT(t.sd, 1.08);
  // The variance plane carries the synthesized dark's variance: (k·D₀ + RN²)/k² + σ_s².
  for (int i : {0, 700, 3000}) {
    const int x = i % kWidth, y = i / kWidth;
    const double raw = static_cast<double>(static_cast<uint8_t>(light[(y * kRawWidth + x) * 2]) |
                                           static_cast<uint8_t>(light[(y * kRawWidth + x) * 2 + 1])
                                               << 8);
    const double after_overscan = raw - 1000;
    EXPECT_NEAR(synth.variance[i], (kK * after_overscan + 16) / (kK * kK) + 0.5625, 1e-3) << i;
  }

  // Provenance, header and trail say which dark was used.
  ASSERT_NE(UsedAs(measured.header, "dark"), nullptr);
  EXPECT_EQ(UsedAs(measured.header, "dark")->kind(), "dark");
  EXPECT_EQ(Card(measured.header, "DARKSRC"), "measured");
  ASSERT_NE(UsedAs(synth.header, "dark"), nullptr);
  EXPECT_EQ(UsedAs(synth.header, "dark")->kind(), "noise_model");
  EXPECT_THAT(UsedAs(synth.header, "dark")->detail(), HasSubstr("synthesized for t=50 s, g=10"));
  EXPECT_EQ(Card(synth.header, "DARKSRC"), "synthesized");
  EXPECT_EQ(Card(synth.header, "SYNMODEL"), "noise_model");
  EXPECT_EQ(Card(synth.header, "SYNMODSH"), UsedAs(synth.header, "dark")->sha256());
  ASSERT_NE(TrailOf(synth.header, "dark"), nullptr);
  EXPECT_EQ(TrailOf(synth.header, "dark")->outcome(), v1::SELECTION_OUTCOME_CERTIFIED);
  // measured_else_synthesized with a measured dark: the measured one, bit for bit.
  EXPECT_EQ(Card(either.header, "DARKSRC"), "measured");
  EXPECT_EQ(either.data, measured.data);
  EXPECT_EQ(TrailOf(either.header, "noise_model"), nullptr);

  // No measured dark under STRICT: FAILED_PRECONDITION; the fallback synthesizes one (the same
  // model bytes, so the same pixels) and the trail says why.
  EXPECT_EQ(no_dark.header.status().code(), int(absl::StatusCode::kFailedPrecondition))
      << no_dark.header.status().message();
  EXPECT_THAT(no_dark.header.status().message(), HasSubstr("dark"));
  EXPECT_EQ(fallback.data, synth.data);
  EXPECT_EQ(Card(fallback.header, "DARKSRC"), "synthesized");
  const v1::SelectionTrailEntry* dark = TrailOf(fallback.header, "dark");
  ASSERT_NE(dark, nullptr);
  EXPECT_EQ(dark->status().code(), 0);
  ASSERT_GT(dark->candidates_size(), 0);
  const v1::SelectionCandidate& chosen = dark->candidates(dark->candidates_size() - 1);
  EXPECT_TRUE(chosen.chosen());
  EXPECT_THAT(chosen.reason(), HasSubstr("no measured dark"));
  EXPECT_THAT(chosen.reason(), HasSubstr("noise_model v1"));
  // No model: NOT_FOUND naming what to build. A required read-noise map: FAILED_PRECONDITION.
  EXPECT_EQ(no_model.header.status().code(), int(absl::StatusCode::kNotFound));
  EXPECT_THAT(no_model.header.status().message(), HasSubstr("calibctl build --kind noise_model"));
  EXPECT_EQ(no_rn.header.status().code(), int(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(no_rn.header.status().message(), HasSubstr("read_noise"));
  EXPECT_EQ(after.data, synth.data);  // the stream went on
}

}  // namespace
}  // namespace calibd::integration
