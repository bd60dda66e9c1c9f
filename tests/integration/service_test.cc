// The operator's side of calibd against the real binary: bearer tokens (--tokens) and the
// Prometheus metrics endpoint.
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/status/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::integration {
namespace {

using ::calibd::testing::CalibdProcess;
using ::calibd::testing::CalibdProcessOptions;
using ::calibd::testing::StatusIs;

absl::Status ListDetectors(Client& client) {
  v1::ListDetectorsRequest req;
  v1::ListDetectorsResponse resp;
  auto ctx = client.Context();
  return FromGrpc(client.store()->ListDetectors(ctx.get(), req, &resp));
}

TEST(TokenTest, MissingWrongAndReadTokensAreRefusedWithExactCodes) {
  calibd::testing::TempDir dir;
  const std::string tokens = dir.File("tokens");
  {
    std::ofstream out(tokens);
    out << "# integration-test tokens\n"
        << "admin-secret-0123 admin alice\n"
        << "read-secret-4567 read bob\n";
  }
  CalibdProcessOptions options;
  options.extra_args = {absl::StrCat("--tokens=", tokens)};
  // Health answers without a token: Kubernetes' gRPC probes cannot send one.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start(options));

  Client none(calibd->address());
  Client wrong(calibd->address(), "not-a-token");
  Client reader(calibd->address(), "read-secret-4567");
  Client admin(calibd->address(), "admin-secret-0123");

  EXPECT_THAT(ListDetectors(none), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(ListDetectors(wrong), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_OK(ListDetectors(reader));
  // Writes need the admin scope.
  EXPECT_THAT(reader.PutDetector(), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(none.PutDetector(), StatusIs(absl::StatusCode::kUnauthenticated));
  ASSERT_OK(admin.SetUpTestDetector());
  EXPECT_THAT(reader.PutMasterBytes("bias", BiasFits()).status(),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(wrong.PutMasterBytes("bias", BiasFits()).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(reader.Certify("bias", 1), StatusIs(absl::StatusCode::kPermissionDenied));
  // A stream without a token ends UNAUTHENTICATED.
  {
    CalibrateCall call(&none);
    call.SendFrame(LightHeader("anonymous"), LightPixels());
    EXPECT_THAT(FromGrpc(call.Finish()), StatusIs(absl::StatusCode::kUnauthenticated));
  }
  // Calibrating is a read: a read token may do it, and the server still serves.
  ExpectStillServing(reader, calibd->address());
  ExpectStillServing(admin, calibd->address());
}

TEST(MetricsTest, RpcsTotalHasMethodAndCodeLabels) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start());
  Client client(calibd->address());
  ASSERT_OK(client.SetUpTestDetector());
  ASSERT_OK(ListDetectors(client));
  ASSERT_OK(ListDetectors(client));
  {
    v1::GetDetectorRequest req;
    req.set_name("nosuch/ccd");
    v1::DetectorSpec spec;
    auto ctx = client.Context();
    ASSERT_THAT(FromGrpc(client.store()->GetDetector(ctx.get(), req, &spec)),
                StatusIs(absl::StatusCode::kNotFound));
  }
  ExpectStillServing(client, calibd->address());  // one OK Calibrate stream, one frame

  // A stream's metrics are recorded when it is done; allow the server a moment.
  std::string text;
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK_AND_ASSIGN(text, ScrapeMetrics(calibd->metrics_port()));
    // The byte counters are added when the stream is done (OnDone), after the RPC is counted.
    if (MetricValue(text, "calibd_rpcs_total", {{"method", "Calibrate"}, {"code", "OK"}}).ok() &&
        MetricValue(text, "calibd_sent_bytes_total", {{"method", "Calibrate"}}).ok()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(text.find("# TYPE calibd_rpcs_total counter"), std::string::npos) << text;
  auto value = [&](const std::string& name,
                   std::vector<std::pair<std::string, std::string>> labels) {
    absl::StatusOr<double> v = MetricValue(text, name, labels);
    return v.ok() ? *v : -1.0;
  };
  EXPECT_EQ(value("calibd_rpcs_total", {{"method", "ListDetectors"}, {"code", "OK"}}), 2.0);
  EXPECT_EQ(value("calibd_rpcs_total", {{"method", "GetDetector"}, {"code", "NOT_FOUND"}}), 1.0);
  EXPECT_EQ(value("calibd_rpcs_total", {{"method", "PutMaster"}, {"code", "OK"}}), 3.0);
  EXPECT_EQ(value("calibd_rpcs_total", {{"method", "Calibrate"}, {"code", "OK"}}), 1.0);
  EXPECT_EQ(value("calibd_frames_calibrated_total", {{"detector", kDetector}}), 1.0);
  // One frame of 72×48 uint16 came in; data + variance (float32) + dq (uint16) of 64×48 went out.
  EXPECT_GE(value("calibd_received_bytes_total", {{"method", "Calibrate"}}),
            double{kRawWidth} * kRawHeight * 2);
  EXPECT_GE(value("calibd_sent_bytes_total", {{"method", "Calibrate"}}),
            double{kWidth} * kHeight * 10);
  EXPECT_GE(value("calibd_rpc_duration_seconds_count", {{"method", "ListDetectors"}}), 2.0);
  // Every stream has ended: nothing in flight.
  EXPECT_EQ(value("calibd_inflight_streams", {{"method", "Calibrate"}}), 0.0);
}

}  // namespace
}  // namespace calibd::integration
