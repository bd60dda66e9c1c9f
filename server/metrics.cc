#include "server/metrics.h"

#include <algorithm>

#include "server/status_util.h"

namespace calibd::server {

namespace {
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  return *b;
}
const prometheus::Histogram::BucketBoundaries& AgeBuckets() {
  // One hour to a year.
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400, 90 * 86400, 365 * 86400};
  return *b;
}
}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      rpcs_(prometheus::BuildCounter()
                .Name("calibd_rpcs_total")
                .Help("RPCs finished, by method and gRPC status code")
                .Register(*registry_)),
      rpc_duration_(prometheus::BuildHistogram()
                        .Name("calibd_rpc_duration_seconds")
                        .Help("RPC latency from start to finish, by method")
                        .Register(*registry_)),
      bytes_in_(prometheus::BuildCounter()
                    .Name("calibd_received_bytes_total")
                    .Help("Payload bytes received (pixels, FITS), by method")
                    .Register(*registry_)),
      bytes_out_(prometheus::BuildCounter()
                     .Name("calibd_sent_bytes_total")
                     .Help("Payload bytes sent (planes, FITS), by method")
                     .Register(*registry_)),
      frames_(prometheus::BuildCounter()
                  .Name("calibd_frames_calibrated_total")
                  .Help("Frames calibrated successfully, by detector")
                  .Register(*registry_)),
      selections_(prometheus::BuildCounter()
                      .Name("calibd_selections_total")
                      .Help("Master selections per kind: certified, pinned, fallback, miss")
                      .Register(*registry_)),
      cache_requests_(prometheus::BuildCounter()
                          .Name("calibd_cache_requests_total")
                          .Help("Cache look-ups by cache and result (hit, miss)")
                          .Register(*registry_)),
      cache_bytes_(prometheus::BuildGauge()
                       .Name("calibd_cache_bytes")
                       .Help("Bytes held by a cache")
                       .Register(*registry_)),
      store_versions_(prometheus::BuildGauge()
                          .Name("calibd_store_versions")
                          .Help("Master versions stored, by detector and kind")
                          .Register(*registry_)),
      master_age_(prometheus::BuildHistogram()
                      .Name("calibd_master_age_seconds")
                      .Help("Frame time minus the applied master's time, by kind")
                      .Register(*registry_)),
      inflight_(prometheus::BuildGauge()
                    .Name("calibd_inflight_streams")
                    .Help("Streaming calls in progress, by method")
                    .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("calibd_queue_depth")
                       .Help("Pixel-work tasks queued on the worker pool")
                       .Register(*registry_)
                       .Add({})),
      store_up_(prometheus::BuildGauge()
                    .Name("calibd_store_up")
                    .Help("1 when the store's last health ping succeeded, else 0")
                    .Register(*registry_)
                    .Add({})),
      frame_memory_(prometheus::BuildGauge()
                        .Name("calibd_frame_memory_bytes")
                        .Help("Frame memory: budget (--frame-memory-bytes), in_use, waiting")
                        .Register(*registry_)),
      frame_memory_refused_(prometheus::BuildCounter()
                                .Name("calibd_frame_memory_refusals_total")
                                .Help("Streams refused (RESOURCE_EXHAUSTED) for want of frame memory")
                                .Register(*registry_)
                                .Add({})) {}

template <typename T>
T& Metrics::Get(prometheus::Family<T>& family, const prometheus::Labels& labels) {
  absl::MutexLock lock(&mu_);
  return family.Add(labels);  // returns the existing metric for known labels
}

prometheus::Histogram& Metrics::GetHistogram(
    prometheus::Family<prometheus::Histogram>& family, const prometheus::Labels& labels,
    const prometheus::Histogram::BucketBoundaries& buckets) {
  absl::MutexLock lock(&mu_);
  return family.Add(labels, buckets);
}

void Metrics::RecordRpc(const std::string& method, grpc::StatusCode code, double seconds) {
  Get(rpcs_, {{"method", method}, {"code", StatusCodeName(code)}}).Increment();
  GetHistogram(rpc_duration_, {{"method", method}}, LatencyBuckets()).Observe(seconds);
}
void Metrics::AddBytesIn(const std::string& method, int64_t bytes) {
  if (bytes > 0) Get(bytes_in_, {{"method", method}}).Increment(double(bytes));
}
void Metrics::AddBytesOut(const std::string& method, int64_t bytes) {
  if (bytes > 0) Get(bytes_out_, {{"method", method}}).Increment(double(bytes));
}
void Metrics::FrameCalibrated(const std::string& detector) {
  Get(frames_, {{"detector", detector}}).Increment();
}
void Metrics::SelectionOutcome(const std::string& outcome) {
  Get(selections_, {{"outcome", outcome}}).Increment();
}
void Metrics::CacheAccess(const std::string& cache, bool hit) {
  Get(cache_requests_, {{"cache", cache}, {"result", hit ? "hit" : "miss"}}).Increment();
}
void Metrics::SetCacheBytes(const std::string& cache, double bytes) {
  Get(cache_bytes_, {{"cache", cache}}).Set(bytes);
}
void Metrics::ObserveCacheCounters(const std::string& cache, int64_t hits, int64_t misses,
                                   double bytes) {
  int64_t new_hits, new_misses;
  {
    absl::MutexLock lock(&mu_);
    auto& last = last_cache_counters_[cache];
    new_hits = std::max<int64_t>(0, hits - last.first);
    new_misses = std::max<int64_t>(0, misses - last.second);
    last = {std::max(hits, last.first), std::max(misses, last.second)};
  }
  if (new_hits > 0) {
    Get(cache_requests_, {{"cache", cache}, {"result", "hit"}}).Increment(double(new_hits));
  }
  if (new_misses > 0) {
    Get(cache_requests_, {{"cache", cache}, {"result", "miss"}}).Increment(double(new_misses));
  }
  SetCacheBytes(cache, bytes);
}

void Metrics::SetStoreVersions(const std::string& detector, const std::string& kind,
                               double count) {
  Get(store_versions_, {{"detector", detector}, {"kind", kind}}).Set(count);
}
void Metrics::MasterAge(const std::string& kind, double seconds) {
  GetHistogram(master_age_, {{"kind", kind}}, AgeBuckets()).Observe(seconds);
}
void Metrics::StreamStarted(const std::string& method) {
  Get(inflight_, {{"method", method}}).Increment();
}
void Metrics::StreamEnded(const std::string& method) {
  Get(inflight_, {{"method", method}}).Decrement();
}
void Metrics::SetQueueDepth(double depth) { queue_depth_.Set(depth); }
void Metrics::SetStoreUp(bool up) { store_up_.Set(up ? 1 : 0); }
void Metrics::SetFrameMemory(double budget, double in_use, double waiting) {
  Get(frame_memory_, {{"state", "budget"}}).Set(budget);
  Get(frame_memory_, {{"state", "in_use"}}).Set(in_use);
  Get(frame_memory_, {{"state", "waiting"}}).Set(waiting);
}
void Metrics::FrameMemoryRefused() { frame_memory_refused_.Increment(); }

}  // namespace calibd::server
