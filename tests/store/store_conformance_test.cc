// One conformance suite for both CalibrationStore backends: the embedded store (SQLite + blob
// files in a TempDir) and the shared store (a fresh database on a real PostgreSQL server
// started by this binary). Expected values are closed-form consequences of the inputs
// (version numbers, ranges, which master a frame time falls into), never copied outputs.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/hash/sha256.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/fits/fits.h"
#include "core/status/status_matchers.h"
#include "core/store/master_cache.h"
#include "core/store/store.h"
#include "core/store/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"

namespace calibd::store::testing {
namespace {

using ::calibd::testing::IsOk;
using ::calibd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

TimeMicros T(const std::string& iso) { return *ParseTime(iso); }

class StoreConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(h_, OpenTestStore(GetParam()));
    store_ = h_.store.get();
    ASSERT_OK_AND_ASSIGN(DetectorRecord rec, store_->PutDetector(TestSpec(), "alice"));
    ASSERT_EQ(rec.version, 1);
  }

  // Puts a master of `kind` made from `seed` with the configuration of `header`.
  absl::StatusOr<MasterVersion> Put(const std::string& kind, int seed, const Header& header,
                                    std::optional<TimeMicros> obs_time = std::nullopt) {
    CalibratedFrame f = MakeMaster(seed);
    PutMasterRequest req;
    req.detector = kDetector;
    req.kind = kind;
    req.header = header;
    req.frame = &f;
    req.obs_time = obs_time;
    return store_->PutMaster(req, "alice");
  }

  absl::StatusOr<Certification> Certify(const MasterVersion& v, TimeMicros begin,
                                        std::optional<TimeMicros> end, bool replace = false) {
    CertifyRequest c;
    c.series_id = v.series_id;
    c.version = v.version;
    c.begin = begin;
    c.end = end;
    c.replace = replace;
    c.actor = "bob";
    c.reason = "test";
    return store_->Certify(c);
  }

  SelectionRequest Request(const Header& h, std::vector<std::string> kinds,
                           SelectionPolicy policy = SelectionPolicy::kStrict) {
    SelectionRequest r;
    r.detector = kDetector;
    r.header = h;
    r.kinds = std::move(kinds);
    r.policy = policy;
    return r;
  }

  // Flips one byte of the stored blob (on disk, or in the chunk table).
  void CorruptBlob(const std::string& sha) {
    if (GetParam() == Backend::kEmbedded) {
      const std::string path =
          absl::StrCat(h_.url, "/blobs/", sha.substr(0, 2), "/", sha, ".fits");
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      ASSERT_TRUE(f.is_open()) << path;
      f.seekg(3000);
      char c = 0;
      f.get(c);
      f.seekp(3000);
      f.put(static_cast<char>(c ^ 0x5a));
    } else {
      ASSERT_OK_AND_ASSIGN(calibd::testing::PostgresServer * pg,
                           calibd::testing::SharedPostgresServer());
      ASSERT_OK(pg->ExecSql(h_.database,
                            absl::StrCat("UPDATE blob_chunks SET data = set_byte(data, 3000, "
                                         "(get_byte(data, 3000) # 90)) WHERE sha256 = '",
                                         sha, "' AND idx = 0")));
    }
  }

  StoreHandle h_;
  CalibrationStore* store_ = nullptr;
};

// ---------------------------------------------------------------- versions

