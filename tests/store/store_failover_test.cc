// The shared store across a PostgreSQL restart (as in a failover) and an outage: two store
// instances (two replicas) on one database keep working after the server restarts — no call
// fails, on the catalog, blob and LISTEN connections alike; Ping fails fast and says so while
// the server is down; and a put + certify through one instance is selected by the other at once
// and wakes its WaitForChange. Its own binary: it restarts the PostgreSQL server.
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status/status_matchers.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/store_test_util.h"

namespace calibd::store::testing {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TimeMicros T(const std::string& iso) { return *ParseTime(iso); }

class StoreFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(pg_, calibd::testing::SharedPostgresServer());
    ASSERT_OK_AND_ASSIGN(url_, pg_->CreateDatabase());
    ASSERT_OK_AND_ASSIGN(a_, OpenStore(url_));
    ASSERT_OK_AND_ASSIGN(b_, OpenStore(url_));
    ASSERT_OK(a_->PutDetector(TestSpec(), "alice").status());
  }

  absl::StatusOr<MasterVersion> Put(CalibrationStore& s, int seed) {
    CalibratedFrame f = MakeMaster(seed);
    PutMasterRequest req;
    req.detector = kDetector;
    req.kind = "bias";
    req.header = FrameHeader("2026-03-01T00:00:00");
    req.frame = &f;
    return s.PutMaster(req, "alice");
  }

  absl::Status CertifyFrom(CalibrationStore& s, const MasterVersion& v, const std::string& begin) {
    CertifyRequest c;
    c.series_id = v.series_id;
    c.version = v.version;
    c.begin = T(begin);
    c.actor = "bob";
    c.replace = true;
    return s.Certify(c).status();
  }

  SelectionRequest Frame(const std::string& when) {
    SelectionRequest r;
    r.detector = kDetector;
    r.header = FrameHeader(when);
    r.kinds = {"bias"};
    return r;
  }

  calibd::testing::PostgresServer* pg_ = nullptr;
  std::string url_;
  std::unique_ptr<CalibrationStore> a_, b_;
};

TEST_F(StoreFailoverTest, NoCallFailsAfterARestart) {
  ASSERT_OK_AND_ASSIGN(MasterVersion v1, Put(*a_, 1));
  ASSERT_OK(CertifyFrom(*a_, v1, "2026-01-01T00:00:00"));
  // Every connection of both instances in use before the restart.
  for (CalibrationStore* s : {a_.get(), b_.get()}) {
    ASSERT_OK(s->Ping());
    ASSERT_OK(s->Select(Frame("2026-03-05T00:00:00")).status());
    ASSERT_OK(s->MaterializeBlob(v1.sha256).status());
    ASSERT_OK(s->WaitForChange(0, absl::Milliseconds(10)).status());
  }
  ASSERT_OK(pg_->Restart());

  // The first call on each connection after the restart must succeed.
  for (CalibrationStore* s : {a_.get(), b_.get()}) {
    EXPECT_OK(s->Ping()) << s->Describe();
    ASSERT_OK_AND_ASSIGN(SelectionResult r, s->Select(Frame("2026-03-05T00:00:00")));
    ASSERT_OK(r.kinds[0].status);
    EXPECT_EQ(r.kinds[0].chosen->sha256, v1.sha256);
  }
  ASSERT_OK_AND_ASSIGN(int64_t counter, b_->ChangeCounter());
  // A put (blob connection, then the catalog's write transaction) and a certify through B…
  ASSERT_OK_AND_ASSIGN(MasterVersion v2, Put(*b_, 2));
  EXPECT_EQ(v2.version, 2);
  ASSERT_OK(CertifyFrom(*b_, v2, "2026-03-01T00:00:00"));
  // …downloaded by A (its blob connection) and seen by A's selection at once.
  ASSERT_OK(a_->MaterializeBlob(v2.sha256).status());
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const CalibratedFrame> m, a_->LoadMaster(v2.sha256));
  EXPECT_EQ(m->width(), kMasterWidth);
  ASSERT_OK_AND_ASSIGN(SelectionResult r, a_->Select(Frame("2026-03-05T00:00:00")));
  EXPECT_EQ(r.kinds[0].chosen->version, 2);
  // B's LISTEN connection came back too.
  ASSERT_OK_AND_ASSIGN(int64_t after, b_->WaitForChange(counter, absl::Seconds(5)));
  EXPECT_GT(after, counter);
  ASSERT_OK_AND_ASSIGN(std::vector<MasterVersion> all, AllMasters(*a_, {}));
  EXPECT_EQ(all.size(), 2u);
}

TEST_F(StoreFailoverTest, PingFailsFastWhileDownAndRecovers) {
  ASSERT_OK(a_->Ping());
  ASSERT_OK(pg_->Stop());
  const absl::Time start = absl::Now();
  absl::Status down = a_->Ping();
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(down, StatusIs(absl::StatusCode::kUnavailable, "catalog database unavailable"));
  EXPECT_LT(took, absl::Seconds(6)) << took;
  EXPECT_FALSE(InternalDetail(down).empty());
  // Errors of other calls are safe to show a client: no SQL, no URL.
  absl::StatusOr<SelectionResult> sel = a_->Select(Frame("2026-03-05T00:00:00"));
  EXPECT_THAT(sel, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(sel.status().message()),
              Not(::testing::AnyOf(HasSubstr("SELECT"), HasSubstr("postgresql://"),
                                   HasSubstr("127.0.0.1"))));
  ASSERT_OK(pg_->Restart());
  EXPECT_OK(a_->Ping());
  EXPECT_OK(a_->Select(Frame("2026-03-05T00:00:00")).status());
}

TEST_F(StoreFailoverTest, ChangeFeedWakesTheOtherInstance) {
  ASSERT_OK_AND_ASSIGN(int64_t counter, b_->ChangeCounter());
  absl::Time woke;
  absl::StatusOr<int64_t> got;
  std::thread waiter([&] {
    got = b_->WaitForChange(counter, absl::Seconds(20));
    woke = absl::Now();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const absl::Time put = absl::Now();
  ASSERT_OK_AND_ASSIGN(MasterVersion v, Put(*a_, 3));
  waiter.join();
  ASSERT_OK(got.status());
  EXPECT_GT(*got, counter);
  // NOTIFY wakes it at once; the documented bound is the 1 s poll (slack for a loaded host).
  EXPECT_LT(woke - put, absl::Milliseconds(1500));
  // Selected by the other instance at once after the certify.
  ASSERT_OK(CertifyFrom(*a_, v, "2026-01-01T00:00:00"));
  ASSERT_OK_AND_ASSIGN(SelectionResult r, b_->Select(Frame("2026-03-05T00:00:00")));
  ASSERT_OK(r.kinds[0].status);
  EXPECT_EQ(r.kinds[0].chosen->sha256, v.sha256);
}

}  // namespace
}  // namespace calibd::store::testing
