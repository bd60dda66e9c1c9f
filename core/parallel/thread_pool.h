// ThreadPool: a fixed set of worker threads for pixel work, and ParallelFor over row bands.
//
//   ThreadPool pool(2);
//   pool.ParallelFor(height, /*grain=*/64, [&](int64_t y0, int64_t y1) {
//     for (int64_t y = y0; y < y1; ++y) ProcessRow(y);
//   });
//
// ParallelFor splits [0, n) into chunks of at least `grain` items; the calling thread takes
// chunks too, so it finishes even when every worker is busy (calling it from inside a pool
// task cannot deadlock). Schedule() queues a task without waiting; tasks run in FIFO order.
//
// Thread safety: every method may be called from any thread. The destructor runs every
// queued task, then joins the workers; it must not be called from a worker.
#ifndef CALIBD_CORE_PARALLEL_THREAD_POOL_H_
#define CALIBD_CORE_PARALLEL_THREAD_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace calibd {

class ThreadPool {
 public:
  // `num_threads` workers; 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()); }

  // Queues `task` to run on a worker.
  void Schedule(std::function<void()> task);

  // Tasks queued and not yet started.
  int64_t queue_depth() const;

  // Calls fn(begin, end) over disjoint chunks covering [0, n), on the workers and the calling
  // thread; returns when every chunk is done. At most num_threads() + 1 chunks run at once.
  void ParallelFor(int64_t n, int64_t grain, absl::FunctionRef<void(int64_t, int64_t)> fn);

 private:
  void WorkerLoop();

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

// Runs fn over [0, n) on `pool` when it is non-null, else inline on the calling thread.
void ParallelFor(ThreadPool* pool, int64_t n, int64_t grain,
                 absl::FunctionRef<void(int64_t, int64_t)> fn);

}  // namespace calibd

#endif  // CALIBD_CORE_PARALLEL_THREAD_POOL_H_
