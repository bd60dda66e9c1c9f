// Calibrator.Calibrate: the bidi reactor. See services.h for the pipeline; in short: a frame
// header is parsed on the gRPC thread, prepared (selection SQL, master decode, flat
// normalisation) on the worker pool while no further message is read, its chunks are copied
// from gRPC's slices straight into a pooled RawImage on the gRPC thread, and the full frame is
// computed on the pool while the next frame is read. Results are written in order, each chunk a
// slice over the result's own pooled plane (proto/wire.h): no pixel is copied on the way out
// before the kernel's socket write.
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "proto/wire.h"
#include "server/convert.h"
#include "server/frame_memory.h"
#include "server/metrics.h"
#include "server/reactor_base.h"
#include "server/status_util.h"

namespace calibd::server {
namespace {

class CalibrateReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  CalibrateReactor(ServiceEnv* env, StreamStart start) : env_(env), start_(std::move(start)) {
    {
      absl::MutexLock lock(&mu_);
      read_in_flight_ = true;
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    // Only the read path touches request_ and receiving_: one read or one preparation is in
    // flight at a time, and the hand-over between them goes through mu_.
    std::optional<absl::Status> error;
    std::unique_ptr<Job> completed;
    std::optional<FrameRequest> header;
    bool mid_frame_at_end = false;
    if (ok) {
      error = HandleMessage(&completed, &header);
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
      if (header.has_value() && !stream_error_ && !cancelled_) {
        preparing_ = true;
        mid_frame_ = true;
        a.prepare = std::move(header);
      }
      a = StepLocked(std::move(a));
    }
    Execute(std::move(a));
  }

  void OnWriteDone(bool ok) override {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      // The message's slices hold their frame's planes and memory lease: let go of them now,
      // not when the next message is made — a stream whose next frame waits for memory would
      // otherwise wait for its own last result.
      out_.Clear();
      if (!ok) cancelled_ = true;  // the client is gone
      a = StepLocked({});
    }
    Execute(std::move(a));
  }

  void OnCancel() override {
    Actions a;
    uint64_t ticket;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      ticket = memory_ticket_;
      a = StepLocked({});
    }
    if (ticket != 0) env_->backend->frame_memory->Cancel(ticket);  // answers CANCELLED
    Execute(std::move(a));
  }

  void OnDone() override {
    if (env_->backend->metrics) {
      env_->backend->metrics->AddBytesIn("Calibrate", bytes_in_);
      env_->backend->metrics->AddBytesOut("Calibrate", bytes_out_);
    }
    delete this;
  }

 private:
  struct Job {
    std::unique_ptr<PreparedFrame> prepared;  // null when the frame already failed
    FrameMemory::Lease lease;                 // the frame's bytes in the budget
    RawImage raw;
    PixelType type = PixelType::kUint16;
    int width = 0, height = 0;
    FrameResult result;  // frame_id, and status when failed
    int64_t expected = 0;
    int64_t received = 0;
  };
  // A computed result, shared with the slices of its chunks in flight: its planes go back to the
  // pool and its bytes to the budget when the last of them is released.
  struct Sent {
    FrameResult result;
    FrameMemory::Lease lease;
  };
  struct Output {
    std::shared_ptr<Sent> sent;
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
    std::optional<FrameRequest> prepare;
    std::unique_ptr<Job> compute;
    std::optional<absl::Status> finish;
  };
  static constexpr size_t kMaxOutputs = 2;  // computed results not yet sent

