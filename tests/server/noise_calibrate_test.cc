// Calibrate with noise products and dark policies (server/noise_calibration.h) over a real
// embedded store: products with known maps are stored and certified like masters, a 20×10 frame
// (16×10 after trim) is calibrated through CalibrateImpl, and every output pixel is checked
// against closed-form arithmetic computed here (the formulas of core/calib/recipe.h and
// noise_inputs.h), with the provenance, header cards and trail each product must leave.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/image/dq.h"
#include "core/noise/noise_product.h"
#include "core/status/macros.h"
#include "core/status/status_matchers.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend.h"
#include "server/calibrate_impl.h"
#include "server/noise_calibration.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kRawW = 20, kW = 16, kH = 10;
constexpr double kOverscan = 500, kBias = 100, kSpecGain = 2.0, kSpecReadNoise = 4.0;
constexpr char kDetector[] = "test/noisy";
constexpr char kDateObs[] = "2026-03-01T00:00:00";

// Signal above bias in the data region, ADU.
double Signal(int x, int y) { return 200 + 10 * x + 3 * y; }

class NoiseCalibrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::CalibrationStore> st,
                         store::OpenStore(dir_.File("store")));
    store_ = std::move(st);
    backend_.store.Set(store_);
    backend_.pool = &pool_;
    spec_.name = kDetector;
    spec_.width = kRawW;
    spec_.height = kH;
    spec_.overscan_section = "[17:20,1:10]";
    spec_.trim_section = "[1:16,1:10]";
    spec_.gain = kSpecGain;
    spec_.read_noise = kSpecReadNoise;
    spec_.configuration_keys = {{"default", {"readout_mode"}}};
    ASSERT_OK(store_->PutDetector(spec_, "test").status());
    CalibratedFrame bias;
    bias.data = Image<float>::Filled(kW, kH, kBias);
    PutFrame("bias", bias);
    impl_ = std::make_unique<CalibrateImpl>(&backend_);
  }

  void Certify(const store::MasterVersion& v) {
    store::CertifyRequest c;
    c.series_id = v.series_id;
    c.version = v.version;
    c.begin = *store::ParseTime("2026-01-01T00:00:00");
    c.replace = true;
    c.actor = "test";
    ASSERT_OK(store_->Certify(c).status());
  }

  store::PutMasterRequest Put(const std::string& kind) {
    store::PutMasterRequest put;
    put.detector = kDetector;
    put.kind = kind;
    put.configuration = {{"readout_mode", "em"}};
    put.obs_time = *store::ParseTime("2026-02-01T00:00:00");
    return put;
  }

  store::MasterVersion PutFrame(const std::string& kind, const CalibratedFrame& f,
                                bool certify = true) {
    store::PutMasterRequest put = Put(kind);
    put.frame = &f;
    absl::StatusOr<store::MasterVersion> v = store_->PutMaster(put, "test");
    EXPECT_OK(v.status());
    if (certify && v.ok()) Certify(*v);
    return v.value_or(store::MasterVersion());
  }

  store::MasterVersion PutProduct(const noise::NoiseProduct& p) {
    const std::string path = dir_.File(absl::StrCat(p.kind, "_", ++files_, ".fits"));
    EXPECT_OK(noise::WriteNoiseProduct(path, p, /*overwrite=*/true));
    store::PutMasterRequest put = Put(p.kind);
    put.fits_path = path;
    for (const char* key : {"RDNOISE", "GAIN"}) {
      if (absl::StatusOr<double> v = p.header.GetDouble(key); v.ok()) {
        put.statistics[absl::AsciiStrToLower(key)] = *v;
      }
    }
    absl::StatusOr<store::MasterVersion> v = store_->PutMaster(put, "test");
    EXPECT_OK(v.status());
    if (v.ok()) Certify(*v);
    return v.value_or(store::MasterVersion());
  }

  // A noise_model with F = 20 + x, D = 0.5 + 0.01·y e⁻/s, C = 2 e⁻ and small errors.
  noise::NoiseProduct NoiseModel() {
    noise::NoiseProduct p = noise::NoiseProduct::Create("noise_model", kW, kH);
    Image<float>& f = p.AddMap("FPN", "electron");
    Image<float>& fe = p.AddMap("FPN_ERR", "electron");
    Image<float>& d = p.AddMap("DARK_CURRENT", "electron/s");
    Image<float>& de = p.AddMap("DARK_CURRENT_ERR", "electron/s");
    Image<float>& c = p.AddMap("CIC", "electron");
    Image<float>& ce = p.AddMap("CIC_ERR", "electron");
    p.AddMap("COV_F_D", "");
    p.AddMap("COV_F_C", "");
    p.AddMap("COV_D_C", "");
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        f.at(x, y) = 20 + x;
        fe.at(x, y) = 0.5;
        d.at(x, y) = 0.5 + 0.01 * y;
        de.at(x, y) = 0.01;
        c.at(x, y) = 2;
        ce.at(x, y) = 0.1;
      }
    }
    p.header.Set("TEMPMOD", -100.0);
    return p;
  }
  static double F(int x, int) { return 20 + x; }
  static double D(int, int y) { return 0.5 + 0.01 * y; }

  // A light frame: overscan 500, bias 100, then `extra(x, y)` ADU (dark) + Signal.
  FrameRequest Request(const std::string& id, double exptime, double em_gain) {
    FrameRequest r;
    r.frame_id = id;
    r.detector = kDetector;
    r.width = kRawW;
    r.height = kH;
    r.pixel_type = PixelType::kUint16;
    r.header.Set("IMAGETYP", "light");
    r.header.Set("DATE-OBS", kDateObs);
    r.header.Set("READMODE", "em");
    r.header.Set("EXPTIME", exptime);
    if (em_gain > 0) r.header.Set("EMGAIN", em_gain);
    r.recipe.flat = false;
    r.unit = calib::RecipeOptions::Unit::kAdu;
    return r;
  }

  RawImage Raw(const std::function<double(int, int)>& dark_adu) {
    return calibd::testing::MakeFrame(kRawW, kH, PixelType::kFloat32, [&](int x, int y) {
             return x < kW ? kOverscan + kBias + dark_adu(x, y) + Signal(x, y) : kOverscan;
           })
        .pixels;
  }

  absl::StatusOr<FrameResult> Calibrate(FrameRequest req, RawImage raw,
                                        PreparedFrame* keep = nullptr) {
    PreparedFrame prep;
    CALIBD_RETURN_IF_ERROR(impl_->Prepare(std::move(req), prep));
    FrameResult out;
    CALIBD_RETURN_IF_ERROR(impl_->Run(prep, std::move(raw), out));
    if (keep != nullptr) *keep = std::move(prep);
    return out;
  }

  calibd::testing::TempDir dir_;
  ThreadPool pool_{2};
  std::shared_ptr<store::CalibrationStore> store_;
  Backend backend_;
  store::DetectorSpec spec_;
  std::unique_ptr<CalibrateImpl> impl_;
  int files_ = 0;
};

