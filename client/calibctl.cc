// calibctl: the command-line client of calibd, for people (tables, progress bars) and scripts
// (--json, exit codes). `calibctl --help` lists the commands; docs/cli.md has an example of each.
//
//   calibctl make-samples -o /tmp/night
//   calibctl detector put /tmp/night/SPEC.json
//   calibctl build --detector demo/ccd0 --kind bias --certify-from 2026-03-01 /tmp/night/bias/*.fits
//   calibctl calibrate --detector demo/ccd0 -o /tmp/red /tmp/night/light/*.fits
//
// Exit status: 0 on success; 1 when the server or a file refused the work; 2 for a usage error.
// Errors are one line on stderr: "calibctl: <what failed>: <CODE>: <message>".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/args.h"
#include "client/client.h"
#include "client/convert.h"
#include "client/format.h"
#include "client/samples.h"
#include "core/fits/fits.h"
#include "core/store/detector.h"
#include "google/protobuf/util/json_util.h"

namespace calibd::client {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// A failure with the step that failed; printed as "calibctl: <what>: <CODE>: <message>".
struct Failure {
  std::string what;
  absl::Status status;
};

std::string OneLine(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\r\n", "; "}, {"\n", "; "}, {"\r", " "}});
}

void PrintError(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "calibctl: %s: %s: %s\n", std::string(what).c_str(),
               absl::StatusCodeToString(status.code()).c_str(),
               OneLine(status.message()).c_str());
}

std::string ProtoJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands

// What a command works with: its parsed flags, the connection, and the first usage error met
// while reading the flags (commands read every flag, then stop with exit 2 if one was bad —
// see CheckUsage — so no exceptions are needed).
struct Context {
  std::string command;
  ParsedArgs args;
  ClientOptions client_options;
  bool json = false;
  std::unique_ptr<CalibdClient> client;  // connected by Begin()
  absl::Status usage;                    // the first usage error

  // Records `message` as a usage error (the first one wins).
  void Fail(absl::string_view message) {
    if (usage.ok()) usage = absl::InvalidArgumentError(message);
  }
  void Check(const absl::Status& s) {
    if (!s.ok()) Fail(s.message());
  }
  // The value, or T{} with the error recorded.
  template <typename T>
  T Get(absl::StatusOr<T> v) {
    if (!v.ok()) {
      Fail(v.status().message());
      return T{};
    }
    return *std::move(v);
  }
  std::string Require(const std::string& flag) {
    std::string v = args.Value(flag);
    if (v.empty()) Fail(absl::StrCat("--", flag, " is required"));
    return v;
  }
  // Prints a usage error; the exit code for it.
  int Usage(absl::string_view message) {
    std::fprintf(stderr, "calibctl %s: %s (see calibctl %s --help)\n", command.c_str(),
                 std::string(message).c_str(), command.c_str());
    return kExitUsage;
  }
  // -1 when every flag was fine, else the usage exit code (the error printed).
  int CheckUsage() { return usage.ok() ? -1 : Usage(usage.message()); }
  // CheckUsage, then connect: -1 when ready, else the exit code (the error printed).
  int Begin() {
    if (int rc = CheckUsage(); rc >= 0) return rc;
    if (client != nullptr) return -1;
    absl::StatusOr<std::unique_ptr<CalibdClient>> c = CalibdClient::Connect(client_options);
    if (!c.ok()) {
      PrintError("connect", c.status());
      return kExitFailure;
    }
    client = std::move(*c);
    return -1;
  }
};

using CommandFn = std::function<int(Context&)>;

struct Command {
  std::string name;
  std::string synopsis;
  std::string summary;
  std::vector<FlagSpec> flags;
  CommandFn run;
};

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"server", 0, FlagKind::kValue, "calibd address (env CALIBD_SERVER; default 127.0.0.1:50051)",
       "HOST:PORT"},
      {"token", 0, FlagKind::kValue, "bearer token (env CALIBD_TOKEN)", "TOKEN"},
      {"json", 0, FlagKind::kBool, "machine-readable output on stdout"},
      {"tls-ca", 0, FlagKind::kValue, "PEM CA bundle: use TLS", "FILE"},
      {"tls-cert", 0, FlagKind::kValue, "PEM client certificate (mutual TLS)", "FILE"},
      {"tls-key", 0, FlagKind::kValue, "PEM client key (mutual TLS)", "FILE"},
      {"timeout", 0, FlagKind::kValue, "deadline of single calls in seconds (default 60)", "S"},
      {"help", 'h', FlagKind::kBool, "show help"},
  };
  return *flags;
}

int Fail(absl::string_view what, const absl::Status& status) {
  PrintError(what, status);
  return kExitFailure;
}

std::string CertificationText(const v1::Certification& c) {
  return absl::StrCat("[", FormatUtc(TimeFromProto(c.begin())), ", ",
                      c.has_end() ? FormatUtc(TimeFromProto(c.end())) : "open", ")");
}

