#include "server/services.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <openssl/evp.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/build_impl.h"
#include "server/convert.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/status_util.h"

namespace calibd::server {
namespace {

using Clock = std::chrono::steady_clock;

std::string AuthorizationOf(const grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

absl::StatusOr<Principal> Authorize(const ServiceEnv* env, const grpc::CallbackServerContext* ctx,
                                    Scope scope) {
  return env->auth->Authorize(AuthorizationOf(ctx), scope);
}

// Records an RPC's outcome in metrics and the log.
void RecordRpc(const ServiceEnv* env, const char* method, const grpc::Status& status,
               Clock::time_point start, const std::string& peer) {
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (env->backend->metrics) env->backend->metrics->RecordRpc(method, status.error_code(), seconds);
  if (status.ok()) {
    LogEvent("rpc", {{"method", method}, {"code", "OK"}, {"ms", absl::StrCat(seconds * 1e3)},
                     {"peer", peer}});
  } else {
    LogEvent("rpc", {{"method", method}, {"code", StatusCodeName(status.error_code())},
                     {"ms", absl::StrCat(seconds * 1e3)}, {"peer", peer},
                     {"error", status.error_message()}});
  }
}

// A streaming-call slot: RESOURCE_EXHAUSTED when max_concurrent_streams are in progress.
class StreamSlot {
 public:
  StreamSlot(ServiceEnv* env, const char* method) : env_(env), method_(method) {
    const int n = env_->streams.fetch_add(1) + 1;
    if (n > env_->backend->limits.max_concurrent_streams) {
      env_->streams.fetch_sub(1);
      status_ = absl::ResourceExhaustedError(absl::StrCat(
          "the server already runs ", env_->backend->limits.max_concurrent_streams,
          " streams (--max-concurrent-streams); retry later"));
      return;
    }
    held_ = true;
    if (env_->backend->metrics) env_->backend->metrics->StreamStarted(method_);
  }
  ~StreamSlot() { Release(); }
  // Gives the slot back. Reactors call it just before Finish(): OnDone (and so the destructor)
  // runs only after the client has its status, and a client making calls one after another
  // must never be refused because the previous call's reactor is still winding down.
  void Release() {
    if (!held_) return;
    held_ = false;
    env_->streams.fetch_sub(1);
    if (env_->backend->metrics) env_->backend->metrics->StreamEnded(method_);
  }
  const absl::Status& status() const { return status_; }

 private:
  ServiceEnv* env_;
  const char* method_;
  bool held_ = false;
  absl::Status status_;
};

// Incremental sha256, lower-case hex.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out.push_back(kHex[md[i] >> 4]);
      out.push_back(kHex[md[i] & 15]);
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string SpoolBase(const Backend* b) {
  if (!b->spool_dir.empty()) return b->spool_dir;
  const char* tmp = getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

// A bidi reactor that fails at once (limits, authentication).
template <typename Req, typename Resp>
class FailedBidi final : public grpc::ServerBidiReactor<Req, Resp> {
 public:
  explicit FailedBidi(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Req>
class FailedRead final : public grpc::ServerReadReactor<Req> {
 public:
  explicit FailedRead(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Resp>
class FailedWrite final : public grpc::ServerWriteReactor<Resp> {
 public:
  explicit FailedWrite(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// ---------------------------------------------------------------------------------------------
// Calibrate

class CalibrateReactor final
    : public grpc::ServerBidiReactor<v1::CalibrateRequest, v1::CalibrateResponse> {
 public:
  CalibrateReactor(ServiceEnv* env, grpc::CallbackServerContext* ctx,
                   std::unique_ptr<StreamSlot> slot)
      : env_(env), ctx_(ctx), slot_(std::move(slot)), start_(Clock::now()) {
    {
      absl::MutexLock lock(&mu_);
      read_in_flight_ = true;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    // Work that needs no shared state (parsing, selection, copying pixels) runs before the lock:
    // only the read path touches request_ and receiving_, and one read is in flight at a time.
    std::optional<absl::Status> error;
    std::unique_ptr<Job> completed;
    bool mid_frame_at_end = false;
    if (ok) {
      error = HandleMessage(&completed);
    } else {
      mid_frame_at_end = receiving_ != nullptr;
    }
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      read_in_flight_ = false;
      if (!ok) {
        reads_done_ = true;
        if (mid_frame_at_end && !cancelled_ && !stream_error_) {
          stream_error_ = absl::InvalidArgumentError(absl::StrCat(
              "the stream ended in the middle of frame '", receiving_->result.frame_id, "' (",
              receiving_->received, " of ", receiving_->expected, " bytes)"));
        }
      } else if (error.has_value() && !stream_error_) {
        stream_error_ = *error;
      }
      mid_frame_ = receiving_ != nullptr;
      if (completed) queued_.push_back(std::move(completed));
      a = StepLocked();
    }
    Execute(std::move(a));
  }

  void OnWriteDone(bool ok) override {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) cancelled_ = true;  // the client is gone
      a = StepLocked();
    }
    Execute(std::move(a));
  }

  void OnCancel() override {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      a = StepLocked();
    }
    Execute(std::move(a));
  }

  void OnDone() override {
    RecordRpc(env_, "Calibrate", final_status_, start_, ctx_->peer());
    if (env_->backend->metrics) {
      env_->backend->metrics->AddBytesIn("Calibrate", bytes_in_);
      env_->backend->metrics->AddBytesOut("Calibrate", bytes_out_);
    }
    delete this;
  }

 private:
  struct Job {
    std::unique_ptr<PreparedFrame> prepared;  // null when the frame already failed
    RawImage raw;
    FrameResult result;  // frame_id, and status when failed
    int64_t expected = 0;
    int64_t received = 0;
  };
  struct Output {
    FrameResult result;
    bool header_sent = false;
    struct PlaneBytes {
      v1::Plane plane;
      const char* data;
      size_t size;
    };
    std::vector<PlaneBytes> planes;
    size_t plane = 0;
    size_t offset = 0;
  };
  struct Actions {
    bool read = false;
    bool write = false;
    std::unique_ptr<Job> compute;
    std::optional<grpc::Status> finish;
  };
  static constexpr size_t kMaxOutputs = 2;  // computed results not yet sent

  // Parses request_ and advances the frame being received. A returned status is a stream error.
  std::optional<absl::Status> HandleMessage(std::unique_ptr<Job>* completed) {
    switch (request_.msg_case()) {
      case v1::CalibrateRequest::kHeader: {
        if (receiving_ != nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              "a new frame header arrived before frame '", receiving_->result.frame_id,
              "' was complete (", receiving_->received, " of ", receiving_->expected, " bytes)"));
        }
        absl::StatusOr<FrameRequest> req = FrameRequestFromProto(request_.header());
        if (!req.ok()) return req.status();
        auto job = std::make_unique<Job>();
        job->result.frame_id = req->frame_id;
        job->expected = req->num_bytes();
        auto prepared = std::make_unique<PreparedFrame>();
        const PixelType type = req->pixel_type;
        const int w = req->width, h = req->height;
        absl::Status s = env_->calibrate->Prepare(*std::move(req), *prepared);
        if (s.ok()) {
          job->raw = RawImage::Allocate(type, w, h, env_->backend->buffers);
          job->prepared = std::move(prepared);
        } else {
          job->result.status = s;
          job->result.selection = std::move(prepared->selection);
        }
        receiving_ = std::move(job);
        return std::nullopt;
      }
      case v1::CalibrateRequest::kChunk: {
        const std::string& data = request_.chunk().data();
        if (receiving_ == nullptr) {
          return absl::InvalidArgumentError(
              "a pixel chunk arrived without a frame header before it (or after its frame "
              "was complete); send FrameHeader, then exactly its bytes");
        }
        stream_bytes_ += static_cast<int64_t>(data.size());
        bytes_in_ += static_cast<int64_t>(data.size());
        if (stream_bytes_ > env_->backend->limits.max_stream_bytes) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "the stream sent more than ", env_->backend->limits.max_stream_bytes,
              " bytes (--max-stream-bytes); open a new stream"));
        }
        Job& job = *receiving_;
        if (job.received + static_cast<int64_t>(data.size()) > job.expected) {
          return absl::InvalidArgumentError(absl::StrCat(
              "frame '", job.result.frame_id, "': chunks carry more bytes than its header "
              "declared (", job.expected, " = width × height × pixel size)"));
        }
        if (job.prepared != nullptr && !data.empty()) {
          std::memcpy(static_cast<char*>(job.raw.data()) + job.received, data.data(), data.size());
        }
        job.received += static_cast<int64_t>(data.size());
        if (job.received == job.expected) *completed = std::move(receiving_);
        return std::nullopt;
      }
      default:
        return absl::InvalidArgumentError("an empty CalibrateRequest (neither header nor chunk)");
    }
  }

  // Decides what to do next; the caller executes the actions after releasing the lock.
  Actions StepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Actions a;
    if (finished_) return a;
    if (cancelled_ || stream_error_) {
      queued_.clear();
      outputs_.clear();
      if (!computing_ && !write_in_flight_ && !read_in_flight_) {
        finished_ = true;
        final_status_ = cancelled_ ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")
                                   : ToGrpcStatus(*stream_error_);
        a.finish = final_status_;
      }
      return a;
    }
    // Failed frames become outputs in order; the next good frame goes to the pool.
    while (!computing_ && !queued_.empty() && outputs_.size() < kMaxOutputs) {
      std::unique_ptr<Job> job = std::move(queued_.front());
      queued_.pop_front();
      if (job->prepared == nullptr) {
        AddOutputLocked(std::move(job->result));
      } else {
        computing_ = true;
        a.compute = std::move(job);
      }
    }
    if (!write_in_flight_ && NextMessageLocked()) {
      write_in_flight_ = true;
      a.write = true;
    }
    // Back-pressure: read on only while no complete frame waits for the pool.
    if (!read_in_flight_ && !reads_done_ && queued_.empty()) {
      read_in_flight_ = true;
      a.read = true;
    }
    if (reads_done_ && !mid_frame_ && queued_.empty() && !computing_ && outputs_.empty() &&
        !write_in_flight_ && !read_in_flight_) {
      finished_ = true;
      final_status_ = grpc::Status::OK;
      a.finish = final_status_;
    }
    if (env_->backend->metrics) {
      env_->backend->metrics->SetQueueDepth(double(env_->backend->pool->queue_depth()));
    }
    return a;
  }