const AppliedMaster* AppliedAs(const FrameResult& r, const std::string& used_as) {
  for (const AppliedMaster& a : r.applied) {
    if ((a.used_as.empty() ? a.kind : a.used_as) == used_as) return &a;
  }
  return nullptr;
}

const store::KindSelection* Trail(const FrameResult& r, const std::string& kind) {
  if (!r.selection) return nullptr;
  for (const store::KindSelection& k : r.selection->kinds) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

TEST_F(NoiseCalibrateTest, ReadNoiseGainAndBadPixelProductsGiveClosedFormPlanes) {
  noise::NoiseProduct rn = noise::NoiseProduct::Create("read_noise", kW, kH);
  Image<float>& map = rn.AddMap("READ_NOISE", "electron");
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) map.at(x, y) = 3 + 0.5 * x;
  }
  map.at(5, 5) = 0;
  rn.dq.at(5, 5) = kDqBad | kDqNoData;  // unmeasured: takes the median RDNOISE
  rn.header.Set("RDNOISE", 6.0);
  const store::MasterVersion rn_v = PutProduct(rn);
  noise::NoiseProduct gain = noise::NoiseProduct::Create("gain", kW, kH);
  gain.AddMap("GAIN", "electron/adu");
  gain.header.Set("GAIN", 1.6);
  const store::MasterVersion gain_v = PutProduct(gain);
  noise::NoiseProduct bpm = noise::NoiseProduct::Create("bad_pixels", kW, kH);
  bpm.dq.at(2, 3) = kDqHot;
  bpm.dq.at(7, 1) = kDqDead;
  const store::MasterVersion bpm_v = PutProduct(bpm);

  FrameRequest req = Request("light", 30, -1);
  req.recipe.dark = false;
  ASSERT_OK_AND_ASSIGN(FrameResult r, Calibrate(req, Raw([](int, int) { return 0.0; })));
  const double g = 1.6;
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      const double rnx = x == 5 && y == 5 ? 6.0 : 3 + 0.5 * x;
      const double d0 = kBias + Signal(x, y);  // after overscan, before the bias
      EXPECT_NEAR(r.frame.data.at(x, y), Signal(x, y), 1e-3);
      // variance = (g·D + RN²)/g² in ADU², D the overscan-subtracted data.
      EXPECT_NEAR(r.frame.variance.at(x, y), (g * d0 + rnx * rnx) / (g * g), 1e-4)
          << x << "," << y;
    }
  }
  EXPECT_EQ(r.frame.dq.at(2, 3), kDqHot | kDqBad);
  EXPECT_EQ(r.frame.dq.at(7, 1), kDqDead | kDqBad);
  EXPECT_EQ(r.frame.dq.at(5, 5), 0);  // the read-noise product's own DQ is not the frame's
  EXPECT_EQ(r.stats.bad, 2);
  // Provenance, cards, trail.
  ASSERT_NE(AppliedAs(r, "read_noise"), nullptr);
  EXPECT_EQ(AppliedAs(r, "read_noise")->sha256, rn_v.sha256);
  ASSERT_NE(AppliedAs(r, "gain"), nullptr);
  EXPECT_EQ(AppliedAs(r, "gain")->version, gain_v.version);
  EXPECT_THAT(AppliedAs(r, "gain")->detail, HasSubstr("GAIN 1.6 e-/ADU"));
  ASSERT_NE(AppliedAs(r, "bad_pixels"), nullptr);
  EXPECT_THAT(AppliedAs(r, "bad_pixels")->detail, HasSubstr("2 flagged"));
  EXPECT_EQ(AppliedAs(r, "bad_pixels")->sha256, bpm_v.sha256);
  const Header& h = r.frame.header;
  EXPECT_EQ(h.GetString("RDNSRC").value_or(""), "read_noise v1");
  EXPECT_EQ(h.GetString("RDNOISE").value_or(""), "map");
  EXPECT_EQ(h.GetDouble("RDNMED").value_or(0), 6.0);
  EXPECT_EQ(h.GetString("GAINSRC").value_or(""), "gain v1");
  EXPECT_EQ(h.GetDouble("GAIN").value_or(0), 1.6);
  EXPECT_EQ(h.GetString("BPMSRC").value_or(""), "bad_pixels v1");
  EXPECT_EQ(h.GetInt("NBADPIX").value_or(0), 2);
  EXPECT_EQ(h.GetInt("GAIN" "VER").value_or(0), 1);  // the per-kind version/sha cards
  for (const char* kind : {"read_noise", "gain", "bad_pixels"}) {
    ASSERT_NE(Trail(r, kind), nullptr) << kind;
    EXPECT_TRUE(Trail(r, kind)->status.ok()) << kind;
  }

  // ELECTRON output: data × g, variance × g² with the product's gain.
  req.unit = calib::RecipeOptions::Unit::kElectron;
  ASSERT_OK_AND_ASSIGN(FrameResult e, Calibrate(req, Raw([](int, int) { return 0.0; })));
  EXPECT_NEAR(e.frame.data.at(4, 4), Signal(4, 4) * g, 1e-3);
  EXPECT_DOUBLE_EQ(e.stats.gain, 1.6);
  EXPECT_NEAR(e.frame.variance.at(4, 4), g * (kBias + Signal(4, 4)) + 5.0 * 5.0, 1e-3);

  // Switched off: the spec's scalars, no product in the provenance.
  req.recipe.read_noise_map = false;
  req.recipe.gain_product = false;
  req.recipe.bad_pixels = false;
  req.unit = calib::RecipeOptions::Unit::kAdu;
  ASSERT_OK_AND_ASSIGN(FrameResult off, Calibrate(req, Raw([](int, int) { return 0.0; })));
  EXPECT_NEAR(off.frame.variance.at(4, 4),
              (kSpecGain * (kBias + Signal(4, 4)) + kSpecReadNoise * kSpecReadNoise) /
                  (kSpecGain * kSpecGain),
              1e-4);
  EXPECT_EQ(off.frame.dq.at(2, 3), 0);
  EXPECT_EQ(AppliedAs(off, "gain"), nullptr);
  EXPECT_EQ(Trail(off, "gain"), nullptr);
  // An explicit gain override wins over the product.
  req.recipe.gain_product.reset();
  req.recipe.gain = 3.0;
  ASSERT_OK_AND_ASSIGN(FrameResult over, Calibrate(req, Raw([](int, int) { return 0.0; })));
  EXPECT_EQ(over.frame.header.GetDouble("GAIN").value_or(0), 3.0);
  EXPECT_EQ(AppliedAs(over, "gain"), nullptr);
}