std::string MapText(const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  if (sorted.empty()) return "-";
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

// --- detector -----------------------------------------------------------------------------

int DetectorPut(Context& c) {
  if (c.args.positional().size() != 1) return c.Usage("detector put takes one SPEC.json file");
  const std::string path = c.args.positional()[0];
  std::ifstream in(path);
  if (!in) return Fail(absl::StrCat("detector put ", path), absl::NotFoundError("cannot read the file"));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<store::DetectorSpec> spec = store::DetectorSpecFromJson(ss.str());
  if (!spec.ok()) return Fail(absl::StrCat("detector put ", path), spec.status());
  if (absl::Status s = store::ValidateDetectorSpec(*spec); !s.ok()) {
    return Fail(absl::StrCat("detector put ", path), s);
  }
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::DetectorSpec> stored = c.client->PutDetector(DetectorSpecToProto(*spec));
  if (!stored.ok()) return Fail(absl::StrCat("detector put ", spec->name), stored.status());
  if (c.json) {
    std::cout << ProtoJson(*stored) << "\n";
  } else {
    std::cout << "detector " << stored->name() << " stored as version " << stored->version()
              << "\n";
  }
  return 0;
}

int DetectorGet(Context& c) {
  if (c.args.positional().size() != 1) return c.Usage("detector get takes one NAME");
  const std::string name = c.args.positional()[0];
  const int64_t version =
      c.args.Has("version") ? c.Get(ParseInt("version", c.args.Value("version"))) : 0;
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::DetectorSpec> spec = c.client->GetDetector(name, version);
  if (!spec.ok()) return Fail(absl::StrCat("detector get ", name), spec.status());
  if (c.json) {
    std::cout << ProtoJson(*spec) << "\n";
  } else {
    // The SPEC.json form, so the output can be edited and put back.
    std::cout << "# " << spec->name() << " version " << spec->version() << ", stored "
              << FormatUtc(TimeFromProto(spec->created_at()))
              << (spec->actor().empty() ? "" : " by " + spec->actor()) << "\n";
    std::cout << store::DetectorSpecToJson(DetectorSpecFromProto(*spec)) << "\n";
  }
  return 0;
}

int DetectorLs(Context& c) {
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::ListDetectorsResponse> r = c.client->ListDetectors();
  if (!r.ok()) return Fail("detector ls", r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  Table t({"NAME", "VERSION", "SHAPE", "GAIN", "RDNOISE", "SATURATION", "STORED"});
  for (const v1::DetectorSpec& d : r->detectors()) {
    t.AddRow({d.name(), absl::StrCat(d.version()), absl::StrCat(d.width(), "x", d.height()),
              FormatNumber(d.gain()), FormatNumber(d.read_noise()), FormatNumber(d.saturation()),
              FormatUtc(TimeFromProto(d.created_at()))});
  }
  std::cout << t.Render();
  return 0;
}

int DqBits(Context& c) {
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::GetDqBitsResponse> r = c.client->GetDqBits(c.args.Value("detector"));
  if (!r.ok()) return Fail("dq-bits", r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  Table t({"BIT", "NAME", "DESCRIPTION"});
  for (const v1::DqBit& b : r->bits()) t.AddRow({absl::StrCat(b.bit()), b.name(), b.description()});
  std::cout << t.Render();
  return 0;
}

// --- masters -------------------------------------------------------------------------------

std::map<std::string, std::string> KeyValues(Context& c, const std::string& flag) {
  std::map<std::string, std::string> out;
  for (const std::string& kv : c.args.Values(flag)) {
    auto p = c.Get(ParseKeyValue(kv));
    out[p.first] = p.second;
  }
  return out;
}

int Put(Context& c) {
  if (c.args.positional().size() != 1) return c.Usage("put takes one FITS file");
  const std::string path = c.args.positional()[0];
  PutMasterOptions o;
  o.detector = c.Require("detector");
  o.kind = c.Require("kind");
  o.attributes = KeyValues(c, "attr");
  o.configuration = KeyValues(c, "config");
  if (int rc = c.Begin(); rc >= 0) return rc;
  std::error_code ec;
  const int64_t size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  ProgressBar bar(absl::StrCat("upload ", std::filesystem::path(path).filename().string()), size,
                  ProgressBar::Enabled(c.json));
  absl::StatusOr<v1::PutMasterResponse> r =
      c.client->PutMaster(path, o, [&](int64_t done, int64_t) { bar.Update(done); });
  bar.Finish();
  if (!r.ok()) return Fail(absl::StrCat("put ", path), r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
  } else {
    const v1::MasterVersion& v = r->version();
    std::cout << v.detector() << " " << v.kind() << " version " << v.version()
              << (r->already_existed() ? " (identical bytes were already stored)" : "")
              << "  sha256 " << v.sha256() << "\n";
  }
  return 0;
}

int Ls(Context& c) {
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::ListMastersResponse> r =
      c.client->ListMasters(c.args.Value("detector"), c.args.Value("kind"));
  if (!r.ok()) return Fail("ls", r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  Table t({"DETECTOR", "KIND", "CONFIGURATION", "VERSION", "SHAPE", "SIZE", "SHA256", "STORED",
           "CERTIFIED"});
  for (const v1::MasterVersion& v : r->versions()) {
    std::vector<std::string> certs;
    for (const v1::Certification& cert : v.certifications()) certs.push_back(CertificationText(cert));
    t.AddRow({v.detector(), v.kind(), MapText(v.configuration()), absl::StrCat(v.version()),
              absl::StrCat(v.width(), "x", v.height()), FormatBytes(v.size_bytes()),
              ShortSha(v.sha256()), FormatUtc(TimeFromProto(v.created_at())),
              certs.empty() ? "-" : absl::StrJoin(certs, " ")});
  }
  std::cout << t.Render();
  return 0;
}

int History(Context& c) {
  const std::string detector = c.Require("detector");
  const std::string kind = c.Require("kind");
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::HistoryResponse> r = c.client->History(detector, kind);
  if (!r.ok()) return Fail("history", r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  Table t({"TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"});
  for (const v1::HistoryEvent& e : r->events()) {
    t.AddRow({FormatUtc(TimeFromProto(e.time())), e.actor().empty() ? "-" : e.actor(), e.action(),
              e.subject(), OneLine(e.details())});
  }
  std::cout << t.Render();
  return 0;
}

int Get(Context& c) {
  const std::string detector = c.Require("detector");
  const std::string kind = c.Require("kind");
  const std::string out = c.Require("output");
  VersionChoice which;
  if (c.args.Has("version") == c.args.Has("at")) {
    return c.Usage("give exactly one of --version N and --at TIME");
  }
  if (c.args.Has("version")) {
    which.version = c.Get(ParseInt("version", c.args.Value("version")));
    if (c.usage.ok() && which.version <= 0) return c.Usage("--version must be 1 or more");
  } else {
    which.at = c.Get(ParseTime(c.args.Value("at")));
  }
  if (int rc = c.Begin(); rc >= 0) return rc;
  ProgressBar bar(absl::StrCat("download ", kind), 0, ProgressBar::Enabled(c.json));
  absl::StatusOr<v1::MasterVersion> v =
      c.client->GetMaster(detector, kind, which, out, [&](int64_t done, int64_t total) {
        bar.SetTotal(total);
        bar.Update(done);
      });
  bar.Finish();
  if (!v.ok()) return Fail(absl::StrCat("get ", detector, " ", kind), v.status());
  if (c.json) {
    std::cout << ProtoJson(*v) << "\n";
  } else {
    std::cout << "wrote " << out << ": " << v->detector() << " " << v->kind() << " version "
              << v->version() << ", " << FormatBytes(v->size_bytes()) << ", sha256 "
              << v->sha256() << "\n";
  }
  return 0;
}

int Certify(Context& c) {
  v1::CertifyRequest req;
  req.set_detector(c.Require("detector"));
  req.set_kind(c.Require("kind"));
  req.set_version(c.Get(ParseInt("version", c.Require("version"))));
  for (const auto& [k, v] : KeyValues(c, "config")) (*req.mutable_configuration())[k] = v;
  *req.mutable_begin() = TimeToProto(c.Get(ParseTime(c.Require("begin"))));
  if (c.args.Has("end")) *req.mutable_end() = TimeToProto(c.Get(ParseTime(c.args.Value("end"))));
  req.set_replace(c.args.Bool("replace"));
  req.set_reason(c.args.Value("reason"));
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::CertifyResponse> r = c.client->Certify(req);
  if (!r.ok()) {
    return Fail(absl::StrCat("certify ", req.detector(), " ", req.kind(), " v", req.version()),
                r.status());
  }
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
  } else {
    std::cout << "certified " << req.detector() << " " << req.kind() << " version "
              << req.version() << " for " << CertificationText(r->certification()) << "\n";
  }
  return 0;
}

int Decertify(Context& c) {
  v1::DecertifyRequest req;
  req.set_detector(c.Require("detector"));
  req.set_kind(c.Require("kind"));
  req.set_version(c.Get(ParseInt("version", c.Require("version"))));
  for (const auto& [k, v] : KeyValues(c, "config")) (*req.mutable_configuration())[k] = v;
  if (c.args.Has("begin")) {
    *req.mutable_begin() = TimeToProto(c.Get(ParseTime(c.args.Value("begin"))));
  }
  if (c.args.Has("end")) *req.mutable_end() = TimeToProto(c.Get(ParseTime(c.args.Value("end"))));
  req.set_reason(c.args.Value("reason"));
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::DecertifyResponse> r = c.client->Decertify(req);
  if (!r.ok()) {
    return Fail(absl::StrCat("decertify ", req.detector(), " ", req.kind(), " v", req.version()),
                r.status());
  }
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
  } else {
    std::vector<std::string> left;
    for (const v1::Certification& cert : r->version().certifications()) {
      left.push_back(CertificationText(cert));
    }
    std::cout << "decertified " << req.detector() << " " << req.kind() << " version "
              << req.version() << "; remaining: " << (left.empty() ? "none" : absl::StrJoin(left, " "))
              << "\n";
  }
  return 0;
}

v1::SelectionOptions SelectionFromArgs(Context& c) {
  v1::SelectionOptions sel;
  const std::string policy = c.args.Value("policy", "strict");
  c.Check(CheckChoice("policy", policy, {"strict", "nearest"}));
  sel.set_policy(policy == "nearest" ? v1::SELECTION_POLICY_NEAREST : v1::SELECTION_POLICY_STRICT);
  if (c.args.Has("max-age")) {
    const double days = c.Get(ParseDouble("max-age", c.args.Value("max-age")));
    sel.mutable_max_age()->set_seconds(static_cast<int64_t>(days * 86400));
  }
  for (const std::string& pin : c.args.Values("pin")) {
    auto [kind, value] = c.Get(ParseKeyValue(pin));
    v1::PinnedVersion* p = sel.add_pins();
    p->set_kind(kind);
    int64_t v = 0;
    if (absl::SimpleAtoi(value, &v) && v > 0) {
      p->set_version(v);
    } else if (value.size() == 64) {
      p->set_sha256(value);
    } else {
      c.Fail(absl::StrCat("--pin ", pin, ": give KIND=VERSION (a number) or KIND=SHA256"));
    }
  }
  return sel;
}

int Build(Context& c) {
  v1::BuildOptions o;
  o.set_detector(c.Require("detector"));
  o.set_kind(c.Require("kind"));
  const std::vector<std::string>& files = c.args.positional();
  if (files.empty()) return c.Usage("build needs the raw FITS files to combine");
  v1::CombineOptions* co = o.mutable_combine();
  if (c.args.Has("method")) {
    c.Check(CheckChoice("method", c.args.Value("method"), {"median", "mean", "sum"}));
    co->set_method(c.args.Value("method"));
  }
  const bool clip_flags = c.args.Has("sigma-clip") || c.args.Has("maxiters") ||
                          c.args.Has("clip-center") || c.args.Has("clip-spread");
  if (c.args.Bool("no-clip")) {
    if (clip_flags) return c.Usage("--no-clip contradicts the sigma-clip flags");
    co->mutable_sigma_clip()->set_enabled(false);
  } else if (clip_flags) {
    v1::CombineOptions::SigmaClip* sc = co->mutable_sigma_clip();
    sc->set_enabled(true);
    auto [low, high] = c.args.Has("sigma-clip")
                           ? c.Get(ParseDoublePair(c.args.Value("sigma-clip")))
                           : std::make_pair(3.0, 3.0);
    if (c.usage.ok() && (low <= 0 || high <= 0)) return c.Usage("--sigma-clip values must be > 0");
    sc->set_low(low);
    sc->set_high(high);
    if (c.args.Has("maxiters")) {
      sc->set_max_iters(static_cast<int>(c.Get(ParseInt("maxiters", c.args.Value("maxiters")))));
    }
    if (c.args.Has("clip-center")) {
      c.Check(CheckChoice("clip-center", c.args.Value("clip-center"), {"median", "mean"}));
      sc->set_center(c.args.Value("clip-center"));
    }
    if (c.args.Has("clip-spread")) {
      c.Check(CheckChoice("clip-spread", c.args.Value("clip-spread"), {"std", "mad_std"}));
      sc->set_spread(c.args.Value("clip-spread"));
    }
  }
  if (c.args.Has("clip-extrema")) {
    auto [nlow, nhigh] = c.Get(ParseIntPair(c.args.Value("clip-extrema")));
    co->set_nlow(nlow);
    co->set_nhigh(nhigh);
  }
  if (c.args.Has("min-value")) co->set_min_value(c.Get(ParseDouble("min-value", c.args.Value("min-value"))));
  if (c.args.Has("max-value")) co->set_max_value(c.Get(ParseDouble("max-value", c.args.Value("max-value"))));
  if (c.args.Has("scale")) {
    c.Check(CheckChoice("scale", c.args.Value("scale"), {"none", "median", "mean", "exposure"}));
    co->set_scale(c.args.Value("scale"));
  }
  *o.mutable_selection() = SelectionFromArgs(c);
  for (const auto& [k, v] : KeyValues(c, "attr")) (*o.mutable_attributes())[k] = v;
  for (const auto& [k, v] : KeyValues(c, "config")) (*o.mutable_configuration())[k] = v;
  if (c.args.Has("certify-from")) {
    *o.mutable_certify_begin() = TimeToProto(c.Get(ParseTime(c.args.Value("certify-from"))));
  }
  if (c.args.Has("certify-until")) {
    if (!c.args.Has("certify-from")) return c.Usage("--certify-until needs --certify-from");
    *o.mutable_certify_end() = TimeToProto(c.Get(ParseTime(c.args.Value("certify-until"))));
  }
  o.set_certify_replace(c.args.Bool("replace"));
  if (int rc = c.Begin(); rc >= 0) return rc;
  int64_t total = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    total += static_cast<int64_t>(std::filesystem::file_size(f, ec));
  }
  ProgressBar bar(absl::StrCat("build ", o.kind(), " from ", files.size(), " frames"), total,
                  ProgressBar::Enabled(c.json));
  absl::StatusOr<v1::BuildMasterResponse> r =
      c.client->BuildMaster(o, files, [&](int64_t done, int64_t) { bar.Update(done); });
  bar.Finish();
  if (!r.ok()) return Fail(absl::StrCat("build ", o.detector(), " ", o.kind()), r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  const v1::MasterVersion& v = r->version();
  std::cout << "built " << v.detector() << " " << v.kind() << " version " << v.version() << " from "
            << r->statistics().inputs() << " frames: rejected "
            << FormatNumber(100 * r->statistics().rejected_fraction(), 3) << "%, noise "
            << FormatNumber(r->statistics().noise(), 4) << ", combine "
            << FormatSeconds(r->statistics().combine_seconds()) << "\n";
  std::cout << "  sha256 " << v.sha256() << "\n";
  if (r->has_certification()) {
    std::cout << "  certified for " << CertificationText(r->certification()) << "\n";
  }
  return 0;
}

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
      std::cout << "  " << (cand.chosen() ? "* " : "  ") << "series " << cand.series_id()
                << " v" << cand.version() << " [" << MapText(cand.configuration()) << "] "
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
  req.set_detector(c.Require("detector"));
  *req.mutable_selection() = SelectionFromArgs(c);
  for (const std::string& k : c.args.Values("kind")) req.add_kinds(k);
  if (int rc = c.CheckUsage(); rc >= 0) return rc;
  absl::StatusOr<Header> header = fits::ReadHeader(path);
  if (!header.ok()) return Fail(absl::StrCat("select ", path), header.status());
  HeaderToProto(*header, req.mutable_cards());
  if (int rc = c.Begin(); rc >= 0) return rc;
  absl::StatusOr<v1::SelectResponse> r = c.client->Select(req);
  if (!r.ok()) return Fail(absl::StrCat("select ", path), r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  std::cout << path << ": frame time " << FormatUtc(TimeFromProto(r->frame_time()))
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

int Calibrate(Context& c) {
  CalibrateOptions o;
  o.detector = c.Require("detector");
  const std::vector<std::string>& files = c.args.positional();
  if (files.empty()) return c.Usage("calibrate needs the raw FITS files");
  const std::string dir = c.args.Value("output", ".");
  o.selection = SelectionFromArgs(c);
  const std::string unit = c.args.Value("unit", "adu");
  c.Check(CheckChoice("unit", unit, {"adu", "electron"}));
  o.unit = unit == "electron" ? v1::OUTPUT_UNIT_ELECTRON : v1::OUTPUT_UNIT_ADU;
  if (c.args.Has("planes")) {
    for (absl::string_view p : absl::StrSplit(c.args.Value("planes"), ',')) {
      c.Check(CheckChoice("planes", p, {"data", "variance", "dq"}));
      o.planes.push_back(p == "data" ? v1::PLANE_DATA
                                     : p == "variance" ? v1::PLANE_VARIANCE : v1::PLANE_DQ);
    }
  }
  if (c.args.Has("flat-norm")) {
    c.Check(CheckChoice("flat-norm", c.args.Value("flat-norm"), {"mean", "clipped_mean"}));
    o.recipe.set_flat_norm(c.args.Value("flat-norm"));
  }
  for (const std::string& step : c.args.Values("skip")) {
    c.Check(CheckChoice("skip", step, {"overscan", "trim", "bias", "dark", "flat"}));
    if (step == "overscan") o.recipe.set_overscan(false);
    if (step == "trim") o.recipe.set_trim(false);
    if (step == "bias") o.recipe.set_bias(false);
    if (step == "dark") o.recipe.set_dark(false);
    if (step == "flat") o.recipe.set_flat(false);
  }
  const bool overwrite = c.args.Bool("overwrite");
  if (int rc = c.CheckUsage(); rc >= 0) return rc;
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
  if (int rc = c.Begin(); rc >= 0) return rc;
  int64_t total = 0;
  for (const std::string& f : files) total += static_cast<int64_t>(std::filesystem::file_size(f, ec));
  ProgressBar bar(absl::StrCat("calibrate ", files.size(), " frames"), total,
                  ProgressBar::Enabled(c.json));
  o.progress = [&](int64_t done, int64_t) { bar.Update(done); };
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
    } else {
      bar.Clear();
    }
    if (!r.status.ok()) {
      ++failed;
      PrintError(absl::StrCat("calibrate ", r.path), r.status);
      return;
    }
    if (!c.json) {
      std::vector<std::string> masters;
      for (const v1::AppliedMaster& m : r.header.masters()) {
        masters.push_back(absl::StrCat(m.kind(), " v", m.version(), " (", OutcomeName(m.outcome()),
                                       ")"));
      }
      const v1::FrameStatistics& st = r.header.statistics();
      std::cout << out << ": " << r.frame.width() << "x" << r.frame.height() << " "
                << r.frame.unit << ", median " << FormatNumber(st.median(), 5) << ", flagged "
                << FormatNumber(100 * st.flagged_fraction(), 3) << "%; "
                << (masters.empty() ? "no masters" : absl::StrJoin(masters, ", ")) << "\n";
    }
  });
  bar.Finish();
  json.EndArray();
  if (c.json) std::cout << json.str() << "\n";
  if (!stream.ok() && failed == 0) return Fail("calibrate stream", stream);
  // On failure stderr carries only the failures' lines (one per failed frame).
  if (!c.json && failed == 0 && stream.ok()) {
    std::fprintf(stderr, "calibrated %zu frames in %s\n", files.size(),
                 FormatSeconds(absl::ToDoubleSeconds(absl::Now() - start)).c_str());
  }
  return failed == 0 && stream.ok() ? 0 : kExitFailure;
}

int Health(Context& c) {
  if (int rc = c.Begin(); rc >= 0) return rc;
  const std::string service = c.args.Value("service");
  auto r = c.client->Health(service);
  if (!r.ok()) return Fail("health", r.status());
  const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*r);
  if (c.json) {
    JsonWriter j;
    j.BeginObject();
    j.Key("server");
    j.String(c.client_options.server);
    j.Key("service");
    j.String(service);
    j.Key("status");
    j.String(name);
    j.EndObject();
    std::cout << j.str() << "\n";
  } else {
    std::cout << c.client_options.server << (service.empty() ? "" : " " + service) << ": " << name
              << "\n";
  }
  return *r == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : kExitFailure;
}

