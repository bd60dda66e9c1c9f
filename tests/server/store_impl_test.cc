// StoreImpl over a real embedded store: the server checks only the transport of an upload
// (byte count → INVALID_ARGUMENT, sha256 in transit → DATA_LOSS) and the store the content (a
// NaN flagged in DQ accepted, unflagged refused, a damaged CHECKSUM DATA_LOSS); GetMaster's
// "certified at t" is the pure selection; History pages with each page's own audit entries.
#include <fstream>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/fits/fits.h"
#include "core/hash/sha256.h"
#include "core/status/status_matchers.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend.h"
#include "server/store_impl.h"
#include "tests/store/store_test_util.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;
namespace st = ::calibd::store;

class StoreImplTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<st::CalibrationStore> s,
                         st::OpenStore(dir_.path() + "/store"));
    backend_.store.Set(std::shared_ptr<st::CalibrationStore>(std::move(s)));
    ASSERT_OK(impl_.PutDetector(st::testing::TestSpec(), "alice").status());
  }

  // Writes `f` as FITS and fills the transport fields as the PutMaster reactor would.
  PutMasterInput Upload(const CalibratedFrame& f, const std::string& name) {
    const std::string path = dir_.File(name);
    fits::WriteOptions wo;
    EXPECT_OK(fits::WriteCalibratedFrame(path, f, wo));
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    PutMasterInput in_;
    in_.detector = st::testing::kDetector;
    in_.kind = "bias";
    in_.configuration = {{"readout_mode", "fast"}, {"binning", "1x1"}, {"gain_setting", "high"}};
    in_.spooled_path = path;
    in_.declared_bytes = in_.received_bytes = static_cast<int64_t>(in.tellg());
    in_.received_sha256 = in_.client_sha256 = *hash::Sha256File(path);
    in_.actor = "alice";
    return in_;
  }

  calibd::testing::TempDir dir_;
  Backend backend_;
  StoreImpl impl_{&backend_};
};

TEST_F(StoreImplTest, TransportIsTheServersContentTheStores) {
  CalibratedFrame flagged = st::testing::MakeMaster(1);
  flagged.data.data()[7] = std::numeric_limits<float>::quiet_NaN();
  flagged.dq.data()[7] = 2;
  ASSERT_OK_AND_ASSIGN(st::MasterVersion v, impl_.PutMaster(Upload(flagged, "flagged.fits")));
  EXPECT_TRUE(v.created);

  CalibratedFrame unflagged = st::testing::MakeMaster(2);
  unflagged.data.data()[9] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_EQ(unflagged.dq.data()[9], 0);
  EXPECT_THAT(impl_.PutMaster(Upload(unflagged, "unflagged.fits")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not flagged in DQ")));

  PutMasterInput short_upload = Upload(st::testing::MakeMaster(3), "short.fits");
  short_upload.received_bytes -= 1;
  EXPECT_THAT(impl_.PutMaster(short_upload), StatusIs(absl::StatusCode::kInvalidArgument));
  PutMasterInput damaged_in_transit = Upload(st::testing::MakeMaster(3), "transit.fits");
  damaged_in_transit.client_sha256 = std::string(64, 'b');
  EXPECT_THAT(impl_.PutMaster(damaged_in_transit), StatusIs(absl::StatusCode::kDataLoss));

  // Intact in transit, damaged before (CHECKSUM no longer matches): DATA_LOSS from the store.
  PutMasterInput bad_sum = Upload(st::testing::MakeMaster(4), "badsum.fits");
  {
    std::fstream f(bad_sum.spooled_path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(6000);  // in the SCI data
    char c = 0;
    f.get(c);
    f.seekp(6000);
    f.put(static_cast<char>(c ^ 0x01));
  }
  bad_sum.received_sha256 = bad_sum.client_sha256 = *hash::Sha256File(bad_sum.spooled_path);
  EXPECT_THAT(impl_.PutMaster(bad_sum), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(StoreImplTest, CertifiedAtTimeAndPagedHistory) {
  const SeriesKey key{st::testing::kDetector, "bias", {}};
  for (int i = 1; i <= 3; ++i) {
    ASSERT_OK(impl_.PutMaster(Upload(st::testing::MakeMaster(10 + i), absl::StrCat("m", i, ".fits"))).status());
  }
  const st::TimeMicros t0 = *st::ParseTime("2026-03-01"), t1 = *st::ParseTime("2026-03-10");
  ASSERT_OK(impl_.Certify(key, 1, t0, t1, false, "bob", "first").status());
  ASSERT_OK(impl_.Certify(key, 3, t1, std::nullopt, false, "bob", "third").status());
  ASSERT_OK_AND_ASSIGN(st::MasterVersion at, impl_.ResolveMaster(key, 0, t0 + 1));
  EXPECT_EQ(at.version, 1);
  ASSERT_OK_AND_ASSIGN(at, impl_.ResolveMaster(key, 0, t1));
  EXPECT_EQ(at.version, 3);
  EXPECT_THAT(impl_.ResolveMaster(key, 0, t0 - 1), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(st::MasterVersion latest, impl_.ResolveMaster(key, 0, std::nullopt));
  EXPECT_EQ(latest.version, 3);

  st::PageRequest page{2, ""};
  ASSERT_OK_AND_ASSIGN(HistoryResult p1, impl_.History(key, page));
  ASSERT_THAT(p1.versions, SizeIs(2));
  ASSERT_FALSE(p1.next_page_token.empty());
  // Page 1 holds v1 and v2: their puts and v1's certification, nothing about v3.
  for (const st::AuditEntry& e : p1.events) EXPECT_LE(e.version, 2) << e.subject;
  EXPECT_THAT(p1.events, SizeIs(3));
  page.page_token = p1.next_page_token;
  ASSERT_OK_AND_ASSIGN(HistoryResult p2, impl_.History(key, page));
  ASSERT_THAT(p2.versions, SizeIs(1));
  EXPECT_EQ(p2.versions[0].version.version, 3);
  EXPECT_THAT(p2.versions[0].certifications, SizeIs(1));
  EXPECT_TRUE(p2.next_page_token.empty());
  ASSERT_THAT(p2.events, SizeIs(2));  // put v3, certify v3
  EXPECT_EQ(p2.events[1].action, "certify");
  EXPECT_THAT(impl_.History(SeriesKey{st::testing::kDetector, "dark", {}}, {}),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace calibd::server
