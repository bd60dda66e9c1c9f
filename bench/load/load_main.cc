// calibd_load: a load generator for calibd's Calibrator.Calibrate stream.
//
// Streams W×H uint16 frames (default 4096×4096, a 32-column overscan strip on the right) over
// loopback with 1, 2, 4 ... concurrent streams and reports, per configuration: frames/s, MB/s
// in (raw bytes sent) and out (result bytes received), p50/p99 latency per frame (first byte
// sent → last result byte received), the server's CPU (cores used, from /proc/<pid>/stat) and
// its resident memory at start, end and peak (/proc/<pid>/status, sampled every 50 ms).
//
//   calibd_load --server 127.0.0.1:50051 --setup            # detector + bias/dark/flat masters
//   calibd_load --server 127.0.0.1:50051 --server_pid 1234 --streams 1,2,4
//                 --frames 12 --planes all,data --json load.json
//
// `--setup` puts the detector and certified bias, dark and flat masters (bench/load/setup.h).
//
// Each stream keeps at most --window frames in flight (sent, result not complete), so the
// latency of a frame is the pipeline's, not the length of a client-side queue.
//
// Every frame is accounted for: calibrated (with --verify, the default, its result bytes are
// compared byte for byte, in gRPC's slices, with those of a reference frame calibrated alone on
// one stream first: all frames are the same raw frame, so every result must be the same
// bytes; the reference's SHA-256 is printed), refused with
// RESOURCE_EXHAUSTED (the server's --frame-memory-bytes budget: a stream that waited past its
// deadline ends with that code, and its frames without a result count as refused), or lost
// (anything else: the run fails). A health prober on its own channel calls grpc.health.v1
// Check every 200 ms throughout each configuration and reports its worst latency and failures.
//
//   calibd_load --streams 64 --frames 2 --warmup 0 --planes all --deadline_s 120
//
// Thread safety: a command-line program; each stream runs on its own writer and reader threads.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/load/server_watch.h"
#include "bench/load/setup.h"
#include "proto/api_convert.h"
#include "proto/wire.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "core/hash/sha256.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "calibd address");
ABSL_FLAG(std::string, token, "", "bearer token (when calibd runs with --tokens)");
ABSL_FLAG(bool, setup, false, "put the detector and masters, certify them, then exit");
ABSL_FLAG(int, wait_serving_s, 0, "first wait up to this many seconds for health SERVING");
ABSL_FLAG(int, server_pid, 0, "calibd's pid, for CPU and RSS figures (0 = not measured)");
ABSL_FLAG(std::string, streams, "1,2,4", "concurrent stream counts to run, comma-separated");
ABSL_FLAG(int, frames, 12, "frames per stream per configuration (after warm-up)");
ABSL_FLAG(int, warmup, 2, "frames per stream sent before measuring");
ABSL_FLAG(int, window, 2, "frames in flight per stream");
ABSL_FLAG(int, connections, 1,
          "client connections the streams are spread over (round robin), as from that many "
          "separate clients");
ABSL_FLAG(std::string, planes, "all,data", "plane sets to run: all, data");
ABSL_FLAG(int, width, 4096, "raw frame width (including the overscan strip)");
ABSL_FLAG(int, height, 4096, "raw frame height");
ABSL_FLAG(int, overscan, 32, "overscan columns on the right");
ABSL_FLAG(std::string, detector, "bench/cam4k", "detector name");
ABSL_FLAG(std::string, json, "", "write the results as JSON to this file");
ABSL_FLAG(double, deadline_s, 0, "deadline of each stream in seconds (0 = none)");
ABSL_FLAG(bool, verify, true,
          "calibrate one frame alone first and check every result is the same bytes");