  // Decodes in_ and advances the frame being received. A returned status is a stream error; a
  // header to prepare is returned in `header`.
  std::optional<absl::Status> HandleMessage(std::unique_ptr<Job>* completed,
                                            std::optional<FrameRequest>* header) {
    if (receiving_ != nullptr && receiving_->prepared != nullptr) {
      // The pixels of a frame being received go straight from gRPC's slices into its rows.
      absl::StatusOr<bool> placed =
          wire::DecodeChunk(in_, wire::kCalibrateRequestChunk,
                            [this](int, size_t n) { return AcceptChunk(n); });
      if (!placed.ok()) return placed.status();
      if (*placed) {
        if (receiving_->received == receiving_->expected) *completed = std::move(receiving_);
        return std::nullopt;
      }
    }
    if (absl::Status s = wire::ParseMessage(in_, &request_); !s.ok()) return s;
    switch (request_.msg_case()) {
      case v1::CalibrateRequest::kHeader: {
        if (receiving_ != nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              "a new frame header arrived before frame '", receiving_->result.frame_id,
              "' was complete (", receiving_->received, " of ", receiving_->expected, " bytes)"));
        }
        absl::StatusOr<FrameRequest> req = FrameRequestFromProto(request_.header());
        if (!req.ok()) return req.status();
        if (absl::Status s = CheckDetector(start_.who, req->detector); !s.ok()) return s;
        *header = *std::move(req);
        return std::nullopt;
      }
      case v1::CalibrateRequest::kChunk: {
        const std::string& data = request_.chunk().data();
        if (receiving_ == nullptr) {
          return absl::InvalidArgumentError(
              "a pixel chunk arrived without a frame header before it (or after its frame "
              "was complete); send FrameHeader, then exactly its bytes");
        }
        absl::StatusOr<char*> dest = AcceptChunk(data.size());
        if (!dest.ok()) return dest.status();
        // A frame that failed already has no buffer: its bytes are consumed, not kept.
        if (*dest != nullptr && !data.empty()) std::memcpy(*dest, data.data(), data.size());
        if (receiving_->received == receiving_->expected) *completed = std::move(receiving_);
        return std::nullopt;
      }
      default:
        return absl::InvalidArgumentError("an empty CalibrateRequest (neither header nor chunk)");
    }
  }

  // Counts the next `n` bytes of the frame being received against the stream's and the frame's
  // sizes; where they go (null for a frame that failed and keeps nothing).
  absl::StatusOr<char*> AcceptChunk(size_t n) {
    stream_bytes_ += static_cast<int64_t>(n);
    bytes_in_ += static_cast<int64_t>(n);
    if (stream_bytes_ > env_->backend->limits.max_stream_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the stream sent more than ", env_->backend->limits.max_stream_bytes,
          " bytes (--max-stream-bytes); open a new stream"));
    }
    Job& job = *receiving_;
    if (job.received + static_cast<int64_t>(n) > job.expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "frame '", job.result.frame_id, "': chunks carry more bytes than its header "
          "declared (", job.expected, " = width × height × pixel size)"));
    }
    char* dest = job.prepared == nullptr ? nullptr
                                         : static_cast<char*>(job.raw.data()) + job.received;
    job.received += static_cast<int64_t>(n);
    return dest;
  }

  // Bytes a frame holds in flight: its raw buffer and its result planes (data, variance, DQ).
  static int64_t FrameBytes(const Job& job) {
    return int64_t{job.width} * job.height *
           (static_cast<int64_t>(PixelSize(job.type)) + 4 + 4 + 2);
  }

  // On the worker pool: selection, masters, options; then memory for the frame and its buffer.
  void PrepareFrame(FrameRequest req) {
    auto job = std::make_unique<Job>();
    job->result.frame_id = req.frame_id;
    job->expected = req.num_bytes();
    job->type = req.pixel_type;
    job->width = req.width;
    job->height = req.height;
    bool skip;
    {
      absl::MutexLock lock(&mu_);
      skip = cancelled_ || stream_error_.has_value();
    }
    if (!skip) {
      auto prepared = std::make_unique<PreparedFrame>();
      absl::Status s = env_->calibrate->Prepare(std::move(req), *prepared);
      if (s.ok()) {
        job->prepared = std::move(prepared);
        if (env_->backend->frame_memory != nullptr) {
          RequestMemory(std::move(job));  // continues in MemoryAnswered
          return;
        }
        job->raw = RawImage::Allocate(job->type, job->width, job->height, env_->backend->buffers);
      } else {
        job->result.status = s;
        job->result.selection = std::move(prepared->selection);
      }
    }
    FinishPreparing(std::move(job), skip);
  }

  // Asks the budget for the frame's bytes; the stream reads nothing more until the answer.
  void RequestMemory(std::unique_ptr<Job> job) {
    FrameMemory* memory = env_->backend->frame_memory;
    const int64_t bytes = FrameBytes(*job);
    // Refuse a little before the client's deadline, so it gets RESOURCE_EXHAUSTED rather
    // than DEADLINE_EXCEEDED.
    const absl::Time client = start_.call->deadline();
    absl::Time deadline = absl::Now() + absl::Milliseconds(env_->backend->limits.frame_memory_wait_ms);
    if (client != absl::InfiniteFuture()) {
      deadline = std::min(deadline, client - std::min(absl::Milliseconds(500),
                                                      (client - absl::Now()) / 10));
    }
    Job* pending = job.release();
    const uint64_t ticket = memory->Acquire(bytes, deadline, [this, pending, bytes](absl::Status s) {
      env_->backend->pool->Schedule([this, pending, bytes, s = std::move(s)]() mutable {
        MemoryAnswered(std::unique_ptr<Job>(pending), bytes, std::move(s));
      });
    });
    if (ticket == 0) return;  // answered already
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      memory_ticket_ = ticket;
      cancel = cancelled_;
    }
    if (cancel) memory->Cancel(ticket);
  }

  // On the worker pool, with the budget's answer.
  void MemoryAnswered(std::unique_ptr<Job> job, int64_t bytes, absl::Status s) {
    FrameMemory* memory = env_->backend->frame_memory;
    {
      absl::MutexLock lock(&mu_);
      memory_ticket_ = 0;
    }
    if (s.ok()) {
      job->lease = FrameMemory::Lease(memory, bytes);
      job->raw = RawImage::Allocate(job->type, job->width, job->height, env_->backend->buffers);
      FinishPreparing(std::move(job), false);
      return;
    }
    if (absl::IsResourceExhausted(s) && bytes > memory->budget()) {
      // This frame can never fit: it fails alone, its bytes are consumed, the stream goes on.
      const std::optional<store::SelectionResult> selection = job->prepared->selection;
      job->prepared.reset();
      job->result.status = s;
      job->result.selection = selection;
      FinishPreparing(std::move(job), false);
      return;
    }
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      preparing_ = false;
      if (!cancelled_ && !stream_error_) stream_error_ = s;  // no memory before the deadline
      a = StepLocked({});
    }
    Execute(std::move(a));
  }

  void FinishPreparing(std::unique_ptr<Job> job, bool skip) {
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      preparing_ = false;
      if (!skip) {
        if (job->expected <= 0) {
          queued_.push_back(std::move(job));  // nothing to receive (a refused empty frame)
        } else {
          receiving_ = std::move(job);
        }
      }
      mid_frame_ = receiving_ != nullptr;
      a = StepLocked({});
    }
    Execute(std::move(a));
  }

  // Decides what to do next; the caller executes the actions after releasing the lock.
  Actions StepLocked(Actions a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return a;
    const bool busy = computing_ || write_in_flight_ || read_in_flight_ || preparing_;
    if (cancelled_ || stream_error_) {
      queued_.clear();
      outputs_.clear();
      if (!busy && !a.prepare) {
        finished_ = true;
        a.finish = cancelled_ ? absl::CancelledError("cancelled") : *stream_error_;
      }
      return a;
    }
    // Failed frames become outputs in order; the next good frame goes to the pool.
    while (!computing_ && !queued_.empty() && outputs_.size() < kMaxOutputs) {
      std::unique_ptr<Job> job = std::move(queued_.front());
      queued_.pop_front();
      if (job->prepared == nullptr) {
        AddOutputLocked(std::move(job->result), FrameMemory::Lease());
      } else {
        computing_ = true;
        a.compute = std::move(job);
      }
    }
    if (!write_in_flight_ && NextMessageLocked()) {
      write_in_flight_ = true;
      a.write = true;
    }
    // Back-pressure: read on only while no complete frame waits for the pool and no header
    // is being prepared.
    if (!read_in_flight_ && !reads_done_ && !preparing_ && queued_.empty()) {
      read_in_flight_ = true;
      a.read = true;
    }
    if (reads_done_ && !mid_frame_ && !preparing_ && queued_.empty() && !computing_ &&
        outputs_.empty() && !write_in_flight_ && !read_in_flight_) {
      finished_ = true;
      a.finish = absl::OkStatus();
    }
    if (env_->backend->metrics) {
      env_->backend->metrics->SetQueueDepth(double(env_->backend->pool->queue_depth()));
    }
    return a;
  }

  void AddOutputLocked(FrameResult result, FrameMemory::Lease lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto out = std::make_unique<Output>();
    out->sent = std::make_shared<Sent>(Sent{std::move(result), std::move(lease)});
    FrameResult& r = out->sent->result;
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

  // Fills out_ with the next message to send; false when there is none.
  bool NextMessageLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!outputs_.empty()) {
      Output& o = *outputs_.front();
      if (!o.header_sent) {
        v1::CalibrateResponse header;
        ResultHeaderToProto(o.sent->result, header.mutable_header());
        out_ = wire::SerializeMessage(header);
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
        out_ = wire::EncodeChunk(wire::kCalibrateResponseChunk, p.plane, p.data + o.offset, n,
                                 o.sent);
        o.offset += n;
        bytes_out_ += static_cast<int64_t>(n);
        return true;
      }
      outputs_.pop_front();  // all sent: the planes go back to the pool with the last slice
    }
    return false;
  }

  void Execute(Actions a) {
    // The finish, if any, is the last thing this reactor does before OnDone.
    if (a.finish) {
      Finish(start_.Conclude(*a.finish));
      return;
    }
    if (a.prepare) {
      env_->backend->pool->Schedule(
          [this, req = *std::move(a.prepare)]() mutable { PrepareFrame(std::move(req)); });
    }
    if (a.compute) {
      Job* job = a.compute.release();
      env_->backend->pool->Schedule([this, job] { Compute(std::unique_ptr<Job>(job)); });
    }
    if (a.write) StartWrite(&out_);
    if (a.read) StartRead(&in_);
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
    FrameMemory::Lease lease = std::move(job->lease);
    job.reset();  // frees the raw frame before the result is queued
    Actions a;
    {
      absl::MutexLock lock(&mu_);
      computing_ = false;
      if (!skip) AddOutputLocked(std::move(result), std::move(lease));
      a = StepLocked({});
    }
    Execute(std::move(a));
  }

  ServiceEnv* const env_;
  StreamStart start_;

  // Read path only (one read or preparation in flight at a time).
  grpc::ByteBuffer in_;
  v1::CalibrateRequest request_;  // a message that is not a chunk placed in place
  std::unique_ptr<Job> receiving_;
  int64_t stream_bytes_ = 0;
  std::atomic<int64_t> bytes_in_{0};

  absl::Mutex mu_;
  grpc::ByteBuffer out_;  // written under mu_, read by gRPC while a write is in flight
  std::deque<std::unique_ptr<Job>> queued_ ABSL_GUARDED_BY(mu_);
  std::deque<std::unique_ptr<Output>> outputs_ ABSL_GUARDED_BY(mu_);
  bool mid_frame_ ABSL_GUARDED_BY(mu_) = false;
  bool preparing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t memory_ticket_ ABSL_GUARDED_BY(mu_) = 0;  // waiting for frame memory
  bool computing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> stream_error_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_out_ = 0;
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* CalibratorService::Calibrate(
    grpc::CallbackServerContext* context) {
  return OpenStream<FailedBidi<grpc::ByteBuffer, grpc::ByteBuffer>>(
      env_, context, "Calibrate", Scope::kRead,
      [&](StreamStart s) { return new CalibrateReactor(env_, std::move(s)); });
}

}  // namespace calibd::server
