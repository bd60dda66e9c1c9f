// BufferPool and Buffer: reusable, 64-byte-aligned pixel memory.
//
// First touch of fresh memory is very slow on our VMs (0.3–2.5 GB/s against 33 GB/s for
// reused pages), so frame-sized buffers are recycled instead of freed, and a new one of 1 MiB
// or more has its pages mapped in at once (MADV_POPULATE_WRITE, about twice as fast as
// faulting them in one by one at first touch). A Buffer returns its
// bytes to the pool it came from when destroyed; the pool keeps at most `max_cached_bytes` of
// idle buffers and frees the rest.
//
//   BufferPool pool(/*max_cached_bytes=*/1 << 30);
//   Buffer b = pool.Acquire(4096 * 4096 * sizeof(float));   // contents unspecified
//   float* p = b.as<float>();
//   ...                                                      // ~Buffer gives it back
//
// A Buffer may outlive its pool (the pool's free list is shared and reference-counted).
// Buffer() with no pool is plain aligned heap memory.
//
// Thread safety: BufferPool methods may be called from any thread. A Buffer is a value with
// a single owner (move-only), like std::unique_ptr.
#ifndef CALIBD_CORE_IMAGE_BUFFER_POOL_H_
#define CALIBD_CORE_IMAGE_BUFFER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

namespace calibd {

class BufferPool;
struct BufferPoolState;

class Buffer {
 public:
  Buffer() = default;
  // Plain aligned allocation, not pooled. Throws std::bad_alloc like new.
  static Buffer Allocate(size_t bytes);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T>
  T* as() { return static_cast<T*>(data_); }
  template <typename T>
  const T* as() const { return static_cast<const T*>(data_); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  friend class BufferPool;
  void Release();

  void* data_ = nullptr;
  size_t size_ = 0;      // bytes asked for
  size_t capacity_ = 0;  // bytes allocated
  std::shared_ptr<BufferPoolState> pool_;
};

class BufferPool {
 public:
  explicit BufferPool(size_t max_cached_bytes = size_t{1} << 30);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `bytes` bytes, reused when an idle one of the same size class exists.
  Buffer Acquire(size_t bytes);

  // Idle bytes held for reuse, and counters for metrics.
  size_t cached_bytes() const;
  int64_t hits() const;
  int64_t misses() const;

 private:
  std::shared_ptr<BufferPoolState> state_;
};

}  // namespace calibd

#endif  // CALIBD_CORE_IMAGE_BUFFER_POOL_H_