TEST_F(NoiseCalibrateTest, GainPerAmplifierBecomesAGainMap) {
  noise::NoiseProduct gain = noise::NoiseProduct::Create("gain", kW, kH);
  gain.AddMap("GAIN", "electron/adu");
  gain.header.Set("GAIN", 1.5);
  gain.header.Set("GAIN2", 2.5);
  gain.header.Set("SECT1", "[1:8,1:10]");
  gain.header.Set("SECT2", "[9:16,1:10]");
  PutProduct(gain);
  FrameRequest req = Request("amps", 30, -1);
  req.recipe.dark = false;
  req.unit = calib::RecipeOptions::Unit::kElectron;
  ASSERT_OK_AND_ASSIGN(FrameResult r, Calibrate(req, Raw([](int, int) { return 0.0; })));
  for (int x : {0, 7, 8, 15}) {
    const double g = x < 8 ? 1.5 : 2.5;
    const double d0 = kBias + Signal(x, 2);
    EXPECT_NEAR(r.frame.data.at(x, 2), Signal(x, 2) * g, 1e-3) << x;
    EXPECT_NEAR(r.frame.variance.at(x, 2), g * d0 + kSpecReadNoise * kSpecReadNoise, 1e-3) << x;
  }
  EXPECT_EQ(r.frame.header.GetString("GAIN").value_or(""), "map");
  ASSERT_NE(AppliedAs(r, "gain"), nullptr);
  EXPECT_THAT(AppliedAs(r, "gain")->detail, HasSubstr("per amplifier"));
}

