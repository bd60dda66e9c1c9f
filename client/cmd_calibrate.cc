// calibctl select (which masters a frame would get) and calibrate (files → calibrated files).
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/command.h"
#include "client/convert.h"
#include "client/exit_codes.h"
#include "client/format.h"
#include "client/requests.h"
#include "client/retry.h"
#include "core/fits/fits.h"
#include "core/image/buffer_pool.h"

namespace calibd::client {
namespace {

void PrintTrail(const google::protobuf::RepeatedPtrField<v1::AppliedMaster>& masters,
                const google::protobuf::RepeatedPtrField<v1::SelectionTrailEntry>& trail) {
  Table t({"KIND", "OUTCOME", "VERSION", "SHA256", "AGE"});
  for (const v1::AppliedMaster& m : masters) {
    t.AddRow({m.kind(), OutcomeName(m.outcome()), absl::StrCat(m.version()), ShortSha(m.sha256()),
              FormatSeconds(std::abs(m.age_seconds()))});
  }
  std::cout << t.Render();
  for (const v1::SelectionTrailEntry& e : trail) {
    std::cout << "\n" << e.kind() << ": " << OutcomeName(e.outcome());
    if (e.version() > 0) std::cout << " version " << e.version();
    if (e.status().code() != 0) std::cout << " (" << OneLine(e.status().message()) << ")";
    std::cout << "\n";
    for (const v1::SelectionCandidate& cand : e.candidates()) {
      std::cout << "  " << (cand.chosen() ? "* " : "  ") << "series " << cand.series_id() << " v"
                << cand.version() << " [" << MapText(cand.configuration()) << "] "
                << OneLine(cand.reason()) << "\n";
    }
    if (e.candidates_omitted() > 0) {
      std::cout << "    (" << e.candidates_omitted() << " more candidates omitted)\n";
    }
  }
}

int Select(Context& c) {
  if (c.args.positional().size() != 1) return c.Usage("select takes one FITS file");
  const std::string path = c.args.positional()[0];
  v1::SelectRequest req;
  absl::StatusOr<std::string> detector = RequiredFlag(c.args, "detector");
  if (!detector.ok()) return c.Usage(detector.status());
  req.set_detector(*detector);
  absl::StatusOr<v1::SelectionOptions> sel = SelectionFromFlags(c.args);
  if (!sel.ok()) return c.Usage(sel.status());
  *req.mutable_selection() = *sel;
  for (const std::string& k : c.args.Values("kind")) req.add_kinds(k);
  if (absl::Status s = NoiseRecipeFromFlags(c.args, req.mutable_recipe()); !s.ok()) {
    return c.Usage(s);
  }
  absl::StatusOr<Header> header = fits::ReadHeader(path);
  if (!header.ok()) return Fail(absl::StrCat("select ", path), header.status());
  HeaderToProto(*header, req.mutable_cards());
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<v1::SelectResponse> r = c.client->Select(req);
  if (!r.ok()) return Fail(absl::StrCat("select ", path), r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  std::cout << path << ": frame time " << TimeText(r->has_frame_time(), r->frame_time())
            << ", configuration " << MapText(r->configuration()) << "\n";
  PrintTrail(r->masters(), r->trail());
  return 0;
}

// DIR/<name>: the input's file name, with a compression suffix (.fz, .gz) dropped.
std::string OutputName(const std::string& dir, const std::string& input) {
  std::string name = std::filesystem::path(input).filename().string();
  for (const char* suffix : {".fz", ".gz"}) {
    if (absl::EndsWith(name, suffix)) name.resize(name.size() - std::strlen(suffix));
  }
  if (!absl::EndsWith(name, ".fits") && !absl::EndsWith(name, ".fit") &&
      !absl::EndsWith(name, ".fts")) {
    name += ".fits";
  }
  return (std::filesystem::path(dir) / name).string();
}

void JsonResult(const CalibrateResult& r, const std::string& out, JsonWriter& json) {
  json.BeginObject();
  json.Key("input");
  json.String(r.path);
  json.Key("ok");
  json.Bool(r.status.ok());
  if (r.status.ok()) {
    json.Key("output");
    json.String(out);
  } else {
    json.Key("code");
    json.String(absl::StatusCodeToString(r.status.code()));
    json.Key("message");
    json.String(r.status.message());
  }
  if (r.header.frame_id().size() > 0 || r.header.masters_size() > 0) {
    v1::ResultHeader h = r.header;
    h.clear_cards();  // they are in the output file
    json.Key("result");
    json.Raw(ProtoJson(h));
  }
  json.EndObject();
}

void PrintResult(const CalibrateResult& r, const std::string& out) {
  std::vector<std::string> masters;
  for (const v1::AppliedMaster& m : r.header.masters()) {
    masters.push_back(
        absl::StrCat(m.kind(), " v", m.version(), " (", OutcomeName(m.outcome()), ")"));
  }
  const v1::FrameStatistics& st = r.header.statistics();
  std::cout << out << ": " << r.frame.width() << "x" << r.frame.height() << " " << r.frame.unit
            << ", median " << FormatNumber(st.median(), 5) << ", flagged "
            << FormatNumber(100 * st.flagged_fraction(), 3) << "%; "
            << (masters.empty() ? "no masters" : absl::StrJoin(masters, ", ")) << "\n";
}

// Writes results on its own thread, in order, so that receiving the next result overlaps
// writing this one (the queue holds at most two frames).
class OutputWriter {
 public:
  using WriteFn = std::function<void(CalibrateResult)>;
  explicit OutputWriter(WriteFn write) : write_(std::move(write)), thread_([this] { Run(); }) {}
  ~OutputWriter() { Finish(); }

  void Push(CalibrateResult r) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < 2; });
    queue_.push_back(std::move(r));
    cv_.notify_all();
  }
  // Waits until everything pushed is written.
  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    while (true) {
      CalibrateResult r;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return done_ || !queue_.empty(); });
        if (queue_.empty()) return;
        r = std::move(queue_.front());
        queue_.pop_front();
        cv_.notify_all();
      }
      write_(std::move(r));
    }
  }

  WriteFn write_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<CalibrateResult> queue_;
  bool done_ = false;
  std::thread thread_;
};

