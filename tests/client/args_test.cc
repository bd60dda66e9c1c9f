// Unit tests of calibctl's argument parsing and value parsers.
#include "client/args.h"

#include <string>
#include <vector>

#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::client {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::vector<FlagSpec> kSpecs = {
    {"detector", 'd', FlagKind::kValue, "detector"},
    {"output", 'o', FlagKind::kValue, "output"},
    {"attr", 0, FlagKind::kRepeated, "attribute"},
    {"replace", 0, FlagKind::kBool, "replace"},
    {"json", 0, FlagKind::kBool, "json"},
};

TEST(ParseFlagsTest, LongShortEqualsAndSeparateValues) {
  std::vector<std::string> args = {"--detector=lfc/chip0", "-o", "out", "a.fits",
                                   "--attr", "k=v", "--attr=x=y", "--replace", "b.fits"};
  ASSERT_OK_AND_ASSIGN(ParsedArgs p, ParseFlags(args, kSpecs));
  EXPECT_EQ(p.Value("detector"), "lfc/chip0");
  EXPECT_EQ(p.Value("output"), "out");
  EXPECT_THAT(p.Values("attr"), ElementsAre("k=v", "x=y"));
  EXPECT_TRUE(p.Bool("replace"));
  EXPECT_FALSE(p.Bool("json"));
  EXPECT_FALSE(p.Has("json"));
  EXPECT_THAT(p.positional(), ElementsAre("a.fits", "b.fits"));
}

TEST(ParseFlagsTest, ShortFlagWithAttachedValue) {
  std::vector<std::string> args = {"-oDIR", "-dcam/x"};
  ASSERT_OK_AND_ASSIGN(ParsedArgs p, ParseFlags(args, kSpecs));
  EXPECT_EQ(p.Value("output"), "DIR");
  EXPECT_EQ(p.Value("detector"), "cam/x");
}

TEST(ParseFlagsTest, DoubleDashEndsFlags) {
  std::vector<std::string> args = {"--json", "--", "--replace", "-o"};
  ASSERT_OK_AND_ASSIGN(ParsedArgs p, ParseFlags(args, kSpecs));
  EXPECT_TRUE(p.Bool("json"));
  EXPECT_FALSE(p.Has("replace"));
  EXPECT_THAT(p.positional(), ElementsAre("--replace", "-o"));
}