int MakeSamplesCommand(Context& c) {
  const std::string dir = c.Require("output");
  SampleOptions o;
  if (c.args.Bool("small")) {
    o.data_width = 128;
    o.height = 96;
    o.overscan_width = 16;
    o.stars = 8;
    o.cosmic_rays = 4;
  }
  if (c.args.Has("width")) o.data_width = static_cast<int>(c.Get(ParseInt("width", c.args.Value("width"))));
  if (c.args.Has("height")) o.height = static_cast<int>(c.Get(ParseInt("height", c.args.Value("height"))));
  if (c.args.Has("overscan")) {
    o.overscan_width = static_cast<int>(c.Get(ParseInt("overscan", c.args.Value("overscan"))));
  }
  if (c.args.Has("frames")) {
    const int n = static_cast<int>(c.Get(ParseInt("frames", c.args.Value("frames"))));
    if (c.usage.ok() && n < 1) return c.Usage("--frames must be 1 or more");
    o.n_bias = o.n_dark = o.n_flat = n;
  }
  if (c.args.Has("lights")) o.n_light = static_cast<int>(c.Get(ParseInt("lights", c.args.Value("lights"))));
  if (c.args.Has("detector")) o.detector = c.args.Value("detector");
  if (c.args.Has("seed")) o.seed = static_cast<uint64_t>(c.Get(ParseInt("seed", c.args.Value("seed"))));
  if (c.args.Has("night")) o.night = c.args.Value("night");
  if (c.args.Has("compress")) {
    c.Check(CheckChoice("compress", c.args.Value("compress"),
                        {"RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1"}));
    o.light_compression = c.args.Value("compress");
  }
  o.overwrite = c.args.Bool("overwrite");
  if (int rc = c.CheckUsage(); rc >= 0) return rc;
  if (o.data_width < 8 || o.height < 8 || o.overscan_width < 2) {
    return c.Usage("--width and --height must be >= 8 and --overscan >= 2");
  }
  absl::StatusOr<SampleSet> set = MakeSamples(dir, o);
  if (!set.ok()) return Fail(absl::StrCat("make-samples ", dir), set.status());
  if (c.json) {
    JsonWriter j;
    j.BeginObject();
    j.Key("spec");
    j.String(set->spec_path);
    j.Key("detector");
    j.String(o.detector);
    j.Key("certify_from");
    j.String(set->certify_from);
    for (auto [name, list] : {std::make_pair("bias", &set->bias), std::make_pair("dark", &set->dark),
                              std::make_pair("flat", &set->flat), std::make_pair("light", &set->light)}) {
      j.Key(name);
      j.BeginArray();
      for (const std::string& p : *list) j.String(p);
      j.EndArray();
    }
    j.EndObject();
    std::cout << j.str() << "\n";
  } else {
    std::cout << "wrote " << set->spec_path << " (detector " << o.detector << ", "
              << o.data_width + o.overscan_width << "x" << o.height << " uint16 with "
              << o.overscan_width << " overscan columns)\n"
              << "  " << set->bias.size() << " biases in " << dir << "/bias/, " << set->dark.size()
              << " darks (" << o.dark_exptime << " s) in " << dir << "/dark/, " << set->flat.size()
              << " flats (" << o.filter << ") in " << dir << "/flat/, " << set->light.size()
              << " lights (" << o.light_exptime << " s) in " << dir << "/light/\n"
              << "  frames were taken on " << o.night << "; certify masters from "
              << set->certify_from << "\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------

std::vector<Command> Commands() {
  const FlagSpec detector{"detector", 'd', FlagKind::kValue, "detector, instrument/detector", "NAME"};
  const FlagSpec kind{"kind", 'k', FlagKind::kValue, "kind of master: bias, dark, flat, ...", "KIND"};
  const FlagSpec config{"config", 0, FlagKind::kRepeated,
                        "series configuration KEY=VALUE (when a kind has several series)", "KEY=VALUE"};
  const FlagSpec policy{"policy", 0, FlagKind::kValue,
                        "master selection: strict (certified only, default) or nearest", "POLICY"};
  const FlagSpec max_age{"max-age", 0, FlagKind::kValue, "with nearest: the farthest fallback, days",
                         "DAYS"};
  const FlagSpec pin{"pin", 0, FlagKind::kRepeated, "use this version of a kind", "KIND=VERSION"};
  const FlagSpec output{"output", 'o', FlagKind::kValue, "output file", "FILE"};
  return {
      {"detector put", "detector put SPEC.json", "store a detector spec (a new version of it)", {},
       DetectorPut},
      {"detector get", "detector get NAME [--version N]",
       "print a detector spec (as SPEC.json; --json for the API form)",
       {{"version", 0, FlagKind::kValue, "a given version (default latest)", "N"}}, DetectorGet},
      {"detector ls", "detector ls", "list detectors", {}, DetectorLs},
      {"dq-bits", "dq-bits [--detector D]", "the data-quality bits (core + the detector's)",
       {detector}, DqBits},
      {"put", "put --detector D --kind K [--attr KEY=VALUE]... FILE.fits",
       "upload a master FITS file; prints the new version",
       {detector, kind, config,
        {"attr", 0, FlagKind::kRepeated, "attribute stored with the version", "KEY=VALUE"}},
       Put},
      {"ls", "ls [--detector D] [--kind K]", "list stored masters and their certifications",
       {detector, kind}, Ls},
      {"history", "history --detector D --kind K", "audit log of a detector's series of a kind",
       {detector, kind}, History},
      {"get", "get --detector D --kind K (--version N | --at TIME) -o OUT.fits",
       "download a master (checked against its sha256)",
       {detector, kind, {"version", 0, FlagKind::kValue, "version number", "N"},
        {"at", 0, FlagKind::kValue, "the version certified at this time", "TIME"}, output},
       Get},
      {"certify", "certify --detector D --kind K --version N --begin TIME [--end TIME] [--replace]",
       "certify a version for frames taken in [begin, end)",
       {detector, kind, config, {"version", 0, FlagKind::kValue, "version number", "N"},
        {"begin", 0, FlagKind::kValue, "first valid time (RFC 3339, date, or now)", "TIME"},
        {"end", 0, FlagKind::kValue, "end of validity, exclusive (default open)", "TIME"},
        {"replace", 0, FlagKind::kBool, "trim overlapping certifications instead of refusing"},
        {"reason", 0, FlagKind::kValue, "why, for the audit log", "TEXT"}},
       Certify},
      {"decertify", "decertify --detector D --kind K --version N [--begin TIME --end TIME]",
       "remove a version's certification (all of it, or [begin, end))",
       {detector, kind, config, {"version", 0, FlagKind::kValue, "version number", "N"},
        {"begin", 0, FlagKind::kValue, "only from this time", "TIME"},
        {"end", 0, FlagKind::kValue, "only until this time", "TIME"},
        {"reason", 0, FlagKind::kValue, "why, for the audit log", "TEXT"}},
       Decertify},
      {"build",
       "build --detector D --kind K [--method median|mean|sum] [--sigma-clip LOW,HIGH] "
       "[--maxiters N] [--clip-extrema NLOW,NHIGH] [--scale none|median|mean|exposure] "
       "[--certify-from TIME] FILES...",
       "combine raw frames into a new master (inputs pre-processed by the kind's recipe)",
       {detector, kind, config,
        {"method", 0, FlagKind::kValue, "median (default), mean or sum", "METHOD"},
        {"sigma-clip", 0, FlagKind::kValue, "clip below/above the centre, in sigmas (default 3,3)",
         "LOW,HIGH"},
        {"maxiters", 0, FlagKind::kValue, "clipping iterations; 0 = until stable (default)", "N"},
        {"clip-center", 0, FlagKind::kValue, "centre of the clip: median (default) or mean", "C"},
        {"clip-spread", 0, FlagKind::kValue, "spread of the clip: std (default) or mad_std", "S"},
        {"no-clip", 0, FlagKind::kBool, "no sigma clipping"},
        {"clip-extrema", 0, FlagKind::kValue, "drop the n lowest and highest values per pixel",
         "NLOW,NHIGH"},
        {"min-value", 0, FlagKind::kValue, "reject values below", "X"},
        {"max-value", 0, FlagKind::kValue, "reject values above", "X"},
        {"scale", 0, FlagKind::kValue, "per-frame scaling: none, median, mean, exposure", "S"},
        policy, max_age, pin,
        {"attr", 0, FlagKind::kRepeated, "attribute stored with the version", "KEY=VALUE"},
        {"certify-from", 0, FlagKind::kValue, "certify the new version from this time", "TIME"},
        {"certify-until", 0, FlagKind::kValue, "... until this time (default open)", "TIME"},
        {"replace", 0, FlagKind::kBool, "replace overlapping certifications"}},
       Build},
      {"select", "select --detector D FILE.fits",
       "which masters a frame would get, and why (the selection trail)",
       {detector, policy, max_age, pin,
        {"kind", 'k', FlagKind::kRepeated, "only these kinds", "KIND"}},
       Select},
      {"calibrate",
       "calibrate --detector D [-o DIR] [--policy strict|nearest] [--pin KIND=VERSION]... FILES...",
       "calibrate raw frames over one stream; writes DIR/<name> (data, UNCERT, MASK, DQ)",
       {detector, {"output", 'o', FlagKind::kValue, "output directory (default .)", "DIR"}, policy,
        max_age, pin, {"unit", 0, FlagKind::kValue, "adu (default) or electron", "UNIT"},
        {"planes", 0, FlagKind::kValue, "planes to fetch, e.g. data,variance,dq (default all)",
         "LIST"},
        {"flat-norm", 0, FlagKind::kValue, "flat normalisation: mean (default) or clipped_mean",
         "N"},
        {"skip", 0, FlagKind::kRepeated, "skip a step: overscan, trim, bias, dark, flat", "STEP"},
        {"overwrite", 0, FlagKind::kBool, "replace existing output files"}},
       Calibrate},
      {"health", "health [--service NAME]", "is the server SERVING? (exit 1 if not)",
       {{"service", 0, FlagKind::kValue, "a service name (default: the whole server)", "NAME"}},
       Health},
      {"make-samples", "make-samples -o DIR [--small]",
       "write realistic raw frames (bias, dark, flat, light) and SPEC.json for trying calibd",
       {{"output", 'o', FlagKind::kValue, "directory to write", "DIR"},
        {"small", 0, FlagKind::kBool, "128x96 frames instead of 1024x1024 (fast)"},
        {"width", 0, FlagKind::kValue, "illuminated columns (default 1024)", "N"},
        {"height", 0, FlagKind::kValue, "rows (default 1024)", "N"},
        {"overscan", 0, FlagKind::kValue, "overscan columns (default 32)", "N"},
        {"frames", 0, FlagKind::kValue, "biases, darks and flats each (default 5)", "N"},
        {"lights", 0, FlagKind::kValue, "science frames (default 3)", "N"},
        {"detector", 0, FlagKind::kValue, "detector name (default demo/ccd0)", "NAME"},
        {"night", 0, FlagKind::kValue, "UTC date of the frames (default 2026-03-01)", "DATE"},
        {"seed", 0, FlagKind::kValue, "noise seed", "N"},
        {"compress", 0, FlagKind::kValue, "tile-compress the lights: RICE_1, GZIP_1, ...", "ALGO"},
        {"overwrite", 0, FlagKind::kBool, "replace existing files"}},
       MakeSamplesCommand},
  };
}

std::string MainHelp(const std::vector<Command>& commands) {
  std::string out =
      "calibctl: the command-line client of calibd (calibration of CCD/CMOS frames).\n\n"
      "usage: calibctl [global flags] COMMAND [flags] [args]\n\ncommands:\n";
  size_t w = 0;
  for (const Command& c : commands) w = std::max(w, c.name.size());
  for (const Command& c : commands) {
    absl::StrAppend(&out, "  ", c.name, std::string(w + 2 - c.name.size(), ' '), c.summary, "\n");
  }
  absl::StrAppend(&out, "\nglobal flags:\n", FlagsHelp(GlobalFlags()),
                  "\nTIME is RFC 3339 (2026-03-01T02:03:04Z), a UTC date-time, a date, or 'now'.\n"
                  "`calibctl COMMAND --help` shows a command's flags; docs/cli.md has examples.\n");
  return out;
}

int Main(int argc, char** argv) {
  std::vector<std::string> tokens(argv + 1, argv + argc);
  const std::vector<Command> commands = Commands();
  std::vector<std::string> names;
  for (const Command& c : commands) names.push_back(c.name);
  absl::StatusOr<CommandLine> line = SplitCommand(tokens, names, GlobalFlags());
  if (!line.ok()) {
    std::fprintf(stderr, "calibctl: %s\n", std::string(line.status().message()).c_str());
    return kExitUsage;
  }
  if (line->command.empty()) {
    const bool help = std::find(tokens.begin(), tokens.end(), "--help") != tokens.end() ||
                      std::find(tokens.begin(), tokens.end(), "-h") != tokens.end();
    std::fputs(MainHelp(commands).c_str(), help ? stdout : stderr);
    return help ? 0 : kExitUsage;
  }
  const Command* cmd = nullptr;
  for (const Command& c : commands) {
    if (c.name == line->command) cmd = &c;
  }
  std::vector<FlagSpec> specs = GlobalFlags();
  specs.insert(specs.end(), cmd->flags.begin(), cmd->flags.end());
  absl::StatusOr<ParsedArgs> args = ParseFlags(line->rest, specs);
  if (!args.ok()) {
    std::fprintf(stderr, "calibctl %s: %s\n", cmd->name.c_str(),
                 std::string(args.status().message()).c_str());
    return kExitUsage;
  }
  if (args->Bool("help")) {
    std::cout << "usage: calibctl " << cmd->synopsis << "\n\n" << cmd->summary << "\n\nflags:\n"
              << FlagsHelp(cmd->flags) << "\nglobal flags:\n" << FlagsHelp(GlobalFlags());
    return 0;
  }
  Context ctx;
  ctx.args = *std::move(args);
  ctx.json = ctx.args.Bool("json");
  const char* env_server = std::getenv("CALIBD_SERVER");
  const char* env_token = std::getenv("CALIBD_TOKEN");
  ctx.client_options.server =
      ctx.args.Value("server", env_server != nullptr && *env_server ? env_server : "127.0.0.1:50051");
  ctx.client_options.token = ctx.args.Value("token", env_token != nullptr ? env_token : "");
  ctx.client_options.tls_ca = ctx.args.Value("tls-ca");
  ctx.client_options.tls_cert = ctx.args.Value("tls-cert");
  ctx.client_options.tls_key = ctx.args.Value("tls-key");
  ctx.command = cmd->name;
  if (ctx.args.Has("timeout")) {
    const double s = ctx.Get(ParseDouble("timeout", ctx.args.Value("timeout")));
    if (ctx.usage.ok() && s <= 0) return ctx.Usage("--timeout must be > 0 seconds");
    ctx.client_options.timeout = absl::Seconds(s);
  }
  return cmd->run(ctx);
}

}  // namespace
}  // namespace calibd::client

int main(int argc, char** argv) { return calibd::client::Main(argc, argv); }
