// core/calib/noise_inputs and the noise-product inputs of the fused kernel, against closed-form
// arithmetic on small synthetic frames: a synthesized dark in e⁻ converted to ADU
// (K·g_em/k, σ²·(g_em/k)²), per-amplifier gain maps, and a frame calibrated with a read-noise
// map, a gain map and a bad-pixel product (variance = (D·g + RN²)/g² per pixel in ADU², DQ bits
// kept), computed here independently of the kernel.
#include "core/calib/noise_inputs.h"

#include <cmath>
#include <memory>

#include "core/calib/recipe.h"
#include "core/image/dq.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/calib/calib_testing.h"
#include "tests/testing/synthetic.h"

namespace calibd::calib {
namespace {

using ::calibd::testing::MakeFrame;
using ::calibd::testing::MakeImage;
using ::calibd::testing::MakeMaster;
using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;

TEST(DarkElectronsToAduTest, ScalesDataByEmGainOverGainAndVarianceBySquare) {
  auto dark = MakeMaster(
      6, 4, [](int x, int y) { return 0.5 + x + 10 * y; }, [](int x, int) { return 0.01 * (x + 1); },
      [](int x, int y) -> uint16_t { return x == 2 && y == 1 ? kDqBad | kDqNoData : 0; });
  dark->unit = "electron";
  ThreadPool pool(2);
  ASSERT_OK_AND_ASSIGN(CalibratedFrame adu, DarkElectronsToAdu(*dark, 10, 2.5, nullptr, &pool));
  EXPECT_EQ(adu.unit, "adu");
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 6; ++x) {
      EXPECT_FLOAT_EQ(adu.data.at(x, y), float((0.5 + x + 10 * y) * 10 / 2.5));
      EXPECT_FLOAT_EQ(adu.variance.at(x, y), float(0.01 * (x + 1) * 16));
    }
  }
  EXPECT_EQ(adu.dq.at(2, 1), kDqBad | kDqNoData);
  EXPECT_EQ(adu.dq.at(0, 0), 0);
  // Per pixel with a gain map.
  Image<float> map = MakeImage(6, 4, [](int x, int) { return x < 3 ? 1.0 : 4.0; });
  ASSERT_OK_AND_ASSIGN(CalibratedFrame per, DarkElectronsToAdu(*dark, 1, 99, &map));
  EXPECT_FLOAT_EQ(per.data.at(1, 2), float(21.5));
  EXPECT_FLOAT_EQ(per.data.at(4, 2), float(24.5 / 4));
  EXPECT_FLOAT_EQ(per.variance.at(4, 0), float(0.05 / 16));
}

