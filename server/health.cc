#include "server/health.h"

#include <string>

#include "grpcpp/health_check_service_interface.h"
#include "server/log.h"
#include "server/metrics.h"

namespace calibd::server {
namespace {

constexpr const char* kReadinessNames[] = {"", kReadinessService, "calibd.v1.Calibrator",
                                           "calibd.v1.Store", "calibd.v1.Builder"};

}  // namespace

HealthReporter::~HealthReporter() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (probe_.joinable()) probe_.join();
}

void HealthReporter::AddServer(grpc::Server* server) {
  absl::MutexLock lock(&mu_);
  servers_.push_back(server);
  PublishLocked();
}

void HealthReporter::SetStoreOpen() {
  absl::MutexLock lock(&mu_);
  store_open_ = true;
  store_up_ = true;
  PublishLocked();
}

void HealthReporter::SetDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  stop_ = true;
  PublishLocked();
}

bool HealthReporter::ready() const {
  absl::MutexLock lock(&mu_);
  return store_open_ && store_up_ && !draining_;
}

void HealthReporter::PublishLocked() {
  const bool ready = store_open_ && store_up_ && !draining_;
  for (grpc::Server* s : servers_) {
    grpc::HealthCheckServiceInterface* h = s->GetHealthCheckService();
    if (h == nullptr) continue;
    for (const char* name : kReadinessNames) h->SetServingStatus(name, ready);
    h->SetServingStatus(kLivenessService, !draining_);
  }
  if (metrics_ != nullptr) metrics_->SetStoreUp(store_open_ && store_up_);
}

void HealthReporter::StartStoreProbe(std::function<absl::Status()> ping, absl::Duration period) {
  probe_ = std::thread([this, ping = std::move(ping), period] { ProbeLoop(ping, period); });
}

void HealthReporter::ProbeLoop(std::function<absl::Status()> ping, absl::Duration period) {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), period);
      if (stop_) return;
    }
    const absl::Status s = ping();
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    if (s.ok() != store_up_) {
      store_up_ = s.ok();
      LogEvent(s.ok() ? "store_up" : "store_down",
               {{"error", s.ok() ? std::string() : std::string(s.message())}});
      PublishLocked();
    }
  }
}

}  // namespace calibd::server
