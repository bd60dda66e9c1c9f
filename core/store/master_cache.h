// MasterCache: decoded masters (CalibratedFrame) keyed by the sha256 of their blob, within a
// byte budget, least recently used evicted first. Versions are immutable, so an entry is
// never stale; only "which version is selected" has to be read from the catalog.
//
//   MasterCache cache(/*budget_bytes=*/size_t{4} << 30);
//   ASSIGN_OR_RETURN(std::shared_ptr<const CalibratedFrame> bias,
//                    cache.GetOrLoad(sha, [&]() { return LoadAndVerify(sha); }));
//
// Concurrent GetOrLoad calls for one key run the loader once; the others wait for it and
// share the result (a failed load is not cached: the next call tries again). An entry larger
// than the whole budget is returned but not kept. Evicted frames stay alive for as long as a
// caller holds the shared_ptr.
//
// Thread safety: every method may be called from any thread.
#ifndef CALIBD_CORE_STORE_MASTER_CACHE_H_
#define CALIBD_CORE_STORE_MASTER_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/image/frame.h"

namespace calibd::store {

class MasterCache {
 public:
  using Loader = std::function<absl::StatusOr<CalibratedFrame>()>;

  explicit MasterCache(size_t budget_bytes);
  MasterCache(const MasterCache&) = delete;
  MasterCache& operator=(const MasterCache&) = delete;
  ~MasterCache();

  absl::StatusOr<std::shared_ptr<const CalibratedFrame>> GetOrLoad(const std::string& sha256,
                                                                   const Loader& loader);
  // nullptr when absent.
  std::shared_ptr<const CalibratedFrame> Lookup(const std::string& sha256);
  void Erase(const std::string& sha256);
  void Clear();

  // Pixel bytes of a frame (data + variance + dq), what the budget counts.
  static size_t FrameBytes(const CalibratedFrame& frame);

  size_t budget_bytes() const { return budget_; }
  size_t bytes() const;
  int64_t entries() const;
  int64_t hits() const;
  int64_t misses() const;

 private:
  struct Entry;
  struct Loading;
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t budget_;
  mutable absl::Mutex mu_;
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> map_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Loading>> loading_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_MASTER_CACHE_H_
