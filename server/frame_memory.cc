#include "server/frame_memory.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/metrics.h"

namespace calibd::server {

int64_t DefaultFrameMemoryBytes() {
  int64_t limit = 0;
  std::ifstream in("/sys/fs/cgroup/memory.max");
  std::string text;
  if (in && std::getline(in, text)) {
    int64_t v = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v) && v > 0) limit = v;
  }
  if (limit == 0) {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) limit = int64_t{pages} * page;
  }
  if (limit == 0) limit = int64_t{4} << 30;
  return limit / 2;
}

FrameMemory::Lease& FrameMemory::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    Reset();
    memory_ = o.memory_;
    bytes_ = o.bytes_;
    o.memory_ = nullptr;
  }
  return *this;
}

void FrameMemory::Lease::Reset() {
  if (memory_ != nullptr) memory_->Release(bytes_);
  memory_ = nullptr;
  bytes_ = 0;
}

FrameMemory::FrameMemory(int64_t budget_bytes, Metrics* metrics)
    : budget_(budget_bytes > 0 ? budget_bytes : DefaultFrameMemoryBytes()), metrics_(metrics) {
  {
    absl::MutexLock lock(&mu_);
    PublishLocked();
  }
  timer_ = std::thread([this] { TimerLoop(); });
}

FrameMemory::~FrameMemory() {
  std::list<Waiter> cancelled;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    cancelled.swap(waiters_);
  }
  timer_.join();
  for (Waiter& w : cancelled) w.done(absl::CancelledError("the server is stopping"));
}

int64_t FrameMemory::in_use() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

uint64_t FrameMemory::Acquire(int64_t bytes, absl::Time deadline, Done done) {
  if (bytes > budget_) {
    done(absl::ResourceExhaustedError(absl::StrCat(
        "the frame needs ", bytes, " bytes in flight; the server's frame memory is ", budget_,
        " bytes (--frame-memory-bytes)")));
    return 0;
  }
  uint64_t ticket = 0;
  {
    absl::MutexLock lock(&mu_);
    if (waiters_.empty() && in_use_ + bytes <= budget_) {
      in_use_ += bytes;
      PublishLocked();
    } else {
      ticket = next_ticket_++;
      waiters_.push_back(Waiter{ticket, bytes, deadline, std::move(done)});
      changed_ = true;
      PublishLocked();
      return ticket;
    }
  }
  done(absl::OkStatus());
  return 0;
}

void FrameMemory::Cancel(uint64_t ticket) {
  if (ticket == 0) return;
  std::list<Waiter> out;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->ticket == ticket) {
        out.splice(out.end(), waiters_, it);
        break;
      }
    }
    std::list<Waiter> granted;
    GrantLocked(&granted);  // the head may have changed
    PublishLocked();
    for (Waiter& w : out) w.bytes = -1;  // marks the cancelled one
    out.splice(out.end(), granted);
  }
  for (Waiter& w : out) {
    w.done(w.bytes < 0 ? absl::CancelledError("cancelled") : absl::OkStatus());
  }
}

void FrameMemory::Release(int64_t bytes) {
  std::list<Waiter> granted;
  {
    absl::MutexLock lock(&mu_);
    in_use_ -= bytes;
    GrantLocked(&granted);
    PublishLocked();
  }
  for (Waiter& w : granted) w.done(absl::OkStatus());
}

void FrameMemory::GrantLocked(std::list<Waiter>* out) {
  while (!waiters_.empty() && in_use_ + waiters_.front().bytes <= budget_) {
    in_use_ += waiters_.front().bytes;
    out->splice(out->end(), waiters_, waiters_.begin());
  }
}

void FrameMemory::PublishLocked() {
  if (metrics_ == nullptr) return;
  int64_t waiting = 0;
  for (const Waiter& w : waiters_) waiting += w.bytes;
  metrics_->SetFrameMemory(double(budget_), double(in_use_), double(waiting));
}

void FrameMemory::TimerLoop() {
  for (;;) {
    std::list<Waiter> expired;
    std::list<Waiter> granted;
    {
      absl::MutexLock lock(&mu_);
      absl::Time next = absl::InfiniteFuture();
      for (const Waiter& w : waiters_) next = std::min(next, w.deadline);
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](FrameMemory* m) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                  return m->stop_ || m->changed_;
                                },
                                this),
                            next);
      if (stop_) return;
      changed_ = false;
      const absl::Time now = absl::Now();
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        auto cur = it++;
        if (cur->deadline <= now) expired.splice(expired.end(), waiters_, cur);
      }
      if (!expired.empty()) {
        GrantLocked(&granted);  // an expired head may have blocked smaller requests
        PublishLocked();
      }
    }
    for (Waiter& w : expired) {
      if (metrics_ != nullptr) metrics_->FrameMemoryRefused();
      w.done(absl::ResourceExhaustedError(absl::StrCat(
          "no frame memory became free before the call's deadline (", w.bytes,
          " bytes wanted; --frame-memory-bytes is ", budget_, "); retry later or with fewer "
          "frames in flight")));
    }
    for (Waiter& w : granted) w.done(absl::OkStatus());
  }
}

}  // namespace calibd::server
