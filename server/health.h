// Health: calibd's grpc.health.v1 statuses, kept the same on every server that serves them
// (the API port and, with --health-listen, a plaintext port of its own for kubelet probes when
// the API port uses TLS), and the store probe behind readiness.
//
// Service names (HealthCheckRequest.service):
//   ""  and "readiness" — readiness: SERVING while the store is open, its last Ping succeeded and
//        the server is not draining; NOT_SERVING otherwise. Also under each API service's name
//        ("calibd.v1.Calibrator", "calibd.v1.Store", "calibd.v1.Builder").
//   "liveness" — SERVING from start-up until shutdown, whatever the store does (restarting the
//        process does not bring a database back).
// The store is pinged every `period` on the reporter's own thread (never a gRPC thread); a
// failed ping flips readiness within one period, a good one restores it within one period; the
// gauge calibd_store_up follows.
//
//   HealthReporter health(metrics);
//   health.AddServer(api_server.get());
//   health.AddServer(health_server.get());
//   health.StartStoreProbe([&] { return store->Ping(); }, absl::Seconds(2));
//   ...
//   health.SetDraining();            // readiness and liveness NOT_SERVING; probe stopped
//
// Thread safety: every method may be called from any thread.
#ifndef CALIBD_SERVER_HEALTH_H_
#define CALIBD_SERVER_HEALTH_H_

#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace calibd::server {

class Metrics;

inline constexpr char kReadinessService[] = "readiness";
inline constexpr char kLivenessService[] = "liveness";

class HealthReporter {
 public:
  explicit HealthReporter(Metrics* metrics) : metrics_(metrics) {}
  ~HealthReporter();  // stops the probe
  HealthReporter(const HealthReporter&) = delete;
  HealthReporter& operator=(const HealthReporter&) = delete;

  // Serves the current statuses on `server`'s default health service too.
  void AddServer(grpc::Server* server);
  // The store is open (ready unless a ping fails).
  void SetStoreOpen();
  // Pings with `ping` every `period` from now on.
  void StartStoreProbe(std::function<absl::Status()> ping, absl::Duration period);
  // Shutting down: everything NOT_SERVING from now on.
  void SetDraining();
  bool ready() const;

 private:
  void ProbeLoop(std::function<absl::Status()> ping, absl::Duration period);
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  std::vector<grpc::Server*> servers_ ABSL_GUARDED_BY(mu_);
  bool store_open_ ABSL_GUARDED_BY(mu_) = false;
  bool store_up_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread probe_;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_HEALTH_H_