TEST(ParseFlagsTest, BoolFlagAcceptsExplicitValues) {
  std::vector<std::string> args = {"--replace=false", "--json=TRUE"};
  ASSERT_OK_AND_ASSIGN(ParsedArgs p, ParseFlags(args, kSpecs));
  EXPECT_FALSE(p.Bool("replace"));
  EXPECT_TRUE(p.Bool("json"));
  std::vector<std::string> bad = {"--replace=maybe"};
  EXPECT_THAT(ParseFlags(bad, kSpecs), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseFlagsTest, Errors) {
  std::vector<std::string> unknown = {"--nope"};
  EXPECT_THAT(ParseFlags(unknown, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--nope")));
  std::vector<std::string> missing = {"a.fits", "--detector"};
  EXPECT_THAT(ParseFlags(missing, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  std::vector<std::string> twice = {"-d", "a/b", "--detector=c/d"};
  EXPECT_THAT(ParseFlags(twice, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("given twice")));
  std::vector<std::string> short_unknown = {"-z"};
  EXPECT_THAT(ParseFlags(short_unknown, kSpecs), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseFlagsTest, SingleDashIsPositional) {
  std::vector<std::string> args = {"-"};
  ASSERT_OK_AND_ASSIGN(ParsedArgs p, ParseFlags(args, kSpecs));
  EXPECT_THAT(p.positional(), ElementsAre("-"));
}

const std::vector<std::string> kCommands = {"detector put", "detector get", "detector ls", "ls",
                                            "calibrate", "health"};
const std::vector<FlagSpec> kGlobal = {{"server", 0, FlagKind::kValue, "server"},
                                       {"json", 0, FlagKind::kBool, "json"}};

TEST(SplitCommandTest, TwoWordCommandWithGlobalFlagsAnywhere) {
  std::vector<std::string> argv = {"--server", "h:1", "detector", "--json", "put", "spec.json"};
  ASSERT_OK_AND_ASSIGN(CommandLine c, SplitCommand(argv, kCommands, kGlobal));
  EXPECT_EQ(c.command, "detector put");
  EXPECT_THAT(c.rest, ElementsAre("--server", "h:1", "--json", "spec.json"));
}

TEST(SplitCommandTest, OneWordCommandKeepsItsPositionals) {
  std::vector<std::string> argv = {"calibrate", "a.fits", "b.fits"};
  ASSERT_OK_AND_ASSIGN(CommandLine c, SplitCommand(argv, kCommands, kGlobal));
  EXPECT_EQ(c.command, "calibrate");
  EXPECT_THAT(c.rest, ElementsAre("a.fits", "b.fits"));
}

TEST(SplitCommandTest, ServerValueIsNotTakenForTheCommand) {
  std::vector<std::string> argv = {"--server", "ls", "health"};
  ASSERT_OK_AND_ASSIGN(CommandLine c, SplitCommand(argv, kCommands, kGlobal));
  EXPECT_EQ(c.command, "health");
}

TEST(SplitCommandTest, UnknownAndIncompleteCommands) {
  std::vector<std::string> unknown = {"frobnicate"};
  EXPECT_THAT(SplitCommand(unknown, kCommands, kGlobal),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("frobnicate")));
  std::vector<std::string> group = {"detector", "remove"};
  EXPECT_THAT(SplitCommand(group, kCommands, kGlobal),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("detector put")));
  std::vector<std::string> none = {"--json"};
  ASSERT_OK_AND_ASSIGN(CommandLine c, SplitCommand(none, kCommands, kGlobal));
  EXPECT_THAT(c.command, IsEmpty());
}

TEST(ParseTimeTest, Formats) {
  const absl::Time want = absl::FromCivil(absl::CivilSecond(2026, 3, 1, 2, 3, 4), absl::UTCTimeZone());
  ASSERT_OK_AND_ASSIGN(absl::Time a, ParseTime("2026-03-01T02:03:04Z"));
  EXPECT_EQ(a, want);
  ASSERT_OK_AND_ASSIGN(absl::Time b, ParseTime("2026-03-01T04:03:04+02:00"));
  EXPECT_EQ(b, want);
  ASSERT_OK_AND_ASSIGN(absl::Time c, ParseTime("2026-03-01T02:03:04.5"));
  EXPECT_EQ(c, want + absl::Milliseconds(500));
  ASSERT_OK_AND_ASSIGN(absl::Time d, ParseTime("2026-03-01"));
  EXPECT_EQ(d, want - absl::Hours(2) - absl::Minutes(3) - absl::Seconds(4));
  ASSERT_OK_AND_ASSIGN(absl::Time now, ParseTime("now"));
  EXPECT_LT(absl::AbsDuration(now - absl::Now()), absl::Seconds(5));
  EXPECT_THAT(ParseTime("yesterday"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTime("2026-13-01"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseTimeTest, FormatRoundTrips) {
  ASSERT_OK_AND_ASSIGN(absl::Time t, ParseTime("2026-03-01T02:03:04.25Z"));
  EXPECT_EQ(FormatUtc(t), "2026-03-01T02:03:04.25Z");
  ASSERT_OK_AND_ASSIGN(absl::Time back, ParseTime(FormatUtc(t)));
  EXPECT_EQ(back, t);
  EXPECT_EQ(FormatUtc(t - absl::Milliseconds(250)), "2026-03-01T02:03:04Z");
}

TEST(ValueParsersTest, PairsAndNumbers) {
  ASSERT_OK_AND_ASSIGN(auto kv, ParseKeyValue("FILTER=R=band"));
  EXPECT_EQ(kv.first, "FILTER");
  EXPECT_EQ(kv.second, "R=band");
  EXPECT_THAT(ParseKeyValue("=x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseKeyValue("novalue"), StatusIs(absl::StatusCode::kInvalidArgument));

  ASSERT_OK_AND_ASSIGN(auto d, ParseDoublePair("2.5,4"));
  EXPECT_DOUBLE_EQ(d.first, 2.5);
  EXPECT_DOUBLE_EQ(d.second, 4);
  EXPECT_THAT(ParseDoublePair("3"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDoublePair("-1,3"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDoublePair("nan,3"), StatusIs(absl::StatusCode::kInvalidArgument));

  ASSERT_OK_AND_ASSIGN(auto i, ParseIntPair("1,2"));
  EXPECT_EQ(i.first, 1);
  EXPECT_EQ(i.second, 2);
  EXPECT_THAT(ParseIntPair("1.5,2"), StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_THAT(ParseInt("version", "3x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--version")));
  ASSERT_OK_AND_ASSIGN(int64_t v, ParseInt("version", "12"));
  EXPECT_EQ(v, 12);
  EXPECT_THAT(ParseDouble("timeout", "inf"), StatusIs(absl::StatusCode::kInvalidArgument));

  const std::vector<std::string> choices = {"strict", "nearest"};
  EXPECT_OK(CheckChoice("policy", "nearest", choices));
  EXPECT_THAT(CheckChoice("policy", "loose", choices),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("strict, nearest")));
}

TEST(FlagsHelpTest, ListsEveryFlagAligned) {
  const std::string help = FlagsHelp(kSpecs);
  EXPECT_THAT(help, HasSubstr("-d, --detector VALUE"));
  EXPECT_THAT(help, HasSubstr("--attr VALUE"));
  EXPECT_THAT(help, HasSubstr("(repeatable)"));
  EXPECT_THAT(help, HasSubstr("--replace  "));
}

}  // namespace
}  // namespace calibd::client
