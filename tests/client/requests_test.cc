// Unit tests of calibctl's flag → request mapping (client/requests): each flag lands in its
// proto field, defaults leave fields unset, times follow proto/api_convert (floor, epoch is a
// time), and every malformed value is INVALID_ARGUMENT naming the flag.
#include "client/requests.h"

#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
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

// Every flag the mapping reads, with its kind.
std::vector<FlagSpec> AllFlags() {
  std::vector<FlagSpec> f = {DetectorFlag(), KindFlag(),   ConfigFlag(), AttrFlag(),
                             PolicyFlag(),   MaxAgeFlag(), PinFlag()};
  for (const FlagSpec& p : PageFlags()) f.push_back(p);
  for (const char* v :
       {"version",    "at",       "begin",        "end",           "reason",       "method",
        "sigma-clip", "maxiters", "clip-center",  "clip-spread",   "clip-extrema", "min-value",
        "max-value",  "scale",    "certify-from", "certify-until", "unit",         "planes",
        "flat-norm",  "width",    "height",       "overscan",      "frames",       "lights",
        "seed",       "night",    "compress",     "output"}) {
    f.push_back({v, 0, FlagKind::kValue, ""});
  }
  f.push_back({"skip", 0, FlagKind::kRepeated, ""});
  for (const char* b : {"replace", "no-clip", "small", "overwrite"}) {
    f.push_back({b, 0, FlagKind::kBool, ""});
  }
  return f;
}

ParsedArgs Parse(const std::vector<std::string>& tokens) {
  absl::StatusOr<ParsedArgs> p = ParseFlags(tokens, AllFlags());
  EXPECT_OK(p.status());
  return p.ok() ? *p : ParsedArgs();
}

int64_t UnixSeconds(absl::CivilSecond c) {
  return absl::ToUnixSeconds(absl::FromCivil(c, absl::UTCTimeZone()));
}

TEST(RequestsTest, CertifyMapsEveryFlag) {
  ASSERT_OK_AND_ASSIGN(
      v1::CertifyRequest r,
      CertifyRequestFromFlags(
          Parse({"-d", "lfc/ccd0", "-k", "bias", "--version", "3", "--begin",
                 "2026-03-01T00:00:00.25Z", "--end", "2026-03-02", "--config", "readout=fast",
                 "--config", "bin=2", "--replace", "--reason", "new chip"})));
  EXPECT_EQ(r.detector(), "lfc/ccd0");
  EXPECT_EQ(r.kind(), "bias");
  EXPECT_EQ(r.version(), 3);
  EXPECT_EQ(r.begin().seconds(), UnixSeconds(absl::CivilSecond(2026, 3, 1)));
  EXPECT_EQ(r.begin().nanos(), 250'000'000);
  ASSERT_TRUE(r.has_end());
  EXPECT_EQ(r.end().seconds(), UnixSeconds(absl::CivilSecond(2026, 3, 2)));
  EXPECT_THAT(r.configuration(), UnorderedElementsAre(Pair("readout", "fast"), Pair("bin", "2")));
  EXPECT_TRUE(r.replace());
  EXPECT_EQ(r.reason(), "new chip");
}

TEST(RequestsTest, CertifyWithoutEndIsOpenAndTheEpochIsATime) {
  ASSERT_OK_AND_ASSIGN(v1::CertifyRequest r,
                       CertifyRequestFromFlags(Parse({"-d", "x/y", "-k", "dark", "--version", "1",
                                                      "--begin", "1970-01-01T00:00:00Z"})));
  ASSERT_TRUE(r.has_begin());  // the epoch is set, not "unset"
  EXPECT_EQ(r.begin().seconds(), 0);
  EXPECT_FALSE(r.has_end());
  // Before the epoch: floor division, never negative nanos.
  ASSERT_OK_AND_ASSIGN(
      r, CertifyRequestFromFlags(Parse(
             {"-d", "x/y", "-k", "dark", "--version", "1", "--begin", "1969-12-31T23:59:59.5Z"})));
  EXPECT_EQ(r.begin().seconds(), -1);
  EXPECT_EQ(r.begin().nanos(), 500'000'000);
}