namespace calibd::load {
namespace {

namespace v1 = ::calibd::v1;
using Clock = std::chrono::steady_clock;
constexpr int kChunkBytes = 1 << 20;  // the API's chunk cap
constexpr double kMB = 1e6;

// ------------------------------------------------------------------------------------------
// The frames: headers every master and frame carries, so selection has a configuration.

void FillFrameHeader(v1::FrameHeader* h, int width, int height, bool data_only) {
  h->set_detector(absl::GetFlag(FLAGS_detector));
  h->set_width(width);
  h->set_height(height);
  h->set_pixel_type(v1::PIXEL_TYPE_UINT16);
  Header cards;
  AddBenchCards(&cards);  // the masters' configuration (bench/load/setup.h)
  cards.Set("IMAGETYP", "object");
  api::HeaderToProto(cards, h->mutable_cards());
  h->mutable_selection()->set_policy(v1::SELECTION_POLICY_STRICT);
  if (data_only) h->add_planes(v1::PLANE_DATA);
}

// A realistic uint16 raw frame: bias ~1000 ADU with a row gradient and noise, sky + sources
// in the data region; deterministic.
std::vector<uint16_t> MakeRawPixels(int width, int height, int overscan) {
  std::vector<uint16_t> px(static_cast<size_t>(width) * height);
  uint64_t s = 12345;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      double noise = static_cast<double>((s >> 33) & 0xFF) / 32.0 - 4.0;  // ±4 ADU
      double v = 1000 + 0.01 * y + noise;
      if (x < width - overscan) v += 1500 + 0.05 * ((x * 7 + y * 13) % 400);
      px[static_cast<size_t>(y) * width + x] = static_cast<uint16_t>(v);
    }
  }
  return px;
}

// ------------------------------------------------------------------------------------------
// One Calibrate stream.

struct StreamResult {
  std::vector<double> latencies_ms;  // measured frames only
  int64_t bytes_in = 0;              // raw bytes sent, measured frames
  int64_t bytes_out = 0;             // result bytes received, measured frames
  int errors = 0;                    // frames whose result header carried a failure
  int refused = 0;                   // ... of which RESOURCE_EXHAUSTED
  std::string first_error;
  int intended = 0;                  // frames the stream was to send
  int sent = 0;                      // frames whose header and chunks were written
  int completed = 0;                 // frames whose whole result arrived (ok or not)
  int ok = 0;                        // frames whose result was OK (and the reference's bytes)
  int wrong = 0;                     // ... OK, but not the reference's bytes
  std::string recorded;              // every result byte received, when asked to record
  grpc::Status status;
};

class FrameStream {
 public:
  // `reference`: the bytes every OK result must be (nullptr: not checked); `record`: keep the
  // result bytes in StreamResult::recorded.
  FrameStream(grpc::ChannelInterface* channel, const std::vector<grpc::ByteBuffer>* chunks,
              int width, int height, bool data_only, int warmup, int frames, int window,
              const std::string* reference, bool record)
      : channel_(channel),
        reference_(reference),
        record_(record),
        chunks_(chunks),
        width_(width),
        height_(height),
        data_only_(data_only),
        warmup_(warmup),
        frames_(frames),
        window_(window) {}

