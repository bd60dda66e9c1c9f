// The statistics helpers of core/calib (median, clipped mean, polynomial fit) against closed
// forms.
#include "core/calib/statistics.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace calibd::calib {
namespace {

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

}  // namespace
}  // namespace calibd::calib