TEST_P(StoreConformanceTest, VersionsAreDenseAndPerSeries) {
  const Header fast = FrameHeader("2026-03-01T00:00:00");
  const Header slow = FrameHeader("2026-03-01T00:00:00", 30, -10, "r", "slow");
  std::vector<int64_t> versions;
  int64_t series = 0;
  for (int seed = 1; seed <= 3; ++seed) {
    ASSERT_OK_AND_ASSIGN(MasterVersion v, Put("bias", seed, fast));
    EXPECT_TRUE(v.created);
    versions.push_back(v.version);
    if (series == 0) series = v.series_id;
    EXPECT_EQ(v.series_id, series);
    EXPECT_EQ(v.configuration.at("readout_mode"), "fast");
    EXPECT_EQ(v.width, kMasterWidth);
  }
  EXPECT_THAT(versions, ElementsAre(1, 2, 3));
  ASSERT_OK_AND_ASSIGN(MasterVersion other, Put("bias", 4, slow));
  EXPECT_EQ(other.version, 1);
  EXPECT_NE(other.series_id, series);
  ASSERT_OK_AND_ASSIGN(MasterVersion dark, Put("dark", 5, fast));
  EXPECT_EQ(dark.version, 1);
  // Dark configuration carries exposure and temperature; bias does not.
  EXPECT_EQ(dark.configuration.count("exposure"), 1u);
  EXPECT_EQ(other.configuration.count("exposure"), 0u);

  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> hist, AllHistory(*store_, series));
  ASSERT_THAT(hist, SizeIs(3));
  std::set<std::string> shas;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(hist[i].version, i + 1);
    shas.insert(hist[i].sha256);
  }
  EXPECT_EQ(shas.size(), 3u);
  ASSERT_OK_AND_ASSIGN(MasterVersion latest,
                       store_->GetMaster(kDetector, "bias", hist[0].configuration, 0));
  EXPECT_EQ(latest.version, 3);
  ASSERT_OK_AND_ASSIGN(std::vector<SeriesInfo> series_list, store_->ListSeries({}));
  EXPECT_THAT(series_list, SizeIs(3));
  MasterFilter filter;
  filter.kind = "bias";
  filter.configuration = {{"readout_mode", "slow"}};
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> slow_biases, AllMasters(*store_, filter));
  ASSERT_THAT(slow_biases, SizeIs(1));
  EXPECT_EQ(slow_biases[0].series_id, other.series_id);
}

TEST_P(StoreConformanceTest, IdenticalContentIsIdempotentInItsSeries) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion first, Put("bias", 7, h));
  ASSERT_OK_AND_ASSIGN(MasterVersion again, Put("bias", 7, h));
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.version, first.version);
  EXPECT_EQ(again.series_id, first.series_id);

  // The same bytes from a spooled file: idempotent too, and the client sha256 is checked.
  ASSERT_OK_AND_ASSIGN(std::string blob, store_->MaterializeBlob(first.sha256));
  calibd::testing::TempDir tmp;
  const std::string copy = tmp.File("upload.fits");
  {
    std::ifstream in(blob, std::ios::binary);
    std::ofstream out(copy, std::ios::binary);
    out << in.rdbuf();
  }
  PutMasterRequest req;
  req.detector = kDetector;
  req.kind = "bias";
  req.header = h;
  req.fits_path = copy;
  req.client_sha256 = first.sha256;
  ASSERT_OK_AND_ASSIGN(MasterVersion from_file, store_->PutMaster(req, "carol"));
  EXPECT_FALSE(from_file.created);
  EXPECT_EQ(from_file.version, first.version);
  EXPECT_EQ(from_file.sha256, first.sha256);

  req.client_sha256 = std::string(64, 'a');
  EXPECT_THAT(store_->PutMaster(req, "carol"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sha256 mismatch")));

  // The same content in another series (other readout mode) is version 1 there.
  req.client_sha256.clear();
  req.header = FrameHeader("2026-03-01T00:00:00", 30, -10, "r", "slow");
  ASSERT_OK_AND_ASSIGN(MasterVersion other, store_->PutMaster(req, "carol"));
  EXPECT_TRUE(other.created);
  EXPECT_EQ(other.version, 1);
  EXPECT_NE(other.series_id, first.series_id);
  EXPECT_EQ(other.sha256, first.sha256);
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> all, AllMasters(*store_, {}));
  EXPECT_EQ(std::count_if(all.begin(), all.end(),
                          [&](const MasterVersion& m) { return m.sha256 == first.sha256; }),
            2);
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> hist, AllHistory(*store_, first.series_id));
  EXPECT_THAT(hist, SizeIs(1));
}

