// Backend: what every service implementation shares — the calibration store (opened after the
// server starts, so health can say NOT_SERVING until then), the executors (pixel work; store
// calls; blob downloads: slow work never runs on gRPC's callback threads),
// the process-wide BufferPool, metrics, limits and the spool directory. Owned by CalibdServer
// (server/server.h); the implementation classes hold a const pointer to it.
//
//   Backend backend;
//   backend.pool = &pool;
//   backend.store_pool = &store_pool;
//   backend.blob_pool = &blob_pool;
//   backend.buffers = &buffers;
//   backend.store.Set(std::move(opened_store));
//   ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> s, backend.store.Get());
//
// Thread safety: StoreHandle is safe from any thread; the other members are set before the
// server starts and only read afterwards (ThreadPool, BufferPool and Metrics are thread-safe).
#ifndef CALIBD_SERVER_BACKEND_H_
#define CALIBD_SERVER_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/image/buffer_pool.h"
#include "core/parallel/thread_pool.h"
#include "core/store/store.h"

namespace calibd::server {

class FrameMemory;
class Metrics;

// Limits; exceeding one is RESOURCE_EXHAUSTED.
struct ServerLimits {
  int64_t max_frame_pixels = int64_t{1} << 26;        // 64 Mpixel per raw frame
  int64_t max_stream_bytes = int64_t{1} << 40;        // bytes received on one stream
  int max_concurrent_streams = 64;                    // streaming calls at once
  int64_t max_master_bytes = int64_t{2} << 30;        // one PutMaster upload
  int max_build_inputs = 512;                         // frames in one BuildMaster
  int64_t combine_memory_bytes = int64_t{256} << 20;  // combine's working buffers
  size_t chunk_bytes = size_t{1} << 20;               // outgoing chunk size (≤ 1 MiB)
  // Longest wait for frame memory (capped by the call's deadline), then RESOURCE_EXHAUSTED.
  int64_t frame_memory_wait_ms = 60000;
  // Calibrate's cache of what it derives from noise products (read-noise and gain maps,
  // bad-pixel maps, noise models, synthesized darks in ADU), by content.
  int64_t noise_cache_bytes = int64_t{512} << 20;
};

// The store, once open.
class StoreHandle {
 public:
  // UNAVAILABLE until Set() was called.
  absl::StatusOr<std::shared_ptr<store::CalibrationStore>> Get() const {
    absl::MutexLock lock(&mu_);
    if (store_ == nullptr) {
      return absl::UnavailableError("the calibration store is not open yet; retry shortly");
    }
    return store_;
  }
  void Set(std::shared_ptr<store::CalibrationStore> store) {
    absl::MutexLock lock(&mu_);
    store_ = std::move(store);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<store::CalibrationStore> store_ ABSL_GUARDED_BY(mu_);
};

struct Backend {
  StoreHandle store;
  ThreadPool* pool = nullptr;        // pixel work, frame preparation, builds
  ThreadPool* store_pool = nullptr;  // unary store RPCs and uploads (SQL, spool I/O)
  ThreadPool* blob_pool = nullptr;   // GetMaster downloads (a slow reader holds one thread)
  BufferPool* buffers = nullptr;
  Metrics* metrics = nullptr;  // may be null (tests)
  FrameMemory* frame_memory = nullptr;  // the budget of frames in flight; null = none
  ServerLimits limits;
  // Where uploads and build inputs are spooled ("" = $TMPDIR or /tmp).
  std::string spool_dir;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_BACKEND_H_
