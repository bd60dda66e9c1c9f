// The store conformance suite (store_conformance_fixture.h): detector specs, exact codes for
// bad input, materialisations, paged lists, reopening and replicas, threads, schema versions,
// on both backends.
#include "tests/store/store_conformance_fixture.h"

namespace calibd::store::testing {
namespace {

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

}  // namespace
}  // namespace calibd::store::testing
