// Flat normalisation (FlatNormalization, NormalizeFlat) against closed forms.
#include <cmath>

#include "core/calib/recipe.h"
#include "core/image/dq.h"
#include "core/status/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/calib/calib_testing.h"

namespace calibd::calib {
namespace {

using ::calibd::testing::MakeMaster;

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
