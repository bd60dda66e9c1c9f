// Store.GetMaster: the server-streaming reactor. The version is resolved and the blob streamed
// with the store's ReadBlob on the blob executor (never on a gRPC thread); chunks pass through
// a queue of at most kMaxQueued messages, so a slow reader holds back the blob read (flow
// control) instead of the server buffering the whole master.
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/convert.h"
#include "server/metrics.h"
#include "server/reactor_base.h"
#include "server/write_reactor.h"

namespace calibd::server {
namespace {

class GetMasterReactor final : public WriteStreamReactor<v1::GetMasterResponse> {
 public:
  GetMasterReactor(ServiceEnv* env, const v1::GetMasterRequest* request, StreamStart start)
      : WriteStreamReactor(std::move(start)), env_(env), request_(*request) {
    env_->backend->blob_pool->Schedule([this] { Produce(); });
  }

  void OnDone() override {
    if (env_->backend->metrics) env_->backend->metrics->AddBytesOut("GetMaster", sent_);
    delete this;
  }

 private:
  static constexpr size_t kMaxQueued = 4;  // messages waiting for the wire

  // On the blob executor: resolve, then stream the blob into the queue.
  void Produce() {
    EndWork(Stream(), [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { produced_ = true; });
  }

  absl::Status Stream() {
    const v1::GetMasterRequest& r = request_;
    if (absl::Status s = CheckDetector(start_.who, r.detector()); !s.ok()) return s;
    std::optional<store::TimeMicros> at;
    if (r.version_choice_case() == v1::GetMasterRequest::kAt) {
      absl::StatusOr<store::TimeMicros> t = TimeMicrosFromProto(r.at(), "at");
      if (!t.ok()) return t.status();
      at = *t;
    }
    const int64_t version =
        r.version_choice_case() == v1::GetMasterRequest::kVersion ? r.version() : 0;
    absl::StatusOr<store::MasterVersion> v = env_->store->ResolveMaster(
        SeriesKeyFromProto(r.detector(), r.kind(), r.configuration()), version, at);
    if (!v.ok()) return v.status();
    absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(*v);
    if (!m.ok()) return m.status();
    v1::GetMasterResponse metadata;
    MasterVersionToProto(*v, m->certifications, metadata.mutable_metadata());
    if (!Push(std::move(metadata))) return absl::CancelledError("cancelled");
    absl::StatusOr<std::shared_ptr<store::CalibrationStore>> st = env_->backend->store.Get();
    if (!st.ok()) return st.status();
    int64_t streamed = 0;
    absl::Status s = (*st)->ReadBlob(
        v->sha256, env_->backend->limits.chunk_bytes, [&](absl::string_view bytes) {
          v1::GetMasterResponse chunk;
          chunk.mutable_chunk()->assign(bytes.data(), bytes.size());
          streamed += static_cast<int64_t>(bytes.size());
          return Push(std::move(chunk)) ? absl::OkStatus() : absl::CancelledError("cancelled");
        });
    if (!s.ok()) return s;
    if (streamed != v->size_bytes) {
      return absl::DataLossError(absl::StrCat("the blob of ", v->sha256, " has ", streamed,
                                              " bytes, the catalog says ", v->size_bytes));
    }
    return absl::OkStatus();
  }

  // Queues a message, waiting while the queue is full; false once the call is cancelled.
  bool Push(v1::GetMasterResponse message) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &GetMasterReactor::HasRoom));
      if (cancelled_) return false;
      queue_.push_back(std::move(message));
    }
    Step();
    return true;
  }

  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled_ || queue_.size() < kMaxQueued;
  }

  bool NextLocked(v1::GetMasterResponse* out) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (queue_.empty()) return false;
    *out = std::move(queue_.front());
    queue_.pop_front();
    if (out->has_chunk()) sent_ += static_cast<int64_t>(out->chunk().size());
    return true;
  }
  // The producer refers to this reactor until it has recorded its status.
  bool WorkPendingLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !produced_; }

  ServiceEnv* const env_;
  const v1::GetMasterRequest request_;
  std::deque<v1::GetMasterResponse> queue_ ABSL_GUARDED_BY(mu_);
  bool produced_ ABSL_GUARDED_BY(mu_) = false;
  int64_t sent_ = 0;  // under mu_ while streaming, read in OnDone
};

}  // namespace

grpc::ServerWriteReactor<v1::GetMasterResponse>* StoreService::GetMaster(
    grpc::CallbackServerContext* context, const v1::GetMasterRequest* request) {
  return OpenStream<FailedWrite<v1::GetMasterResponse>>(
      env_, context, "GetMaster", Scope::kRead,
      [&](StreamStart s) { return new GetMasterReactor(env_, request, std::move(s)); });
}

}  // namespace calibd::server
