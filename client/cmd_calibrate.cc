// calibctl select (which masters a frame would get) and calibrate (files → calibrated files).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
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
#include "core/fits/fits.h"

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

int Calibrate(Context& c) {
  absl::StatusOr<CalibrateOptions> opts = CalibrateOptionsFromFlags(c.args);
  if (!opts.ok()) return c.Usage(opts.status());
  CalibrateOptions& o = *opts;
  const std::vector<std::string>& files = c.args.positional();
  if (files.empty()) return c.Usage("calibrate needs the raw FITS files");
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
  absl::Status first_failure;
  int failed = 0;
  JsonWriter json;
  json.BeginArray();
  const absl::Time start = absl::Now();
  absl::Status stream = c.client->Calibrate(files, o, [&](CalibrateResult r) {
    const std::string out = OutputName(dir, r.path);
    if (r.status.ok()) {
      fits::WriteOptions wo;
      wo.overwrite = overwrite;
      r.status = fits::WriteCalibratedFrame(out, r.frame, wo);
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
  bar.Finish();
  json.EndArray();
  if (c.json) std::cout << json.str() << "\n";
  if (!stream.ok() && failed == 0) return Fail("calibrate stream", stream);
  if (failed > 0) return ExitCodeFor(first_failure.code());
  // On failure stderr carries only the failures' lines (one per failed frame).
  if (!c.json) {
    std::fprintf(stderr, "calibrated %zu frames in %s\n", files.size(),
                 FormatSeconds(absl::ToDoubleSeconds(absl::Now() - start)).c_str());
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
        {"kind", 'k', FlagKind::kRepeated, "only these kinds", "KIND"}},
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
        {"overwrite", 0, FlagKind::kBool, "replace existing output files"}},
       Calibrate},
  };
}

}  // namespace calibd::client
