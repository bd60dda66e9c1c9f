// Tests of the calibd-process helper's parts that need no calibd binary: the port picker and
// the hand-encoded health probe, against an in-process gRPC server with gRPC's own health service.
#include "tests/testing/calibd_process.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"

namespace calibd::testing {
namespace {

TEST(PickFreePortTest, GivesABindablePort) {
  ASSERT_OK_AND_ASSIGN(int port, PickFreePort());
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

TEST(CheckHealthTest, NothingListeningIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(int port, PickFreePort());
  EXPECT_THAT(CheckHealth(absl::StrCat("127.0.0.1:", port), absl::Seconds(2)),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST(CheckHealthTest, DecodesServingAndNotServing) {
  grpc::EnableDefaultHealthCheckService(true);
  ASSERT_OK_AND_ASSIGN(int port, PickFreePort());
  const std::string address = absl::StrCat("127.0.0.1:", port);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  grpc::CallbackGenericService unused;  // a server needs at least one service
  builder.RegisterCallbackGenericService(&unused);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  ASSERT_NE(health, nullptr);

  ASSERT_OK_AND_ASSIGN(HealthState whole, CheckHealth(address, absl::Seconds(5)));
  EXPECT_EQ(whole, HealthState::kServing);
  health->SetServingStatus("calibd.v1.Calibrator", false);
  ASSERT_OK_AND_ASSIGN(HealthState down,
                       CheckHealth(address, absl::Seconds(5), "calibd.v1.Calibrator"));
  EXPECT_EQ(down, HealthState::kNotServing);
  health->SetServingStatus("calibd.v1.Calibrator", true);
  ASSERT_OK_AND_ASSIGN(HealthState up,
                       CheckHealth(address, absl::Seconds(5), "calibd.v1.Calibrator"));
  EXPECT_EQ(up, HealthState::kServing);
  // An unknown service name is NOT_FOUND from gRPC's health service.
  EXPECT_THAT(CheckHealth(address, absl::Seconds(5), "no.such.Service"),
              StatusIs(absl::StatusCode::kNotFound));
  server->Shutdown();
}

TEST(CalibdProcessTest, MissingBinaryIsNotFound) {
  CalibdProcessOptions options;
  options.binary = "/nonexistent/calibd";
  EXPECT_THAT(CalibdProcess::Start(options), StatusIs(absl::StatusCode::kNotFound));
}

TEST(CalibdProcessTest, BinaryThatExitsEarlyIsReportedWithItsLog) {
  CalibdProcessOptions options;
  options.binary = "/bin/false";
  options.startup_timeout = absl::Seconds(5);
  EXPECT_THAT(CalibdProcess::Start(options), StatusIs(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace calibd::testing