  void AddOutputLocked(FrameResult result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto out = std::make_unique<Output>();
    out->result = std::move(result);
    FrameResult& r = out->result;
    if (r.status.ok()) {
      auto add = [&](v1::Plane plane, const void* data, size_t size) {
        out->planes.push_back({plane, static_cast<const char*>(data), size});
      };
      if (r.want_data) {
        add(v1::PLANE_DATA, r.frame.data.data(), size_t(r.frame.data.num_pixels()) * sizeof(float));
      }
      if (r.want_variance && r.frame.has_variance()) {
        add(v1::PLANE_VARIANCE, r.frame.variance.data(),
            size_t(r.frame.variance.num_pixels()) * sizeof(float));
      }
      if (r.want_dq && r.frame.has_dq()) {
        add(v1::PLANE_DQ, r.frame.dq.data(), size_t(r.frame.dq.num_pixels()) * sizeof(uint16_t));
      }
    }
    outputs_.push_back(std::move(out));
  }

  // Fills response_ with the next message to send; false when there is none.
  bool NextMessageLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!outputs_.empty()) {
      Output& o = *outputs_.front();
      if (!o.header_sent) {
        response_.Clear();
        ResultHeaderToProto(o.result, response_.mutable_header());
        o.header_sent = true;
        return true;
      }
      while (o.plane < o.planes.size() && o.offset >= o.planes[o.plane].size) {
        ++o.plane;
        o.offset = 0;
      }
      if (o.plane < o.planes.size()) {
        const Output::PlaneBytes& p = o.planes[o.plane];
        const size_t n = std::min(env_->backend->limits.chunk_bytes, p.size - o.offset);
        // No Clear() between chunks: the chunk's string keeps its capacity, so each message
        // reuses the same (already touched) 1 MiB instead of allocating a fresh one.
        v1::ResultChunk* chunk = response_.mutable_chunk();
        chunk->set_plane(p.plane);
        chunk->mutable_data()->assign(p.data + o.offset, n);
        o.offset += n;
        bytes_out_ += static_cast<int64_t>(n);
        return true;
      }
      outputs_.pop_front();  // all sent: the planes go back to the pool
    }
    return false;
  }

  void Execute(Actions a) {
    // The finish, if any, is the last thing this reactor does before OnDone.
    if (a.finish) {
      slot_->Release();
      Finish(*a.finish);
      return;
    }
    if (a.compute) {
      Job* job = a.compute.release();
      env_->backend->pool->Schedule([this, job] { Compute(std::unique_ptr<Job>(job)); });
    }
    if (a.write) StartWrite(&response_);
    if (a.read) StartRead(&request_);
  }

  void Compute(std::unique_ptr<Job> job) {
    bool skip;
    {
      absl::MutexLock lock(&mu_);
      skip = cancelled_ || stream_error_.has_value();
    }
    FrameResult result;
    if (!skip) {
      absl::Status s = env_->calibrate->Run(*job->prepared, std::move(job->raw), result);
      if (!s.ok()) {
        result = FrameResult();
        result.frame_id = job->result.frame_id;
        result.status = s;
        result.selection = job->prepared->selection;
      }
    }
    job.reset();  // frees the raw frame before the result is queued
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      computing_ = false;
      if (!skip) AddOutputLocked(std::move(result));
      a = StepLocked();
    }
    Execute(std::move(a));
  }

  ServiceEnv* const env_;
  grpc::CallbackServerContext* const ctx_;
  std::unique_ptr<StreamSlot> slot_;
  const Clock::time_point start_;

  // Read path only (one read in flight at a time).
  v1::CalibrateRequest request_;
  std::unique_ptr<Job> receiving_;
  int64_t stream_bytes_ = 0;
  std::atomic<int64_t> bytes_in_{0};

  absl::Mutex mu_;
  v1::CalibrateResponse response_;  // written under mu_, read by gRPC while a write is in flight
  std::deque<std::unique_ptr<Job>> queued_ ABSL_GUARDED_BY(mu_);
  std::deque<std::unique_ptr<Output>> outputs_ ABSL_GUARDED_BY(mu_);
  bool mid_frame_ ABSL_GUARDED_BY(mu_) = false;
  bool computing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> stream_error_ ABSL_GUARDED_BY(mu_);
  grpc::Status final_status_;
  int64_t bytes_out_ = 0;
};

}  // namespace

