// CalibdClient::Calibrate: many files over one bidirectional stream, pipelined on three
// threads (read → send → receive), pixels on the wire without protobuf copies, and the files
// without a result re-sent on a new stream when the stream ends UNAVAILABLE.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/convert.h"
#include "proto/wire.h"
#include "core/fits/fits.h"
#include "core/status/macros.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"

namespace calibd::client {
namespace {

constexpr size_t kReadAhead = 2;       // files read before their turn to be sent

double Since(absl::Time t) { return absl::ToDoubleSeconds(absl::Now() - t); }

}  // namespace

struct CalibdClient::StreamOutcome {
  absl::Status status;          // the stream's end
  std::vector<size_t> pending;  // indices without a result (not yet delivered), in order
};

CalibdClient::StreamOutcome CalibdClient::CalibrateStream(
    const std::vector<std::string>& paths, const std::vector<size_t>& indices,
    const CalibrateOptions& options, const std::function<void(CalibrateResult)>& on_result,
    BufferPool& pool, CalibrateStats& stats) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  // The generated stub would copy every chunk into and out of protobuf strings; the same RPC
  // over ByteBuffers sends and receives the bytes in place (the wire format is unchanged).
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel_.get(),
          grpc::internal::RpcMethod(wire::kCalibrateMethod,
                                    grpc::internal::RpcMethod::BIDI_STREAMING),
          &ctx));
  ++stats.streams;

  // What the sender did with each file, in order: sent (a result will come back) or failed
  // locally (reported without a server round trip).
  struct Item {
    size_t index;
    absl::Status local;
  };
  struct Read {
    size_t index;
    absl::StatusOr<std::shared_ptr<RawFrame>> frame;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Read> reads;  // reader → sender
  std::deque<Item> items;  // sender → receiver
  bool reader_done = false, sender_done = false;
  bool stop = false;  // the receiver gave up: reader and sender stop too
  double read_seconds = 0, send_seconds = 0;
  int64_t bytes_sent = 0;

  std::thread reader([&] {
    for (size_t index : indices) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || reads.size() < kReadAhead; });
        if (stop) break;
      }
      const absl::Time t0 = absl::Now();
      fits::ReadOptions ro;
      ro.pool = &pool;
      absl::StatusOr<RawFrame> raw = fits::ReadRawFrame(paths[index], ro);
      Read r{index, raw.ok() ? absl::StatusOr<std::shared_ptr<RawFrame>>(
                                   std::make_shared<RawFrame>(*std::move(raw)))
                             : absl::StatusOr<std::shared_ptr<RawFrame>>(raw.status())};
      std::lock_guard<std::mutex> lock(mu);
      read_seconds += Since(t0);
      reads.push_back(std::move(r));
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu);
    reader_done = true;
    cv.notify_all();
  });

  std::thread sender([&] {
    bool ok = true;
    int64_t done = 0;  // this round's file bytes sent; Calibrate's RoundProgress adds the rest
    v1::CalibrateRequest req;
    while (ok) {
      Read r;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || !reads.empty() || reader_done; });
        if (stop || reads.empty()) break;
        r = std::move(reads.front());
        reads.pop_front();
        cv.notify_all();
      }
      if (!r.frame.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        items.push_back({r.index, r.frame.status()});
        cv.notify_all();
        continue;
      }
      const std::shared_ptr<RawFrame>& raw = *r.frame;
      const std::string& path = paths[r.index];
      req.Clear();
      v1::FrameHeader* h = req.mutable_header();
      FillFrameHeader(*raw, options.detector, path, h);
      *h->mutable_recipe() = options.recipe;
      *h->mutable_selection() = options.selection;
      h->set_unit(options.unit);
      for (v1::Plane p : options.planes) h->add_planes(p);
      {
        std::lock_guard<std::mutex> lock(mu);
        items.push_back({r.index, absl::OkStatus()});
        cv.notify_all();
      }
      const absl::Time t0 = absl::Now();
      ok = stream->Write(wire::SerializeMessage(req));
      std::error_code ec;
      const double file_bytes = static_cast<double>(std::filesystem::file_size(path, ec));
      const char* bytes = static_cast<const char*>(raw->pixels.data());
      const size_t n = raw->pixels.size_bytes();
      for (size_t off = 0; ok && off < n; off += kMaxChunkBytes) {
        const size_t len = std::min(kMaxChunkBytes, n - off);
        // The slice holds the frame until gRPC has sent it; the pool gets it back then.
        ok = stream->Write(wire::EncodeChunk(wire::kCalibrateRequestChunk, 0, bytes + off, len, raw));
        // Progress in file bytes (what the user sees on disk), pro rata of the pixels sent.
        if (options.progress && !ec) {
          options.progress(done + static_cast<int64_t>((off + len) * file_bytes / n), 0);
        }
      }
      if (!ec) done += static_cast<int64_t>(file_bytes);
      std::lock_guard<std::mutex> lock(mu);
      send_seconds += Since(t0);
      bytes_sent += static_cast<int64_t>(n);
    }
    if (ok) stream->WritesDone();
    std::lock_guard<std::mutex> lock(mu);
    sender_done = true;
    cv.notify_all();
  });

  ResultAssembler assembler(&pool);
  grpc::ByteBuffer buffer;
  v1::CalibrateResponse resp;
  StreamOutcome outcome;
  bool broken = false;
  absl::Status protocol_error;
  while (!broken) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !items.empty() || sender_done; });
      if (items.empty()) break;
      item = std::move(items.front());
      items.pop_front();
    }
    CalibrateResult result;
    result.path = paths[item.index];
    if (!item.local.ok()) {
      result.status = item.local;
      const absl::Time t0 = absl::Now();
      on_result(std::move(result));
      stats.deliver_seconds += Since(t0);
      ++stats.frames;
      continue;
    }
    // This frame's result header and its planes.
    const absl::Time t0 = absl::Now();
    bool started = false;
    while (true) {
      if (!stream->Read(&buffer)) {
        broken = true;
        break;
      }
      stats.bytes_received += static_cast<int64_t>(buffer.Length());
      absl::StatusOr<bool> placed = false;
      if (started) {
        placed = wire::DecodeChunk(buffer, wire::kCalibrateResponseChunk,
                                   [&](int plane, size_t n) { return assembler.Reserve(plane, n); });
      }
      if (placed.ok() && !*placed) {
        absl::Status parsed = wire::ParseMessage(buffer, &resp);
        if (!parsed.ok()) placed = parsed;
      }
      if (!placed.ok()) {
        protocol_error = Annotate(placed.status(), "protocol error from the server");
        broken = true;
        break;
      }
      if (*placed) {
        // in place
      } else if (resp.has_header()) {
        if (started) {
          protocol_error = absl::InternalError(
              "protocol error from the server: a result header arrived before the previous "
              "result was complete");
          broken = true;
          break;
        }
        started = true;
        absl::Status s = assembler.Start(resp.header());
        if (!s.ok()) {
          result.header = resp.header();
          result.status = s;
          break;
        }
      } else if (resp.has_chunk()) {
        absl::Status s = assembler.AddChunk(resp.chunk());
        if (!s.ok()) {
          protocol_error = Annotate(s, "protocol error from the server");
          broken = true;
          break;
        }
      }
      if (started && assembler.complete()) {
        result.header = assembler.header();
        result.frame = assembler.Take();
        break;
      }
    }
    stats.receive_seconds += Since(t0);
    if (broken) {
      outcome.pending.push_back(item.index);
      break;
    }
    const absl::Time t1 = absl::Now();
    on_result(std::move(result));
    stats.deliver_seconds += Since(t1);
    ++stats.frames;
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    if (broken) stop = true;  // reader and sender stop (writes fail once the call is over)
    cv.notify_all();
  }
  if (!protocol_error.ok()) ctx.TryCancel();
  sender.join();
  reader.join();
  while (stream->Read(&buffer)) {
  }
  outcome.status = FromGrpc(stream->Finish(), ctx);
  if (!protocol_error.ok()) outcome.status = protocol_error;
  // Files the sender took but whose results never came, then files it never took: all in
  // order after the broken one (items, reads and the rest of `indices` are each ordered and
  // follow each other).
  for (const Item& item : items) outcome.pending.push_back(item.index);
  for (const Read& r : reads) outcome.pending.push_back(r.index);
  if (!outcome.pending.empty() || broken) {
    const size_t last = outcome.pending.empty() ? 0 : outcome.pending.back();
    auto it = std::find(indices.begin(), indices.end(), last);
    if (it != indices.end()) {
      for (++it; it != indices.end(); ++it) outcome.pending.push_back(*it);
    }
  }
  if (!outcome.pending.empty() && outcome.status.ok()) {
    outcome.status = absl::UnavailableError("the stream ended before every result came back");
  }
  stats.read_seconds += read_seconds;
  stats.send_seconds += send_seconds;
  stats.bytes_sent += bytes_sent;
  return outcome;
}

