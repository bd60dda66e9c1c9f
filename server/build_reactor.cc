// Builder.BuildMaster: the client-streaming reactor. Options, frame headers (selection of the
// pre-processing masters) and stored-version references are handled on the worker pool; pixel
// chunks are copied (and hashed) on the gRPC thread; a complete frame is pre-processed and
// spooled on the pool, and the combination runs there after the last message. The next read
// starts only when the previous message is handled (back-pressure).
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/hash/sha256.h"
#include "server/build_impl.h"
#include "server/convert.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/reactor_base.h"

namespace calibd::server {
namespace {

class BuildReactor final : public grpc::ServerReadReactor<v1::BuildMasterRequest> {
 public:
  BuildReactor(ServiceEnv* env, v1::BuildMasterResponse* response, StreamStart start)
      : env_(env), response_(response), start_(std::move(start)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (cancelled()) {
      Done(absl::CancelledError("cancelled"));
      return;
    }
    if (!ok) {
      if (session_ == nullptr) {
        Done(absl::InvalidArgumentError("BuildMaster needs BuildOptions first, then frames"));
        return;
      }
      if (frame_ != nullptr) {
        Done(absl::InvalidArgumentError(absl::StrCat(
            "the stream ended in the middle of input frame '", frame_->request.frame_id, "'")));
        return;
      }
      env_->backend->pool->Schedule([this] { Done(FinishBuild()); });
      return;
    }
    if (request_.msg_case() == v1::BuildMasterRequest::kChunk) {
      absl::Status s = AddChunk();
      if (!s.ok()) Done(s);
      return;
    }
    env_->backend->pool->Schedule([this] {
      absl::Status s = cancelled() ? absl::CancelledError("cancelled") : Handle();
      if (!s.ok()) {
        Done(s);
      } else {
        StartRead(&request_);
      }
    });
  }

  void OnCancel() override { cancelled_.store(true); }

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
    hash::Sha256 sha;
  };

  bool cancelled() const { return cancelled_.load(); }

  // On the pool: options, a frame header, a stored input.
  absl::Status Handle() {
    switch (request_.msg_case()) {
      case v1::BuildMasterRequest::kOptions: {
        if (session_ != nullptr) return absl::InvalidArgumentError("a second BuildOptions");
        absl::StatusOr<BuildRequest> req = BuildRequestFromProto(request_.options());
        if (!req.ok()) return req.status();
        if (absl::Status s = CheckDetector(start_.who, req->detector); !s.ok()) return s;
        req->actor = start_.who.name;
        session_ = std::make_unique<BuildSession>(env_->backend, env_->calibrate, *std::move(req));
        return session_->Begin();
      }
      case v1::BuildMasterRequest::kFrame: {
        if (session_ == nullptr) return absl::InvalidArgumentError("a frame before BuildOptions");
        if (frame_ != nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              "a new frame header before input frame '", frame_->request.frame_id, "' was complete"));
        }
        absl::StatusOr<FrameRequest> req = FrameRequestFromProto(request_.frame());
        if (!req.ok()) return req.status();
        auto f = std::make_unique<Frame>();
        f->request.frame_id = req->frame_id;
        f->expected = req->num_bytes();
        const PixelType type = req->pixel_type;
        const int w = req->width, h = req->height;
        absl::Status s = session_->PrepareRaw(*std::move(req), f->prepared);
        if (!s.ok()) return s;
        f->raw = RawImage::Allocate(type, w, h, env_->backend->buffers);
        frame_ = std::move(f);
        return absl::OkStatus();
      }
      case v1::BuildMasterRequest::kStored: {
        if (session_ == nullptr) return absl::InvalidArgumentError("an input before BuildOptions");
        const v1::StoredFrameRef& r = request_.stored();
        if (absl::Status s = CheckDetector(start_.who, r.detector()); !s.ok()) return s;
        return session_->AddStored(SeriesKeyFromProto(r.detector(), r.kind(), r.configuration()),
                                   r.version());
      }
      default:
        return absl::InvalidArgumentError("an empty BuildMasterRequest");
    }
  }

  // On the gRPC thread: copies a chunk; a complete frame goes to the pool.
  absl::Status AddChunk() {
    if (frame_ == nullptr) {
      return absl::InvalidArgumentError("a pixel chunk without a frame header before it");
    }
    const std::string& data = request_.chunk().data();
    bytes_in_ += static_cast<int64_t>(data.size());
    if (frame_->received + static_cast<int64_t>(data.size()) > frame_->expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input frame '", frame_->request.frame_id,
          "': chunks carry more bytes than its header declared (", frame_->expected, ")"));
    }
    std::memcpy(static_cast<char*>(frame_->raw.data()) + frame_->received, data.data(),
                data.size());
    frame_->sha.Update(data);
    frame_->received += static_cast<int64_t>(data.size());
    if (frame_->received < frame_->expected) {
      StartRead(&request_);
      return absl::OkStatus();
    }
    // Complete: pre-process and spool on the pool; read on afterwards (back-pressure).
    Frame* f = frame_.release();
    env_->backend->pool->Schedule([this, f] {
      std::unique_ptr<Frame> frame(f);
      absl::Status s = cancelled() ? absl::CancelledError("cancelled")
                                   : session_->AddRaw(frame->prepared, std::move(frame->raw),
                                                      frame->sha.HexDigest());
      frame.reset();
      if (!s.ok()) {
        Done(s);
      } else {
        StartRead(&request_);
      }
    });
    return absl::OkStatus();
  }

  // On the pool, after the last message.
  absl::Status FinishBuild() {
    absl::StatusOr<BuildResult> r = session_->Finish();
    if (!r.ok()) return r.status();
    absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(r->version);
    BuildResultToProto(*r, m.ok() ? m->certifications : std::vector<store::Certification>{},
                       response_);
    LogEvent("build", {{"detector", r->version.detector}, {"kind", r->version.kind},
                       {"version", absl::StrCat(r->version.version)},
                       {"inputs", absl::StrCat(r->inputs)}, {"actor", start_.who.name},
                       {"request_id", start_.call->request_id()}});
    return absl::OkStatus();
  }

  void Done(const absl::Status& s) { Finish(start_.Conclude(s)); }

  ServiceEnv* const env_;
  v1::BuildMasterResponse* const response_;
  StreamStart start_;
  v1::BuildMasterRequest request_;
  std::unique_ptr<BuildSession> session_;
  std::unique_ptr<Frame> frame_;
  std::atomic<bool> cancelled_{false};
  int64_t bytes_in_ = 0;
};

}  // namespace

grpc::ServerReadReactor<v1::BuildMasterRequest>* BuilderService::BuildMaster(
    grpc::CallbackServerContext* context, v1::BuildMasterResponse* response) {
  return OpenStream<FailedRead<v1::BuildMasterRequest>>(
      env_, context, "BuildMaster", Scope::kWrite,
      [&](StreamStart s) { return new BuildReactor(env_, response, std::move(s)); });
}

}  // namespace calibd::server