TEST_F(NoiseCalibrateTest, MissingProductsAreSkippedUnlessRequired) {
  FrameRequest req = Request("none", 30, -1);
  req.recipe.dark = false;
  ASSERT_OK_AND_ASSIGN(FrameResult r, Calibrate(req, Raw([](int, int) { return 0.0; })));
  EXPECT_EQ(r.applied.size(), 1u);  // the bias only
  ASSERT_NE(Trail(r, "read_noise"), nullptr);  // looked for, and why it missed
  EXPECT_THAT(Trail(r, "read_noise")->status, StatusIs(absl::StatusCode::kFailedPrecondition));
  req.recipe.read_noise_map = true;
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read_noise")));
  req.recipe.read_noise_map.reset();
  req.recipe.bad_pixels = true;
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("bad_pixels")));
}

TEST_F(NoiseCalibrateTest, SynthesizedDarkFromTheNoiseModelInAdu) {
  const store::MasterVersion model = PutProduct(NoiseModel());
  const double t = 30, g = 10, k = kSpecGain;
  // The raw frame holds the dark of an EMCCD frame in ADU: (F + g·t·D + g·C)/k.
  auto dark_adu = [&](int x, int y) { return (F(x, y) + g * t * D(x, y) + g * 2) / k; };
  FrameRequest req = Request("synth", t, g);
  req.recipe.dark_policy = store::DarkPolicy::kSynthesized;
  ASSERT_OK_AND_ASSIGN(FrameResult r, Calibrate(req, Raw(dark_adu)));
  const double var_k = (g / k) * (g / k) * (0.25 / (g * g) + t * t * 1e-4 + 0.01);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      EXPECT_NEAR(r.frame.data.at(x, y), Signal(x, y), 2e-3) << x << "," << y;
      const double d0 = kBias + dark_adu(x, y) + Signal(x, y);
      EXPECT_NEAR(r.frame.variance.at(x, y),
                  (k * d0 + kSpecReadNoise * kSpecReadNoise) / (k * k) + var_k, 1e-3);
    }
  }
  const AppliedMaster* a = AppliedAs(r, "dark");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->kind, "noise_model");
  EXPECT_EQ(a->sha256, model.sha256);
  EXPECT_THAT(a->detail, HasSubstr("synthesized for t=30 s, g=10"));
  const Header& h = r.frame.header;
  EXPECT_EQ(h.GetString("DARKSRC").value_or(""), "synthesized");
  EXPECT_EQ(h.GetString("DARKPOL").value_or(""), "synthesized");
  EXPECT_EQ(h.GetString("SYNMODEL").value_or(""), "noise_model");
  EXPECT_EQ(h.GetInt("SYNMODV").value_or(0), model.version);
  EXPECT_EQ(h.GetString("SYNMODSH").value_or(""), model.sha256);
  EXPECT_EQ(h.GetDouble("SYNEXPT").value_or(0), 30.0);
  EXPECT_EQ(h.GetDouble("SYNEMGN").value_or(0), 10.0);
  EXPECT_EQ(h.GetString("NOISESHA").value_or(""), model.sha256);
  const store::KindSelection* dark = Trail(r, "dark");
  ASSERT_NE(dark, nullptr);
  ASSERT_TRUE(dark->status.ok());
  EXPECT_EQ(dark->chosen->sha256, model.sha256);
  ASSERT_FALSE(dark->trail.empty());
  EXPECT_THAT(dark->trail.back().reason, HasSubstr("dark policy synthesized"));
  EXPECT_EQ(Trail(r, "dark_current"), nullptr);  // not needed once the model was chosen

  // Synthesized once per setting: the second frame at (30 s, g 10) hits the cache.
  const NoiseCache::Stats before = impl_->noise_cache_stats();
  ASSERT_OK(Calibrate(req, Raw(dark_adu)).status());
  const NoiseCache::Stats after = impl_->noise_cache_stats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.misses, before.misses);
  // A frame without EMGAIN is g = 1.
  FrameRequest plain = Request("g1", t, -1);
  plain.recipe.dark_policy = store::DarkPolicy::kSynthesized;
  ASSERT_OK_AND_ASSIGN(FrameResult g1, Calibrate(plain, Raw([&](int x, int y) {
                                                   return (F(x, y) + t * D(x, y) + 2) / k;
                                                 })));
  EXPECT_NEAR(g1.frame.data.at(3, 3), Signal(3, 3), 2e-3);
  EXPECT_EQ(g1.frame.header.GetDouble("SYNEMGN").value_or(0), 1.0);
}

