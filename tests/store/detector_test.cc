// DetectorSpec validation, JSON codec, configuration extraction and matching rules.
#include "core/status/status_matchers.h"
#include "core/store/detector.h"
#include "core/store/selection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"

namespace calibd::store {
namespace {

int64_t ValueOr(const absl::StatusOr<int64_t>& v) {
  return v.ok() ? *v : std::numeric_limits<int64_t>::min();
}

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;

DetectorSpec FullSpec() {
  DetectorSpec spec = testing::TestSpec();
  spec.data_section = "[1:32,1:24]";
  spec.statistics_section = "[5:28,5:20]";
  spec.keys.temperature = "DET-TEMP";
  spec.configuration_keys = {{"default", {"readout_mode", "binning"}},
                             {"dark", {"readout_mode", "exposure", "temperature", "AMPNAME"}}};
  spec.dq_bits = {{512, "bleed", "charge bleed trail"}};
  spec.description = "test chip";
  spec.keys.em_gain = "CMDGAIN";
  spec.dark_temperature_coefficient = 0.08;
  spec.dark_policy = DarkPolicy::kMeasuredElseSynthesized;
  return spec;
}

TEST(DetectorSpecTest, JsonRoundTrip) {
  const DetectorSpec spec = FullSpec();
  ASSERT_OK(ValidateDetectorSpec(spec));
  ASSERT_OK_AND_ASSIGN(DetectorSpec back, DetectorSpecFromJson(DetectorSpecToJson(spec)));
  EXPECT_EQ(back, spec);
}

TEST(DetectorSpecTest, JsonDefaultsAndErrors) {
  ASSERT_OK_AND_ASSIGN(DetectorSpec s,
                       DetectorSpecFromJson(R"({"name": "a/b", "width": 10, "height": 5})"));
  EXPECT_EQ(s.keys.exposure, "EXPTIME");
  EXPECT_EQ(s.gain, 1.0);
  EXPECT_EQ(ConfigurationKeysFor(s, "flat"),
            (std::vector<std::string>{"readout_mode", "binning", "gain_setting", "filter"}));
  EXPECT_EQ(TolerancesOf(s).at("temperature"), 0.5);
  EXPECT_THAT(DetectorSpecFromJson(R"({"name": "a/b", "width": 10, "height": 5, "gian": 2})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gian")));
  EXPECT_THAT(DetectorSpecFromJson(R"({"name": "a/b", "width": "ten", "height": 5})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("width")));
  EXPECT_THAT(DetectorSpecFromJson("{not json"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DetectorSpecFromJson(R"({"name": "a/b", "width": 10, "height": 5,
                                       "keys": {"exposure": "EXPOSURE", "colour": "X"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("colour")));
}

TEST(DetectorSpecTest, NoiseFieldsDefaultsJsonAndErrors) {
  ASSERT_OK_AND_ASSIGN(DetectorSpec s,
                       DetectorSpecFromJson(R"({"name": "a/b", "width": 10, "height": 5})"));
  EXPECT_EQ(s.keys.em_gain, "EMGAIN");
  EXPECT_EQ(s.keys.KeywordFor(kKeyEmGain), "EMGAIN");
  EXPECT_FALSE(s.dark_temperature_coefficient.has_value());
  EXPECT_EQ(s.dark_policy, DarkPolicy::kMeasured);
  // A spec without the new fields serialises without them (stored specs keep their text).
  EXPECT_THAT(DetectorSpecToJson(s), ::testing::Not(HasSubstr("dark_policy")));
  EXPECT_THAT(DetectorSpecToJson(s), ::testing::Not(HasSubstr("dark_temperature_coefficient")));
  ASSERT_OK_AND_ASSIGN(s, DetectorSpecFromJson(R"({"name": "a/b", "width": 10, "height": 5,
      "keys": {"em_gain": "CMDGAIN"}, "dark_temperature_coefficient": -0.05,
      "dark_policy": "synthesized"})"));
  EXPECT_EQ(s.keys.em_gain, "CMDGAIN");
  EXPECT_EQ(s.dark_temperature_coefficient, -0.05);
  EXPECT_EQ(s.dark_policy, DarkPolicy::kSynthesized);
  EXPECT_THAT(DetectorSpecFromJson(R"({"name": "a/b", "width": 10, "height": 5,
                                       "dark_policy": "guess"})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("measured|synthesized|measured_else_synthesized")));
  for (DarkPolicy p : {DarkPolicy::kMeasured, DarkPolicy::kSynthesized,
                       DarkPolicy::kMeasuredElseSynthesized}) {
    ASSERT_OK_AND_ASSIGN(DarkPolicy back, ParseDarkPolicy(DarkPolicyName(p)));
    EXPECT_EQ(back, p);
  }
  DetectorSpec bad = testing::TestSpec();
  bad.dark_temperature_coefficient = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateDetectorSpec(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                  HasSubstr("dark_temperature_coefficient")));
}

TEST(DetectorSpecTest, ValidationNamesTheField) {
  struct Case {
    void (*mutate)(DetectorSpec*);
    const char* field;
  };
  const Case cases[] = {
      {[](DetectorSpec* s) { s->name = "noslash"; }, "name"},
      {[](DetectorSpec* s) { s->name = "a/b/c"; }, "name"},
      {[](DetectorSpec* s) { s->width = 0; }, "shape"},
      {[](DetectorSpec* s) { s->trim_section = "[1:99,*]"; }, "trim_section"},
      {[](DetectorSpec* s) { s->overscan_section = "junk"; }, "overscan_section"},
      {[](DetectorSpec* s) { s->gain = -1; }, "gain"},
      {[](DetectorSpec* s) { s->read_noise = -1; }, "read_noise"},
      {[](DetectorSpec* s) { s->dq_bits = {{3, "two bits", ""}}; }, "dq bit"},
      {[](DetectorSpec* s) { s->dq_bits = {{8, "core", ""}}; }, "dq bit"},
      {[](DetectorSpec* s) { s->tolerances = {{"exposure", -1}}; }, "tolerance"},
  };
  for (const Case& c : cases) {
    DetectorSpec spec = FullSpec();
    c.mutate(&spec);
    EXPECT_THAT(ValidateDetectorSpec(spec),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.field;
  }
}

TEST(DetectorSpecTest, ExtractConfigurationAndTime) {
  const DetectorSpec spec = FullSpec();
  Header h = testing::FrameHeader("2026-03-01T02:03:04");
  h.Set("DET-TEMP", -10.25);
  h.Set("EXPTIME", 30.0);
  EXPECT_THAT(ExtractConfiguration(spec, "dark", h),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AMPNAME")));
  h.Set("AMPNAME", " A ");
  ASSERT_OK_AND_ASSIGN(Configuration dark, ExtractConfiguration(spec, "dark", h));
  EXPECT_EQ(dark, (Configuration{{"readout_mode", "fast"},
                                 {"exposure", "30"},
                                 {"temperature", "-10.25"},
                                 {"AMPNAME", "A"}}));
  ASSERT_OK_AND_ASSIGN(Configuration bias, ExtractConfiguration(spec, "bias", h));
  EXPECT_EQ(bias, (Configuration{{"readout_mode", "fast"}, {"binning", "1x1"}}));
  // An integer card gives the same text as the equal double.
  h.Set("EXPTIME", int64_t{30});
  ASSERT_OK_AND_ASSIGN(Configuration dark_int, ExtractConfiguration(spec, "dark", h));
  EXPECT_EQ(dark_int, dark);

  ASSERT_OK_AND_ASSIGN(TimeMicros t, ExtractTime(spec, h));
  EXPECT_EQ(t, *ParseTime("2026-03-01T02:03:04"));
  Header mjd;
  mjd.Set("MJD-OBS", 40588.5);  // 1970-01-02T12:00:00
  EXPECT_EQ(ValueOr(ExtractTime(spec, mjd)), (int64_t{36} * 3600 * kMicrosPerSecond));
  EXPECT_THAT(ExtractTime(spec, Header()), StatusIs(absl::StatusCode::kNotFound));
  Header bad;
  bad.Set("DATE-OBS", "last tuesday");
  EXPECT_THAT(ExtractTime(spec, bad), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SelectionRulesTest, ConfigurationMatching) {
  const DetectorSpec spec = testing::TestSpec();  // exposure ±1, temperature ±0.5
  const Configuration series = {{"exposure", "30"}, {"temperature", "-10"}, {"readout_mode", "fast"}};
  std::string why;
  double distance = -1;
  EXPECT_TRUE(ConfigurationMatches(spec, "dark", series,
                                   {{"exposure", "30.5"}, {"temperature", "-10.25"},
                                    {"readout_mode", "fast"}, {"filter", "r"}},
                                   &why, &distance));
  EXPECT_DOUBLE_EQ(distance, 0.5 / 1.0 + 0.25 / 0.5);
  EXPECT_FALSE(ConfigurationMatches(spec, "dark", series,
                                    {{"exposure", "30"}, {"temperature", "-10"},
                                     {"readout_mode", "slow"}},
                                    &why, &distance));
  EXPECT_THAT(why, HasSubstr("readout_mode"));
  EXPECT_FALSE(ConfigurationMatches(spec, "dark", series,
                                    {{"exposure", "30"}, {"readout_mode", "fast"}}, &why,
                                    &distance));
  EXPECT_THAT(why, HasSubstr("frame has no temperature"));
  // Numbers without a tolerance compare numerically, exactly.
  EXPECT_TRUE(ConfigurationMatches(spec, "bias", {{"binning", "2"}}, {{"binning", "2.0"}}, &why,
                                   &distance));
  EXPECT_FALSE(ConfigurationMatches(spec, "bias", {{"binning", "2"}}, {{"binning", "2.5"}}, &why,
                                    &distance));
}

}  // namespace
}  // namespace calibd::store
