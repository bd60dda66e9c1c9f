// Health: readiness follows the store's ping (checked on the reporter's thread), liveness
// stays SERVING, calibd_store_up says so, and --health-listen serves only grpc.health.v1.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "calibd/v1/store.grpc.pb.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "server/health.h"
#include "server/metrics.h"
#include "server/server.h"
#include "core/store/forwarding_store.h"
#include "tests/testing/grpc_matchers.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::GrpcIs;
using Serving = grpc::health::v1::HealthCheckResponse;

// A store whose Ping fails while `down` is set.
class FlakyPingStore final : public store::ForwardingStore {
 public:
  FlakyPingStore(std::unique_ptr<store::CalibrationStore> inner, std::atomic<bool>* down)
      : store::ForwardingStore(std::move(inner)), down_(down) {}
  absl::Status Ping() override {
    if (down_->load()) return absl::UnavailableError("SELECT 1: connection refused");
    return inner().Ping();
  }

 private:
  std::atomic<bool>* down_;
};

Serving::ServingStatus Check(grpc::health::v1::Health::Stub* health, const std::string& service) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = health->Check(&ctx, req, &resp);
  EXPECT_GRPC_OK(s) << service;
  return resp.status();
}

double StoreUp(Metrics* metrics) {
  for (const prometheus::MetricFamily& f : metrics->registry()->Collect()) {
    if (f.name == "calibd_store_up" && !f.metric.empty()) return f.metric[0].gauge.value;
  }
  return -1;
}

// Polls `service` until it reports `want` or `timeout` passes; the time it took.
double WaitFor(grpc::health::v1::Health::Stub* health, const std::string& service,
               Serving::ServingStatus want, std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < timeout) {
    if (Check(health, service) == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(HealthTest, ReadinessFollowsTheStoreAndLivenessStays) {
  calibd::testing::TempDir dir;
  BufferPool buffers(size_t{16} << 20);
  ServerOptions options;
  options.listen = "";
  options.metrics_listen = "";
  options.health_listen = "127.0.0.1:0";
  options.workers = 1;
  options.store_check_period = absl::Milliseconds(100);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdServer> server,
                       CalibdServer::Start(std::move(options), &buffers));
  ASSERT_GT(server->health_port(), 0);
  auto api_health = grpc::health::v1::Health::NewStub(server->InProcessChannel());
  auto probe_channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->health_port()),
                                           grpc::InsecureChannelCredentials());
  auto probe = grpc::health::v1::Health::NewStub(probe_channel);

  // Before the store opens: not ready, alive.
  for (auto* h : {api_health.get(), probe.get()}) {
    EXPECT_EQ(Check(h, ""), Serving::NOT_SERVING);
    EXPECT_EQ(Check(h, kReadinessService), Serving::NOT_SERVING);
    EXPECT_EQ(Check(h, kLivenessService), Serving::SERVING);
  }
  std::atomic<bool> down{false};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::CalibrationStore> real,
                       store::OpenStore(dir.File("store")));
  server->SetStore(std::make_shared<FlakyPingStore>(std::move(real), &down));
  for (auto* h : {api_health.get(), probe.get()}) {
    EXPECT_EQ(Check(h, ""), Serving::SERVING);
    EXPECT_EQ(Check(h, "calibd.v1.Calibrator"), Serving::SERVING);
  }
  EXPECT_EQ(StoreUp(server->metrics()), 1);

  // The store goes away: readiness drops within a few periods, liveness stays.
  down = true;
  EXPECT_LT(WaitFor(probe.get(), "", Serving::NOT_SERVING, std::chrono::seconds(3)), 1.0);
  EXPECT_EQ(Check(api_health.get(), kReadinessService), Serving::NOT_SERVING);
  EXPECT_EQ(Check(probe.get(), kLivenessService), Serving::SERVING);
  EXPECT_EQ(StoreUp(server->metrics()), 0);
  EXPECT_FALSE(server->ready());

  // And comes back.
  down = false;
  EXPECT_LT(WaitFor(probe.get(), "", Serving::SERVING, std::chrono::seconds(3)), 1.0);
  EXPECT_EQ(Check(api_health.get(), ""), Serving::SERVING);
  EXPECT_EQ(StoreUp(server->metrics()), 1);

  // The health port serves nothing else.
  auto store_via_probe = v1::Store::NewStub(probe_channel);
  grpc::ClientContext ctx;
  v1::ListDetectorsResponse resp;
  EXPECT_THAT(store_via_probe->ListDetectors(&ctx, {}, &resp),
              GrpcIs(grpc::StatusCode::UNIMPLEMENTED));

  server->Shutdown(absl::ZeroDuration());
}

}  // namespace
}  // namespace calibd::server
