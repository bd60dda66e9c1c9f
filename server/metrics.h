// Metrics: calibd's Prometheus metric families, built once at start-up and labelled per
// method, code, detector, kind, outcome (the pattern of triton's src/metrics.cc). Served by a
// prometheus::Exposer on --metrics-listen at /metrics (see server.h); tests may construct a
// Metrics without an exposer and read the registry.
//
//   auto metrics = std::make_unique<Metrics>();
//   metrics->RecordRpc("Calibrate", grpc::StatusCode::OK, 0.25);
//   metrics->FrameCalibrated("lfc/chip0");
//
// Names: calibd_rpcs_total{method,code}, calibd_rpc_duration_seconds{method},
// calibd_received_bytes_total{method}, calibd_sent_bytes_total{method},
// calibd_frames_calibrated_total{detector}, calibd_selections_total{outcome} (certified,
// pinned, fallback, miss), calibd_cache_requests_total{cache,result} (hit/miss),
// calibd_cache_bytes{cache}, calibd_store_versions{detector,kind},
// calibd_master_age_seconds{kind}, calibd_inflight_streams{method}, calibd_queue_depth,
// calibd_store_up (1 while the store answers its health ping), calibd_frame_memory_bytes{state}
// (budget, in_use, waiting), calibd_frame_memory_refusals_total.
//
// Thread safety: every method may be called from any thread (prometheus-cpp metrics are
// thread-safe; the lazily added label sets are guarded by a mutex).
#ifndef CALIBD_SERVER_METRICS_H_
#define CALIBD_SERVER_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace calibd::server {

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  void RecordRpc(const std::string& method, grpc::StatusCode code, double seconds);
  void AddBytesIn(const std::string& method, int64_t bytes);
  void AddBytesOut(const std::string& method, int64_t bytes);
  void FrameCalibrated(const std::string& detector);
  void SelectionOutcome(const std::string& outcome);
  void CacheAccess(const std::string& cache, bool hit);
  void SetCacheBytes(const std::string& cache, double bytes);
  // From a cache's cumulative counters (e.g. the store's decoded-master cache): adds what is
  // new since the last call for this cache, and sets its bytes.
  void ObserveCacheCounters(const std::string& cache, int64_t hits, int64_t misses, double bytes);
  void SetStoreVersions(const std::string& detector, const std::string& kind, double count);
  void MasterAge(const std::string& kind, double seconds);
  void StreamStarted(const std::string& method);
  void StreamEnded(const std::string& method);
  void SetQueueDepth(double depth);
  void SetStoreUp(bool up);
  void SetFrameMemory(double budget, double in_use, double waiting);
  void FrameMemoryRefused();

 private:
  template <typename T>
  T& Get(prometheus::Family<T>& family, const prometheus::Labels& labels);
  prometheus::Histogram& GetHistogram(prometheus::Family<prometheus::Histogram>& family,
                                      const prometheus::Labels& labels,
                                      const prometheus::Histogram::BucketBoundaries& buckets);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;
  prometheus::Family<prometheus::Counter>& bytes_in_;
  prometheus::Family<prometheus::Counter>& bytes_out_;
  prometheus::Family<prometheus::Counter>& frames_;
  prometheus::Family<prometheus::Counter>& selections_;
  prometheus::Family<prometheus::Counter>& cache_requests_;
  prometheus::Family<prometheus::Gauge>& cache_bytes_;
  prometheus::Family<prometheus::Gauge>& store_versions_;
  prometheus::Family<prometheus::Histogram>& master_age_;
  prometheus::Family<prometheus::Gauge>& inflight_;
  prometheus::Gauge& queue_depth_;
  prometheus::Gauge& store_up_;
  prometheus::Family<prometheus::Gauge>& frame_memory_;
  prometheus::Counter& frame_memory_refused_;

  std::map<std::string, std::pair<int64_t, int64_t>> last_cache_counters_ ABSL_GUARDED_BY(mu_);
  absl::Mutex mu_;  // Family::Add is thread-safe; this keeps label look-ups cheap and ordered
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_METRICS_H_
