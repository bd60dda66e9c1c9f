// Builder.BuildMaster: the client-streaming reactor. Options and frame headers (selection of
// the pre-processing masters) are handled on the worker pool; pixel chunks are copied from
// gRPC's slices straight into the frame's pooled buffer on the gRPC thread (the method is raw:
// proto/wire.h decodes the chunks, protobuf everything else). A complete frame, a stored-version
// reference and the final combination are work items run in order, one at a time, on the pool
// (the session is used by one item at a time): hashing the frame's bytes, pre-processing it
// and keeping it in memory (or spooling it beyond the budget), while the gRPC thread already
// receives the next frame. Back-pressure: the stream reads on while at most one complete frame
// waits for its turn; the next read after a header starts only when the header is handled.
// The reactor finishes only when nothing is in flight (no read, no pool task), so nothing runs
// after OnDone.
#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/hash/sha256.h"
#include "core/status/macros.h"
#include "proto/wire.h"
#include "server/build_impl.h"
#include "server/convert.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/reactor_base.h"

namespace calibd::server {
namespace {

class BuildReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  BuildReactor(ServiceEnv* env, grpc::ByteBuffer* response, StreamStart start)
      : env_(env), response_(response), start_(std::move(start)) {
    {
      absl::MutexLock lock(&mu_);
      read_in_flight_ = true;
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      read_in_flight_ = false;
      absl::StatusOr<bool> placed = false;  // a chunk of the frame being received, in place
      if (ok && !cancelled_.load()) {
        if (frame_ != nullptr) {
          placed = wire::DecodeChunk(in_, wire::kBuildRequestChunk,
                                     [this](int, size_t n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                       return AcceptChunkLocked(n);
                                     });
        }
        if (placed.ok() && !*placed) {
          if (absl::Status s = wire::ParseMessage(in_, &request_); !s.ok()) placed = s;
        }
      }
      if (!placed.ok()) {
        FailLocked(placed.status());
      } else if (*placed) {
        CompleteFrameLocked();
      } else if (cancelled_.load()) {
        FailLocked(absl::CancelledError("cancelled"));
      } else if (!ok) {
        reads_done_ = true;
        if (session_ == nullptr) {
          FailLocked(
              absl::InvalidArgumentError("BuildMaster needs BuildOptions first, then frames"));
        } else if (frame_ != nullptr) {
          FailLocked(absl::InvalidArgumentError(absl::StrCat(
              "the stream ended in the middle of input frame '", frame_->request.frame_id, "'")));
        } else {
          items_.push_back(Item{nullptr, std::nullopt, /*finish=*/true});
        }
      } else if (request_.msg_case() == v1::BuildMasterRequest::kChunk) {
        if (absl::Status s = AddChunkLocked(); !s.ok()) FailLocked(s);
      } else if (request_.msg_case() == v1::BuildMasterRequest::kStored) {
        if (session_ == nullptr) {
          FailLocked(absl::InvalidArgumentError("an input before BuildOptions"));
        } else {
          const v1::StoredFrameRef& r = request_.stored();
          if (absl::Status s = CheckDetector(start_.who, r.detector()); !s.ok()) {
            FailLocked(s);
          } else {
            items_.push_back(Item{nullptr, Stored{SeriesKeyFromProto(r.detector(), r.kind(),
                                                                     r.configuration()),
                                                  r.version()},
                                  false});
          }
        }
      } else {
        handling_ = true;
        a.handle = true;
      }
      a = StepLocked(std::move(a));
    }
    Execute(std::move(a));
  }

  void OnCancel() override {
    cancelled_.store(true);
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      FailLocked(absl::CancelledError("cancelled"));
      a = StepLocked({});
    }
    Execute(std::move(a));
  }

  void OnDone() override {
    if (env_->backend->metrics) env_->backend->metrics->AddBytesIn("BuildMaster", bytes_in_);
    delete this;
  }

 private:
  struct Frame {
    PreparedFrame prepared;
    FrameRequest request;
    RawImage raw;
    int64_t expected = 0, received = 0;
  };
  struct Stored {
    SeriesKey key;
    int64_t version = 0;
  };
  // One work item for the pool, run in order: a complete frame, a stored input, the finish.
  struct Item {
    std::unique_ptr<Frame> frame;
    std::optional<Stored> stored;
    bool finish = false;
  };
  struct Actions {
    bool handle = false;                // Handle() the message in request_ on the pool
    std::optional<Item> run;            // the next item, on the pool
    bool read = false;                  // StartRead
    std::optional<absl::Status> finish;  // Finish with this status (the last action)
  };

