// Unit tests of calibctl's noise flags → requests (client/requests): build options of the
// noise kinds (each flag in its NoiseBuildOptions field, refused for kinds it does not apply
// to), --stored inputs, synth-dark's SynthesizeDarkRequest, calibrate/select's dark policy and
// noise-product switches, make-samples --noise; malformed values are INVALID_ARGUMENT naming
// the flag.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/requests.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::client {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::vector<FlagSpec> AllFlags() {
  std::vector<FlagSpec> f = {DetectorFlag(), KindFlag(), ConfigFlag(), AttrFlag(), PolicyFlag(),
                             MaxAgeFlag(),   PinFlag()};
  for (const FlagSpec& s : NoiseBuildFlags()) f.push_back(s);
  for (const FlagSpec& s : NoiseRecipeFlags()) f.push_back(s);
  for (const char* v : {"exptime", "em-gain", "temperature", "version", "at", "size", "frames",
                        "seed", "night", "width", "unit", "planes", "flat-norm"}) {
    f.push_back({v, 0, FlagKind::kValue, ""});
  }
  f.push_back({"stored", 0, FlagKind::kRepeated, ""});
  f.push_back({"skip", 0, FlagKind::kRepeated, ""});
  f.push_back({"overwrite", 0, FlagKind::kBool, ""});
  return f;
}

ParsedArgs Parse(const std::vector<std::string>& tokens) {
  absl::StatusOr<ParsedArgs> p = ParseFlags(tokens, AllFlags());
  EXPECT_OK(p.status());
  return p.ok() ? *p : ParsedArgs();
}

TEST(NoiseRequestsTest, BuildFlagsLandInNoiseBuildOptions) {
  ASSERT_OK_AND_ASSIGN(v1::BuildOptions dc,
                       BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "dark_current",
                                                    "--hot-sigma", "4.5", "--hot-min-rate",
                                                    "0.2"})));
  EXPECT_EQ(dc.kind(), "dark_current");
  ASSERT_TRUE(dc.noise().has_hot_sigma());
  EXPECT_EQ(dc.noise().hot_sigma(), 4.5);
  EXPECT_EQ(dc.noise().hot_min_rate(), 0.2);
  EXPECT_FALSE(dc.noise().has_dead_fraction());
  EXPECT_FALSE(dc.noise().has_min_frames());

  ASSERT_OK_AND_ASSIGN(
      v1::BuildOptions gain,
      BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "gain", "--amp-section", "[1:32,1:48]",
                                   "--amp-section", "[33:64,1:48]", "--level-sizes", "2,2,4",
                                   "--saturation-fraction", "0.8", "--max-saturated-fraction",
                                   "0.01", "--nonlinearity-sigma", "6"})));
  EXPECT_THAT(gain.noise().sections(), ElementsAre("[1:32,1:48]", "[33:64,1:48]"));
  EXPECT_THAT(gain.noise().level_sizes(), ElementsAre(2, 2, 4));
  EXPECT_EQ(gain.noise().saturation_fraction(), 0.8);
  EXPECT_EQ(gain.noise().max_saturated_fraction(), 0.01);
  EXPECT_EQ(gain.noise().nonlinearity_sigma(), 6);

  ASSERT_OK_AND_ASSIGN(v1::BuildOptions bp,
                       BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "bad_pixels",
                                                    "--dead-fraction", "0.3", "--box", "9",
                                                    "--noisy-sigma", "7"})));
  EXPECT_EQ(bp.noise().dead_fraction(), 0.3);
  EXPECT_EQ(bp.noise().box(), 9);
  EXPECT_EQ(bp.noise().noisy_sigma(), 7);

  ASSERT_OK_AND_ASSIGN(v1::BuildOptions nm,
                       BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "noise_model",
                                                    "--prescan-section", "[1:8,1:48]",
                                                    "--unweighted"})));
  EXPECT_EQ(nm.noise().prescan_section(), "[1:8,1:48]");
  EXPECT_TRUE(nm.noise().unweighted());

  ASSERT_OK_AND_ASSIGN(v1::BuildOptions rn, BuildOptionsFromFlags(Parse(
                                                {"-d", "x/y", "-k", "read_noise", "--min-frames",
                                                 "3"})));
  EXPECT_EQ(rn.noise().min_frames(), 3);

  ASSERT_OK_AND_ASSIGN(
      v1::BuildOptions gn,
      BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "gain_normalisation", "--setting-key",
                                   "ISO", "--norm-section", "[10:20,10:20]", "--reference",
                                   "100"})));
  EXPECT_EQ(gn.noise().setting_key(), "ISO");
  EXPECT_EQ(gn.noise().section(), "[10:20,10:20]");
  EXPECT_EQ(gn.noise().reference(), "100");

  // A plain master: nothing set.
  ASSERT_OK_AND_ASSIGN(v1::BuildOptions bias,
                       BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "bias"})));
  EXPECT_EQ(bias.noise().ByteSizeLong(), 0u);
}