TEST(DarkElectronsToAduTest, RefusesBadGains) {
  auto dark = MakeMaster(3, 2, [](int, int) { return 1.0; });
  EXPECT_THAT(DarkElectronsToAdu(*dark, 0, 1, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("EM gain")));
  EXPECT_THAT(DarkElectronsToAdu(*dark, 1, -2, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gain")));
  Image<float> wrong = MakeImage(2, 2, [](int, int) { return 1.0; });
  EXPECT_THAT(DarkElectronsToAdu(*dark, 1, 1, &wrong),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gain map")));
}

TEST(GainMapFromSectionsTest, EachAmplifierItsGainOutsideTheDefault) {
  ASSERT_OK_AND_ASSIGN(Image<float> map,
                       GainMapFromSections(8, 3, {{Section{0, 4, 0, 3}, 1.5},
                                                  {Section{4, 7, 0, 3}, 2.0}},
                                           1.25));
  EXPECT_EQ(map.at(0, 0), 1.5f);
  EXPECT_EQ(map.at(3, 2), 1.5f);
  EXPECT_EQ(map.at(4, 1), 2.0f);
  EXPECT_EQ(map.at(6, 2), 2.0f);
  EXPECT_EQ(map.at(7, 0), 1.25f);
  EXPECT_THAT(GainMapFromSections(8, 3, {{Section{0, 9, 0, 3}, 1.5}}, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside")));
  EXPECT_THAT(GainMapFromSections(8, 3, {{Section{0, 2, 0, 3}, 0}}, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("> 0")));
}

// A 20×10 raw frame (16 data columns, overscan 16..19 at 500 ADU) calibrated with a bias, a
// read-noise map, a two-amplifier gain map, a bad-pixel product (hot and dead bits) and a dark
// converted from electrons; every output pixel checked against the formulas of recipe.h.
TEST(NoiseInputsInTheKernelTest, MapsGiveClosedFormDataVarianceAndDq) {
  constexpr int kW = 16, kH = 10, kRawW = 20;
  auto raw_value = [](int x, int y) { return 500.0 + 100 + 40 + 3 * x + 7 * y; };
  RawImage raw = MakeFrame(kRawW, kH, PixelType::kUint16, [&](int x, int y) {
                   return x < kW ? raw_value(x, y) : 500.0;
                 }).pixels;
  RecipeOptions o;
  o.overscan.statistic = OverscanOptions::Statistic::kMedian;
  o.overscan.region = Section{kW, kRawW, 0, kH};
  o.trim = Section{0, kW, 0, kH};
  o.gain = 99;        // replaced by the map everywhere
  o.read_noise = 99;  // replaced by the map everywhere
  o.output_unit = RecipeOptions::Unit::kElectron;
  o.exptime = 30;
  Masters m;
  m.bias = MakeMaster(kW, kH, [](int, int) { return 100.0; });
  auto rn = [](int x, int y) { return 3.0 + 0.25 * x + 0.1 * y; };
  m.read_noise_map = std::make_shared<Image<float>>(MakeImage(kW, kH, rn));
  auto gain = [](int x, int) { return x < 8 ? 1.5 : 2.0; };
  ASSERT_OK_AND_ASSIGN(Image<float> gmap,
                       GainMapFromSections(kW, kH, {{Section{0, 8, 0, kH}, 1.5},
                                                    {Section{8, 16, 0, kH}, 2.0}},
                                           1.0));
  m.gain_map = std::make_shared<Image<float>>(std::move(gmap));
  auto bpm = std::make_shared<Image<uint16_t>>(Image<uint16_t>::Filled(kW, kH, 0));
  bpm->at(3, 4) = kDqHot;
  bpm->at(12, 7) = kDqDead;
  m.bad_pixels = bpm;
  m.bad_pixel_bits = 0xFFFF;
  // Dark: 0.8 e⁻/s·t plus 2 e⁻ for frames divided by the EM gain g = 5, variance 0.04 e⁻².
  auto dark_e = MakeMaster(kW, kH, [](int x, int) { return 0.8 * 30 / 5 + 0.01 * x; },
                           [](int, int) { return 0.04; });
  ASSERT_OK_AND_ASSIGN(CalibratedFrame dark_adu,
                       DarkElectronsToAdu(*dark_e, 5, 0, m.gain_map.get()));
  m.dark = std::make_shared<CalibratedFrame>(std::move(dark_adu));
  m.dark_exptime = 30;
  ASSERT_OK(Validate(o, m, kRawW, kH));
  FrameStats stats;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, m, o, nullptr, nullptr, &stats));
  EXPECT_EQ(out.unit, "electron");
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      const double g = gain(x, y);
      const double d0 = raw_value(x, y) - 500;  // after overscan
      const double k_adu = (0.8 * 30 / 5 + 0.01 * x) * 5 / g;
      const double v_adu = (g * d0 + rn(x, y) * rn(x, y)) / (g * g) + 0.04 * (5 / g) * (5 / g);
      EXPECT_NEAR(out.data.at(x, y), (d0 - 100 - k_adu) * g, 2e-4) << x << "," << y;
      EXPECT_NEAR(out.variance.at(x, y), v_adu * g * g, 2e-4 * v_adu * g * g) << x << "," << y;
    }
  }
  EXPECT_EQ(out.dq.at(3, 4), kDqHot | kDqBad);
  EXPECT_EQ(out.dq.at(12, 7), kDqDead | kDqBad);
  EXPECT_EQ(out.dq.at(0, 0), 0);
  EXPECT_EQ(stats.bad, 2);
  EXPECT_NEAR(stats.gain, 1.75, 1e-12);  // the map's mean
  // A plain mask (bad_pixel_bits 0) gives kDqBad only, as before.
  m.bad_pixel_bits = 0;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame plain, Calibrate(raw, m, o));
  EXPECT_EQ(plain.dq.at(3, 4), kDqBad);
}

}  // namespace
}  // namespace calibd::calib