  StreamResult Run() {
    grpc::ClientContext ctx;
    if (!absl::GetFlag(FLAGS_token).empty()) {
      ctx.AddMetadata("authorization", "Bearer " + absl::GetFlag(FLAGS_token));
    }
    if (absl::GetFlag(FLAGS_deadline_s) > 0) {
      ctx.set_deadline(
          std::chrono::system_clock::now() +
          std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_deadline_s) * 1000)));
    }
    // Over ByteBuffers, as calibctl calls it (proto/wire.h): the chunks go out from the one
    // serialized copy, and results are checked in gRPC's own slices, so the generator spends
    // its CPU on the transport, not on protobuf's copies.
    std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> rw(
        grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
            channel_,
            grpc::internal::RpcMethod(wire::kCalibrateMethod,
                                      grpc::internal::RpcMethod::BIDI_STREAMING),
            &ctx));
    const int total = warmup_ + frames_;
    result_.intended = total;
    std::thread reader([&] { ReadAll(rw.get(), total); });
    v1::CalibrateRequest header_msg;
    FillFrameHeader(header_msg.mutable_header(), width_, height_, data_only_);
    bool ok = true;
    for (int i = 0; i < total && ok; ++i) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return sent_ - done_ < window_ || reader_done_; });
        if (reader_done_) break;
        start_.push_back(Clock::now());
        ++sent_;
      }
      header_msg.mutable_header()->set_frame_id(absl::StrCat("frame-", i));
      ok = rw->Write(wire::SerializeMessage(header_msg));
      for (const grpc::ByteBuffer& c : *chunks_) {
        if (!ok) break;
        ok = rw->Write(c);
      }
      if (ok) {
        std::lock_guard<std::mutex> lock(mu_);
        ++result_.sent;
      }
      if (ok && i >= warmup_) {
        std::lock_guard<std::mutex> lock(mu_);
        result_.bytes_in += int64_t{width_} * height_ * 2;
      }
    }
    rw->WritesDone();
    reader.join();
    result_.status = rw->Finish();
    return std::move(result_);
  }

 private:
  void ReadAll(grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* rw, int total) {
    grpc::ByteBuffer buffer;
    v1::CalibrateResponse msg;
    int frame = 0;
    int64_t expected = -1, received = 0;
    bool frame_ok = false, mismatch = false;
    // Result bytes are compared in place with the reference (cheaper than hashing them: a
    // SHA-256 of every result was half the generator's CPU, taken from the server's cores).
    auto take = [&](absl::string_view piece) {
      if (record_) result_.recorded.append(piece.data(), piece.size());
      if (reference_ != nullptr && !mismatch) {
        mismatch = static_cast<size_t>(received) + piece.size() > reference_->size() ||
                   std::memcmp(reference_->data() + received, piece.data(), piece.size()) != 0;
      }
      received += static_cast<int64_t>(piece.size());
    };
    auto finish_frame = [&] {
      auto now = Clock::now();
      std::lock_guard<std::mutex> lock(mu_);
      ++result_.completed;
      if (frame_ok) {
        const bool same = reference_ == nullptr ||
                          (!mismatch && static_cast<size_t>(received) == reference_->size());
        ++(same ? result_.ok : result_.wrong);
      }
      if (frame >= warmup_) {
        result_.latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(now - start_.front()).count());
        result_.bytes_out += received;
      }
      start_.pop_front();
      ++done_;
      ++frame;
      expected = -1;
      received = 0;
      mismatch = false;
      cv_.notify_all();
    };
    while (frame < total && rw->Read(&buffer)) {
      absl::StatusOr<bool> taken = wire::VisitChunk(
          buffer, wire::kCalibrateResponseChunk, [&](int, size_t, absl::string_view piece) {
            take(piece);
            return absl::OkStatus();
          });
      if (taken.ok() && *taken) {
        if (expected >= 0 && received >= expected) finish_frame();
        continue;
      }
      if (!taken.ok() || !wire::ParseMessage(buffer, &msg).ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (result_.errors++ == 0) result_.first_error = "a result message that does not parse";
        break;
      }
      if (msg.has_header()) {
        const v1::ResultHeader& h = msg.header();
        frame_ok = h.status().code() == 0;
        if (h.status().code() != 0) {
          std::lock_guard<std::mutex> lock(mu_);
          if (h.status().code() == static_cast<int>(absl::StatusCode::kResourceExhausted)) {
            ++result_.refused;
          }
          if (result_.errors++ == 0) {
            result_.first_error = absl::StrCat(h.status().code(), ": ", h.status().message());
          }
        }
        expected = 0;
        if (h.status().code() == 0) {
          for (int p : h.planes()) {
            int64_t n = int64_t{h.width()} * h.height();
            expected += p == v1::PLANE_DQ ? 2 * n : 4 * n;
          }
        }
        // The recording (the reference frame's bytes) grows once, not by doubling.
        if (record_) result_.recorded.reserve(result_.recorded.size() + expected);
        if (expected == 0) finish_frame();
      } else if (msg.has_chunk()) {
        take(msg.chunk().data());
        if (expected >= 0 && received >= expected) finish_frame();
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    reader_done_ = true;
    cv_.notify_all();
  }

  grpc::ChannelInterface* channel_;
  const std::string* reference_;
  bool record_;
  const std::vector<grpc::ByteBuffer>* chunks_;
  int width_, height_;
  bool data_only_;
  int warmup_, frames_, window_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Clock::time_point> start_;
  int sent_ = 0, done_ = 0;
  bool reader_done_ = false;
  StreamResult result_;
};

