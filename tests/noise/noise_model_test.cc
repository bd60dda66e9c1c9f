// core/noise's EMCCD noise model (mean = F + g·t·D + g·C) and synthesized darks on synthetic
// sub-stacks from known F, D, C maps; the multi-map product's FITS round trip.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/image/dq.h"
#include "core/noise/noise.h"
#include "core/noise/noise_product.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/noise/noise_testing.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::noise {
namespace {

using ::calibd::testing::Gaussian;
using ::calibd::testing::StatusIs;
using ntest::FractionWithin;
using ntest::kHeight;
using ntest::kWidth;
using ntest::Stack;
using ::testing::HasSubstr;

struct Truth {
  std::function<double(int, int)> f = [](int x, int y) {
    return 20 + 5 * std::sin(0.3 * x + 0.1 * y);
  };
  std::function<double(int, int)> d = [](int x, int y) {
    return 0.01 + 0.005 * (1 + std::cos(0.2 * x - 0.4 * y));
  };
  std::function<double(int, int)> c = [](int x, int y) {
    return 0.05 + 0.02 * (1 + std::sin(0.15 * x * y));
  };
  double rn = 4;
  // Variance of one frame at (g, t): read noise plus the gained shot noise (ENF² = 2).
  double Var(int x, int y, double g, double t) const {
    return rn * rn + 2 * g * g * (t * d(x, y) + c(x, y));
  }
};

const std::vector<std::pair<double, double>> kSettings = {{1, 10},   {10, 10},  {50, 30},
                                                          {100, 60}, {200, 30}, {500, 100}};

// Pixel (9, 9) is masked in most frames of three settings: 3 usable → not fitted.
Stack MakeModelStack(const Truth& truth, int frames, bool variance, uint64_t seed) {
  Stack s;
  Gaussian g(seed);
  for (size_t k = 0; k < kSettings.size(); ++k) {
    auto [gain, t] = kSettings[k];
    for (int i = 0; i < frames; ++i) {
      auto var = [&](int x, int y) { return truth.Var(x, y, gain, t); };
      CalibratedFrame& f = s.Add(
          [&](int x, int y) {
            return truth.f(x, y) + gain * t * truth.d(x, y) + gain * truth.c(x, y) +
                   std::sqrt(var(x, y)) * g.Next();
          },
          {{"EMGAIN", gain}, {"EXPTIME", t}},
          variance ? std::function<double(int, int)>(var) : nullptr);
      if (k < 3 && i < frames - 1) {
        f.dq = Image<uint16_t>::Filled(kWidth, kHeight, 0);
        f.dq.at(9, 9) = kDqCosmicRay;
      }
    }
  }
  return s;
}

TEST(NoiseModel, RecoversFpnDarkAndCicWithinTheirErrors) {
  Truth truth;
  Stack s = MakeModelStack(truth, 30, /*variance=*/true, 61);
  ThreadPool pool(2);
  NoiseModelOptions options;
  options.prescan_section = "[1:8,*]";
  options.temperature = -85;
  ASSERT_OK_AND_ASSIGN(NoiseProduct p, BuildNoiseModel(s.Sources(), options, &pool));
  auto skip = [](int x, int y) { return x == 9 && y == 9; };
  EXPECT_GE(FractionWithin(*p.Find("FPN"), *p.Find("FPN_ERR"), truth.f, 3, skip), 0.99);
  EXPECT_GE(FractionWithin(*p.Find("DARK_CURRENT"), *p.Find("DARK_CURRENT_ERR"), truth.d, 3, skip),
            0.99);
  EXPECT_GE(FractionWithin(*p.Find("CIC"), *p.Find("CIC_ERR"), truth.c, 3, skip), 0.99);
  // The unfitted pixel: 3 usable sub-stacks, 0 in the maps, DQ bad|no_data.
  EXPECT_EQ(p.Find("NUSABLE")->at(9, 9), 3);
  EXPECT_EQ(p.Find("NUSABLE")->at(10, 9), 6);
  EXPECT_EQ(p.Find("FPN")->at(9, 9), 0.0f);
  EXPECT_EQ(p.dq.at(9, 9), kDqBad | kDqNoData);
  ASSERT_OK_AND_ASSIGN(int64_t fitted, p.header.GetInt("NFITTED"));
  EXPECT_EQ(fitted, kWidth * kHeight - 1);
  // Adjusted R² of a model that is right: close to 1 for most pixels.
  {
    const Image<float>& r2 = *p.Find("ADJ_R2");
    std::vector<float> v(r2.data(), r2.data() + r2.num_pixels());
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    EXPECT_GT(v[v.size() / 2], 0.9);
    EXPECT_LE(*std::max_element(r2.data(), r2.data() + r2.num_pixels() - 0), 1.0f);
  }
  ASSERT_OK_AND_ASSIGN(double off, p.header.GetDouble("BIASOFF"));
  ASSERT_OK_AND_ASSIGN(double off_err, p.header.GetDouble("BIASOFFE"));
  EXPECT_GT(off, 15);  // median of F + C over the prescan: F ∈ [15, 25], C ≈ 0.07
  EXPECT_GT(off_err, 0);
  ASSERT_OK_AND_ASSIGN(int64_t nset, p.header.GetInt("NSETTING"));
  EXPECT_EQ(nset, 6);

  // A synthesized dark at a setting not in the training set matches the truth within its
  // stated error.
  SynthDarkRequest request;
  request.exptime = 45;
  request.em_gain = 300;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame dark, SynthesizeDark(p, request, &pool));
  EXPECT_EQ(dark.unit, "electron");
  Image<float> se = Image<float>::Allocate(kWidth, kHeight);
  for (int64_t i = 0; i < se.num_pixels(); ++i) se.data()[i] = std::sqrt(dark.variance.data()[i]);
  auto synth_truth = [&](int x, int y) {
    return truth.f(x, y) / 300 + 45 * truth.d(x, y) + truth.c(x, y);
  };
  EXPECT_GE(FractionWithin(dark.data, se, synth_truth, 3, skip), 0.99);
  EXPECT_EQ(dark.dq.at(9, 9), kDqBad | kDqNoData);
  EXPECT_EQ(dark.data.at(9, 9), 0.0f);
  ASSERT_OK_AND_ASSIGN(bool synth, dark.header.GetBool("SYNTHDRK"));
  EXPECT_TRUE(synth);
  // Ignoring the covariance would misstate the error: the stated error is not just the sum of
  // the three variances.
  const double vf = std::pow(p.Find("FPN_ERR")->at(20, 20) / 300, 2);
  const double vd = std::pow(45 * p.Find("DARK_CURRENT_ERR")->at(20, 20), 2);
  const double vc = std::pow(p.Find("CIC_ERR")->at(20, 20), 2);
  EXPECT_LT(dark.variance.at(20, 20), 0.9 * (vf + vd + vc));

