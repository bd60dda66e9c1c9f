// The store conformance suite (store_conformance_fixture.h): certification ranges and the
// selection of masters for a frame, on both backends.
#include "tests/store/store_conformance_fixture.h"

namespace calibd::store::testing {
namespace {

// ---------------------------------------------------------------- certification

TEST_P(StoreConformanceTest, OverlappingCertificationIsRefusedUnlessReplaced) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion v1, Put("bias", 1, h));
  ASSERT_OK_AND_ASSIGN(MasterVersion v2, Put("bias", 2, h));
  const TimeMicros t0 = T("2026-03-01T00:00:00"), t10 = T("2026-03-11T00:00:00"),
                   t20 = T("2026-03-21T00:00:00");
  ASSERT_OK(Certify(v1, t0, std::nullopt).status());
  const TimeMicros before_replace = NowMicros();
  EXPECT_THAT(Certify(v2, t10, t20),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       ::testing::AllOf(HasSubstr("version 1"),
                                        HasSubstr("2026-03-01T00:00:00.000000Z, open"))));
  // Touching ranges do not overlap: [t0, ...) of v1 cannot be re-certified, but a range ending at
  // t0 can.
  ASSERT_OK(Certify(v2, T("2026-02-01T00:00:00"), t0).status());

  ASSERT_OK(Certify(v2, t10, t20, /*replace=*/true).status());
  ASSERT_OK_AND_ASSIGN(std::vector<Certification> certs, store_->ListCertifications(v1.series_id));
  ASSERT_THAT(certs, SizeIs(4));
  EXPECT_EQ(certs[0].version, 2);
  EXPECT_EQ(certs[0].end, t0);
  EXPECT_EQ(certs[1].version, 1);
  EXPECT_EQ(certs[1].begin, t0);
  EXPECT_EQ(certs[1].end, t10);
  EXPECT_EQ(certs[2].version, 2);
  EXPECT_EQ(certs[2].begin, t10);
  EXPECT_EQ(certs[2].end, t20);
  EXPECT_EQ(certs[3].version, 1);
  EXPECT_EQ(certs[3].begin, t20);
  EXPECT_FALSE(certs[3].end.has_value());

  // The audit entry of the replacing certification (keyed by series and version) names v1 as
  // superseded over [t10, t20).
  ASSERT_OK_AND_ASSIGN(std::vector<AuditEntry> v2_log, store_->SeriesAudit(v1.series_id, 2, 2));
  std::vector<AuditEntry> replacing;
  for (const AuditEntry& e : v2_log) {
    if (e.action == "certify" && absl::StrContains(e.details, "replacing")) replacing.push_back(e);
  }
  ASSERT_THAT(replacing, SizeIs(1));
  EXPECT_EQ(replacing[0].series_id, v1.series_id);
  EXPECT_EQ(replacing[0].version, 2);
  EXPECT_THAT(replacing[0].details,
              HasSubstr(absl::StrCat("replacing v1 [", FormatTime(t10), ", ", FormatTime(t20), ")")));
  ASSERT_OK_AND_ASSIGN(MasterVersion v1_now, store_->GetVersion(v1.series_id, 1));
  EXPECT_TRUE(v1_now.superseded_at.has_value());

  // Frames on either side of the replaced range select v1, inside it v2.
  for (const auto& [when, want] : std::vector<std::pair<std::string, int64_t>>{
           {"2026-03-05T00:00:00", 1}, {"2026-03-15T00:00:00", 2}, {"2026-04-01T00:00:00", 1},
           {"2026-02-15T00:00:00", 2}}) {
    ASSERT_OK_AND_ASSIGN(SelectionResult r, store_->Select(Request(FrameHeader(when), {"bias"})));
    ASSERT_OK(r.kinds[0].status) << when;
    EXPECT_EQ(r.kinds[0].chosen->version, want) << when;
  }

  // The audit log has who did what.
  ASSERT_OK_AND_ASSIGN(std::vector<AuditEntry> audit, store_->AuditLog(0, 100));
  int certifies = 0;
  for (const AuditEntry& e : audit) {
    if (e.action == "certify") {
      ++certifies;
      EXPECT_EQ(e.actor, "bob");
    }
  }
  EXPECT_EQ(certifies, 3);
}