grpc::ServerBidiReactor<v1::CalibrateRequest, v1::CalibrateResponse>* CalibratorService::Calibrate(
    grpc::CallbackServerContext* context) {
  const auto start = Clock::now();
  absl::StatusOr<Principal> who = Authorize(env_, context, Scope::kRead);
  if (!who.ok()) {
    grpc::Status s = ToGrpcStatus(who.status());
    RecordRpc(env_, "Calibrate", s, start, context->peer());
    return new FailedBidi<v1::CalibrateRequest, v1::CalibrateResponse>(s);
  }
  auto slot = std::make_unique<StreamSlot>(env_, "Calibrate");
  if (!slot->status().ok()) {
    grpc::Status s = ToGrpcStatus(slot->status());
    RecordRpc(env_, "Calibrate", s, start, context->peer());
    return new FailedBidi<v1::CalibrateRequest, v1::CalibrateResponse>(s);
  }
  return new CalibrateReactor(env_, context, std::move(slot));
}

// ---------------------------------------------------------------------------------------------
// Store: PutMaster

namespace {

class PutMasterReactor final : public grpc::ServerReadReactor<v1::PutMasterRequest> {
 public:
  PutMasterReactor(ServiceEnv* env, grpc::CallbackServerContext* ctx,
                   v1::PutMasterResponse* response, Principal who,
                   std::unique_ptr<StreamSlot> slot)
      : env_(env), ctx_(ctx), response_(response), who_(std::move(who)),
        slot_(std::move(slot)), start_(Clock::now()) {
    StartRead(&request_);
  }
  ~PutMasterReactor() override {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (!have_header_) {
        Done(absl::InvalidArgumentError("PutMaster needs a PutMasterHeader, then the FITS bytes"));
        return;
      }
      ::close(fd_);
      fd_ = -1;
      input_.received_bytes = received_;
      input_.received_sha256 = sha_.HexDigest();
      input_.spooled_path = path_;
      // Validation reads the whole file: off the gRPC thread.
      env_->backend->pool->Schedule([this] {
        absl::StatusOr<store::MasterVersion> v = env_->store->PutMaster(input_);
        if (v.ok()) {
          absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(*v);
          MasterVersionToProto(*v, m.ok() ? m->certifications : std::vector<store::Certification>{},
                               response_->mutable_version());
          response_->set_already_existed(!v->created);
          LogEvent("put_master", {{"detector", v->detector}, {"kind", v->kind},
                                  {"version", absl::StrCat(v->version)}, {"sha256", v->sha256},
                                  {"created", v->created ? "true" : "false"}, {"actor", who_.name}});
        }
        Done(v.status());
      });
      return;
    }
    absl::Status s = Handle();
    if (!s.ok()) {
      Done(s);
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    RecordRpc(env_, "PutMaster", final_, start_, ctx_->peer());
    if (env_->backend->metrics) env_->backend->metrics->AddBytesIn("PutMaster", received_);
    delete this;
  }

