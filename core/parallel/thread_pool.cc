#include "core/parallel/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>


namespace calibd {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) {
    num_threads = std::max(1u, std::thread::hardware_concurrency());
  }
  workers_.reserve(num_threads);
  for (int i = 0; i < num_threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Schedule(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

int64_t ThreadPool::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

void ThreadPool::WorkerLoop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

namespace {

// Shared by the caller and the helpers of one ParallelFor: chunks are claimed with an atomic
// counter, so whoever runs first does the work. The caller waits for the chunks to finish,
// never for the helpers to start: a helper queued behind other work (say, behind another
// ParallelFor caller on a worker) finds nothing left and returns, so nesting cannot deadlock.
struct ForState {
  explicit ForState(absl::FunctionRef<void(int64_t, int64_t)> f) : fn(f) {}
  void Drain() {
    while (true) {
      const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) return;
      fn(begin, std::min(n, begin + chunk));  // fn is alive: the caller waits for this chunk
      absl::MutexLock lock(&mu);
      ++chunks_done;
    }
  }
  void WaitAll() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](ForState* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) { return s->chunks_done == s->chunks; },
        this));
  }

  std::atomic<int64_t> next{0};
  int64_t n = 0;
  int64_t chunk = 1;
  int64_t chunks = 0;
  absl::FunctionRef<void(int64_t, int64_t)> fn;
  absl::Mutex mu;
  int64_t chunks_done ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_parallel = num_threads() + 1;
  // Aim for ~4 chunks per participant for balance, never below the grain.
  const int64_t chunk = std::max(grain, (n + 4 * max_parallel - 1) / (4 * max_parallel));
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks == 1) {
    fn(0, n);
    return;
  }
  auto state = std::make_shared<ForState>(fn);
  state->n = n;
  state->chunk = chunk;
  state->chunks = chunks;
  const int helpers = static_cast<int>(std::min<int64_t>(num_threads(), chunks - 1));
  for (int i = 0; i < helpers; ++i) {
    Schedule([state] { state->Drain(); });
  }
  state->Drain();
  state->WaitAll();
}

void ParallelFor(ThreadPool* pool, int64_t n, int64_t grain,
                 absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (pool == nullptr) {
    if (n > 0) fn(0, n);
    return;
  }
  pool->ParallelFor(n, grain, fn);
}

}  // namespace calibd