TEST_P(StoreConformanceTest, DecertifyWholeAndPart) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion v1, Put("bias", 1, h));
  const TimeMicros t0 = T("2026-03-01T00:00:00"), t5 = T("2026-03-06T00:00:00"),
                   t7 = T("2026-03-08T00:00:00");
  ASSERT_OK(Certify(v1, t0, std::nullopt).status());
  DecertifyRequest d;
  d.series_id = v1.series_id;
  d.version = 1;
  d.begin = t5;
  d.end = t7;
  d.actor = "bob";
  d.reason = "bad columns those nights";
  const TimeMicros before = NowMicros();
  ASSERT_OK(store_->Decertify(d));
  ASSERT_OK_AND_ASSIGN(std::vector<Certification> certs, store_->ListCertifications(v1.series_id));
  ASSERT_THAT(certs, SizeIs(2));
  EXPECT_EQ(certs[0].begin, t0);
  EXPECT_EQ(certs[0].end, t5);
  EXPECT_EQ(certs[1].begin, t7);
  EXPECT_FALSE(certs[1].end.has_value());
  ASSERT_OK_AND_ASSIGN(SelectionResult hole,
                       store_->Select(Request(FrameHeader("2026-03-07T00:00:00"), {"bias"})));
  EXPECT_THAT(hole.kinds[0].status, StatusIs(absl::StatusCode::kFailedPrecondition));
  // Nothing certified there any more.
  EXPECT_THAT(store_->Decertify(d), StatusIs(absl::StatusCode::kNotFound));

  DecertifyRequest all;
  all.series_id = v1.series_id;
  all.version = 1;
  all.actor = "bob";
  ASSERT_OK(store_->Decertify(all));
  ASSERT_OK_AND_ASSIGN(certs, store_->ListCertifications(v1.series_id));
  EXPECT_THAT(certs, SizeIs(0));
  ASSERT_OK_AND_ASSIGN(MasterVersion now, store_->GetVersion(v1.series_id, 1));
  EXPECT_TRUE(now.decertified_at.has_value());
  // The audit log of v1 records both decertifications with the ranges they removed: the hole,
  // then both remaining ranges.
  ASSERT_OK_AND_ASSIGN(std::vector<AuditEntry> log, store_->SeriesAudit(v1.series_id, 1, 1));
  std::vector<AuditEntry> decerts;
  for (const AuditEntry& e : log) {
    if (e.action == "decertify" && e.time >= before) decerts.push_back(e);
  }
  ASSERT_THAT(decerts, SizeIs(2));
  EXPECT_THAT(decerts[0].details,
              HasSubstr(absl::StrCat("(removed [", FormatTime(t5), ", ", FormatTime(t7), "))")));
  EXPECT_THAT(decerts[1].details,
              HasSubstr(absl::StrCat("all ranges (removed [", FormatTime(t0), ", ", FormatTime(t5),
                                     "), [", FormatTime(t7), ", open))")));
  EXPECT_THAT(store_->Decertify(all), StatusIs(absl::StatusCode::kNotFound));
}

// ---------------------------------------------------------------- selection