 private:
  absl::Status Handle() {
    if (request_.msg_case() == v1::PutMasterRequest::kHeader) {
      if (have_header_) return absl::InvalidArgumentError("a second PutMasterHeader");
      const v1::PutMasterHeader& h = request_.header();
      if (h.total_bytes() <= 0) {
        return absl::InvalidArgumentError("total_bytes must be the size of the FITS file (> 0)");
      }
      if (h.total_bytes() > env_->backend->limits.max_master_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the master is ", h.total_bytes(), " bytes; the server accepts at most ",
            env_->backend->limits.max_master_bytes, " (--max-master-bytes)"));
      }
      input_.detector = h.detector();
      input_.kind = h.kind();
      input_.configuration = ConfigurationFromProto(h.configuration());
      input_.attributes.insert(h.attributes().begin(), h.attributes().end());
      if (h.has_obs_time()) input_.obs_time = FromTimestamp(h.obs_time());
      input_.declared_bytes = h.total_bytes();
      input_.client_sha256 = h.sha256();
      input_.actor = who_.name;
      std::string templ = absl::StrCat(SpoolBase(env_->backend), "/calibd-put-XXXXXX.fits");
      fd_ = ::mkstemps(templ.data(), 5);
      if (fd_ < 0) {
        return absl::InternalError(absl::StrCat("cannot create a spool file in ",
                                                SpoolBase(env_->backend), ": ", strerror(errno)));
      }
      path_ = templ;
      have_header_ = true;
      return absl::OkStatus();
    }
    if (request_.msg_case() == v1::PutMasterRequest::kChunk) {
      if (!have_header_) {
        return absl::InvalidArgumentError("a chunk arrived before the PutMasterHeader");
      }
      const std::string& data = request_.chunk();
      if (received_ + static_cast<int64_t>(data.size()) > input_.declared_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "more bytes than the declared total_bytes (", input_.declared_bytes, ")"));
      }
      sha_.Update(data.data(), data.size());
      size_t off = 0;
      while (off < data.size()) {
        ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
        if (n < 0) {
          if (errno == EINTR) continue;
          return absl::ResourceExhaustedError(
              absl::StrCat("cannot spool the upload: ", strerror(errno)));
        }
        off += size_t(n);
      }
      received_ += static_cast<int64_t>(data.size());
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError("an empty PutMasterRequest");
  }

  void Done(const absl::Status& s) {
    final_ = ToGrpcStatus(s);
    slot_->Release();
    Finish(final_);
  }

  ServiceEnv* const env_;
  grpc::CallbackServerContext* const ctx_;
  v1::PutMasterResponse* const response_;
  const Principal who_;
  std::unique_ptr<StreamSlot> slot_;
  const Clock::time_point start_;
  v1::PutMasterRequest request_;
  PutMasterInput input_;
  bool have_header_ = false;
  int fd_ = -1;
  std::string path_;
  int64_t received_ = 0;
  Sha256 sha_;
  grpc::Status final_;
};

