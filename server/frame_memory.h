// FrameMemory: the budget for frames in flight (--frame-memory-bytes). A Calibrate stream asks
// for a frame's bytes (its raw buffer and its result planes) before it allocates them; beyond
// the budget the request waits — the stream reads no further meanwhile, so the client is held
// back by gRPC flow control — and is refused with RESOURCE_EXHAUSTED when its deadline passes
// first. Grants are first come, first served. A frame larger than the whole budget is refused
// at once.
//
//   FrameMemory memory(int64_t{1536} << 20, metrics);
//   uint64_t ticket = memory.Acquire(bytes, absl::Now() + absl::Seconds(30),
//                                    [](absl::Status s) { /* OK: allocate; else refuse */ });
//   ...                                          // OnCancel: memory.Cancel(ticket)
//   FrameMemory::Lease lease(&memory, bytes);     // after OK: gives the bytes back when destroyed
//
// `done` runs exactly once, quickly and without locks held: inline from Acquire when the answer
// is immediate, else on the thread that released memory, on the deadline thread, or in Cancel.
//
// Thread safety: every method may be called from any thread.
#ifndef CALIBD_SERVER_FRAME_MEMORY_H_
#define CALIBD_SERVER_FRAME_MEMORY_H_

#include <cstdint>
#include <list>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace calibd::server {

class Metrics;

// The default budget: half of the cgroup's memory limit (/sys/fs/cgroup/memory.max, cgroup v2)
// when there is one, else half of the physical memory.
int64_t DefaultFrameMemoryBytes();

class FrameMemory {
 public:
  using Done = absl::AnyInvocable<void(absl::Status)>;

  // Owns reserved bytes; gives them back when destroyed. Movable.
  class Lease {
   public:
    Lease() = default;
    Lease(FrameMemory* memory, int64_t bytes) : memory_(memory), bytes_(bytes) {}
    Lease(Lease&& o) noexcept : memory_(o.memory_), bytes_(o.bytes_) { o.memory_ = nullptr; }
    Lease& operator=(Lease&& o) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Reset(); }
    void Reset();

   private:
    FrameMemory* memory_ = nullptr;
    int64_t bytes_ = 0;
  };

  FrameMemory(int64_t budget_bytes, Metrics* metrics);
  ~FrameMemory();  // waiting requests are answered CANCELLED
  FrameMemory(const FrameMemory&) = delete;
  FrameMemory& operator=(const FrameMemory&) = delete;

  int64_t budget() const { return budget_; }
  int64_t in_use() const;

  // See the header comment; returns a ticket for Cancel (0 when answered at once).
  uint64_t Acquire(int64_t bytes, absl::Time deadline, Done done);
  // Answers a waiting request CANCELLED; no-op when it was answered already.
  void Cancel(uint64_t ticket);
  void Release(int64_t bytes);

 private:
  struct Waiter {
    uint64_t ticket;
    int64_t bytes;
    absl::Time deadline;
    Done done;
  };
  void TimerLoop();
  // Grants from the head of the queue while they fit; moves them to `out`.
  void GrantLocked(std::list<Waiter>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t budget_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  int64_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  std::list<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_FRAME_MEMORY_H_
