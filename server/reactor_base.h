// What every calibd RPC shares, so each service method is a few lines: the per-call record
// (request id, timing, the one status mapping, metrics and the log line), authorisation, the
// concurrency slot of streaming calls, reactors that fail at once, and the runner of unary
// methods on the store executor (never on a gRPC callback thread).
//
//   grpc::ServerReadReactor<v1::PutMasterRequest>* StoreService::PutMaster(
//       grpc::CallbackServerContext* ctx, v1::PutMasterResponse* response) {
//     return OpenStream<FailedRead<v1::PutMasterRequest>>(
//         env_, ctx, "PutMaster", Scope::kAdmin,
//         [&](StreamStart s) { return new PutMasterReactor(env_, ctx, response, std::move(s)); });
//   }
//
//   grpc::ServerUnaryReactor* StoreService::GetDetector(grpc::CallbackServerContext* ctx,
//                                                       const v1::GetDetectorRequest* request,
//                                                       v1::DetectorSpec* response) {
//     const StoreImpl* store = env_->store;
//     return RunUnary(env_, ctx, "GetDetector", Scope::kRead,
//                     [=](const Principal&) -> absl::Status {
//       absl::StatusOr<store::DetectorRecord> r = store->GetDetector(request->name(), 0);
//       if (!r.ok()) return r.status();
//       DetectorRecordToProto(*r, response);
//       return absl::OkStatus();
//     });
//   }
//
// A streaming reactor ends with `Finish(start_.Conclude(status))`: the slot is given back
// before Finish (a client making calls one after another must never be refused because the
// previous reactor is still winding down), the request id goes into the trailing metadata.
//
// Thread safety: a Call and a StreamStart belong to one RPC and are used by one thread at a
// time (their reactor serialises); StreamSlot counts through an atomic in ServiceEnv.
#ifndef CALIBD_SERVER_REACTOR_BASE_H_
#define CALIBD_SERVER_REACTOR_BASE_H_

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "server/auth.h"
#include "server/services.h"

namespace calibd::server {

using Clock = std::chrono::steady_clock;

// One RPC's record: its request id and start time; Conclude maps the final status.
class Call {
 public:
  Call(ServiceEnv* env, grpc::CallbackServerContext* ctx, const char* method);
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  const std::string& request_id() const { return request_id_; }
  const char* method() const { return method_; }
  ServiceEnv* env() const { return env_; }

  // The status as the client gets it (server/status_util.h). Adds the request id to the
  // trailing metadata, records the RPC in metrics and logs it with the full detail. Call once,
  // before the reactor's Finish.
  grpc::Status Conclude(const absl::Status& status);

 private:
  ServiceEnv* const env_;
  grpc::CallbackServerContext* const ctx_;
  const char* const method_;
  const Clock::time_point start_;
  const std::string request_id_;
};

// The caller's principal for `scope` from the call's authorization metadata.
absl::StatusOr<Principal> Authorize(const ServiceEnv* env, const grpc::CallbackServerContext* ctx,
                                    Scope scope);

// A streaming-call slot: RESOURCE_EXHAUSTED when max_concurrent_streams are in progress.
class StreamSlot {
 public:
  StreamSlot(ServiceEnv* env, const char* method);
  ~StreamSlot() { Release(); }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;
  // Gives the slot back (idempotent).
  void Release();
  const absl::Status& status() const { return status_; }

 private:
  ServiceEnv* env_;
  const char* method_;
  bool held_ = false;
  absl::Status status_;
};

// What an admitted streaming call hands its reactor.
struct StreamStart {
  std::unique_ptr<Call> call;
  Principal who;
  std::unique_ptr<StreamSlot> slot;

  // Releases the slot and concludes the call: pass the result to Finish().
  grpc::Status Conclude(const absl::Status& status) {
    slot->Release();
    return call->Conclude(status);
  }
};

// Reactors that finish at once with a status (refused calls).
template <typename Req, typename Resp>
class FailedBidi final : public grpc::ServerBidiReactor<Req, Resp> {
 public:
  using Base = grpc::ServerBidiReactor<Req, Resp>;
  explicit FailedBidi(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};
template <typename Req>
class FailedRead final : public grpc::ServerReadReactor<Req> {
 public:
  using Base = grpc::ServerReadReactor<Req>;
  explicit FailedRead(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};
template <typename Resp>
class FailedWrite final : public grpc::ServerWriteReactor<Resp> {
 public:
  using Base = grpc::ServerWriteReactor<Resp>;
  explicit FailedWrite(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// Admits a streaming call (authorisation, then a slot) and makes its reactor with `make`, or
// returns a `Failed` reactor with the refusal.
template <typename Failed, typename Make>
typename Failed::Base* OpenStream(ServiceEnv* env, grpc::CallbackServerContext* ctx,
                                  const char* method, Scope scope, Make&& make) {
  using Reactor = typename Failed::Base*;
  auto call = std::make_unique<Call>(env, ctx, method);
  absl::StatusOr<Principal> who = Authorize(env, ctx, scope);
  if (!who.ok()) return static_cast<Reactor>(new Failed(call->Conclude(who.status())));
  auto slot = std::make_unique<StreamSlot>(env, method);
  if (!slot->status().ok()) return static_cast<Reactor>(new Failed(call->Conclude(slot->status())));
  return make(StreamStart{std::move(call), *std::move(who), std::move(slot)});
}

// Runs a unary method: authorise, then `body(principal)` (returning absl::Status) on the store
// executor; map, record and finish from there.
template <typename Body>
grpc::ServerUnaryReactor* RunUnary(ServiceEnv* env, grpc::CallbackServerContext* ctx,
                                   const char* method, Scope scope, Body&& body) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto call = std::make_shared<Call>(env, ctx, method);
  absl::StatusOr<Principal> who = Authorize(env, ctx, scope);
  if (!who.ok()) {
    reactor->Finish(call->Conclude(who.status()));
    return reactor;
  }
  env->backend->store_pool->Schedule(
      [reactor, call, who = *std::move(who), body = std::forward<Body>(body)]() mutable {
        reactor->Finish(call->Conclude(body(who)));
      });
  return reactor;
}

}  // namespace calibd::server

#endif  // CALIBD_SERVER_REACTOR_BASE_H_