class GetMasterReactor final : public grpc::ServerWriteReactor<v1::GetMasterResponse> {
 public:
  GetMasterReactor(ServiceEnv* env, grpc::CallbackServerContext* ctx,
                   const v1::GetMasterRequest* request, std::unique_ptr<StreamSlot> slot)
      : env_(env), ctx_(ctx), slot_(std::move(slot)), start_(Clock::now()) {
    absl::Status s = Open(*request);
    if (!s.ok()) {
      Done(s);
      return;
    }
    StartWrite(&response_);
  }
  ~GetMasterReactor() override {
    if (file_ != nullptr) std::fclose(file_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Done(absl::CancelledError("the client stopped reading"));
      return;
    }
    response_.Clear();
    std::string* chunk = response_.mutable_chunk();
    chunk->resize(env_->backend->limits.chunk_bytes);
    size_t n = std::fread(chunk->data(), 1, chunk->size(), file_);
    if (n == 0) {
      if (std::ferror(file_)) {
        Done(absl::DataLossError("reading the master's blob failed"));
      } else if (sent_ != expected_) {
        Done(absl::DataLossError(absl::StrCat("the blob has ", sent_, " bytes, the catalog says ",
                                              expected_)));
      } else {
        Done(absl::OkStatus());
      }
      return;
    }
    chunk->resize(n);
    sent_ += static_cast<int64_t>(n);
    StartWrite(&response_);
  }

  void OnDone() override {
    RecordRpc(env_, "GetMaster", final_, start_, ctx_->peer());
    if (env_->backend->metrics) env_->backend->metrics->AddBytesOut("GetMaster", sent_);
    delete this;
  }

 private:
  absl::Status Open(const v1::GetMasterRequest& r) {
    std::optional<store::TimeMicros> at;
    if (r.version_choice_case() == v1::GetMasterRequest::kAt) at = FromTimestamp(r.at());
    const int64_t version =
        r.version_choice_case() == v1::GetMasterRequest::kVersion ? r.version() : 0;
    absl::StatusOr<store::MasterVersion> v = env_->store->ResolveMaster(
        SeriesKeyFromProto(r.detector(), r.kind(), r.configuration()), version, at);
    if (!v.ok()) return v.status();
    absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(*v);
    if (!m.ok()) return m.status();
    absl::StatusOr<std::string> path = env_->store->BlobPath(v->sha256);
    if (!path.ok()) return path.status();
    file_ = std::fopen(path->c_str(), "rb");
    if (file_ == nullptr) {
      return absl::DataLossError(absl::StrCat("the blob of ", v->sha256, " cannot be opened"));
    }
    expected_ = v->size_bytes;
    MasterVersionToProto(*v, m->certifications, response_.mutable_metadata());
    return absl::OkStatus();
  }

  void Done(const absl::Status& s) {
    final_ = ToGrpcStatus(s);
    slot_->Release();
    Finish(final_);
  }

