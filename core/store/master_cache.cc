#include "core/store/master_cache.h"

#include <utility>

namespace calibd::store {

struct MasterCache::Entry {
  std::shared_ptr<const CalibratedFrame> frame;
  size_t bytes = 0;
  std::list<std::string>::iterator lru;
};

struct MasterCache::Loading {
  bool done = false;
  absl::StatusOr<std::shared_ptr<const CalibratedFrame>> result = absl::UnknownError("loading");
};

MasterCache::MasterCache(size_t budget_bytes) : budget_(budget_bytes) {}
MasterCache::~MasterCache() = default;

size_t MasterCache::FrameBytes(const CalibratedFrame& frame) {
  return static_cast<size_t>(frame.data.num_pixels()) * sizeof(float) +
         static_cast<size_t>(frame.variance.num_pixels()) * sizeof(float) +
         static_cast<size_t>(frame.dq.num_pixels()) * sizeof(uint16_t);
}

std::shared_ptr<const CalibratedFrame> MasterCache::Lookup(const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  auto it = map_.find(sha256);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second->lru);
  ++hits_;
  return it->second->frame;
}

absl::StatusOr<std::shared_ptr<const CalibratedFrame>> MasterCache::GetOrLoad(
    const std::string& sha256, const Loader& loader) {
  std::shared_ptr<Loading> loading;
  {
    absl::MutexLock lock(&mu_);
    auto it = map_.find(sha256);
    if (it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second->lru);
      ++hits_;
      return it->second->frame;
    }
    auto lit = loading_.find(sha256);
    if (lit != loading_.end()) {
      // Someone else is loading it: wait for their result.
      std::shared_ptr<Loading> other = lit->second;
      mu_.Await(absl::Condition(
          +[](Loading* l) { return l->done; }, other.get()));
      ++hits_;
      return other->result;
    }
    ++misses_;
    loading = std::make_shared<Loading>();
    loading_[sha256] = loading;
  }
  absl::StatusOr<CalibratedFrame> loaded = loader();
  absl::MutexLock lock(&mu_);
  loading_.erase(sha256);
  if (!loaded.ok()) {
    loading->result = loaded.status();
  } else {
    auto frame = std::make_shared<const CalibratedFrame>(*std::move(loaded));
    loading->result = frame;
    const size_t bytes = FrameBytes(*frame);
    if (bytes <= budget_) {
      auto entry = std::make_unique<Entry>();
      entry->frame = frame;
      entry->bytes = bytes;
      lru_.push_front(sha256);
      entry->lru = lru_.begin();
      map_[sha256] = std::move(entry);
      bytes_ += bytes;
      EvictLocked();
    }
  }
  loading->done = true;
  return loading->result;
}

void MasterCache::EvictLocked() {
  while (bytes_ > budget_ && !lru_.empty()) {
    const std::string victim = lru_.back();
    lru_.pop_back();
    auto it = map_.find(victim);
    bytes_ -= it->second->bytes;
    map_.erase(it);
  }
}

void MasterCache::Erase(const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  auto it = map_.find(sha256);
  if (it == map_.end()) return;
  bytes_ -= it->second->bytes;
  lru_.erase(it->second->lru);
  map_.erase(it);
}

void MasterCache::Clear() {
  absl::MutexLock lock(&mu_);
  map_.clear();
  lru_.clear();
  bytes_ = 0;
}

size_t MasterCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}
int64_t MasterCache::entries() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(map_.size());
}
int64_t MasterCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}
int64_t MasterCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace calibd::store
