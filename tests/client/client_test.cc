// Tests of the client library against an in-process fake server on 127.0.0.1 (a free port):
// the server's request id (trailing metadata `calibd-request-id`) travels with the error.
#include "client/client.h"

#include <memory>
#include <string>

#include "client/convert.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace calibd::client {
namespace {

using ::calibd::testing::StatusIs;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

// Health/Check: service "missing" fails NOT_FOUND with a request id, "anon" fails without one,
// anything else is SERVING.
class FakeHealth final : public grpc::health::v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext* context, const HealthCheckRequest* request,
                     HealthCheckResponse* response) override {
    if (request->service() == "missing") {
      context->AddTrailingMetadata("calibd-request-id", "req-0042");
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such service");
    }
    if (request->service() == "anon") return grpc::Status(grpc::StatusCode::INTERNAL, "boom");
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&health_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    ClientOptions o;
    o.server = "127.0.0.1:" + std::to_string(port);
    o.timeout = absl::Seconds(10);
    ASSERT_OK_AND_ASSIGN(client_, CalibdClient::Connect(o));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  FakeHealth health_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CalibdClient> client_;
};

TEST_F(ClientTest, ErrorsCarryTheServersRequestId) {
  absl::StatusOr<HealthCheckResponse::ServingStatus> r = client_->Health("missing");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound, "no such service"));
  EXPECT_EQ(RequestIdOf(r.status()), "req-0042");
}

TEST_F(ClientTest, NoRequestIdWhenTheServerSentNone) {
  absl::StatusOr<HealthCheckResponse::ServingStatus> r = client_->Health("anon");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(RequestIdOf(r.status()), "");
  ASSERT_OK_AND_ASSIGN(HealthCheckResponse::ServingStatus ok, client_->Health(""));
  EXPECT_EQ(ok, HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace calibd::client