  ServiceEnv* const env_;
  grpc::CallbackServerContext* const ctx_;
  std::unique_ptr<StreamSlot> slot_;
  const Clock::time_point start_;
  v1::GetMasterResponse response_;
  std::FILE* file_ = nullptr;
  int64_t expected_ = 0;
  int64_t sent_ = 0;
  grpc::Status final_;
};

// Runs a unary method: authorise, run `body`, map the status, record, finish.
template <typename Body>
grpc::ServerUnaryReactor* Unary(ServiceEnv* env, grpc::CallbackServerContext* ctx,
                                const char* method, Scope scope, Body&& body) {
  const auto start = Clock::now();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Principal> who = Authorize(env, ctx, scope);
  absl::Status s = who.ok() ? body(*who) : who.status();
  grpc::Status g = ToGrpcStatus(s);
  RecordRpc(env, method, g, start, ctx->peer());
  reactor->Finish(g);
  return reactor;
}

}  // namespace

grpc::ServerReadReactor<v1::PutMasterRequest>* StoreService::PutMaster(
    grpc::CallbackServerContext* context, v1::PutMasterResponse* response) {
  const auto start = Clock::now();
  absl::StatusOr<Principal> who = Authorize(env_, context, Scope::kAdmin);
  absl::Status s = who.status();
  auto slot = std::make_unique<StreamSlot>(env_, "PutMaster");
  if (s.ok()) s = slot->status();
  if (!s.ok()) {
    grpc::Status g = ToGrpcStatus(s);
    RecordRpc(env_, "PutMaster", g, start, context->peer());
    return new FailedRead<v1::PutMasterRequest>(g);
  }
  return new PutMasterReactor(env_, context, response, *who, std::move(slot));
}

grpc::ServerWriteReactor<v1::GetMasterResponse>* StoreService::GetMaster(
    grpc::CallbackServerContext* context, const v1::GetMasterRequest* request) {
  const auto start = Clock::now();
  absl::StatusOr<Principal> who = Authorize(env_, context, Scope::kRead);
  absl::Status s = who.status();
  auto slot = std::make_unique<StreamSlot>(env_, "GetMaster");
  if (s.ok()) s = slot->status();
  if (!s.ok()) {
    grpc::Status g = ToGrpcStatus(s);
    RecordRpc(env_, "GetMaster", g, start, context->peer());
    return new FailedWrite<v1::GetMasterResponse>(g);
  }
  return new GetMasterReactor(env_, context, request, std::move(slot));
}