TEST_P(StoreConformanceTest, StrictSelectionAndTrail) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion b1, Put("bias", 1, h));
  ASSERT_OK_AND_ASSIGN(MasterVersion b2, Put("bias", 2, h));
  // Another readout mode's series must be rejected with the reason.
  ASSERT_OK_AND_ASSIGN(MasterVersion slow,
                       Put("bias", 9, FrameHeader("2026-03-01T00:00:00", 30, -10, "r", "slow")));
  ASSERT_OK(Certify(b1, T("2026-03-01T00:00:00"), T("2026-03-10T00:00:00")).status());
  ASSERT_OK(Certify(b2, T("2026-03-10T00:00:00"), T("2026-03-20T00:00:00")).status());
  ASSERT_OK(Certify(slow, T("2026-01-01T00:00:00"), std::nullopt).status());

  ASSERT_OK_AND_ASSIGN(SelectionResult r,
                       store_->Select(Request(FrameHeader("2026-03-12T05:00:00"), {"bias"})));
  EXPECT_EQ(r.time, T("2026-03-12T05:00:00"));
  ASSERT_THAT(r.kinds, SizeIs(1));
  const KindSelection& k = r.kinds[0];
  ASSERT_OK(k.status);
  EXPECT_EQ(k.method, "certified");
  EXPECT_EQ(k.chosen_by, SelectionMethod::kCertified);
  EXPECT_EQ(k.chosen->version, 2);
  EXPECT_EQ(k.chosen->sha256, b2.sha256);
  bool saw_slow = false, saw_winner = false, saw_v1 = false;
  for (const TrailEntry& e : k.trail) {
    if (e.series_id == slow.series_id) {
      saw_slow = true;
      EXPECT_FALSE(e.chosen);
      EXPECT_THAT(e.reason, HasSubstr("readout_mode 'slow' differs from frame's 'fast'"));
    }
    if (e.chosen) {
      saw_winner = true;
      EXPECT_EQ(e.version, 2);
      EXPECT_THAT(e.reason, HasSubstr("holds the frame time"));
    }
    if (e.series_id == b1.series_id && e.version == 1) {
      saw_v1 = true;
      EXPECT_THAT(e.reason, HasSubstr("ended before the frame time"));
    }
  }
  EXPECT_TRUE(saw_slow && saw_winner && saw_v1);

  // After every certified range: strict fails with FAILED_PRECONDITION naming the kind.
  ASSERT_OK_AND_ASSIGN(SelectionResult late,
                       store_->Select(Request(FrameHeader("2026-04-01T00:00:00"), {"bias"})));
  EXPECT_THAT(late.kinds[0].status,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no certified bias")));
  EXPECT_FALSE(late.all_ok());
  // A kind with nothing stored at all.
  ASSERT_OK_AND_ASSIGN(SelectionResult none,
                       store_->Select(Request(FrameHeader("2026-03-12T00:00:00"), {"bias", "flat"})));
  ASSERT_OK(none.kinds[0].status);
  EXPECT_THAT(none.kinds[1].status, StatusIs(absl::StatusCode::kFailedPrecondition));

  // Explicit configuration + time instead of a header gives the same answer.
  SelectionRequest explicit_req;
  explicit_req.detector = kDetector;
  explicit_req.kinds = {"bias"};
  explicit_req.configuration =
      Configuration{{"readout_mode", "fast"}, {"binning", "1x1"}, {"gain_setting", "high"}};
  explicit_req.time = T("2026-03-05T00:00:00");
  ASSERT_OK_AND_ASSIGN(SelectionResult ex, store_->Select(explicit_req));
  ASSERT_OK(ex.kinds[0].status);
  EXPECT_EQ(ex.kinds[0].chosen->version, 1);
}

TEST_P(StoreConformanceTest, NearestPolicyWithMaxAge) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion a, Put("flat", 1, h, T("2026-03-01T00:00:00")));
  ASSERT_OK_AND_ASSIGN(MasterVersion b, Put("flat", 2, h, T("2026-03-05T00:00:00")));
  ASSERT_OK_AND_ASSIGN(MasterVersion c, Put("flat", 3, h, T("2026-03-09T00:00:00")));
  // Nothing certified. Frame at 03-06: b is 1 day away, c 3 days.
  SelectionRequest req =
      Request(FrameHeader("2026-03-06T00:00:00"), {"flat"}, SelectionPolicy::kNearest);
  ASSERT_OK_AND_ASSIGN(SelectionResult r, store_->Select(req));
  ASSERT_OK(r.kinds[0].status);
  EXPECT_EQ(r.kinds[0].method, "nearest");
  EXPECT_EQ(r.kinds[0].chosen_by, SelectionMethod::kNearest);
  EXPECT_EQ(r.kinds[0].chosen->version, b.version);
  // Frame at 03-08T12: c is 0.5 days away.
  req.header = FrameHeader("2026-03-08T12:00:00");
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_EQ(r.kinds[0].chosen->version, c.version);
  // Far in the future with a 2-day max age: nothing, and the trail says why.
  req.header = FrameHeader("2026-03-20T00:00:00");
  req.max_age = 2 * 86400 * kMicrosPerSecond;
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_THAT(r.kinds[0].status, StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_FALSE(r.kinds[0].trail.empty());
  EXPECT_THAT(r.kinds[0].trail.back().reason, HasSubstr("max_age"));
  // Strict on the same frame refuses.
  req.policy = SelectionPolicy::kStrict;
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_THAT(r.kinds[0].status, StatusIs(absl::StatusCode::kFailedPrecondition));
  // A certification holding the time wins over nearer versions under nearest too.
  ASSERT_OK(Certify(a, T("2026-03-01T00:00:00"), std::nullopt).status());
  req.policy = SelectionPolicy::kNearest;
  req.header = FrameHeader("2026-03-08T12:00:00");
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_EQ(r.kinds[0].method, "certified");
  EXPECT_EQ(r.kinds[0].chosen->version, a.version);
  // Other filter: the flats' series does not match a 'g' frame.
  req.header = FrameHeader("2026-03-08T12:00:00", 30, -10, "g");
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_THAT(r.kinds[0].status, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.kinds[0].trail[0].reason, HasSubstr("filter 'r' differs from frame's 'g'"));
}