TEST_P(StoreConformanceTest, ExpectedVersionConflicts) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion v1, Put("bias", 1, h));
  CalibratedFrame f = MakeMaster(2);
  PutMasterRequest req;
  req.detector = kDetector;
  req.kind = "bias";
  req.header = h;
  req.frame = &f;
  req.expected_version = 1;  // exists with other content
  EXPECT_THAT(store_->PutMaster(req, "alice"), StatusIs(absl::StatusCode::kAlreadyExists));
  req.expected_version = 5;  // the series is at 1
  EXPECT_THAT(store_->PutMaster(req, "alice"), StatusIs(absl::StatusCode::kAborted));
  req.expected_version = 2;
  ASSERT_OK_AND_ASSIGN(MasterVersion v2, store_->PutMaster(req, "alice"));
  EXPECT_EQ(v2.version, 2);
}

TEST_P(StoreConformanceTest, LoadMasterRoundTripsAndCaches) {
  ASSERT_OK_AND_ASSIGN(MasterVersion v, Put("flat", 3, FrameHeader("2026-03-01T00:00:00")));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const CalibratedFrame> a, store_->LoadMaster(v.sha256));
  const CalibratedFrame want = MakeMaster(3);
  ASSERT_EQ(a->width(), want.width());
  ASSERT_EQ(a->height(), want.height());
  for (int64_t i = 0; i < want.data.num_pixels(); ++i) {
    ASSERT_EQ(a->data.data()[i], want.data.data()[i]) << i;
    ASSERT_EQ(a->dq.data()[i], want.dq.data()[i]) << i;
    ASSERT_NEAR(a->variance.data()[i], want.variance.data()[i], 1e-5f * want.variance.data()[i]);
  }
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const CalibratedFrame> b, store_->LoadMaster(v.sha256));
  EXPECT_EQ(a.get(), b.get());  // from the cache
  const MasterCacheStats stats = store_->CacheStats();
  EXPECT_EQ(stats.entries, 1);
  EXPECT_EQ(stats.misses, 1);
  EXPECT_GE(stats.hits, 1);
  EXPECT_EQ(stats.bytes, MasterCache::FrameBytes(*a));

  std::string bytes;
  ASSERT_OK(store_->ReadBlob(v.sha256, 1000, [&](absl::string_view chunk) {
    EXPECT_LE(chunk.size(), 1000u);
    bytes.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  }));
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), v.size_bytes);
  EXPECT_EQ(hash::Sha256Hex(bytes), v.sha256);
}