grpc::ServerUnaryReactor* StoreService::ListMasters(grpc::CallbackServerContext* context,
                                                    const v1::ListMastersRequest* request,
                                                    v1::ListMastersResponse* response) {
  return Unary(env_, context, "ListMasters", Scope::kRead, [&](const Principal&) -> absl::Status {
    absl::StatusOr<std::vector<MasterWithCerts>> list =
        env_->store->ListMasters(request->detector(), request->kind());
    if (!list.ok()) return list.status();
    for (const MasterWithCerts& m : *list) {
      MasterVersionToProto(m.version, m.certifications, response->add_versions());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::History(grpc::CallbackServerContext* context,
                                                const v1::HistoryRequest* request,
                                                v1::HistoryResponse* response) {
  return Unary(env_, context, "History", Scope::kRead, [&](const Principal&) -> absl::Status {
    absl::StatusOr<HistoryResult> h = env_->store->History(
        SeriesKeyFromProto(request->detector(), request->kind(), request->configuration()));
    if (!h.ok()) return h.status();
    for (const MasterWithCerts& m : h->versions) {
      MasterVersionToProto(m.version, m.certifications, response->add_versions());
    }
    for (const store::AuditEntry& e : h->events) AuditEntryToProto(e, response->add_events());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::Certify(grpc::CallbackServerContext* context,
                                                const v1::CertifyRequest* request,
                                                v1::CertifyResponse* response) {
  return Unary(env_, context, "Certify", Scope::kAdmin, [&](const Principal& who) -> absl::Status {
    if (!request->has_begin()) {
      return absl::InvalidArgumentError("certify needs begin (the first instant of validity)");
    }
    std::optional<store::TimeMicros> end;
    if (request->has_end()) end = FromTimestamp(request->end());
    absl::StatusOr<store::Certification> c = env_->store->Certify(
        SeriesKeyFromProto(request->detector(), request->kind(), request->configuration()),
        request->version(), FromTimestamp(request->begin()), end, request->replace(), who.name,
        request->reason());
    if (!c.ok()) return c.status();
    CertificationToProto(*c, response->mutable_certification());
    LogEvent("certify", {{"detector", request->detector()}, {"kind", request->kind()},
                         {"version", absl::StrCat(request->version())},
                         {"begin", store::FormatTime(c->begin)}, {"actor", who.name}});
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::Decertify(grpc::CallbackServerContext* context,
                                                  const v1::DecertifyRequest* request,
                                                  v1::DecertifyResponse* response) {
  return Unary(env_, context, "Decertify", Scope::kAdmin,
               [&](const Principal& who) -> absl::Status {
    std::optional<store::TimeMicros> begin, end;
    if (request->has_begin()) begin = FromTimestamp(request->begin());
    if (request->has_end()) end = FromTimestamp(request->end());
    absl::StatusOr<MasterWithCerts> m = env_->store->Decertify(
        SeriesKeyFromProto(request->detector(), request->kind(), request->configuration()),
        request->version(), begin, end, who.name, request->reason());
    if (!m.ok()) return m.status();
    MasterVersionToProto(m->version, m->certifications, response->mutable_version());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::Select(grpc::CallbackServerContext* context,
                                               const v1::SelectRequest* request,
                                               v1::SelectResponse* response) {
  return Unary(env_, context, "Select", Scope::kRead, [&](const Principal&) -> absl::Status {
    absl::StatusOr<SelectionSpec> sel = SelectionFromProto(request->selection());
    if (!sel.ok()) return sel.status();
    absl::StatusOr<store::SelectionResult> r = env_->store->Select(
        request->detector(), HeaderFromProto(request->cards()), *sel,
        std::vector<std::string>(request->kinds().begin(), request->kinds().end()),
        RecipeOverridesFromProto(request->recipe()));
    if (!r.ok()) return r.status();
    SelectedMastersToProto(*r, response->mutable_masters());
    TrailToProto(*r, response->mutable_trail());
    *response->mutable_frame_time() = ToTimestamp(r->time);
    ConfigurationToProto(r->configuration, response->mutable_configuration());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::PutDetector(grpc::CallbackServerContext* context,
                                                    const v1::PutDetectorRequest* request,
                                                    v1::PutDetectorResponse* response) {
  return Unary(env_, context, "PutDetector", Scope::kAdmin,
               [&](const Principal& who) -> absl::Status {
    absl::StatusOr<store::DetectorRecord> r =
        env_->store->PutDetector(DetectorSpecFromProto(request->spec()), who.name);
    if (!r.ok()) return r.status();
    DetectorRecordToProto(*r, response->mutable_spec());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::GetDetector(grpc::CallbackServerContext* context,
                                                    const v1::GetDetectorRequest* request,
                                                    v1::DetectorSpec* response) {
  return Unary(env_, context, "GetDetector", Scope::kRead, [&](const Principal&) -> absl::Status {
    absl::StatusOr<store::DetectorRecord> r =
        env_->store->GetDetector(request->name(), request->version());
    if (!r.ok()) return r.status();
    DetectorRecordToProto(*r, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::ListDetectors(grpc::CallbackServerContext* context,
                                                      const v1::ListDetectorsRequest* request,
                                                      v1::ListDetectorsResponse* response) {
  return Unary(env_, context, "ListDetectors", Scope::kRead,
               [&](const Principal&) -> absl::Status {
    absl::StatusOr<std::vector<store::DetectorRecord>> r = env_->store->ListDetectors();
    if (!r.ok()) return r.status();
    for (const store::DetectorRecord& d : *r) DetectorRecordToProto(d, response->add_detectors());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::GetDqBits(grpc::CallbackServerContext* context,
                                                  const v1::GetDqBitsRequest* request,
                                                  v1::GetDqBitsResponse* response) {
  return Unary(env_, context, "GetDqBits", Scope::kRead, [&](const Principal&) -> absl::Status {
    absl::StatusOr<std::vector<DqBitEntry>> bits = env_->store->DqBits(request->detector());
    if (!bits.ok()) return bits.status();
    for (const DqBitEntry& b : *bits) {
      v1::DqBit* p = response->add_bits();
      p->set_bit(b.bit);
      p->set_name(b.name);
      p->set_description(b.description);
    }
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------------------------------------
// Builder

namespace {

class BuildReactor final : public grpc::ServerReadReactor<v1::BuildMasterRequest> {
 public:
  BuildReactor(ServiceEnv* env, grpc::CallbackServerContext* ctx, v1::BuildMasterResponse* response,
               Principal who, std::unique_ptr<StreamSlot> slot)
      : env_(env), ctx_(ctx), response_(response), who_(std::move(who)), slot_(std::move(slot)),
        start_(Clock::now()) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (cancelled()) {
        Done(absl::CancelledError("cancelled"));
        return;
      }
      if (session_ == nullptr) {
        Done(absl::InvalidArgumentError("BuildMaster needs BuildOptions first, then frames"));
        return;
      }
      if (frame_ != nullptr) {
        Done(absl::InvalidArgumentError(absl::StrCat(
            "the stream ended in the middle of input frame '", frame_->request.frame_id, "'")));
        return;
      }
      env_->backend->pool->Schedule([this] {
        absl::StatusOr<BuildResult> r = session_->Finish();
        if (r.ok()) {
          absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(r->version);
          MasterVersionToProto(r->version,
                               m.ok() ? m->certifications : std::vector<store::Certification>{},
                               response_->mutable_version());
          v1::BuildStatistics* st = response_->mutable_statistics();
          st->set_inputs(r->inputs);
          st->set_rejected_fraction(r->rejected_fraction);
          st->set_noise(r->noise);
          st->set_combine_seconds(r->combine_seconds);
          if (r->certification) {
            CertificationToProto(*r->certification, response_->mutable_certification());
          }
          for (const std::string& s : r->input_sha256) response_->add_input_sha256(s);
          LogEvent("build", {{"detector", r->version.detector}, {"kind", r->version.kind},
                             {"version", absl::StrCat(r->version.version)},
                             {"inputs", absl::StrCat(r->inputs)}, {"actor", who_.name}});
        }
        Done(r.status());
      });
      return;
    }
    if (cancelled()) {
      Done(absl::CancelledError("cancelled"));
      return;
    }
    absl::Status s = Handle();
    if (!s.ok()) Done(s);
  }

  void OnCancel() override { cancelled_.store(true); }

  void OnDone() override {
    RecordRpc(env_, "BuildMaster", final_, start_, ctx_->peer());
    if (env_->backend->metrics) env_->backend->metrics->AddBytesIn("BuildMaster", bytes_in_);
    delete this;
  }

 private:
  struct Frame {
    PreparedFrame prepared;
    FrameRequest request;
    RawImage raw;
    int64_t expected = 0, received = 0;
    Sha256 sha;
  };

  bool cancelled() const { return cancelled_.load(); }

  // Handles request_; continues reading (directly, or after pool work). Errors are returned.
  absl::Status Handle() {
    switch (request_.msg_case()) {
      case v1::BuildMasterRequest::kOptions: {
        if (session_ != nullptr) return absl::InvalidArgumentError("a second BuildOptions");
        absl::StatusOr<BuildRequest> req = BuildRequestFromProto(request_.options());
        if (!req.ok()) return req.status();
        req->actor = who_.name;
        session_ = std::make_unique<BuildSession>(env_->backend, env_->calibrate, *std::move(req));
        absl::Status s = session_->Begin();
        if (!s.ok()) return s;
        StartRead(&request_);
        return absl::OkStatus();
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
        StartRead(&request_);
        return absl::OkStatus();
      }
      case v1::BuildMasterRequest::kChunk: {
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
        frame_->sha.Update(data.data(), data.size());
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
      case v1::BuildMasterRequest::kStored: {
        if (session_ == nullptr) return absl::InvalidArgumentError("an input before BuildOptions");
        const v1::StoredFrameRef& r = request_.stored();
        absl::Status s = session_->AddStored(
            SeriesKeyFromProto(r.detector(), r.kind(), r.configuration()), r.version());
        if (!s.ok()) return s;
        StartRead(&request_);
        return absl::OkStatus();
      }
      default:
        return absl::InvalidArgumentError("an empty BuildMasterRequest");
    }
  }

  void Done(const absl::Status& s) {
    final_ = ToGrpcStatus(s);
    slot_->Release();
    Finish(final_);
  }

  ServiceEnv* const env_;
  grpc::CallbackServerContext* const ctx_;
  v1::BuildMasterResponse* const response_;
  const Principal who_;
  std::unique_ptr<StreamSlot> slot_;
  const Clock::time_point start_;
  v1::BuildMasterRequest request_;
  std::unique_ptr<BuildSession> session_;
  std::unique_ptr<Frame> frame_;
  std::atomic<bool> cancelled_{false};
  int64_t bytes_in_ = 0;
  grpc::Status final_;
};

}  // namespace

grpc::ServerReadReactor<v1::BuildMasterRequest>* BuilderService::BuildMaster(
    grpc::CallbackServerContext* context, v1::BuildMasterResponse* response) {
  const auto start = Clock::now();
  absl::StatusOr<Principal> who = Authorize(env_, context, Scope::kAdmin);
  absl::Status s = who.status();
  auto slot = std::make_unique<StreamSlot>(env_, "BuildMaster");
  if (s.ok()) s = slot->status();
  if (!s.ok()) {
    grpc::Status g = ToGrpcStatus(s);
    RecordRpc(env_, "BuildMaster", g, start, context->peer());
    return new FailedRead<v1::BuildMasterRequest>(g);
  }
  return new BuildReactor(env_, context, response, *who, std::move(slot));
}

}  // namespace calibd::server
