// The store conformance suite (fixture and split: store_conformance_fixture.h): versions and
// blobs, the store's URLs, and the suite's instantiation for both backends.
#include "tests/store/store_conformance_fixture.h"

namespace calibd::store::testing {
namespace {

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