TEST_P(StoreConformanceTest, DarkToleranceOnExposureAndTemperature) {
  // Dark series at 30 s / -10 °C, certified forever.
  ASSERT_OK_AND_ASSIGN(MasterVersion d,
                       Put("dark", 1, FrameHeader("2026-03-01T00:00:00", 30.0, -10.0)));
  ASSERT_OK(Certify(d, T("2026-01-01T00:00:00"), std::nullopt).status());
  struct Case {
    double exptime, temp;
    bool match;
    std::string why;
  };
  for (const Case& c : std::vector<Case>{{30.0, -10.0, true, ""},
                                         {30.9, -10.0, true, ""},       // within ±1 s
                                         {29.0, -10.0, true, ""},       // the edge
                                         {31.5, -10.0, false, "exposure 30 differs from frame's 31.5"},
                                         {30.0, -10.4, true, ""},       // within ±0.5 °C
                                         {30.0, -10.6, false, "temperature -10 differs"}}) {
    ASSERT_OK_AND_ASSIGN(SelectionResult r,
                         store_->Select(Request(
                             FrameHeader("2026-03-05T00:00:00", c.exptime, c.temp), {"dark"})));
    if (c.match) {
      ASSERT_OK(r.kinds[0].status) << c.exptime << " " << c.temp;
      EXPECT_EQ(r.kinds[0].chosen->sha256, d.sha256);
    } else {
      EXPECT_THAT(r.kinds[0].status, StatusIs(absl::StatusCode::kFailedPrecondition))
          << c.exptime << " " << c.temp;
      ASSERT_FALSE(r.kinds[0].trail.empty());
      EXPECT_THAT(r.kinds[0].trail[0].reason, HasSubstr(c.why));
    }
  }
  // Two matching series: the closer exposure wins.
  ASSERT_OK_AND_ASSIGN(MasterVersion d31,
                       Put("dark", 2, FrameHeader("2026-03-01T00:00:00", 31.0, -10.0)));
  ASSERT_OK(Certify(d31, T("2026-01-01T00:00:00"), std::nullopt).status());
  ASSERT_OK_AND_ASSIGN(SelectionResult r,
                       store_->Select(Request(FrameHeader("2026-03-05T00:00:00", 30.8), {"dark"})));
  ASSERT_OK(r.kinds[0].status);
  EXPECT_EQ(r.kinds[0].chosen->series_id, d31.series_id);
  ASSERT_OK_AND_ASSIGN(r,
                       store_->Select(Request(FrameHeader("2026-03-05T00:00:00", 30.2), {"dark"})));
  EXPECT_EQ(r.kinds[0].chosen->series_id, d.series_id);
}

TEST_P(StoreConformanceTest, PinnedVersionsOverride) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion b1, Put("bias", 1, h));
  ASSERT_OK_AND_ASSIGN(MasterVersion b2, Put("bias", 2, h));
  ASSERT_OK(Certify(b2, T("2026-01-01T00:00:00"), std::nullopt).status());
  SelectionRequest req = Request(FrameHeader("2026-03-05T00:00:00"), {"bias"});
  req.pinned["bias"].version = 1;
  ASSERT_OK_AND_ASSIGN(SelectionResult r, store_->Select(req));
  ASSERT_OK(r.kinds[0].status);
  EXPECT_EQ(r.kinds[0].method, "pinned");
  EXPECT_EQ(r.kinds[0].chosen_by, SelectionMethod::kPinned);
  EXPECT_EQ(r.kinds[0].chosen->version, 1);
  EXPECT_THAT(r.kinds[0].trail[0].reason, HasSubstr("pinned"));

  req.pinned["bias"] = PinnedVersion{b1.sha256, 0, 0};
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_EQ(r.kinds[0].chosen->sha256, b1.sha256);

  req.pinned["bias"] = PinnedVersion{"", 0, 7};
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_THAT(r.kinds[0].status, StatusIs(absl::StatusCode::kNotFound));
  req.pinned["bias"] = PinnedVersion{std::string(64, 'b'), 0, 0};
  ASSERT_OK_AND_ASSIGN(r, store_->Select(req));
  EXPECT_THAT(r.kinds[0].status, StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace calibd::store::testing
