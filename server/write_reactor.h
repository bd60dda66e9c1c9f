// WriteStreamReactor<Resp>: the state machine of a server-streaming call whose messages are
// made by work on another thread (a blob read, a synthesized dark): one write in flight at a
// time, the next message taken when the previous is on the wire, and Finish once nothing is
// left to send and the work no longer refers to the reactor — or, after the client cancelled
// or stopped reading, as soon as the work has let go. A subclass says what the next message is
// and whether its work is still running; the base owns the flags that every such reactor
// otherwise repeats (write in flight, cancelled, finished, the call's status).
//
//   class BlobReactor final : public WriteStreamReactor<v1::GetMasterResponse> {
//    public:
//     BlobReactor(ServiceEnv* env, StreamStart start)
//         : WriteStreamReactor(std::move(start)), env_(env) {
//       env_->backend->blob_pool->Schedule([this] {
//         ...                         // queue messages under mu_, then Step()
//         EndWork(absl::OkStatus(), [this] { produced_ = true; });  // Finish may follow
//       });
//     }
//     void OnDone() override { delete this; }
//    private:
//     bool NextLocked(v1::GetMasterResponse* out) override { ... pop the queue ... }
//     bool WorkPendingLocked() const override { return !produced_; }
//   };
//
// Thread safety: the hooks run under mu_ (NextLocked, WorkPendingLocked) or outside it
// (OnCancelled, BeforeFinish); Step and EndWork may be called from any thread without mu_.
// gRPC reads the message being written without the lock: the base never touches it while a
// write is in flight.
#ifndef CALIBD_SERVER_WRITE_REACTOR_H_
#define CALIBD_SERVER_WRITE_REACTOR_H_

#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/reactor_base.h"

namespace calibd::server {

template <typename Resp>
class WriteStreamReactor : public grpc::ServerWriteReactor<Resp> {
 public:
  void OnWriteDone(bool ok) final {
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) cancelled_ = true;  // the client stopped reading
    }
    Step();
  }

  void OnCancel() final {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    OnCancelled();
    Step();
  }

 protected:
  explicit WriteStreamReactor(StreamStart start) : start_(std::move(start)) {}

  // The next message to send, written to `out`; false when none is ready (yet, or at all).
  virtual bool NextLocked(Resp* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // True while work on another thread may still queue messages or call into the reactor.
  virtual bool WorkPendingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // After the client cancelled, outside mu_ (e.g. to give up a wait for memory).
  virtual void OnCancelled() {}
  // Just before Finish, outside mu_ (e.g. to give memory back before the client hears).
  virtual void BeforeFinish() {}

  // Writes the next message or finishes, as the state allows; call after any change.
  void Step() ABSL_LOCKS_EXCLUDED(mu_) {
    bool write = false;
    std::optional<absl::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || write_in_flight_) return;
      if (!cancelled_ && NextLocked(&response_)) {
        write_in_flight_ = true;
        write = true;
      } else if (!WorkPendingLocked()) {
        finished_ = true;
        finish = cancelled_ && status_.ok() ? absl::CancelledError("cancelled") : status_;
      }
    }
    if (write) this->StartWrite(&response_);
    if (finish) {
      BeforeFinish();
      this->Finish(start_.Conclude(*finish));
    }
  }

  // Records the call's status (the first error wins); `update` runs under mu_ to mark the work
  // as done in the subclass's own state. Then steps.
  template <typename Update>
  void EndWork(absl::Status status, Update&& update) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (status_.ok()) status_ = std::move(status);
      update();
    }
    Step();
  }

  StreamStart start_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);

 private:
  Resp response_;  // set under mu_, read by gRPC while a write is in flight
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_WRITE_REACTOR_H_