  // Temperature scaling: D × exp(c·ΔT).
  request.temperature = -80;
  request.temperature_coefficient = 0.1;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame warm, SynthesizeDark(p, request, &pool));
  const double expect = p.Find("FPN")->at(20, 20) / 300 +
                        45 * std::exp(0.5) * p.Find("DARK_CURRENT")->at(20, 20) +
                        p.Find("CIC")->at(20, 20);
  EXPECT_NEAR(warm.data.at(20, 20), expect, 1e-5 * std::abs(expect));
}

TEST(NoiseModel, UnweightedAndStreamingGiveConsistentAnswers) {
  Truth truth;
  Stack s = MakeModelStack(truth, 10, /*variance=*/false, 62);
  NoiseModelOptions options;
  ASSERT_OK_AND_ASSIGN(NoiseProduct a, BuildNoiseModel(s.Sources(), options));
  options.memory_budget_bytes = 1;  // one row per band
  ASSERT_OK_AND_ASSIGN(NoiseProduct b, BuildNoiseModel(s.Sources(), options));
  for (int64_t i = 0; i < a.Find("FPN")->num_pixels(); ++i) {
    const float x = a.Find("FPN")->data()[i], y = b.Find("FPN")->data()[i];
    ASSERT_EQ(x, y) << i;
  }
  options.weighted = false;
  ASSERT_OK_AND_ASSIGN(NoiseProduct u, BuildNoiseModel(s.Sources(), options));
  EXPECT_NEAR(u.Find("FPN")->at(30, 30), truth.f(30, 30), 4 * u.Find("FPN_ERR")->at(30, 30));
}

