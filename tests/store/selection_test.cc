// The selection rules (SelectKind) on hand-made candidates, without a database: each row of the
// table is a small catalog and a frame, with the master the documented rules must choose —
// pinned → certified (closest configuration → latest certification → highest version) →
// nearest in time (strict refuses), and the status code when nothing applies.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status/status_matchers.h"
#include "core/store/selection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"

namespace calibd::store::testing {
namespace {

using ::testing::HasSubstr;

constexpr TimeMicros kDay = 86400 * kMicrosPerSecond;
constexpr TimeMicros kT0 = 1'770'000'000 * kMicrosPerSecond;  // the frame's time

MasterVersion V(int64_t series, int64_t version, TimeMicros obs_time, const Configuration& c,
                bool decertified = false) {
  MasterVersion v;
  v.series_id = series;
  v.version = version;
  v.detector = kDetector;
  v.kind = "dark";
  v.configuration = c;
  v.sha256 = std::string(63, 'a') + static_cast<char>('0' + (series * 3 + version) % 10);
  v.obs_time = obs_time;
  if (decertified) v.decertified_at = obs_time;
  return v;
}

Certification C(int64_t series, int64_t version, TimeMicros begin, std::optional<TimeMicros> end) {
  Certification c;
  c.series_id = series;
  c.version = version;
  c.begin = begin;
  c.end = end;
  return c;
}

const Configuration kFast30{{"readout_mode", "fast"}, {"exposure", "30"}};
const Configuration kFast30_5{{"readout_mode", "fast"}, {"exposure", "30.5"}};  // distance 0.5
const Configuration kFast31{{"readout_mode", "fast"}, {"exposure", "31"}};      // distance 1
const Configuration kSlow30{{"readout_mode", "slow"}, {"exposure", "30"}};      // no match
const Configuration kFast60{{"readout_mode", "fast"}, {"exposure", "60"}};      // beyond tol

SeriesCandidate S(int64_t id, const Configuration& c, std::vector<Certification> certs,
                  std::vector<MasterVersion> versions) {
  return SeriesCandidate{id, c, true, std::move(certs), std::move(versions)};
}

struct Case {
  std::string name;
  std::vector<SeriesCandidate> series;
  SelectionPolicy policy = SelectionPolicy::kStrict;
  TimeMicros max_age = 0;
  std::optional<PinnedVersion> pin;
  std::optional<MasterVersion> pinned_version;  // what the catalog fetched for a version pin
  std::vector<MasterVersion> sha_matches;
  bool no_time = false;
  absl::StatusCode want_code = absl::StatusCode::kOk;
  int64_t want_series = 0, want_version = 0;
  std::optional<SelectionMethod> want_method;
  std::string want_reason;  // a substring of the status message or of the chosen trail entry
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({.name = "CertifiedHoldsTheTime",
                   .series = {S(1, kFast30, {C(1, 1, kT0 - kDay, std::nullopt)},
                                {V(1, 1, kT0 - kDay, kFast30)})},
                   .want_series = 1, .want_version = 1,
                   .want_method = SelectionMethod::kCertified,
                   .want_reason = "holds the frame time"});
  // Closest configuration beats a newer certification in a farther series.
  cases.push_back({.name = "ClosestConfigurationFirst",
                   .series = {S(1, kFast31, {C(1, 1, kT0 - kDay, std::nullopt)},
                                {V(1, 1, kT0 - kDay, kFast31)}),
                              S(2, kFast30_5, {C(2, 1, kT0 - 9 * kDay, std::nullopt)},
                                {V(2, 1, kT0 - 9 * kDay, kFast30_5)})},
                   .want_series = 2, .want_version = 1,
                   .want_method = SelectionMethod::kCertified,
                   .want_reason = "configuration is the closest"});
  // Equal configuration distance: the latest certification (largest begin) wins.
  cases.push_back({.name = "ThenLatestCertification",
                   .series = {S(1, kFast30_5, {C(1, 4, kT0 - 2 * kDay, std::nullopt)},
                                {V(1, 4, kT0 - 2 * kDay, kFast30_5)}),
                              S(2, kFast30_5, {C(2, 1, kT0 - kDay, std::nullopt)},
                                {V(2, 1, kT0 - kDay, kFast30_5)})},
                   .want_series = 2, .want_version = 1,
                   .want_method = SelectionMethod::kCertified});
  // Equal distance and begin: the highest version wins.
  cases.push_back({.name = "ThenHighestVersion",
                   .series = {S(1, kFast30_5, {C(1, 2, kT0 - kDay, std::nullopt)},
                                {V(1, 2, kT0 - kDay, kFast30_5)}),
                              S(2, kFast30_5, {C(2, 3, kT0 - kDay, std::nullopt)},
                                {V(2, 3, kT0 - kDay, kFast30_5)})},
                   .want_series = 2, .want_version = 3,
                   .want_method = SelectionMethod::kCertified});
  // A range ending before the frame: strict refuses, nearest takes the closest obs_time.
  const std::vector<SeriesCandidate> expired = {
      S(1, kFast30, {C(1, 1, kT0 - 10 * kDay, kT0 - 5 * kDay)},
        {V(1, 1, kT0 - 10 * kDay, kFast30), V(1, 2, kT0 - 3 * kDay, kFast30),
         V(1, 3, kT0 + 1 * kDay, kFast30, /*decertified=*/true)})};
  cases.push_back({.name = "StrictRefusesWithoutCertification", .series = expired,
                   .want_code = absl::StatusCode::kFailedPrecondition,
                   .want_reason = "no certified dark"});
  cases.push_back({.name = "NearestSkipsDecertified", .series = expired,
                   .policy = SelectionPolicy::kNearest, .want_series = 1, .want_version = 2,
                   .want_method = SelectionMethod::kNearest, .want_reason = "nearest in time"});
  cases.push_back({.name = "NearestBeyondMaxAgeRefuses", .series = expired,
                   .policy = SelectionPolicy::kNearest, .max_age = 2 * kDay,
                   .want_code = absl::StatusCode::kFailedPrecondition,
                   .want_reason = "within max_age"});
  // Nearest: equal time distance → closest configuration, then the highest version.
  cases.push_back({.name = "NearestTieClosestConfiguration",
                   .series = {S(1, kFast31, {}, {V(1, 7, kT0 - kDay, kFast31)}),
                              S(2, kFast30, {}, {V(2, 1, kT0 + kDay, kFast30)})},
                   .policy = SelectionPolicy::kNearest, .want_series = 2, .want_version = 1,
                   .want_method = SelectionMethod::kNearest});
  cases.push_back({.name = "NoSeriesMatches",
                   .series = {S(1, kSlow30, {C(1, 1, kT0 - kDay, std::nullopt)},
                                {V(1, 1, kT0 - kDay, kSlow30)}),
                              S(2, kFast60, {C(2, 1, kT0 - kDay, std::nullopt)},
                                {V(2, 1, kT0 - kDay, kFast60)})},
                   .policy = SelectionPolicy::kNearest,
                   .want_code = absl::StatusCode::kFailedPrecondition,
                   .want_reason = "matches configuration"});
  cases.push_back({.name = "PinnedVersionWins",
                   .series = {S(1, kFast30, {C(1, 1, kT0 - kDay, std::nullopt)},
                                {V(1, 1, kT0 - kDay, kFast30)})},
                   .pin = PinnedVersion{"", 0, 5},
                   .pinned_version = V(1, 5, kT0 - 99 * kDay, kFast30),
                   .want_series = 1, .want_version = 5, .want_method = SelectionMethod::kPinned,
                   .want_reason = "pinned by the request"});
  cases.push_back({.name = "PinnedVersionMissing",
                   .series = {S(1, kFast30, {}, {V(1, 1, kT0, kFast30)})},
                   .pin = PinnedVersion{"", 0, 5},
                   .want_code = absl::StatusCode::kNotFound,
                   .want_reason = "does not exist"});
  // A pin by content prefers the copy in the series matching the frame.
  cases.push_back({.name = "PinnedShaPrefersMatchingSeries",
                   .series = {S(1, kSlow30, {}, {}), S(2, kFast30, {}, {})},
                   .pin = PinnedVersion{V(1, 1, 0, kSlow30).sha256, 0, 0},
                   .sha_matches = {V(1, 1, 0, kSlow30), [] {
                                     MasterVersion v = V(2, 4, 0, kFast30);
                                     v.sha256 = V(1, 1, 0, kSlow30).sha256;
                                     return v;
                                   }()},
                   .want_series = 2, .want_version = 4, .want_method = SelectionMethod::kPinned});
  cases.push_back({.name = "PinnedShaUnknown",
                   .series = {S(1, kFast30, {}, {})},
                   .pin = PinnedVersion{std::string(64, 'f'), 0, 0},
                   .want_code = absl::StatusCode::kNotFound,
                   .want_reason = "is not a stored dark"});
  cases.push_back({.name = "NoTimeWithoutPin",
                   .series = {S(1, kFast30, {C(1, 1, kT0 - kDay, std::nullopt)},
                                {V(1, 1, kT0 - kDay, kFast30)})},
                   .no_time = true, .want_code = absl::StatusCode::kInvalidArgument});
  return cases;
}

class SelectKindTest : public ::testing::TestWithParam<Case> {};

TEST_P(SelectKindTest, ChoosesByTheDocumentedRules) {
  const Case& c = GetParam();
  SelectionCandidates cand;
  cand.series = c.series;
  cand.pinned_version = c.pinned_version;
  cand.sha_matches = c.sha_matches;
  KindRequest req;
  req.detector = kDetector;
  req.kind = "dark";
  req.configuration = kFast30;
  if (!c.no_time) req.time = kT0;
  req.policy = c.policy;
  req.max_age = c.max_age;
  req.pin = c.pin;
  const KindSelection got = SelectKind(TestSpec(), cand, req);
  EXPECT_EQ(got.kind, "dark");
  ASSERT_EQ(got.status.code(), c.want_code) << got.status;
  if (c.want_code != absl::StatusCode::kOk) {
    EXPECT_FALSE(got.chosen.has_value());
    EXPECT_FALSE(got.chosen_by.has_value());
    EXPECT_EQ(got.method, "");
    if (!c.want_reason.empty()) EXPECT_THAT(got.status.message(), HasSubstr(c.want_reason));
    return;
  }
  ASSERT_TRUE(got.chosen.has_value());
  EXPECT_EQ(got.chosen->series_id, c.want_series);
  EXPECT_EQ(got.chosen->version, c.want_version);
  EXPECT_EQ(got.chosen_by, c.want_method);
  EXPECT_EQ(got.method, SelectionMethodName(*c.want_method));
  int chosen_entries = 0;
  for (const TrailEntry& e : got.trail) {
    if (!e.chosen) continue;
    ++chosen_entries;
    EXPECT_EQ(e.series_id, c.want_series);
    EXPECT_EQ(e.version, c.want_version);
    if (!c.want_reason.empty()) EXPECT_THAT(e.reason, HasSubstr(c.want_reason));
  }
  EXPECT_EQ(chosen_entries, 1);
}

INSTANTIATE_TEST_SUITE_P(Rules, SelectKindTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

TEST(SelectKindTest, RejectedSeriesAreExplainedThenCounted) {
  SelectionCandidates cand;
  for (int i = 1; i <= 15; ++i) {
    cand.series.push_back(SeriesCandidate{i, {{"readout_mode", absl::StrCat("mode", i)}}, false,
                                          {}, {}});
  }
  cand.series_omitted = 100;  // series the catalog did not even list
  KindRequest req;
  req.detector = kDetector;
  req.kind = "dark";
  req.configuration = kFast30;
  req.time = kT0;
  const KindSelection got = SelectKind(TestSpec(), cand, req);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(got.trail.size(), 10u);
  EXPECT_THAT(got.trail[0].reason, HasSubstr("readout_mode 'mode1' differs from frame's 'fast'"));
  EXPECT_EQ(got.candidates_omitted, 5 + 100);
}

TEST(SelectionMethodTest, OneNamePerMethod) {
  EXPECT_EQ(SelectionMethodName(SelectionMethod::kPinned), "pinned");
  EXPECT_EQ(SelectionMethodName(SelectionMethod::kCertified), "certified");
  EXPECT_EQ(SelectionMethodName(SelectionMethod::kNearest), "nearest");
}

}  // namespace
}  // namespace calibd::store::testing