TEST(NoiseRequestsTest, BuildFlagsRefusedForOtherKindsAndBadValues) {
  EXPECT_THAT(BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "bias", "--hot-sigma", "3"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--hot-sigma applies to --kind dark_current only")));
  EXPECT_THAT(BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "gain", "--box", "9"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad_pixels only")));
  EXPECT_THAT(BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "bad_pixels", "--box", "8"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--box must be odd")));
  EXPECT_THAT(
      BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "bad_pixels", "--dead-fraction", "1.5"})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--dead-fraction must be in (0, 1]")));
  EXPECT_THAT(
      BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "dark_current", "--hot-sigma", "-1"})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--hot-sigma must be > 0")));
  EXPECT_THAT(BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "gain", "--level-sizes", "2,1"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2 or more flats")));
  EXPECT_THAT(BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "read_noise", "--min-frames", "1"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--min-frames")));
}

TEST(NoiseRequestsTest, StoredInputs) {
  ASSERT_OK_AND_ASSIGN(std::vector<v1::StoredFrameRef> refs,
                       StoredInputsFromFlags(Parse({"-d", "x/y", "--stored", "dark_current=2",
                                                    "--stored", "read_noise=1"})));
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].detector(), "x/y");
  EXPECT_EQ(refs[0].kind(), "dark_current");
  EXPECT_EQ(refs[0].version(), 2);
  EXPECT_EQ(refs[1].kind(), "read_noise");
  EXPECT_THAT(StoredInputsFromFlags(Parse({"-d", "x/y", "--stored", "flat=latest"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("KIND=VERSION")));
  EXPECT_THAT(StoredInputsFromFlags(Parse({"-d", "x/y", "--stored", "flat=0"})),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(NoiseRequestsTest, SynthDarkRequest) {
  ASSERT_OK_AND_ASSIGN(v1::SynthesizeDarkRequest r,
                       SynthesizeDarkRequestFromFlags(Parse(
                           {"-d", "roman/excam", "--exptime", "45", "--em-gain", "300",
                            "--temperature", "-80.5", "--version", "3", "--config", "mode=em"})));
  EXPECT_EQ(r.detector(), "roman/excam");
  EXPECT_EQ(r.exptime(), 45);
  EXPECT_EQ(r.em_gain(), 300);
  ASSERT_TRUE(r.has_temperature());
  EXPECT_EQ(r.temperature(), -80.5);
  EXPECT_EQ(r.version_choice_case(), v1::SynthesizeDarkRequest::kVersion);
  EXPECT_EQ(r.version(), 3);
  EXPECT_THAT(r.configuration(), UnorderedElementsAre(Pair("mode", "em")));

  ASSERT_OK_AND_ASSIGN(v1::SynthesizeDarkRequest d, SynthesizeDarkRequestFromFlags(Parse(
                                                        {"-d", "a/b", "--exptime", "10"})));
  EXPECT_EQ(d.em_gain(), 0);  // unset: the server's 1
  EXPECT_FALSE(d.has_temperature());
  EXPECT_EQ(d.version_choice_case(), v1::SynthesizeDarkRequest::VERSION_CHOICE_NOT_SET);

  ASSERT_OK_AND_ASSIGN(v1::SynthesizeDarkRequest at,
                       SynthesizeDarkRequestFromFlags(Parse(
                           {"-d", "a/b", "--exptime", "10", "--at", "2026-03-01T00:00:01Z"})));
  ASSERT_EQ(at.version_choice_case(), v1::SynthesizeDarkRequest::kAt);
  EXPECT_EQ(at.at().seconds(),
            absl::ToUnixSeconds(absl::FromCivil(absl::CivilSecond(2026, 3, 1, 0, 0, 1),
                                                absl::UTCTimeZone())));

  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"-d", "a/b"},
        std::vector<std::string>{"-d", "a/b", "--exptime", "0"},
        std::vector<std::string>{"-d", "a/b", "--exptime", "-3"},
        std::vector<std::string>{"-d", "a/b", "--exptime", "x"},
        std::vector<std::string>{"-d", "a/b", "--exptime", "1", "--em-gain", "0"},
        std::vector<std::string>{"-d", "a/b", "--exptime", "1", "--version", "1", "--at", "now"},
        std::vector<std::string>{"--exptime", "1"}}) {
    EXPECT_THAT(SynthesizeDarkRequestFromFlags(Parse(bad)),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(NoiseRequestsTest, CalibrateDarkPolicyAndNoiseSwitches) {
  ASSERT_OK_AND_ASSIGN(CalibrateOptions none, CalibrateOptionsFromFlags(Parse({"-d", "a/b"})));
  EXPECT_EQ(none.recipe.dark_policy(), v1::DARK_POLICY_UNSPECIFIED);
  EXPECT_FALSE(none.recipe.has_read_noise_map());
  EXPECT_FALSE(none.recipe.has_gain_product());
  EXPECT_FALSE(none.recipe.has_bad_pixels());

  const std::pair<const char*, v1::DarkPolicy> policies[] = {
      {"measured", v1::DARK_POLICY_MEASURED},
      {"synthesized", v1::DARK_POLICY_SYNTHESIZED},
      {"measured_else_synthesized", v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED}};
  for (const auto& [text, policy] : policies) {
    ASSERT_OK_AND_ASSIGN(CalibrateOptions o,
                         CalibrateOptionsFromFlags(Parse({"-d", "a/b", "--dark-policy", text})));
    EXPECT_EQ(o.recipe.dark_policy(), policy) << text;
  }

  ASSERT_OK_AND_ASSIGN(CalibrateOptions on,
                       CalibrateOptionsFromFlags(Parse(
                           {"-d", "a/b", "--read-noise-map", "--gain-product", "--bad-pixels"})));
  ASSERT_TRUE(on.recipe.has_read_noise_map() && on.recipe.has_gain_product() &&
              on.recipe.has_bad_pixels());
  EXPECT_TRUE(on.recipe.read_noise_map() && on.recipe.gain_product() && on.recipe.bad_pixels());
  ASSERT_OK_AND_ASSIGN(
      CalibrateOptions off,
      CalibrateOptionsFromFlags(Parse(
          {"-d", "a/b", "--no-read-noise-map", "--no-gain-product", "--no-bad-pixels"})));
  ASSERT_TRUE(off.recipe.has_read_noise_map() && off.recipe.has_gain_product() &&
              off.recipe.has_bad_pixels());
  EXPECT_FALSE(off.recipe.read_noise_map() || off.recipe.gain_product() ||
               off.recipe.bad_pixels());

  EXPECT_THAT(CalibrateOptionsFromFlags(Parse({"-d", "a/b", "--dark-policy", "fake"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dark-policy")));
  EXPECT_THAT(
      CalibrateOptionsFromFlags(Parse({"-d", "a/b", "--bad-pixels", "--no-bad-pixels"})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not both")));

  v1::RecipeOverrides select;
  ASSERT_OK(NoiseRecipeFromFlags(Parse({"--dark-policy", "synthesized"}), &select));
  EXPECT_EQ(select.dark_policy(), v1::DARK_POLICY_SYNTHESIZED);
}

TEST(NoiseRequestsTest, NoiseSampleOptions) {
  ASSERT_OK_AND_ASSIGN(NoiseSampleOptions d, NoiseSampleOptionsFromFlags(Parse({})));
  EXPECT_EQ(d.data_width, 64);
  EXPECT_EQ(d.height, 48);
  EXPECT_EQ(d.frames_per_setting, 4);
  EXPECT_GE(d.ptc_levels.size(), 3u);
  EXPECT_GE(d.dark_exptimes.size(), 3u);
  EXPECT_GE(d.em_settings.size(), 4u);
  ASSERT_OK_AND_ASSIGN(NoiseSampleOptions o,
                       NoiseSampleOptionsFromFlags(Parse({"--size", "256", "--frames", "6",
                                                          "--seed", "7", "-d", "lab/cam",
                                                          "--overwrite"})));
  EXPECT_EQ(o.data_width, 256);
  EXPECT_EQ(o.height, 256);
  EXPECT_EQ(o.overscan_width, 32);
  EXPECT_EQ(o.frames_per_setting, 6);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.detector, "lab/cam");
  EXPECT_TRUE(o.overwrite);
  EXPECT_THAT(NoiseSampleOptionsFromFlags(Parse({"--size", "8"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--size")));
  EXPECT_THAT(NoiseSampleOptionsFromFlags(Parse({"--frames", "1"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--frames")));
  EXPECT_THAT(NoiseSampleOptionsFromFlags(Parse({"--width", "100"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--size")));
}

}  // namespace
}  // namespace calibd::client
