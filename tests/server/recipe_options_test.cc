// server/recipe_options: frame types, the kinds a frame needs, and RecipeOptions from a
// detector spec + request (defaults, overrides, refused overrides with exact codes).
#include "server/recipe_options.h"

#include <cmath>

#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::server {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

store::DetectorSpec Spec() {
  store::DetectorSpec s;
  s.name = "lfc/chip0";
  s.width = 110;
  s.height = 50;
  s.overscan_section = "[101:110,1:50]";
  s.trim_section = "[1:100,1:50]";
  s.gain = 2.0;
  s.read_noise = 5.0;
  s.saturation = 65000;
  return s;
}

FrameRequest Request(const std::string& imagetyp) {
  FrameRequest r;
  r.frame_id = "f";
  r.detector = "lfc/chip0";
  r.width = 110;
  r.height = 50;
  if (!imagetyp.empty()) r.header.Set("IMAGETYP", imagetyp);
  r.header.Set("EXPTIME", 30.0);
  return r;
}

TEST(RecipeOptionsTest, FrameTypeFromImagetypOrHint) {
  EXPECT_EQ(FrameType(Request("Bias").header, ""), "bias");
  EXPECT_EQ(FrameType(Request("zero").header, ""), "bias");
  EXPECT_EQ(FrameType(Request("DARK").header, ""), "dark");
  EXPECT_EQ(FrameType(Request("dome flat").header, ""), "flat");
  EXPECT_EQ(FrameType(Request("object").header, ""), "light");
  EXPECT_EQ(FrameType(Request("").header, ""), "light");
  EXPECT_EQ(FrameType(Request("object").header, "dark"), "dark");  // the hint wins
}

TEST(RecipeOptionsTest, NeededKindsByTypeAndOverrides) {
  RecipeOverrides none;
  EXPECT_THAT(NeededKinds(Request("bias").header, none, ""), IsEmpty());
  EXPECT_THAT(NeededKinds(Request("dark").header, none, ""), ElementsAre("bias"));
  EXPECT_THAT(NeededKinds(Request("flat").header, none, ""), ElementsAre("bias", "dark"));
  EXPECT_THAT(NeededKinds(Request("light").header, none, ""),
              ElementsAre("bias", "dark", "flat"));
  RecipeOverrides o;
  o.dark = false;
  o.flat = false;
  EXPECT_THAT(NeededKinds(Request("light").header, o, ""), ElementsAre("bias"));
  RecipeOverrides b;
  b.bias = true;
  EXPECT_THAT(NeededKinds(Request("bias").header, b, ""), ElementsAre("bias"));
}

TEST(RecipeOptionsTest, DefaultsFromTheSpec) {
  ASSERT_OK_AND_ASSIGN(calib::RecipeOptions o,
                       BuildRecipeOptions(Spec(), Request("light"), /*dark_applied=*/true));
  EXPECT_EQ(o.overscan.statistic, calib::OverscanOptions::Statistic::kMedian);
  EXPECT_EQ(o.overscan.region.x0, 100);
  EXPECT_EQ(o.overscan.region.x1, 110);
  ASSERT_TRUE(o.trim.has_value());
  EXPECT_EQ(o.trim->width(), 100);
  EXPECT_EQ(o.gain, 2.0);
  EXPECT_EQ(o.read_noise, 5.0);
  EXPECT_EQ(o.exptime, 30.0);
  EXPECT_TRUE(o.scale_dark);
  EXPECT_EQ(o.flat.norm, calib::FlatOptions::Norm::kMean);
  ASSERT_OK_AND_ASSIGN(auto shape, TrimmedShape(Spec()));
  EXPECT_EQ(shape, std::make_pair(100, 50));
}

TEST(RecipeOptionsTest, OverridesApplyAndBadOnesAreInvalidArgument) {
  FrameRequest r = Request("light");
  r.recipe.overscan_statistic = "mean";
  r.recipe.gain = 1.25;
  r.recipe.flat_value = 1000;
  r.recipe.trim = false;
  r.recipe.saturation = 0;
  ASSERT_OK_AND_ASSIGN(calib::RecipeOptions o, BuildRecipeOptions(Spec(), r, true));
  EXPECT_EQ(o.overscan.statistic, calib::OverscanOptions::Statistic::kMean);
  EXPECT_EQ(o.gain, 1.25);
  EXPECT_FALSE(o.trim.has_value());
  EXPECT_EQ(o.flat.norm, calib::FlatOptions::Norm::kValue);
  EXPECT_TRUE(std::isinf(o.saturation));  // 0 = no saturation limit

  auto bad = [](auto mutate) {
    FrameRequest q = Request("light");
    mutate(q);
    return BuildRecipeOptions(Spec(), q, true).status();
  };
  EXPECT_THAT(bad([](FrameRequest& q) { q.recipe.overscan_statistic = "mode"; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overscan_statistic")));
  EXPECT_THAT(bad([](FrameRequest& q) { q.recipe.overscan_fit = "spline"; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(bad([](FrameRequest& q) { q.recipe.gain = -1; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gain")));
  EXPECT_THAT(bad([](FrameRequest& q) { q.recipe.read_noise = NAN; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(bad([](FrameRequest& q) { q.recipe.trim_section = "[0:5]"; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trim section")));
  EXPECT_THAT(bad([](FrameRequest& q) { q.recipe.flat_norm = "median"; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("flat_norm")));
}

TEST(RecipeOptionsTest, ScaledDarkNeedsAnExposure) {
  FrameRequest r = Request("light");
  r.header = Header();
  r.header.Set("IMAGETYP", "light");
  EXPECT_THAT(BuildRecipeOptions(Spec(), r, /*dark_applied=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scaled dark")));
  EXPECT_OK(BuildRecipeOptions(Spec(), r, /*dark_applied=*/false));
  r.recipe.exptime = 12;
  ASSERT_OK_AND_ASSIGN(calib::RecipeOptions o, BuildRecipeOptions(Spec(), r, true));
  EXPECT_EQ(o.exptime, 12);
  EXPECT_THAT(HeaderExposure(Spec(), Header()), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace calibd::server
