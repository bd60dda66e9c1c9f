// The single steps (SubtractOverscan, Trim, ComputeVariance, SubtractBias, SubtractDark,
// DivideFlat, ApplyGain) chained by hand give what the fused Calibrate gives; plus the small
// statistics helpers against closed forms.
#include <cmath>
#include <vector>

#include "core/calib/recipe.h"
#include "core/calib/statistics.h"
#include "core/image/dq.h"
#include "core/status/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/calib/calib_testing.h"
#include "tests/testing/synthetic.h"

namespace calibd::calib {
namespace {

using ::calibd::testing::CcdModel;
using ::calibd::testing::FrameKind;
using ::calibd::testing::MakeMaster;
using ::calibd::testing::SimulateFrame;
using ::calibd::testing::StatusIs;

TEST(StatisticsTest, MedianMatchesNumpyConvention) {
  std::vector<double> odd = {5, 1, 3};
  EXPECT_EQ(Median(absl::MakeSpan(odd)), 3);
  std::vector<double> even = {4, 1, 3, 2};
  EXPECT_EQ(Median(absl::MakeSpan(even)), 2.5);
  std::vector<double> none;
  EXPECT_TRUE(std::isnan(Median(absl::MakeSpan(none))));
}

TEST(StatisticsTest, ClippedMeanDropsOutliers) {
  std::vector<double> v(100, 10.0);
  for (int i = 0; i < 100; ++i) v[i] += (i % 2 ? 1 : -1);
  v[7] = 1000;
  // Kept: 50 values of 9 and 49 of 11 (index 7, an 11, became the outlier).
  EXPECT_NEAR(ClippedMean(absl::MakeSpan(v), 3, 5), 10.0 - 1.0 / 99, 1e-12);
}

TEST(StatisticsTest, PolynomialFitRecoversCubic) {
  std::vector<double> t, y;
  for (int i = 0; i < 50; ++i) {
    const double ti = -1 + 2.0 * i / 49;
    t.push_back(ti);
    y.push_back(3 - 2 * ti + 0.5 * ti * ti + 4 * ti * ti * ti);
  }
  std::vector<double> c = FitPolynomial(t, y, 3);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_NEAR(c[0], 3, 1e-12);
  EXPECT_NEAR(c[1], -2, 1e-12);
  EXPECT_NEAR(c[2], 0.5, 1e-12);
  EXPECT_NEAR(c[3], 4, 1e-12);
  EXPECT_NEAR(EvaluatePolynomial(c, 0.5), 3 - 1 + 0.125 + 0.5, 1e-12);
}

TEST(StepsTest, ChainedStepsEqualCalibrate) {
  CcdModel ccd;
  RawFrame light = SimulateFrame(ccd, FrameKind::kLight, 21);
  const Section trim{1, ccd.data_width - 1, 2, ccd.height};
  const int w = trim.width(), h = trim.height();
  Masters m;
  m.bias = MakeMaster(
      w, h, [](int x, int) { return 1.0 + 0.1 * x; }, [](int, int) { return 0.3; },
      [](int x, int y) -> uint16_t { return x == y ? kDqBad : 0; });
  m.dark = MakeMaster(
      w, h, [](int, int y) { return 2.0 + 0.05 * y; }, [](int, int) { return 0.2; });
  m.dark_exptime = 40;
  m.flat = MakeMaster(
      w, h, [&](int x, int y) { return 9e3 * testing::FlatResponse(ccd, x, y); },
      [](int, int) { return 90.0; });
  RecipeOptions o;
  o.overscan.statistic = OverscanOptions::Statistic::kMedian;
  o.overscan.region = Section{ccd.data_width, ccd.width(), 0, ccd.height};
  o.trim = trim;
  o.gain = ccd.gain;
  o.read_noise = ccd.read_noise;
  o.exptime = ccd.exptime;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame fused, Calibrate(light.pixels, m, o));

  ASSERT_OK_AND_ASSIGN(Image<float> oscan, SubtractOverscan(light.pixels, o.overscan));
  CalibratedFrame f;
  ASSERT_OK_AND_ASSIGN(f.data, Trim(oscan, trim));
  ASSERT_OK_AND_ASSIGN(f.variance, ComputeVariance(f.data, o.gain, o.read_noise));
  ASSERT_OK(SubtractBias(f, *m.bias));
  ASSERT_OK(SubtractDark(f, *m.dark, o.exptime / m.dark_exptime));
  ASSERT_OK_AND_ASSIGN(PreparedFlat flat, NormalizeFlat(*m.flat, o.flat));
  ASSERT_OK(DivideFlat(f, flat));
  ASSERT_OK(ApplyGain(f, o.gain));
  EXPECT_EQ(f.unit, "electron");
  EXPECT_THAT(ApplyGain(f, o.gain), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_EQ(f.width(), fused.width());
  ASSERT_EQ(f.height(), fused.height());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      EXPECT_NEAR(f.data.at(x, y), fused.data.at(x, y),
                  1e-5 * std::fabs(fused.data.at(x, y)) + 1e-4);
      EXPECT_NEAR(f.variance.at(x, y), fused.variance.at(x, y), 1e-5 * fused.variance.at(x, y));
      EXPECT_EQ(f.dq.at(x, y), fused.dq.at(x, y));
    }
  }
}

TEST(StepsTest, StepsRejectMismatchedShapes) {
  CalibratedFrame f;
  f.data = testing::MakeImage(4, 4, [](int, int) { return 1.0; });
  auto other = MakeMaster(5, 4, [](int, int) { return 1.0; });
  EXPECT_THAT(SubtractBias(f, *other), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SubtractDark(f, *other, 2.0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Trim(f.data, Section{0, 5, 0, 4}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ComputeVariance(f.data, 0.0, 1.0), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FlatTest, NormalizationModes) {
  // 10×10 flat: 2 everywhere except a 1000 in one corner and a 0 (low) pixel.
  auto flat = MakeMaster(10, 10, [](int x, int y) {
    if (x == 0 && y == 0) return 1000.0;
    if (x == 9 && y == 9) return 0.0;
    return 2.0;
  });
  FlatOptions o;
  ASSERT_OK_AND_ASSIGN(double mean, FlatNormalization(*flat, o));
  EXPECT_DOUBLE_EQ(mean, (98 * 2.0 + 1000) / 100);
  o.norm = FlatOptions::Norm::kClippedMean;  // drops the 1000 (clipped) and the 0 (≤ floor)
  ASSERT_OK_AND_ASSIGN(double clipped, FlatNormalization(*flat, o));
  EXPECT_DOUBLE_EQ(clipped, 2.0);
  o.norm = FlatOptions::Norm::kMean;
  o.stats_region = Section{2, 8, 2, 8};
  ASSERT_OK_AND_ASSIGN(double section, FlatNormalization(*flat, o));
  EXPECT_DOUBLE_EQ(section, 2.0);
  o.norm = FlatOptions::Norm::kValue;
  o.value = 4;
  ASSERT_OK_AND_ASSIGN(PreparedFlat p, NormalizeFlat(*flat, o));
  EXPECT_EQ(p.norm, 4);
  EXPECT_FLOAT_EQ(p.inverse.at(3, 3), 2.0f);
  EXPECT_FLOAT_EQ(p.inverse.at(9, 9), 1.0f);
  EXPECT_EQ(p.dq.at(9, 9), kDqLowFlat);
  EXPECT_EQ(p.low_pixels, 1);
  EXPECT_TRUE(p.norm_variance.empty());
}

}  // namespace
}  // namespace calibd::calib
