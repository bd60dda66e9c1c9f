// NoiseCache: a byte-bounded LRU of what Calibrate derives from stored noise products — the
// read-noise map, the gain (scalar or map), the bad-pixel DQ map, and each synthesized dark in
// ADU — keyed by content (the product's sha256 plus the parameters), so a night of lights at one
// exposure time synthesizes its dark once. Concurrent requests for one key compute it once:
// the others wait for the first and share its result. Errors are not cached.
//
//   NoiseCache cache(int64_t{512} << 20);
//   absl::StatusOr<std::shared_ptr<const Image<float>>> rn = cache.GetOrCompute<Image<float>>(
//       "rn/" + sha256, [&]() -> absl::StatusOr<Image<float>> { return LoadMap(...); },
//       [](const Image<float>& m) { return m.num_pixels() * int64_t{4}; });
//
// An entry larger than the whole budget is returned but not kept. Entries are immutable and
// shared (a caller may keep one after it was evicted).
//
// Thread safety: every method may be called from any thread; `compute` runs on the calling
// thread without the cache's lock held (only that key's waiters wait).
#ifndef CALIBD_SERVER_NOISE_CACHE_H_
#define CALIBD_SERVER_NOISE_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace calibd::server {

class NoiseCache {
 public:
  struct Stats {
    int64_t hits = 0, misses = 0, bytes = 0, entries = 0;
  };

  explicit NoiseCache(int64_t max_bytes) : max_bytes_(max_bytes) {}

  // The cached value of `key`, else compute() (once, however many callers ask at once), kept
  // with size bytes(value). `hit` (may be null) says whether it was already there.
  template <typename T>
  absl::StatusOr<std::shared_ptr<const T>> GetOrCompute(
      const std::string& key, absl::FunctionRef<absl::StatusOr<T>()> compute,
      absl::FunctionRef<int64_t(const T&)> bytes, bool* hit = nullptr) {
    std::shared_ptr<Slot> slot = Acquire(key);
    absl::MutexLock lock(&slot->mu);
    if (slot->done) {
      Count(true);
      if (hit != nullptr) *hit = true;
      return std::static_pointer_cast<const T>(slot->value);
    }
    Count(false);
    if (hit != nullptr) *hit = false;
    absl::StatusOr<T> v = compute();
    if (!v.ok()) {
      Drop(key, slot);
      return v.status();
    }
    const int64_t size = bytes(*v);
    auto shared = std::make_shared<const T>(*std::move(v));
    slot->value = shared;
    slot->done = true;
    Settle(key, slot, size);
    return shared;
  }

  Stats stats() const;

 private:
  struct Slot {
    absl::Mutex mu;
    bool done = false;  // guarded by mu
    std::shared_ptr<const void> value;
    int64_t bytes = 0;  // guarded by the cache's mu_
  };
  using Lru = std::list<std::pair<std::string, std::shared_ptr<Slot>>>;

  std::shared_ptr<Slot> Acquire(const std::string& key);
  void Count(bool hit);
  void Drop(const std::string& key, const std::shared_ptr<Slot>& slot);
  void Settle(const std::string& key, const std::shared_ptr<Slot>& slot, int64_t bytes);

  const int64_t max_bytes_;
  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  absl::flat_hash_map<std::string, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_NOISE_CACHE_H_
