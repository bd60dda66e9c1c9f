#include "core/image/buffer_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace calibd {
namespace {

constexpr size_t kAlignment = 64;

// Size classes: small requests round to 64 bytes; large ones to 1/16 of their power of two,
// so a frame of any shape finds a recycled buffer at most ~6 % larger than it needs.
size_t SizeClass(size_t bytes) {
  if (bytes <= 4096) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t p = 1;
  while (p < bytes) p <<= 1;
  const size_t step = p / 16;
  return (bytes + step - 1) / step * step;
}

void* AlignedNew(size_t bytes) {
  void* p = std::aligned_alloc(kAlignment, bytes == 0 ? kAlignment : bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// Fresh pages are faulted in one by one at first touch, which this VM does at 1.3-1.8 GB/s
// (PERFORMANCE.md fact 1; page faults and page clearing were a quarter of calibctl's CPU).
// One MADV_POPULATE_WRITE maps a new pool buffer's pages in a single call, at ~2.6 GB/s
// measured here; pages already resident (memory glibc reuses) cost only the walk. Kernels
// before 5.14 refuse the advice, and the pages are faulted in as before.
constexpr size_t kPopulateBytes = size_t{1} << 20;
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void Populate(void* p, size_t bytes) {
  if (bytes < kPopulateBytes) return;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

}  // namespace

struct BufferPoolState {
  explicit BufferPoolState(size_t max) : max_cached_bytes(max) {}
  ~BufferPoolState() {
    for (auto& [cap, list] : idle) {
      for (void* p : list) std::free(p);
    }
  }
  // Takes `p` back; frees it when the cache is full or the pool is gone.
  void Return(void* p, size_t capacity) {
    {
      absl::MutexLock lock(&mu);
      if (open && cached + capacity <= max_cached_bytes) {
        idle[capacity].push_back(p);
        cached += capacity;
        return;
      }
    }
    std::free(p);
  }

  const size_t max_cached_bytes;
  absl::Mutex mu;
  bool open ABSL_GUARDED_BY(mu) = true;
  std::map<size_t, std::vector<void*>> idle ABSL_GUARDED_BY(mu);
  size_t cached ABSL_GUARDED_BY(mu) = 0;
  int64_t hits ABSL_GUARDED_BY(mu) = 0;
  int64_t misses ABSL_GUARDED_BY(mu) = 0;
};

Buffer Buffer::Allocate(size_t bytes) {
  Buffer b;
  b.capacity_ = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  b.data_ = AlignedNew(b.capacity_);
  b.size_ = bytes;
  return b;
}

Buffer::~Buffer() { Release(); }

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      pool_(std::move(other.pool_)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    pool_ = std::move(other.pool_);
  }
  return *this;
}

void Buffer::Release() {
  if (data_ == nullptr) return;
  if (pool_) {
    pool_->Return(data_, capacity_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
  pool_.reset();
}

BufferPool::BufferPool(size_t max_cached_bytes)
    : state_(std::make_shared<BufferPoolState>(max_cached_bytes)) {}

BufferPool::~BufferPool() {
  std::map<size_t, std::vector<void*>> idle;
  {
    absl::MutexLock lock(&state_->mu);
    state_->open = false;  // buffers still out are freed when they come back
    idle.swap(state_->idle);
    state_->cached = 0;
  }
  for (auto& [cap, list] : idle) {
    for (void* p : list) std::free(p);
  }
}

Buffer BufferPool::Acquire(size_t bytes) {
  const size_t capacity = SizeClass(bytes);
  Buffer b;
  b.size_ = bytes;
  b.capacity_ = capacity;
  b.pool_ = state_;
  {
    absl::MutexLock lock(&state_->mu);
    auto it = state_->idle.find(capacity);
    if (it != state_->idle.end() && !it->second.empty()) {
      b.data_ = it->second.back();
      it->second.pop_back();
      state_->cached -= capacity;
      ++state_->hits;
      return b;
    }
    ++state_->misses;
  }
  b.data_ = AlignedNew(capacity);
  Populate(b.data_, capacity);
  return b;
}

size_t BufferPool::cached_bytes() const {
  absl::MutexLock lock(&state_->mu);
  return state_->cached;
}
int64_t BufferPool::hits() const {
  absl::MutexLock lock(&state_->mu);
  return state_->hits;
}
int64_t BufferPool::misses() const {
  absl::MutexLock lock(&state_->mu);
  return state_->misses;
}

}  // namespace calibd