TEST_F(NoiseCalibrateTest, MeasuredElseSynthesizedFallsBackAndSaysWhy) {
  PutProduct(NoiseModel());
  const double t = 30, g = 10, k = kSpecGain;
  auto dark_adu = [&](int x, int y) { return (F(x, y) + g * t * D(x, y) + g * 2) / k; };
  FrameRequest req = Request("fallback", t, g);
  req.recipe.dark_policy = store::DarkPolicy::kMeasuredElseSynthesized;
  ASSERT_OK_AND_ASSIGN(FrameResult r, Calibrate(req, Raw(dark_adu)));
  EXPECT_NEAR(r.frame.data.at(9, 4), Signal(9, 4), 2e-3);
  EXPECT_EQ(r.frame.header.GetString("DARKSRC").value_or(""), "synthesized");
  const store::KindSelection* dark = Trail(r, "dark");
  ASSERT_NE(dark, nullptr);
  EXPECT_TRUE(dark->status.ok());
  EXPECT_THAT(dark->trail.back().reason, HasSubstr("no measured dark"));
  EXPECT_THAT(AppliedAs(r, "dark")->detail, HasSubstr("measured_else_synthesized"));

  // With a certified measured dark (EXPTIME 30, the exact dark in ADU) the measured one wins.
  CalibratedFrame measured;
  measured.data = Image<float>::Allocate(kW, kH);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) measured.data.at(x, y) = static_cast<float>(dark_adu(x, y));
  }
  measured.header.Set("EXPTIME", t);
  const store::MasterVersion mv = PutFrame("dark", measured);
  ASSERT_OK_AND_ASSIGN(FrameResult m, Calibrate(req, Raw(dark_adu)));
  EXPECT_NEAR(m.frame.data.at(9, 4), Signal(9, 4), 2e-3);
  EXPECT_EQ(m.frame.header.GetString("DARKSRC").value_or(""), "measured");
  ASSERT_NE(AppliedAs(m, "dark"), nullptr);
  EXPECT_EQ(AppliedAs(m, "dark")->kind, "dark");
  EXPECT_EQ(AppliedAs(m, "dark")->sha256, mv.sha256);
  EXPECT_EQ(Trail(m, "noise_model"), nullptr);  // not looked for
}