struct RunResult {
  std::string planes;
  int streams = 0;
  int frames = 0;
  int errors = 0;
  int sent = 0;        // frames to send, warm-up included
  int calibrated = 0;  // ... calibrated (OK result)
  int refused = 0;     // ... refused with RESOURCE_EXHAUSTED (per frame or by the stream)
  int wrong = 0;       // ... calibrated, but not the reference bytes
  int health_checks = 0, health_failures = 0;
  double health_max_ms = 0;
  double seconds = 0;
  double frames_per_s = 0, mb_in_per_s = 0, mb_out_per_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double server_cpu_cores = 0;
  double server_rss_start_mb = 0, server_rss_end_mb = 0, server_rss_peak_mb = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = q * (v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

absl::StatusOr<RunResult> RunConfiguration(const std::shared_ptr<grpc::Channel>& channel,
                                           const std::vector<grpc::ByteBuffer>& chunks,
                                           const std::string& planes, int streams, int warmup,
                                           int frames, const std::string* reference,
                                           std::string* recorded = nullptr) {
  const int w = absl::GetFlag(FLAGS_width), h = absl::GetFlag(FLAGS_height);
  const int pid = absl::GetFlag(FLAGS_server_pid);
  // Channels with their own subchannel pool each open their own connection; the first is the
  // caller's.
  std::vector<std::shared_ptr<grpc::Channel>> channels = {channel};
  for (int c = 1; c < absl::GetFlag(FLAGS_connections); ++c) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(4 << 20);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(
        absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args));
  }
  RunResult run;
  run.planes = planes;
  run.streams = streams;
  ProcSample before = ReadProc(pid);
  RssSampler sampler(pid);
  HealthProber prober(absl::GetFlag(FLAGS_server));
  std::vector<StreamResult> results(streams);
  std::vector<std::unique_ptr<FrameStream>> fs;
  for (int i = 0; i < streams; ++i) {
    fs.push_back(std::make_unique<FrameStream>(channels[i % channels.size()].get(), &chunks, w, h,
                                               planes == "data", warmup, frames,
                                               absl::GetFlag(FLAGS_window), reference,
                                               recorded != nullptr));
  }
  // Throughput counts from the end of the slowest warm-up; simpler and close enough: time the
  // whole run and subtract nothing, but count only measured frames' bytes over the measured
  // share of the time (frames / (warmup + frames)).
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] { results[i] = fs[i]->Run(); });
  }
  for (auto& t : threads) t.join();
  if (recorded != nullptr) *recorded = std::move(results[0].recorded);
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  ProcSample after = ReadProc(pid);
  run.server_rss_peak_mb = sampler.Peak();
  prober.Stop();
  run.health_checks = prober.checks;
  run.health_failures = prober.failures;
  run.health_max_ms = prober.max_ms;
  std::vector<double> lat;
  int64_t in = 0, out = 0;
  std::string lost;
  for (const StreamResult& r : results) {
    run.sent += r.intended;
    run.calibrated += r.ok + r.wrong;
    run.wrong += r.wrong;
    run.refused += r.refused;
    if (!r.status.ok() && r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      // Waited for memory past the deadline: the frames without a result (sent or not).
      run.refused += r.intended - r.completed;
    } else if (!r.status.ok() || r.completed != r.intended) {
      lost =
          absl::StrCat("stream ended with ", r.status.error_code(), " (", r.status.error_message(),
                       ") after ", r.completed, " of ", r.sent, " results");
    }
    if (r.errors > r.refused) {
      lost = absl::StrCat(r.errors - r.refused, " frames failed; first: ", r.first_error);
    }
    lat.insert(lat.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    in += r.bytes_in;
    out += r.bytes_out;
  }
  run.frames = static_cast<int>(lat.size());
  run.seconds = wall * frames / (warmup + frames);
  run.frames_per_s = run.frames / run.seconds;
  run.mb_in_per_s = in / kMB / run.seconds;
  run.mb_out_per_s = out / kMB / run.seconds;
  run.p50_ms = Percentile(lat, 0.5);
  run.p99_ms = Percentile(lat, 0.99);
  run.max_ms = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
  if (!lost.empty()) return absl::DataLossError(absl::StrCat("frames lost: ", lost));
  if (pid > 0) {
    run.server_cpu_cores = (after.cpu_seconds - before.cpu_seconds) / wall;
    run.server_rss_start_mb = before.rss_mb;
    run.server_rss_end_mb = after.rss_mb;
  }
  return run;
}