TEST(NoiseModel, BadInput) {
  Truth truth;
  Stack three;
  for (auto [g, t] : {std::pair{1.0, 10.0}, {10.0, 10.0}, {50.0, 30.0}}) {
    for (int i = 0; i < 2; ++i)
      three.Add([](int, int) { return 1.0; }, {{"EMGAIN", g}, {"EXPTIME", t}});
  }
  EXPECT_THAT(BuildNoiseModel(three.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(">= 4 distinct (EM gain, exposure time) settings, got 3: "
                                 "(g=1, t=10 s), (g=10, t=10 s), (g=50, t=30 s)")));
  Stack missing = MakeModelStack(truth, 2, false, 7);
  missing.frames[3]->header.Erase("EMGAIN");
  EXPECT_THAT(BuildNoiseModel(missing.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("frame #3: no header keyword EMGAIN; supply the EM gain")));
  // Four settings with g·t ∝ g: D and C cannot be told apart.
  Stack collinear;
  for (double g : {1.0, 2.0, 5.0, 10.0}) {
    for (int i = 0; i < 2; ++i) {
      collinear.Add([&](int, int) { return 1.0 + i; }, {{"EMGAIN", g}, {"EXPTIME", 10.0}});
    }
  }
  EXPECT_THAT(
      BuildNoiseModel(collinear.Sources(), {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("settings vary independently")));
  Stack mixed = MakeModelStack(truth, 2, false, 8);
  mixed.Add([](int, int) { return 1.0; }, {{"EMGAIN", 1.0}, {"EXPTIME", 10.0}}, nullptr, kWidth + 1,
            kHeight);
  EXPECT_THAT(BuildNoiseModel(mixed.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("different shapes")));
  NoiseProduct rn = NoiseProduct::Create(kKindReadNoise, 4, 4);
  EXPECT_THAT(SynthesizeDark(rn, {}), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("needs a noise_model or dark_current")));
}

TEST(SynthesizedDark, FromDarkCurrentProduct) {
  NoiseProduct p = NoiseProduct::Create(kKindDarkCurrent, 4, 3);
  p.AddMap("DARK_CURRENT", "electron/s").Fill(0.5f);
  p.AddMap("DARK_CURRENT_ERR", "electron/s").Fill(0.01f);
  p.dq.at(1, 1) = kDqHot;
  SynthDarkRequest r;
  r.exptime = 100;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame d, SynthesizeDark(p, r));
  EXPECT_FLOAT_EQ(d.data.at(0, 0), 50);
  EXPECT_FLOAT_EQ(d.variance.at(0, 0), 1.0f);
  EXPECT_EQ(d.dq.at(1, 1), kDqHot);
  r.temperature = 0;
  r.temperature_coefficient = 0.1;
  EXPECT_THAT(SynthesizeDark(p, r),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("TEMPMOD")));
}

TEST(NoiseProduct, FitsRoundTrip) {
  calibd::testing::TempDir dir;
  NoiseProduct p = NoiseProduct::Create(kKindReadNoise, 5, 3);
  Image<float>& m = p.AddMap("READ_NOISE", "electron");
  Image<float>& e = p.AddMap("READ_NOISE_ERR", "electron");
  for (int64_t i = 0; i < 15; ++i) {
    m.data()[i] = 3.5f + i;
    e.data()[i] = 0.25f * i;
  }
  p.dq.at(4, 2) = kDqHot;
  p.header.Set("RDNOISE", 4.25, "median");
  const std::string path = dir.File("rn.fits");
  ASSERT_OK(WriteNoiseProduct(path, p));
  EXPECT_THAT(WriteNoiseProduct(path, p), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(NoiseProduct q, ReadNoiseProduct(path));
  EXPECT_EQ(q.kind, "read_noise");
  ASSERT_EQ(q.maps.size(), 2u);
  EXPECT_EQ(q.maps[1].name, "READ_NOISE_ERR");
  EXPECT_EQ(q.maps[0].unit, "electron");
  for (int64_t i = 0; i < 15; ++i) ASSERT_EQ(q.maps[1].data.data()[i], e.data()[i]);
  EXPECT_EQ(q.dq.at(4, 2), kDqHot);
  ASSERT_OK_AND_ASSIGN(double rn, q.header.GetDouble("RDNOISE"));
  EXPECT_EQ(rn, 4.25);
  NoiseProduct dup = NoiseProduct::Create(kKindReadNoise, 2, 2);
  dup.AddMap("A", "");
  dup.AddMap("A", "");
  EXPECT_THAT(WriteNoiseProduct(dir.File("dup.fits"), dup),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
}

}  // namespace
}  // namespace calibd::noise