  void FailLocked(absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!error_.has_value()) error_ = std::move(s);
  }

  // Decides what to do next; the caller executes the actions after releasing the lock.
  Actions StepLocked(Actions a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return a;
    const bool busy = read_in_flight_ || handling_ || running_ || a.handle;
    if (error_.has_value() || result_.has_value()) {
      items_.clear();  // frames not yet pre-processed go back to the pool
      if (!busy) {
        finished_ = true;
        a.finish = error_.has_value() ? *error_ : *result_;
      }
      return a;
    }
    if (!running_ && !items_.empty()) {
      running_ = true;
      a.run = std::move(items_.front());
      items_.pop_front();
    }
    // Read on while no complete frame waits behind the one being pre-processed.
    if (!read_in_flight_ && !reads_done_ && !handling_ && !a.handle && items_.empty()) {
      read_in_flight_ = true;
      a.read = true;
    }
    return a;
  }

  void Execute(Actions a) {
    // The finish, if any, is the last thing this reactor does before OnDone.
    if (a.finish.has_value()) {
      if (a.finish->ok()) *response_ = wire::SerializeMessage(response_message_);
      Finish(start_.Conclude(*a.finish));
      return;
    }
    if (a.handle) env_->backend->pool->Schedule([this] { Handled(Handle()); });
    if (a.run.has_value()) {
      auto item = std::make_shared<Item>(*std::move(a.run));
      env_->backend->pool->Schedule([this, item] { Ran(Run(*item)); });
    }
    if (a.read) StartRead(&in_);
  }

  void Handled(absl::Status s) {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      handling_ = false;
      if (!s.ok()) FailLocked(std::move(s));
      a = StepLocked({});
    }
    Execute(std::move(a));
  }

  void Ran(absl::StatusOr<bool> finished) {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      running_ = false;
      if (!finished.ok()) {
        FailLocked(finished.status());
      } else if (*finished) {
        result_ = absl::OkStatus();
      }
      a = StepLocked({});
    }
    Execute(std::move(a));
  }

  // On the pool: options or a frame header (request_ is not touched by anyone else meanwhile:
  // the next read starts after this returns).
  absl::Status Handle() {
    if (cancelled_.load()) return absl::CancelledError("cancelled");
    switch (request_.msg_case()) {
      case v1::BuildMasterRequest::kOptions: {
        if (session_ != nullptr) return absl::InvalidArgumentError("a second BuildOptions");
        absl::StatusOr<BuildRequest> req = BuildRequestFromProto(request_.options());
        if (!req.ok()) return req.status();
        if (absl::Status s = CheckDetector(start_.who, req->detector); !s.ok()) return s;
        req->actor = start_.who.name;
        auto session =
            std::make_unique<BuildSession>(env_->backend, env_->calibrate, *std::move(req));
        if (absl::Status s = session->Begin(); !s.ok()) return s;
        absl::MutexLock lock(&mu_);
        session_ = std::move(session);
        return absl::OkStatus();
      }
      case v1::BuildMasterRequest::kFrame: {
        BuildSession* session;
        {
          absl::MutexLock lock(&mu_);
          session = session_.get();
          if (session == nullptr) return absl::InvalidArgumentError("a frame before BuildOptions");
          if (frame_ != nullptr) {
            return absl::InvalidArgumentError(absl::StrCat(
                "a new frame header before input frame '", frame_->request.frame_id,
                "' was complete"));
          }
        }
        absl::StatusOr<FrameRequest> req = FrameRequestFromProto(request_.frame());
        if (!req.ok()) return req.status();
        auto f = std::make_unique<Frame>();
        f->request.frame_id = req->frame_id;
        f->expected = req->num_bytes();
        const PixelType type = req->pixel_type;
        const int w = req->width, h = req->height;
        // PrepareRaw is const: it may run while the previous frame is pre-processed.
        if (absl::Status s = session->PrepareRaw(*std::move(req), f->prepared); !s.ok()) return s;
        f->raw = RawImage::Allocate(type, w, h, env_->backend->buffers);
        absl::MutexLock lock(&mu_);
        frame_ = std::move(f);
        return absl::OkStatus();
      }
      default:
        return absl::InvalidArgumentError("an empty BuildMasterRequest");
    }
  }

  // On the gRPC thread: where the frame's next `n` bytes go, counted against its size.
  absl::StatusOr<char*> AcceptChunkLocked(size_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (frame_ == nullptr) {
      return absl::InvalidArgumentError("a pixel chunk without a frame header before it");
    }
    bytes_in_ += static_cast<int64_t>(n);
    if (frame_->received + static_cast<int64_t>(n) > frame_->expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input frame '", frame_->request.frame_id,
          "': chunks carry more bytes than its header declared (", frame_->expected, ")"));
    }
    char* dest = static_cast<char*>(frame_->raw.data()) + frame_->received;
    frame_->received += static_cast<int64_t>(n);
    return dest;
  }

  // A complete frame becomes a work item.
  void CompleteFrameLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (frame_->received == frame_->expected) {
      items_.push_back(Item{std::move(frame_), std::nullopt, false});
    }
  }

  // On the gRPC thread: a chunk that protobuf parsed (an empty one, an unusual encoding).
  absl::Status AddChunkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string& data = request_.chunk().data();
    CALIBD_ASSIGN_OR_RETURN(char* dest, AcceptChunkLocked(data.size()));
    if (!data.empty()) std::memcpy(dest, data.data(), data.size());
    CompleteFrameLocked();
    return absl::OkStatus();
  }

  // On the pool, one item at a time: true when the build is finished (the response is set).
  absl::StatusOr<bool> Run(Item& item) {
    if (cancelled_.load()) return absl::CancelledError("cancelled");
    if (item.frame != nullptr) {
      Frame& f = *item.frame;
      // The hash of the bytes as sent (provenance), here rather than on the gRPC thread.
      const std::string sha = hash::Sha256Hex(absl::string_view(
          static_cast<const char*>(f.raw.data()), static_cast<size_t>(f.expected)));
      CALIBD_RETURN_IF_ERROR(session_->AddRaw(f.prepared, std::move(f.raw), sha));
      item.frame.reset();
      return false;
    }
    if (item.stored.has_value()) {
      CALIBD_RETURN_IF_ERROR(session_->AddStored(item.stored->key, item.stored->version));
      return false;
    }
    CALIBD_RETURN_IF_ERROR(FinishBuild());
    return true;
  }

  // On the pool, after the last message.
  absl::Status FinishBuild() {
    const int in_memory = session_->inputs_in_memory();
    const int64_t memory_bytes = session_->memory_bytes();
    absl::StatusOr<BuildResult> r = session_->Finish(&cancelled_);
    if (!r.ok()) return r.status();
    absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(r->version);
    BuildResultToProto(*r, m.ok() ? m->certifications : std::vector<store::Certification>{},
                       &response_message_);
    LogEvent("build", {{"detector", r->version.detector}, {"kind", r->version.kind},
                       {"version", absl::StrCat(r->version.version)},
                       {"inputs", absl::StrCat(r->inputs)},
                       {"inputs_in_memory", absl::StrCat(in_memory)},
                       {"memory_mb", absl::StrCat(memory_bytes >> 20)},
                       {"combine_ms", absl::StrCat(static_cast<int64_t>(r->combine_seconds * 1e3))},
                       {"actor", start_.who.name}, {"request_id", start_.call->request_id()}});
    return absl::OkStatus();
  }

  ServiceEnv* const env_;
  grpc::ByteBuffer* const response_;          // serialized from response_message_ at Finish
  v1::BuildMasterResponse response_message_;  // set by FinishBuild
  StreamStart start_;
  grpc::ByteBuffer in_;             // the message being read
  v1::BuildMasterRequest request_;  // the message in in_ when it is not a chunk in place
  std::atomic<bool> cancelled_{false};
  int64_t bytes_in_ = 0;  // gRPC thread only

  absl::Mutex mu_;
  // Set once by Handle (options), then only read; items use it one at a time.
  std::unique_ptr<BuildSession> session_;
  std::unique_ptr<Frame> frame_ ABSL_GUARDED_BY(mu_);  // the frame being received
  std::deque<Item> items_ ABSL_GUARDED_BY(mu_);         // waiting for the pool, in order
  bool read_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool handling_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> error_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> result_ ABSL_GUARDED_BY(mu_);  // OK once the build is stored
};

}  // namespace

grpc::ServerReadReactor<grpc::ByteBuffer>* BuilderService::BuildMaster(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return OpenStream<FailedRead<grpc::ByteBuffer>>(
      env_, context, "BuildMaster", Scope::kWrite,
      [&](StreamStart s) { return new BuildReactor(env_, response, std::move(s)); });
}

}  // namespace calibd::server