void PrintStats(const CalibrateStats& s, double write_seconds, double wall) {
  std::fprintf(stderr,
               "stats: %lld frames in %.3f s over %d stream(s), %lld re-sent; read %.3f s, "
               "send %.3f s (%.1f MB), receive %.3f s (%.1f MB), write %.3f s\n",
               static_cast<long long>(s.frames), wall, s.streams,
               static_cast<long long>(s.frames_resent), s.read_seconds, s.send_seconds,
               s.bytes_sent / 1e6, s.receive_seconds, s.bytes_received / 1e6, write_seconds);
}

int Calibrate(Context& c) {
  absl::StatusOr<CalibrateOptions> opts = CalibrateOptionsFromFlags(c.args);
  if (!opts.ok()) return c.Usage(opts.status());
  CalibrateOptions& o = *opts;
  const std::vector<std::string>& files = c.args.positional();
  if (files.empty()) return c.Usage("calibrate needs the raw FITS files");
  FrameRetryPolicy retry;
  if (c.args.Has("retries")) {
    absl::StatusOr<int64_t> n = ParseInt("retries", c.args.Value("retries"));
    if (!n.ok()) return c.Usage(n.status());
    if (*n < 0 || *n > 100) return c.Usage("--retries must be a number of rounds from 0 to 100");
    retry.max_attempts = static_cast<int>(*n) + 1;
  }
  const std::string dir = c.args.Value("output", ".");
  const bool overwrite = c.args.Bool("overwrite");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Fail(absl::StrCat("calibrate: create ", dir), absl::InvalidArgumentError(ec.message()));
  }
  // Refuse before sending anything when an output would be overwritten.
  if (!overwrite) {
    for (const std::string& f : files) {
      if (std::filesystem::exists(OutputName(dir, f))) {
        return Fail(absl::StrCat("calibrate ", f),
                    absl::AlreadyExistsError(absl::StrCat(
                        OutputName(dir, f), " exists; remove it or pass --overwrite")));
      }
    }
  }
  if (int rc = c.Connect(); rc >= 0) return rc;
  int64_t total = 0;
  for (const std::string& f : files)
    total += static_cast<int64_t>(std::filesystem::file_size(f, ec));
  ProgressBar bar(absl::StrCat("calibrate ", files.size(), " frames"), total,
                  ProgressBar::Enabled(c.json));
  o.progress = [&](int64_t done, int64_t) { bar.Update(done); };
  CalibrateStats stats;
  o.stats = &stats;
  absl::Status first_failure;
  int failed = 0;
  double write_seconds = 0;
  JsonWriter json;
  json.BeginArray();
  const absl::Time start = absl::Now();
  const bool compress_masks = c.args.Bool("compress-masks");
  BufferPool write_pool(size_t{1} << 28);  // the writer's swap buffers, reused frame to frame
  // The output thread owns everything below until Finish().
  OutputWriter output([&](CalibrateResult r) {
    const std::string out = OutputName(dir, r.path);
    if (r.status.ok()) {
      const absl::Time t0 = absl::Now();
      fits::WriteOptions wo;
      wo.overwrite = overwrite;
      wo.compress_masks = compress_masks;
      wo.pool = &write_pool;
      wo.direct_io = true;  // nobody reads the output right away: no page-cache copy
      r.status = fits::WriteCalibratedFrame(out, r.frame, wo);
      write_seconds += absl::ToDoubleSeconds(absl::Now() - t0);
    }
    if (c.json) {
      JsonResult(r, out, json);
    } else {
      bar.Clear();
    }
    if (!r.status.ok()) {
      if (failed++ == 0) first_failure = r.status;
      PrintError(absl::StrCat("calibrate ", r.path), r.status);
      return;
    }
    if (!c.json) PrintResult(r, out);
  });
  // Frames that come back UNAVAILABLE (the replica's store restarting or failing over) are sent
  // again in rounds; a broken stream is re-sent inside each round (client/retry.h).
  CalibrateRetryReport report;
  absl::Status stream = CalibrateWithRetries(
      *c.client, files, o, [&](CalibrateResult r) { output.Push(std::move(r)); }, retry, &report);
  stats = report.stats;
  output.Finish();
  bar.Finish();
  json.EndArray();
  if (c.json) std::cout << json.str() << "\n";
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  if (c.args.Bool("stats")) PrintStats(stats, write_seconds, wall);
  if (!stream.ok() && failed == 0) return Fail("calibrate stream", stream);
  if (failed > 0) return ExitCodeFor(first_failure.code());
  // On failure stderr carries only the failures' lines (one per failed frame).
  if (!c.json) {
    std::fprintf(stderr, "calibrated %zu frames in %s%s\n", files.size(),
                 FormatSeconds(wall).c_str(),
                 stats.frames_resent > 0
                     ? absl::StrCat(" (", stats.frames_resent, " re-sent after UNAVAILABLE on ",
                                    stats.streams - 1, " new stream(s))")
                           .c_str()
                     : "");
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> CalibrateCommands() {
  return {
      {"select",
       "select --detector D FILE.fits",
       "which masters a frame would get, and why (the selection trail)",
       {DetectorFlag(),
        PolicyFlag(),
        MaxAgeFlag(),
        PinFlag(),
        {"kind", 'k', FlagKind::kRepeated, "only these kinds", "KIND"},
        // The noise products and the dark policy (requests.h NoiseRecipeFlags).
        NoiseRecipeFlags()[0], NoiseRecipeFlags()[1], NoiseRecipeFlags()[2],
        NoiseRecipeFlags()[3], NoiseRecipeFlags()[4], NoiseRecipeFlags()[5],
        NoiseRecipeFlags()[6]},
       Select},
      {"calibrate",
       "calibrate --detector D [-o DIR] [--policy strict|nearest] [--pin KIND=VERSION]... FILES...",
       "calibrate raw frames over one stream; writes DIR/<name> (data, UNCERT, MASK, DQ)",
       {DetectorFlag(),
        {"output", 'o', FlagKind::kValue, "output directory (default .)", "DIR"},
        PolicyFlag(),
        MaxAgeFlag(),
        PinFlag(),
        {"unit", 0, FlagKind::kValue, "adu (default) or electron", "UNIT"},
        {"planes", 0, FlagKind::kValue, "planes to fetch, e.g. data,variance,dq (default all)",
         "LIST"},
        {"flat-norm", 0, FlagKind::kValue, "flat normalisation: mean (default) or clipped_mean",
         "N"},
        {"skip", 0, FlagKind::kRepeated, "skip a step: overscan, trim, bias, dark, flat", "STEP"},
        {"overwrite", 0, FlagKind::kBool, "replace existing output files"},
        {"compress-masks", 0, FlagKind::kBool,
         "tile-compress MASK and DQ (RICE_1; mostly zeros, ~50x smaller; astropy reads them)"},
        {"stats", 0, FlagKind::kBool, "print where the time went (stderr)"},
        {"retries", 0, FlagKind::kValue,
         "rounds re-sending frames that came back UNAVAILABLE (default 4, 0 = none)", "N"},
        // The noise products and the dark policy (requests.h NoiseRecipeFlags).
        NoiseRecipeFlags()[0], NoiseRecipeFlags()[1], NoiseRecipeFlags()[2],
        NoiseRecipeFlags()[3], NoiseRecipeFlags()[4], NoiseRecipeFlags()[5],
        NoiseRecipeFlags()[6]},
       Calibrate},
  };
}

}  // namespace calibd::client