TEST(RequestsTest, CertifyRefusals) {
  EXPECT_THAT(CertifyRequestFromFlags(Parse({"-d", "x/y", "-k", "bias", "--version", "1"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--begin is required")));
  EXPECT_THAT(CertifyRequestFromFlags(Parse({"-k", "bias", "--version", "1", "--begin", "now"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--detector is required")));
  EXPECT_THAT(CertifyRequestFromFlags(
                  Parse({"-d", "x/y", "-k", "bias", "--version", "0", "--begin", "now"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--version must be 1")));
  EXPECT_THAT(CertifyRequestFromFlags(
                  Parse({"-d", "x/y", "-k", "bias", "--version", "1", "--begin", "yesterday"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--begin: ")));
  EXPECT_THAT(CertifyRequestFromFlags(Parse({"-d", "x/y", "-k", "bias", "--version", "1", "--begin",
                                             "now", "--config", "novalue"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--config")));
}

TEST(RequestsTest, DecertifyWholeOrPart) {
  ASSERT_OK_AND_ASSIGN(v1::DecertifyRequest all,
                       DecertifyRequestFromFlags(Parse(
                           {"-d", "x/y", "-k", "flat", "--version", "2", "--reason", "dust"})));
  EXPECT_FALSE(all.has_begin());
  EXPECT_FALSE(all.has_end());
  EXPECT_EQ(all.reason(), "dust");
  ASSERT_OK_AND_ASSIGN(v1::DecertifyRequest part,
                       DecertifyRequestFromFlags(Parse({"-d", "x/y", "-k", "flat", "--version", "2",
                                                        "--begin", "2026-03-05"})));
  EXPECT_TRUE(part.has_begin());
  EXPECT_FALSE(part.has_end());
}

TEST(RequestsTest, SelectionPolicyAgeAndPins) {
  const std::string sha(64, 'a');
  ASSERT_OK_AND_ASSIGN(v1::SelectionOptions s,
                       SelectionFromFlags(Parse({"--policy", "nearest", "--max-age", "1.5", "--pin",
                                                 "bias=4", "--pin", "flat=" + sha})));
  EXPECT_EQ(s.policy(), v1::SELECTION_POLICY_NEAREST);
  EXPECT_EQ(s.max_age().seconds(), 129600);
  ASSERT_EQ(s.pins_size(), 2);
  EXPECT_EQ(s.pins(0).kind(), "bias");
  EXPECT_EQ(s.pins(0).version(), 4);
  EXPECT_EQ(s.pins(1).sha256(), sha);
  ASSERT_OK_AND_ASSIGN(v1::SelectionOptions d, SelectionFromFlags(Parse({})));
  EXPECT_EQ(d.policy(), v1::SELECTION_POLICY_STRICT);
  EXPECT_FALSE(d.has_max_age());
  EXPECT_THAT(SelectionFromFlags(Parse({"--policy", "loose"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--policy must be one of strict, nearest")));
  EXPECT_THAT(SelectionFromFlags(Parse({"--pin", "bias=latest"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("KIND=VERSION")));
  EXPECT_THAT(SelectionFromFlags(Parse({"--max-age", "-1"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max-age")));
}

TEST(RequestsTest, BuildCombineAndCertification) {
  ASSERT_OK_AND_ASSIGN(v1::BuildOptions o, BuildOptionsFromFlags(Parse({"-d",
                                                                        "x/y",
                                                                        "-k",
                                                                        "flat",
                                                                        "--method",
                                                                        "mean",
                                                                        "--sigma-clip",
                                                                        "2.5,4",
                                                                        "--maxiters",
                                                                        "5",
                                                                        "--clip-spread",
                                                                        "mad_std",
                                                                        "--clip-extrema",
                                                                        "1,2",
                                                                        "--min-value",
                                                                        "-10",
                                                                        "--scale",
                                                                        "median",
                                                                        "--attr",
                                                                        "src=test",
                                                                        "--certify-from",
                                                                        "2026-03-01",
                                                                        "--certify-until",
                                                                        "2026-04-01",
                                                                        "--replace"})));
  const v1::CombineOptions& c = o.combine();
  EXPECT_EQ(c.method(), "mean");
  EXPECT_TRUE(c.sigma_clip().enabled());
  EXPECT_DOUBLE_EQ(c.sigma_clip().low(), 2.5);
  EXPECT_DOUBLE_EQ(c.sigma_clip().high(), 4);
  EXPECT_EQ(c.sigma_clip().max_iters(), 5);
  EXPECT_EQ(c.sigma_clip().spread(), "mad_std");
  EXPECT_EQ(c.sigma_clip().center(), "");  // the server's default
  EXPECT_EQ(c.nlow(), 1);
  EXPECT_EQ(c.nhigh(), 2);
  EXPECT_DOUBLE_EQ(c.min_value(), -10);
  EXPECT_EQ(c.scale(), "median");
  EXPECT_THAT(o.attributes(), UnorderedElementsAre(Pair("src", "test")));
  EXPECT_EQ(o.certify_begin().seconds(), UnixSeconds(absl::CivilSecond(2026, 3, 1)));
  EXPECT_EQ(o.certify_end().seconds(), UnixSeconds(absl::CivilSecond(2026, 4, 1)));
  EXPECT_TRUE(o.certify_replace());

  // Defaults: nothing set, the server's defaults apply.
  ASSERT_OK_AND_ASSIGN(v1::BuildOptions d,
                       BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "bias"})));
  EXPECT_FALSE(d.combine().has_sigma_clip());
  EXPECT_EQ(d.combine().method(), "");
  EXPECT_FALSE(d.has_certify_begin());
  ASSERT_OK_AND_ASSIGN(v1::BuildOptions nc,
                       BuildOptionsFromFlags(Parse({"-d", "x/y", "-k", "bias", "--no-clip"})));
  ASSERT_TRUE(nc.combine().has_sigma_clip());
  EXPECT_FALSE(nc.combine().sigma_clip().enabled());
}

TEST(RequestsTest, BuildRefusals) {
  const std::vector<std::string> base = {"-d", "x/y", "-k", "bias"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> t = base;
    t.insert(t.end(), extra.begin(), extra.end());
    return BuildOptionsFromFlags(Parse(t));
  };
  EXPECT_THAT(with({"--no-clip", "--sigma-clip", "3,3"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--no-clip contradicts")));
  EXPECT_THAT(with({"--sigma-clip", "0,3"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be > 0")));
  EXPECT_THAT(with({"--method", "mode"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--method")));
  EXPECT_THAT(with({"--certify-until", "2026-04-01"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs --certify-from")));
  EXPECT_THAT(with({"--maxiters", "-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--maxiters")));
  EXPECT_THAT(BuildOptionsFromFlags(Parse({"-d", "x/y"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--kind is required")));
}

TEST(RequestsTest, CalibrateUnitPlanesAndSkips) {
  ASSERT_OK_AND_ASSIGN(CalibrateOptions o,
                       CalibrateOptionsFromFlags(Parse(
                           {"-d", "x/y", "--unit", "electron", "--planes", "data,dq", "--skip",
                            "dark", "--skip", "overscan", "--flat-norm", "clipped_mean"})));
  EXPECT_EQ(o.detector, "x/y");
  EXPECT_EQ(o.unit, v1::OUTPUT_UNIT_ELECTRON);
  EXPECT_THAT(o.planes, ElementsAre(v1::PLANE_DATA, v1::PLANE_DQ));
  ASSERT_TRUE(o.recipe.has_dark());
  EXPECT_FALSE(o.recipe.dark());
  EXPECT_FALSE(o.recipe.overscan());
  EXPECT_FALSE(o.recipe.has_bias());  // not skipped: the detector's recipe decides
  EXPECT_EQ(o.recipe.flat_norm(), "clipped_mean");
  ASSERT_OK_AND_ASSIGN(CalibrateOptions d, CalibrateOptionsFromFlags(Parse({"-d", "x/y"})));
  EXPECT_EQ(d.unit, v1::OUTPUT_UNIT_ADU);
  EXPECT_TRUE(d.planes.empty());
  EXPECT_THAT(CalibrateOptionsFromFlags(Parse({"-d", "x/y", "--planes", "data,noise"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--planes")));
  EXPECT_THAT(CalibrateOptionsFromFlags(Parse({"-d", "x/y", "--skip", "cosmics"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--skip")));
}

TEST(RequestsTest, VersionChoiceAndPutOptions) {
  ASSERT_OK_AND_ASSIGN(VersionChoice v, VersionChoiceFromFlags(Parse({"--version", "7"})));
  EXPECT_EQ(v.version, 7);
  ASSERT_OK_AND_ASSIGN(VersionChoice at, VersionChoiceFromFlags(Parse({"--at", "2026-03-01"})));
  EXPECT_EQ(at.version, 0);
  EXPECT_EQ(at.at, absl::FromCivil(absl::CivilSecond(2026, 3, 1), absl::UTCTimeZone()));
  EXPECT_THAT(VersionChoiceFromFlags(Parse({})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one")));
  EXPECT_THAT(VersionChoiceFromFlags(Parse({"--version", "1", "--at", "now"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one")));
  ASSERT_OK_AND_ASSIGN(PutMasterOptions p,
                       PutMasterOptionsFromFlags(Parse({"-d", "x/y", "-k", "bias", "--attr", "a=1",
                                                        "--attr", "a=2", "--config", "bin=1"})));
  EXPECT_THAT(p.attributes, UnorderedElementsAre(Pair("a", "2")));  // the later one wins
  EXPECT_THAT(p.configuration, UnorderedElementsAre(Pair("bin", "1")));
}

TEST(RequestsTest, PageLimitAndToken) {
  ASSERT_OK_AND_ASSIGN(PageRequest p,
                       PageFromFlags(Parse({"--limit", "25", "--page-token", "abc"})));
  EXPECT_EQ(p.page_size, 25);
  EXPECT_EQ(p.page_token, "abc");
  ASSERT_OK_AND_ASSIGN(PageRequest d, PageFromFlags(Parse({})));
  EXPECT_EQ(d.page_size, 0);
  EXPECT_EQ(d.page_token, "");
  EXPECT_THAT(PageFromFlags(Parse({"--limit", "0"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--limit must be 1")));
  EXPECT_THAT(PageFromFlags(Parse({"--limit", "99999999999"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--limit")));
  EXPECT_THAT(PageFromFlags(Parse({"--limit", "ten"})),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RequestsTest, SampleOptions) {
  ASSERT_OK_AND_ASSIGN(SampleOptions s,
                       SampleOptionsFromFlags(Parse({"--small", "--frames", "2", "--lights", "0",
                                                     "--compress", "RICE_1", "--seed", "9"})));
  EXPECT_EQ(s.data_width, 128);
  EXPECT_EQ(s.height, 96);
  EXPECT_EQ(s.n_bias, 2);
  EXPECT_EQ(s.n_flat, 2);
  EXPECT_EQ(s.n_light, 0);
  EXPECT_EQ(s.light_compression, "RICE_1");
  EXPECT_EQ(s.seed, 9u);
  EXPECT_THAT(SampleOptionsFromFlags(Parse({"--width", "4"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(">= 8")));
  EXPECT_THAT(SampleOptionsFromFlags(Parse({"--frames", "0"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--frames")));
  EXPECT_THAT(SampleOptionsFromFlags(Parse({"--compress", "ZSTD"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--compress")));
}

}  // namespace
}  // namespace calibd::client