absl::Status WaitServing(const std::shared_ptr<grpc::Channel>& channel, int seconds) {
  auto health = grpc::health::v1::Health::NewStub(channel);
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  grpc::Status last;
  while (Clock::now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    last = health->Check(&ctx, req, &resp);
    if (last.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "calibd not SERVING after ", seconds, " s; last health answer: ", last.error_message()));
}

int Main() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(4 << 20);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                           grpc::InsecureChannelCredentials(), args);
  if (absl::GetFlag(FLAGS_wait_serving_s) > 0) {
    absl::Status s = WaitServing(channel, absl::GetFlag(FLAGS_wait_serving_s));
    if (!s.ok()) {
      std::cerr << "calibd_load: " << s << "\n";
      return 1;
    }
  }
  if (absl::GetFlag(FLAGS_setup)) {
    absl::Status s = SetUpBenchDetector(
        channel, {absl::GetFlag(FLAGS_detector), absl::GetFlag(FLAGS_token),
                  absl::GetFlag(FLAGS_width), absl::GetFlag(FLAGS_height),
                  absl::GetFlag(FLAGS_overscan)});
    if (!s.ok()) {
      std::cerr << "calibd_load --setup: " << s << "\n";
      return 1;
    }
    return 0;
  }
  const int w = absl::GetFlag(FLAGS_width), h = absl::GetFlag(FLAGS_height);
  // The frame's chunks, built once and written again for every frame (no per-frame copies).
  std::vector<uint16_t> pixels = MakeRawPixels(w, h, absl::GetFlag(FLAGS_overscan));
  std::vector<grpc::ByteBuffer> chunks;
  const char* bytes = reinterpret_cast<const char*>(pixels.data());
  const size_t total = pixels.size() * sizeof(uint16_t);
  for (size_t off = 0; off < total; off += kChunkBytes) {
    v1::CalibrateRequest chunk;
    chunk.mutable_chunk()->set_data(bytes + off, std::min<size_t>(kChunkBytes, total - off));
    chunks.push_back(wire::SerializeMessage(chunk));
  }
  std::vector<RunResult> runs;
  std::printf("%-5s %7s %7s %9s %9s %9s %8s %8s %9s %9s %9s %6s %7s %5s %11s\n", "planes",
              "streams", "frames", "frames/s", "MB/s in", "MB/s out", "p50 ms", "p99 ms", "srv cpu",
              "rss MB", "peak MB", "ok", "refused", "wrong", "health max");
  for (absl::string_view planes : absl::StrSplit(absl::GetFlag(FLAGS_planes), ',')) {
    std::string reference;
    if (absl::GetFlag(FLAGS_verify)) {
      absl::StatusOr<RunResult> r =
          RunConfiguration(channel, chunks, std::string(planes), 1, /*warmup=*/0, /*frames=*/1,
                           /*reference=*/nullptr, &reference);
      if (!r.ok() || r->calibrated != 1) {
        std::cerr << "calibd_load: the reference frame (" << planes
                  << ") failed: " << (r.ok() ? "refused" : r.status().ToString()) << "\n";
        return 1;
      }
      std::fprintf(stderr, "reference %s: %zu result bytes, sha256 %s\n",
                   std::string(planes).c_str(), reference.size(),
                   hash::Sha256Hex(reference).c_str());
    }
    for (absl::string_view n : absl::StrSplit(absl::GetFlag(FLAGS_streams), ',')) {
      int streams = 0;
      if (!absl::SimpleAtoi(n, &streams) || streams <= 0) {
        std::cerr << "calibd_load: bad --streams entry '" << n << "'\n";
        return 2;
      }
      absl::StatusOr<RunResult> r =
          RunConfiguration(channel, chunks, std::string(planes), streams,
                           absl::GetFlag(FLAGS_warmup), absl::GetFlag(FLAGS_frames),
                           absl::GetFlag(FLAGS_verify) ? &reference : nullptr);
      if (!r.ok()) {
        std::cerr << "calibd_load: " << planes << " x" << streams << ": " << r.status() << "\n";
        return 1;
      }
      std::printf(
          "%-6s %7d %7d %9.2f %9.0f %9.0f %8.0f %8.0f %9.2f %4.0f->%-4.0f %9.0f %6d %7d %5d "
          "%5.0f ms/%d\n",
          r->planes.c_str(), r->streams, r->frames, r->frames_per_s, r->mb_in_per_s,
          r->mb_out_per_s, r->p50_ms, r->p99_ms, r->server_cpu_cores, r->server_rss_start_mb,
          r->server_rss_end_mb, r->server_rss_peak_mb, r->calibrated, r->refused, r->wrong,
          r->health_max_ms, r->health_failures);
      std::fflush(stdout);
      runs.push_back(*r);
      if (r->wrong > 0) {
        std::cerr << "calibd_load: " << r->wrong << " results differ from the reference\n";
        return 1;
      }
    }
  }
  if (!absl::GetFlag(FLAGS_json).empty()) {
    std::ofstream out(absl::GetFlag(FLAGS_json));
    out << "{\"width\": " << w << ", \"height\": " << h << ", \"runs\": [";
    for (size_t i = 0; i < runs.size(); ++i) {
      const RunResult& r = runs[i];
      out << (i ? ", " : "")
          << absl::StrFormat(
                 "{\"planes\": \"%s\", \"streams\": %d, \"frames\": %d, \"seconds\": %.4f, "
                 "\"frames_per_s\": %.4f, \"mb_in_per_s\": %.2f, \"mb_out_per_s\": %.2f, "
                 "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
                 "\"server_cpu_cores\": %.3f, \"server_rss_start_mb\": %.1f, "
                 "\"server_rss_end_mb\": %.1f, \"server_rss_peak_mb\": %.1f, "
                 "\"sent\": %d, \"calibrated\": %d, \"refused\": %d, \"wrong\": %d, "
                 "\"health_checks\": %d, \"health_failures\": %d, \"health_max_ms\": %.1f}",
                 r.planes, r.streams, r.frames, r.seconds, r.frames_per_s, r.mb_in_per_s,
                 r.mb_out_per_s, r.p50_ms, r.p99_ms, r.max_ms, r.server_cpu_cores,
                 r.server_rss_start_mb, r.server_rss_end_mb, r.server_rss_peak_mb, r.sent,
                 r.calibrated, r.refused, r.wrong, r.health_checks, r.health_failures,
                 r.health_max_ms);
    }
    out << "]}\n";
  }
  return 0;
}

}  // namespace
}  // namespace calibd::load

int main(int argc, char** argv) {
  // As calibctl: keep gRPC's freed receive buffers in the process. Without this, glibc hands
  // their pages back and every result is received into fresh memory (PERFORMANCE.md fact 1:
  // page faults and page clearing were a tenth of the generator's CPU).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  absl::ParseCommandLine(argc, argv);
  return calibd::load::Main();
}
