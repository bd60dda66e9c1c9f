// The noise-product cache (noise_cache.h).
#include "server/noise_cache.h"

namespace calibd::server {

std::shared_ptr<NoiseCache::Slot> NoiseCache::Acquire(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return lru_.front().second;
  }
  lru_.emplace_front(key, std::make_shared<Slot>());
  index_[key] = lru_.begin();
  return lru_.front().second;
}

void NoiseCache::Count(bool hit) {
  absl::MutexLock lock(&mu_);
  (hit ? hits_ : misses_)++;
}

void NoiseCache::Drop(const std::string& key, const std::shared_ptr<Slot>& slot) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end() || it->second->second != slot) return;
  bytes_ -= slot->bytes;
  lru_.erase(it->second);
  index_.erase(it);
}

void NoiseCache::Settle(const std::string& key, const std::shared_ptr<Slot>& slot,
                        int64_t bytes) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end() || it->second->second != slot) return;  // dropped meanwhile
  slot->bytes = bytes;
  bytes_ += bytes;
  // Evict from the cold end; entries still being computed (bytes 0) cost nothing and stay.
  for (auto e = lru_.end(); bytes_ > max_bytes_ && e != lru_.begin();) {
    --e;
    if (e->second->bytes == 0) continue;
    bytes_ -= e->second->bytes;
    index_.erase(e->first);
    e = lru_.erase(e);
  }
}

NoiseCache::Stats NoiseCache::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.hits = hits_;
  s.misses = misses_;
  s.bytes = bytes_;
  s.entries = static_cast<int64_t>(lru_.size());
  return s;
}

}  // namespace calibd::server