TEST_F(NoiseCalibrateTest, DarkCurrentProductAndTemperatureScaling) {
  noise::NoiseProduct dc = noise::NoiseProduct::Create("dark_current", kW, kH);
  Image<float>& d = dc.AddMap("DARK_CURRENT", "electron/s");
  dc.AddMap("DARK_CURRENT_ERR", "electron/s");
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) d.at(x, y) = 0.5 + 0.01 * y;
  }
  dc.header.Set("TEMPMOD", -100.0);
  PutProduct(dc);
  spec_.dark_temperature_coefficient = 0.1;
  ASSERT_OK(store_->PutDetector(spec_, "test").status());
  const double t = 60, k = kSpecGain, scale = std::exp(0.1 * (-95 - -100));
  FrameRequest req = Request("warm", t, -1);
  req.header.Set("CCD-TEMP", -95.0);
  req.recipe.dark_policy = store::DarkPolicy::kSynthesized;
  ASSERT_OK_AND_ASSIGN(FrameResult r, Calibrate(req, Raw([&](int x, int y) {
                                                  return t * D(x, y) * scale / k;
                                                })));
  EXPECT_NEAR(r.frame.data.at(6, 7), Signal(6, 7), 2e-3);
  EXPECT_EQ(AppliedAs(r, "dark")->kind, "dark_current");
  EXPECT_NEAR(r.frame.header.GetDouble("SYNDSCAL").value_or(0), scale, 1e-12);
  EXPECT_EQ(r.frame.header.GetDouble("SYNTEMP").value_or(0), -95.0);
}

TEST_F(NoiseCalibrateTest, PolicyErrorsHaveExactCodes) {
  FrameRequest req = Request("nomodel", 30, -1);
  req.recipe.dark_policy = store::DarkPolicy::kSynthesized;
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("calibctl build --kind noise_model|dark_current")));
  req.recipe.dark_policy = store::DarkPolicy::kMeasuredElseSynthesized;
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no measured dark")));
  req.recipe.dark_policy = store::DarkPolicy::kMeasured;
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("dark")));
  // The detector's default policy applies when the request gives none.
  PutProduct(NoiseModel());
  spec_.dark_policy = store::DarkPolicy::kSynthesized;
  ASSERT_OK(store_->PutDetector(spec_, "test").status());
  req.recipe.dark_policy.reset();
  req.header.Set("EMGAIN", "high");
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("EMGAIN")));
  req.header.Set("EMGAIN", 0.0);
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be > 0")));
  req.header.Erase("EMGAIN");
  req.header.Erase("EXPTIME");
  EXPECT_THAT(Calibrate(req, Raw([](int, int) { return 0.0; })).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("EXPTIME")));
  req.recipe.exptime = 30;
  EXPECT_OK(Calibrate(req, Raw([](int, int) { return 0.0; })).status());
}

TEST(PlanNoiseTest, KindsSwitchesAndDefaults) {
  store::DetectorSpec spec;
  RecipeOverrides o;
  const std::vector<std::string> masters = {"bias", "dark", "flat"};
  NoisePlan p = PlanNoise(spec, o, masters, "");
  EXPECT_EQ(p.dark_policy, store::DarkPolicy::kMeasured);
  EXPECT_EQ(p.SelectKinds(masters), (std::vector<std::string>{"bias", "dark", "flat", "read_noise",
                                                              "gain", "bad_pixels"}));
  EXPECT_FALSE(p.Required("gain"));
  EXPECT_TRUE(p.Required("dark"));
  // Build pre-processing: products off unless asked; the spec's policy is the default.
  spec.dark_policy = store::DarkPolicy::kSynthesized;
  o.bad_pixels = true;
  p = PlanNoise(spec, o, masters, "flat");
  EXPECT_EQ(p.SelectKinds(masters), (std::vector<std::string>{"bias", "flat", "noise_model",
                                                              "dark_current", "bad_pixels"}));
  EXPECT_TRUE(p.Required("bad_pixels"));
  // The request's policy wins; a fallback does not make the measured dark required.
  o.dark_policy = store::DarkPolicy::kMeasuredElseSynthesized;
  o.read_noise_map = false;
  p = PlanNoise(spec, o, masters, "");
  EXPECT_EQ(p.SelectKinds(masters), (std::vector<std::string>{"bias", "dark", "flat", "gain",
                                                              "bad_pixels"}));
  EXPECT_FALSE(p.Required("dark"));
  EXPECT_TRUE(p.may_fall_back());
  // No dark step: no policy.
  p = PlanNoise(spec, o, {"bias"}, "");
  EXPECT_FALSE(p.dark_needed);
  EXPECT_FALSE(p.may_fall_back());
}

}  // namespace
}  // namespace calibd::server
