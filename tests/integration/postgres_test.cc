// Two calibd processes on one real PostgreSQL store (started by the test): what is put and
// certified through one is selected and used by the other at once, with no restart and no
// waiting — the deployment of deploy/calibd.yaml (replicas sharing PostgreSQL) in miniature.
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

#include "core/status/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/temp_dir.h"

namespace calibd::integration {
namespace {

using ::calibd::testing::CalibdProcess;
using ::calibd::testing::CalibdProcessOptions;
using ::calibd::testing::PostgresServer;

const v1::AppliedMaster* Applied(const v1::ResultHeader& h, const std::string& kind) {
  for (const v1::AppliedMaster& m : h.masters()) {
    if (m.kind() == kind) return &m;
  }
  return nullptr;
}

TEST(PostgresTest, TwoProcessesShareMasters) {
  ASSERT_OK_AND_ASSIGN(PostgresServer * pg, calibd::testing::SharedPostgresServer());
  ASSERT_OK_AND_ASSIGN(std::string url, pg->CreateDatabase());
  // As deploy/calibd.yaml runs them: the same store URL and the same token file.
  calibd::testing::TempDir dir;
  {
    std::ofstream(dir.File("tokens")) << "replica-admin-token admin operator\n";
  }
  CalibdProcessOptions options;
  options.store = url;
  options.extra_args = {absl::StrCat("--tokens=", dir.File("tokens"))};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> a, CalibdProcess::Start(options));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> b, CalibdProcess::Start(options));
  Client client_a(a->address(), "replica-admin-token");
  Client client_b(b->address(), "replica-admin-token");

  // Through A: the detector and certified bias, dark and flat. B calibrates with them at once.
  ASSERT_OK(client_a.SetUpTestDetector());
  {
    v1::SelectRequest req;
    req.set_detector(kDetector);
    *req.mutable_cards() = LightHeader("select").cards();
    v1::SelectResponse resp;
    auto ctx = client_b.Context();
    ASSERT_OK(FromGrpc(client_b.store()->Select(ctx.get(), req, &resp)));
    int certified = 0;
    for (const v1::AppliedMaster& m : resp.masters()) {
      certified += m.outcome() == v1::SELECTION_OUTCOME_CERTIFIED && m.version() == 1;
    }
    EXPECT_EQ(certified, 3) << resp.DebugString();
  }
  ExpectStillServing(client_b, b->address());  // exact closed-form result through B

  // Through A: a new bias (150 ADU instead of 100), certified over the old one's range. B's very
  // next frame uses it.
  const std::string bias2 = MasterFits("bias", [](int, int) { return 150.0; }, 0.0);
  ASSERT_OK_AND_ASSIGN(v1::PutMasterResponse put, client_a.PutMasterBytes("bias", bias2));
  EXPECT_EQ(put.version().version(), 2);
  {
    v1::CertifyRequest req;
    req.set_detector(kDetector);
    req.set_kind("bias");
    req.set_version(2);
    req.mutable_begin()->set_seconds(kCertifyBegin);
    req.set_replace(true);
    req.set_reason("newer bias");
    v1::CertifyResponse resp;
    auto ctx = client_a.Context();
    ASSERT_OK(FromGrpc(client_a.store()->Certify(ctx.get(), req, &resp)));
  }
  CalibrateCall call(&client_b);
  ASSERT_TRUE(call.SendFrame(LightHeader("after-recertify"), LightPixels()));
  FrameResult r = call.ReadResult();
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.header.status().code(), 0) << r.header.status().message();
  const v1::AppliedMaster* bias = Applied(r.header, "bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->version(), 2);
  EXPECT_EQ(bias->sha256(), put.version().sha256());
  EXPECT_EQ(bias->outcome(), v1::SELECTION_OUTCOME_CERTIFIED);
  // Column 0 (flat 1.5): raw 4105 − overscan 1000 = 3105; minus bias 150 and dark 5, / 1.5.
  ASSERT_EQ(r.data.size(), static_cast<size_t>(kWidth) * kHeight);
  EXPECT_NEAR(r.data[0], (3105.0 - 150.0 - 5.0) / 1.5, 1e-2);
  // Column 1 (flat 0.5): raw 2105 − overscan 1000 = 1105; minus bias 150 and dark 5, / 0.5.
  EXPECT_NEAR(r.data[1], (1105.0 - 150.0 - 5.0) / 0.5, 1e-2);
  EXPECT_OK(FromGrpc(call.Finish()));

  // And the other way round: a detector put through B is known to A at once.
  ASSERT_OK(client_b.PutDetector("itest/second", kRawWidth, kRawHeight, kOverscan));
  {
    v1::GetDetectorRequest req;
    req.set_name("itest/second");
    v1::DetectorSpec spec;
    auto ctx = client_a.Context();
    ASSERT_OK(FromGrpc(client_a.store()->GetDetector(ctx.get(), req, &spec)));
    EXPECT_EQ(spec.width(), kRawWidth);
  }
  EXPECT_EQ(*a->Terminate(), 0);
  EXPECT_EQ(*b->Terminate(), 0);
}

}  // namespace
}  // namespace calibd::integration