int64_t FileBytes(const std::vector<std::string>& paths) {
  int64_t sum = 0;
  for (const std::string& p : paths) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(p, ec);
    if (!ec) sum += static_cast<int64_t>(size);
  }
  return sum;
}

ProgressFn RoundProgress(const ProgressFn& batch, const std::vector<std::string>& all,
                         const std::vector<std::string>& pending) {
  if (!batch) return nullptr;
  const int64_t total = FileBytes(all);
  const int64_t delivered = total - FileBytes(pending);
  return [batch, delivered, total](int64_t done, int64_t) { batch(delivered + done, total); };
}

absl::Status CalibdClient::Calibrate(const std::vector<std::string>& paths,
                                     const CalibrateOptions& options,
                                     const std::function<void(CalibrateResult)>& on_result) {
  BufferPool pool(size_t{1} << 30);
  CalibrateStats local_stats;
  CalibrateStats& stats = options.stats != nullptr ? *options.stats : local_stats;
  std::vector<size_t> indices(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) indices[i] = i;
  CalibrateOptions round_options = options;
  for (int attempt = 1;; ++attempt) {
    if (options.progress) {
      std::vector<std::string> pending;
      for (size_t i : indices) pending.push_back(paths[i]);
      round_options.progress = RoundProgress(options.progress, paths, pending);
    }
    StreamOutcome o = CalibrateStream(paths, indices, round_options, on_result, pool, stats);
    if (o.pending.empty()) return o.status;
    const bool retry =
        o.status.code() == absl::StatusCode::kUnavailable && attempt < options_.max_attempts;
    if (!retry) {
      for (size_t index : o.pending) {
        CalibrateResult result;
        result.path = paths[index];
        result.status = o.status;
        on_result(std::move(result));
        ++stats.frames;
      }
      return o.status;
    }
    // Calibrating a frame changes nothing on the server: sending it again is safe.
    retries_ += static_cast<int64_t>(o.pending.size());
    stats.frames_resent += static_cast<int64_t>(o.pending.size());
    Backoff(attempt);
    indices = std::move(o.pending);
  }
}

}  // namespace calibd::client