TEST_P(StoreConformanceTest, CorruptBlobIsDataLossAndNeverServed) {
  ASSERT_OK_AND_ASSIGN(MasterVersion v, Put("bias", 1, FrameHeader("2026-03-01T00:00:00")));
  CorruptBlob(v.sha256);
  EXPECT_THAT(store_->LoadMaster(v.sha256), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(store_->MaterializeBlob(v.sha256), StatusIs(absl::StatusCode::kDataLoss));
  int chunks = 0;
  EXPECT_THAT(store_->ReadBlob(v.sha256, 1 << 20,
                               [&](absl::string_view) {
                                 ++chunks;
                                 return absl::OkStatus();
                               }),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(chunks, 0);
  // Still not served on a second attempt (a failed load is not cached).
  EXPECT_THAT(store_->LoadMaster(v.sha256), StatusIs(absl::StatusCode::kDataLoss));
}

// The embedded store rewrites a damaged blob file when the same bytes are put again; the
// PostgreSQL chunk table is never rewritten, so there the master stays refused (DATA_LOSS).
TEST_P(StoreConformanceTest, PuttingTheSameBytesAgainAfterDamage) {
  ASSERT_OK_AND_ASSIGN(MasterVersion v, Put("bias", 1, FrameHeader("2026-03-01T00:00:00")));
  calibd::testing::TempDir tmp;
  const std::string copy = tmp.File("good.fits");
  {
    ASSERT_OK_AND_ASSIGN(std::string blob, store_->MaterializeBlob(v.sha256));
    std::ifstream in(blob, std::ios::binary);
    std::ofstream out(copy, std::ios::binary);
    out << in.rdbuf();
  }
  CorruptBlob(v.sha256);
  // PostgreSQL: this instance reuses its verified spool copy (materialisations are cached by
  // sha256); a fresh instance downloads again and finds the damage.
  std::unique_ptr<CalibrationStore> fresh;
  if (GetParam() == Backend::kPostgres) {
    ASSERT_OK_AND_ASSIGN(fresh, OpenStore(h_.url));
    ASSERT_OK(store_->MaterializeBlob(v.sha256).status());
  }
  CalibrationStore* reader = fresh ? fresh.get() : store_;
  ASSERT_THAT(reader->MaterializeBlob(v.sha256), StatusIs(absl::StatusCode::kDataLoss));
  PutMasterRequest req;
  req.detector = kDetector;
  req.kind = "bias";
  req.header = FrameHeader("2026-03-01T00:00:00");
  req.fits_path = copy;
  ASSERT_OK_AND_ASSIGN(MasterVersion again, store_->PutMaster(req, "alice"));
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.version, v.version);
  if (GetParam() == Backend::kEmbedded) {
    ASSERT_OK(store_->LoadMaster(v.sha256).status());
  } else {
    EXPECT_THAT(reader->LoadMaster(v.sha256), StatusIs(absl::StatusCode::kDataLoss));
  }
}

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

// ---------------------------------------------------------------- detectors and bad input

TEST_P(StoreConformanceTest, DetectorSpecsAreVersioned) {
  DetectorSpec spec = TestSpec();
  ASSERT_OK_AND_ASSIGN(DetectorRecord same, store_->PutDetector(spec, "alice"));
  EXPECT_EQ(same.version, 1);
  spec.gain = 2.0;
  ASSERT_OK_AND_ASSIGN(DetectorRecord v2, store_->PutDetector(spec, "alice"));
  EXPECT_EQ(v2.version, 2);
  ASSERT_OK_AND_ASSIGN(DetectorRecord old, store_->GetDetector(kDetector, 1));
  EXPECT_EQ(old.spec.gain, 1.5);
  ASSERT_OK_AND_ASSIGN(DetectorRecord latest, store_->GetDetector(kDetector, 0));
  EXPECT_EQ(latest.spec, spec);
  DetectorSpec other = TestSpec();
  other.name = "lfc/chip1";
  ASSERT_OK(store_->PutDetector(other, "alice").status());
  ASSERT_OK_AND_ASSIGN(std::vector<DetectorRecord> all, AllDetectors(*store_));
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].spec.name, "lfc/chip0");
  EXPECT_EQ(all[0].version, 2);
  EXPECT_THAT(store_->GetDetector("lfc/nope", 0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->GetDetector(kDetector, 9), StatusIs(absl::StatusCode::kNotFound));
  DetectorSpec bad = TestSpec();
  bad.gain = 0;
  EXPECT_THAT(store_->PutDetector(bad, "alice"), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = TestSpec();
  bad.name = "nodetector";
  EXPECT_THAT(store_->PutDetector(bad, "alice"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(StoreConformanceTest, BadInputsHaveExactCodes) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  CalibratedFrame f = MakeMaster(1);
  PutMasterRequest req;
  req.detector = "lfc/unknown";
  req.kind = "bias";
  req.header = h;
  req.frame = &f;
  EXPECT_THAT(store_->PutMaster(req, "a"), StatusIs(absl::StatusCode::kNotFound));
  req.detector = kDetector;
  req.kind = "Bias!";
  EXPECT_THAT(store_->PutMaster(req, "a"), StatusIs(absl::StatusCode::kInvalidArgument));
  req.kind = "bias";
  EXPECT_THAT(store_->PutMaster(req, ""), StatusIs(absl::StatusCode::kInvalidArgument));
  // Wrong shape.
  CalibratedFrame small = MakeMaster(1, 7, 5);
  req.frame = &small;
  EXPECT_THAT(store_->PutMaster(req, "a"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("7x5")));
  // A 2x2-binned trimmed master (16x12) is a valid shape.
  CalibratedFrame binned = MakeMaster(1, kMasterWidth / 2, kMasterHeight / 2);
  req.frame = &binned;
  req.header.Set("BINNING", "2x2");
  ASSERT_OK_AND_ASSIGN(MasterVersion binned_v, store_->PutMaster(req, "a"));
  EXPECT_EQ(binned_v.width, kMasterWidth / 2);
  EXPECT_EQ(binned_v.configuration.at("binning"), "2x2");
  req.header = h;
  // Non-finite data.
  CalibratedFrame nan = MakeMaster(1);
  nan.data.data()[5] = std::numeric_limits<float>::quiet_NaN();
  req.frame = &nan;
  EXPECT_THAT(store_->PutMaster(req, "a"), StatusIs(absl::StatusCode::kInvalidArgument));
  // A header without the configuration keys.
  req.frame = &f;
  req.header = Header();
  EXPECT_THAT(store_->PutMaster(req, "a"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("READMODE")));
  // Not FITS.
  calibd::testing::TempDir tmp;
  {
    std::ofstream(tmp.File("junk.fits")) << "this is not FITS";
  }
  req.frame = nullptr;
  req.fits_path = tmp.File("junk.fits");
  req.header = h;
  EXPECT_THAT(store_->PutMaster(req, "a"), StatusIs(absl::StatusCode::kInvalidArgument));
  req.fits_path = tmp.File("missing.fits");
  EXPECT_THAT(store_->PutMaster(req, "a"), StatusIs(absl::StatusCode::kNotFound));
  req.frame = &f;  // both given
  EXPECT_THAT(store_->PutMaster(req, "a"), StatusIs(absl::StatusCode::kInvalidArgument));

  ASSERT_OK_AND_ASSIGN(MasterVersion v, Put("bias", 1, h));
  EXPECT_THAT(Certify(v, T("2026-03-02T00:00:00"), T("2026-03-01T00:00:00")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  MasterVersion ghost = v;
  ghost.version = 42;
  EXPECT_THAT(Certify(ghost, 0, std::nullopt), StatusIs(absl::StatusCode::kNotFound));
  ghost.series_id = 9999;
  EXPECT_THAT(Certify(ghost, 0, std::nullopt), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->History(9999, {}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->GetVersion(v.series_id, 2), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->LoadMaster(std::string(64, 'c')), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->LoadMaster("xyz"), StatusIs(absl::StatusCode::kInvalidArgument));

  SelectionRequest sel = Request(FrameHeader("2026-03-05T00:00:00"), {"bias"});
  sel.detector = "lfc/unknown";
  EXPECT_THAT(store_->Select(sel), StatusIs(absl::StatusCode::kNotFound));
  sel.detector = kDetector;
  sel.kinds.clear();
  EXPECT_THAT(store_->Select(sel), StatusIs(absl::StatusCode::kInvalidArgument));
  sel.kinds = {"bias"};
  sel.header = Header();  // no time
  EXPECT_THAT(store_->Select(sel), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Materialised blobs: embedded — the blob file itself; shared — a verified spool copy reused
// by sha256 and evicted least recently used beyond spool_bytes (the newest always kept).
TEST_P(StoreConformanceTest, MaterialisationsAreReusedAndBounded) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion a, Put("bias", 1, h));
  ASSERT_OK_AND_ASSIGN(MasterVersion b, Put("bias", 2, h));
  StoreOptions tiny;
  tiny.spool_bytes = a.size_bytes + b.size_bytes - 1;  // room for one copy only
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibrationStore> s, OpenStore(h_.url, tiny));
  ASSERT_OK_AND_ASSIGN(std::string pa, s->MaterializeBlob(a.sha256));
  ASSERT_OK_AND_ASSIGN(std::string pa2, s->MaterializeBlob(a.sha256));
  EXPECT_EQ(pa, pa2);
  ASSERT_OK_AND_ASSIGN(std::string pb, s->MaterializeBlob(b.sha256));
  EXPECT_EQ(access(pb.c_str(), R_OK), 0);
  if (GetParam() == Backend::kEmbedded) {
    EXPECT_EQ(access(pa.c_str(), R_OK), 0);  // blobs themselves are never evicted
  } else {
    EXPECT_NE(access(pa.c_str(), R_OK), 0) << "the older copy should have been evicted";
  }
  // Evicted copies come back on demand, verified.
  ASSERT_OK_AND_ASSIGN(pa2, s->MaterializeBlob(a.sha256));
  ASSERT_OK_AND_ASSIGN(std::string sha, hash::Sha256File(pa2));
  EXPECT_EQ(sha, a.sha256);
}

// One content rule (store.h): a non-finite pixel is accepted where DQ flags it, refused where
// DQ is 0; a damaged CHECKSUM is DATA_LOSS. Both input paths (frame, spooled file).
TEST_P(StoreConformanceTest, FlaggedNaNAcceptedUnflaggedRefusedBadChecksumDataLoss) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  CalibratedFrame flagged = MakeMaster(11);
  flagged.data.data()[40] = std::numeric_limits<float>::quiet_NaN();
  flagged.variance.data()[40] = std::numeric_limits<float>::infinity();
  flagged.dq.data()[40] = 1;
  PutMasterRequest req;
  req.detector = kDetector;
  req.kind = "bias";
  req.header = h;
  req.frame = &flagged;
  ASSERT_OK_AND_ASSIGN(MasterVersion v, store_->PutMaster(req, "alice"));
  EXPECT_TRUE(v.created);
  // The same from a FITS file.
  calibd::testing::TempDir tmp;
  CalibratedFrame flagged2 = MakeMaster(12);
  flagged2.data.data()[41] = -std::numeric_limits<float>::infinity();
  flagged2.dq.data()[41] = 4;
  fits::WriteOptions wo;
  ASSERT_OK(fits::WriteCalibratedFrame(tmp.File("flagged.fits"), flagged2, wo));
  req.frame = nullptr;
  req.fits_path = tmp.File("flagged.fits");
  ASSERT_OK_AND_ASSIGN(MasterVersion v2, store_->PutMaster(req, "alice"));
  EXPECT_EQ(v2.version, v.version + 1);
  // Unflagged: refused on both paths, naming the pixel (1-based).
  CalibratedFrame bad = MakeMaster(13);
  bad.data.data()[2 * kMasterWidth + 5] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_EQ(bad.dq.data()[2 * kMasterWidth + 5], 0);
  req.fits_path.clear();
  req.frame = &bad;
  EXPECT_THAT(store_->PutMaster(req, "alice"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(6, 3)")));
  ASSERT_OK(fits::WriteCalibratedFrame(tmp.File("bad.fits"), bad, wo));
  req.frame = nullptr;
  req.fits_path = tmp.File("bad.fits");
  EXPECT_THAT(store_->PutMaster(req, "alice"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not flagged in DQ")));
  // A flipped data byte under a CHECKSUM: DATA_LOSS, and the message names no server path.
  CalibratedFrame good = MakeMaster(14);
  const std::string damaged = tmp.File("damaged.fits");
  ASSERT_OK(fits::WriteCalibratedFrame(damaged, good, wo));
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(5000);
    char c = 0;
    f.get(c);
    f.seekp(5000);
    f.put(static_cast<char>(c ^ 0x01));
  }
  req.fits_path = damaged;
  absl::StatusOr<MasterVersion> r = store_->PutMaster(req, "alice");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(HasSubstr(tmp.path())));
}

// Lists page with opaque tokens: more rows than a page, no repeats, no gaps, a version added
// between pages appears on a later page, and a foreign token is INVALID_ARGUMENT.
TEST_P(StoreConformanceTest, ListsPageWithStableTokens) {
  const Header fast = FrameHeader("2026-03-01T00:00:00");
  const Header slow = FrameHeader("2026-03-01T00:00:00", 30, -10, "r", "slow");
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK(Put("bias", 100 + i, fast).status());
    ASSERT_OK(Put("bias", 200 + i, slow).status());
  }
  PageRequest page{5, ""};
  ASSERT_OK_AND_ASSIGN(Page<MasterVersion> p1, store_->ListMasters({}, page));
  ASSERT_THAT(p1.items, SizeIs(5));
  ASSERT_FALSE(p1.next_page_token.empty());
  // A concurrent insert into the first series (already listed up to v5... or not).
  ASSERT_OK_AND_ASSIGN(MasterVersion late, Put("bias", 300, fast));
  std::vector<std::pair<int64_t, int64_t>> keys;
  for (const MasterVersion& v : p1.items) keys.push_back({v.series_id, v.version});
  page.page_token = p1.next_page_token;
  while (!page.page_token.empty()) {
    ASSERT_OK_AND_ASSIGN(Page<MasterVersion> p, store_->ListMasters({}, page));
    ASSERT_LE(p.items.size(), 5u);
    for (const MasterVersion& v : p.items) keys.push_back({v.series_id, v.version});
    page.page_token = p.next_page_token;
  }
  ASSERT_THAT(keys, SizeIs(13));  // 12 + the late one (its series comes after the token)
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  const std::set<std::pair<int64_t, int64_t>> distinct(keys.begin(), keys.end());
  EXPECT_EQ(distinct.size(), 13u);
  EXPECT_EQ(distinct.count({late.series_id, late.version}), 1u);

  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> hist, AllHistory(*store_, late.series_id, 2));
  ASSERT_THAT(hist, SizeIs(7));
  for (size_t i = 0; i < hist.size(); ++i) EXPECT_EQ(hist[i].version, static_cast<int64_t>(i) + 1);
  MasterFilter slow_only;
  slow_only.configuration = {{"readout_mode", "slow"}};
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> slows, AllMasters(*store_, slow_only, 4));
  EXPECT_THAT(slows, SizeIs(6));

  DetectorSpec other = TestSpec();
  for (const char* name : {"lfc/chip1", "lfc/chip2", "lfc/chip3"}) {
    other.name = name;
    ASSERT_OK(store_->PutDetector(other, "alice").status());
  }
  ASSERT_OK_AND_ASSIGN(std::vector<DetectorRecord> dets, AllDetectors(*store_, 1));
  ASSERT_THAT(dets, SizeIs(4));
  EXPECT_EQ(dets[0].spec.name, kDetector);
  EXPECT_EQ(dets[3].spec.name, "lfc/chip3");

  EXPECT_THAT(store_->History(late.series_id, PageRequest{5, p1.next_page_token}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->ListMasters({}, PageRequest{5, "garbage"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->ListMasters({}, PageRequest{-1, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(std::vector<VersionCount> counts, store_->CountVersions());
  ASSERT_THAT(counts, SizeIs(1));
  EXPECT_EQ(counts[0].detector, kDetector);
  EXPECT_EQ(counts[0].kind, "bias");
  EXPECT_EQ(counts[0].versions, 13);
}

TEST_P(StoreConformanceTest, ReopenKeepsEverythingAndReplicasSeeChanges) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion v1, Put("bias", 1, h));
  // A second instance on the same store (another replica / process).
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibrationStore> replica, OpenStore(h_.url));
  ASSERT_OK_AND_ASSIGN(int64_t counter, replica->ChangeCounter());
  ASSERT_OK(Certify(v1, T("2026-01-01T00:00:00"), std::nullopt).status());
  ASSERT_OK_AND_ASSIGN(int64_t after, replica->WaitForChange(counter, absl::Seconds(10)));
  EXPECT_GT(after, counter);
  ASSERT_OK_AND_ASSIGN(SelectionResult r,
                       replica->Select(Request(FrameHeader("2026-03-05T00:00:00"), {"bias"})));
  ASSERT_OK(r.kinds[0].status);
  EXPECT_EQ(r.kinds[0].chosen->sha256, v1.sha256);
  // A new series created through the first instance is seen by the replica's series cache.
  ASSERT_OK_AND_ASSIGN(MasterVersion g, Put("flat", 2, FrameHeader("2026-03-01T00:00:00", 30,
                                                                   -10, "g")));
  ASSERT_OK(Certify(g, T("2026-01-01T00:00:00"), std::nullopt).status());
  ASSERT_OK_AND_ASSIGN(r, replica->Select(Request(
                              FrameHeader("2026-03-05T00:00:00", 30, -10, "g"), {"flat"})));
  ASSERT_OK(r.kinds[0].status);
  EXPECT_EQ(r.kinds[0].chosen->sha256, g.sha256);

  replica.reset();
  h_.store.reset();
  ASSERT_OK_AND_ASSIGN(h_.store, OpenStore(h_.url));
  store_ = h_.store.get();
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> hist, AllHistory(*store_, v1.series_id));
  ASSERT_THAT(hist, SizeIs(1));
  EXPECT_EQ(hist[0].sha256, v1.sha256);
  ASSERT_OK(store_->LoadMaster(v1.sha256).status());
  ASSERT_OK_AND_ASSIGN(MasterVersion v2, Put("bias", 2, h));
  EXPECT_EQ(v2.version, 2);
}

TEST_P(StoreConformanceTest, ThreadsShareOneStore) {
  const Header h = FrameHeader("2026-03-01T00:00:00");
  ASSERT_OK_AND_ASSIGN(MasterVersion first, Put("bias", 0, h));
  ASSERT_OK(Certify(first, T("2026-01-01T00:00:00"), std::nullopt).status());
  constexpr int kThreads = 4, kPuts = 5;
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        absl::StatusOr<MasterVersion> v = Put("bias", 100 + t * kPuts + i, h);
        if (!v.ok() || !v->created) ++errors;
        absl::StatusOr<SelectionResult> r =
            store_->Select(Request(FrameHeader("2026-03-05T00:00:00"), {"bias"}));
        if (!r.ok() || !r->kinds[0].status.ok()) ++errors;
        if (!store_->LoadMaster(first.sha256).ok()) ++errors;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> hist, AllHistory(*store_, first.series_id));
  ASSERT_THAT(hist, SizeIs(1 + kThreads * kPuts));
  for (size_t i = 0; i < hist.size(); ++i) EXPECT_EQ(hist[i].version, static_cast<int64_t>(i) + 1);
}

TEST_P(StoreConformanceTest, SinkErrorStopsReadBlob) {
  ASSERT_OK_AND_ASSIGN(MasterVersion v, Put("bias", 1, FrameHeader("2026-03-01T00:00:00")));
  int calls = 0;
  EXPECT_THAT(store_->ReadBlob(v.sha256, 1000,
                               [&](absl::string_view) {
                                 ++calls;
                                 return absl::CancelledError("client went away");
                               }),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(store_->ReadBlob(v.sha256, 0, [](absl::string_view) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(StoreConformanceTest, NewerSchemaIsRefused) {
  h_.store.reset();
  store_ = nullptr;
  const std::string bump = "UPDATE schema_version SET version = 99";
  if (GetParam() == Backend::kEmbedded) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((h_.url + "/catalog.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, bump.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  } else {
    ASSERT_OK_AND_ASSIGN(calibd::testing::PostgresServer * pg,
                         calibd::testing::SharedPostgresServer());
    ASSERT_OK(pg->ExecSql(h_.database, bump));
  }
  EXPECT_THAT(OpenStore(h_.url),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 99")));
}

TEST(OpenStoreTest, BadUrls) {
  EXPECT_THAT(OpenStore(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenStore("s3://bucket/store"), StatusIs(absl::StatusCode::kInvalidArgument));
  calibd::testing::TempDir tmp;
  {
    std::ofstream(tmp.File("file")) << "x";
  }
  EXPECT_THAT(OpenStore(tmp.File("file")), StatusIs(absl::StatusCode::kInvalidArgument));
  StoreOptions no_create;
  no_create.create = false;
  EXPECT_THAT(OpenStore(tmp.File("absent"), no_create), StatusIs(absl::StatusCode::kNotFound));
  // Nothing listens on port 1.
  EXPECT_THAT(OpenStore("postgresql://calibd@127.0.0.1:1/x?connect_timeout=2"),
              StatusIs(absl::StatusCode::kUnavailable));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformanceTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return BackendName(info.param);
                         });

}  // namespace
}  // namespace calibd::store::testing
