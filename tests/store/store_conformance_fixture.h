// StoreConformanceTest: the fixture of the conformance suite that both CalibrationStore
// backends pass — the embedded store (SQLite + blob files in a TempDir) and the shared store (a
// fresh database on a real PostgreSQL server started by the binary). Expected values are
// closed-form consequences of the inputs (version numbers, ranges, which master a frame time
// falls into), never copied outputs. The suite is split by subject over
// store_conformance_test.cc (versions, blobs; it instantiates the suite for both backends),
// store_selection_conformance_test.cc and store_catalog_conformance_test.cc.
//
//   TEST_P(StoreConformanceTest, Something) {
//     ASSERT_OK_AND_ASSIGN(MasterVersion v, Put("bias", 1, Header()));
//     ...
//   }
//
// Thread safety: one fixture per test, as gtest makes them.
#ifndef CALIBD_TESTS_STORE_STORE_CONFORMANCE_FIXTURE_H_
#define CALIBD_TESTS_STORE_STORE_CONFORMANCE_FIXTURE_H_

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

using ::calibd::testing::IsOk;
using ::calibd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

inline TimeMicros T(const std::string& iso) { return *ParseTime(iso); }

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

}  // namespace calibd::store::testing

#endif  // CALIBD_TESTS_STORE_STORE_CONFORMANCE_FIXTURE_H_
