// calibctl detector put/get/ls and dq-bits.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/command.h"
#include "client/convert.h"
#include "client/format.h"
#include "client/requests.h"
#include "core/store/detector.h"

namespace calibd::client {
namespace {

int DetectorPut(Context& c) {
  if (c.args.positional().size() != 1) return c.Usage("detector put takes one SPEC.json file");
  const std::string path = c.args.positional()[0];
  const std::string what = absl::StrCat("detector put ", path);
  std::ifstream in(path);
  if (!in) return Fail(what, absl::NotFoundError("cannot read the file"));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<store::DetectorSpec> spec = store::DetectorSpecFromJson(ss.str());
  if (!spec.ok()) return Fail(what, spec.status());
  if (absl::Status s = store::ValidateDetectorSpec(*spec); !s.ok()) return Fail(what, s);
  if (int rc = c.Connect(); rc >= 0) return rc;
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
  int64_t version = 0;
  if (c.args.Has("version")) {
    absl::StatusOr<int64_t> v = ParseInt("version", c.args.Value("version"));
    if (!v.ok()) return c.Usage(v.status());
    version = *v;
  }
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<v1::DetectorSpec> spec = c.client->GetDetector(name, version);
  if (!spec.ok()) return Fail(absl::StrCat("detector get ", name), spec.status());
  if (c.json) {
    std::cout << ProtoJson(*spec) << "\n";
  } else {
    // The SPEC.json form, so the output can be edited and put back.
    std::cout << "# " << spec->name() << " version " << spec->version() << ", stored "
              << TimeText(spec->has_created_at(), spec->created_at())
              << (spec->actor().empty() ? "" : " by " + spec->actor()) << "\n";
    std::cout << store::DetectorSpecToJson(DetectorSpecFromProto(*spec)) << "\n";
  }
  return 0;
}

int DetectorLs(Context& c) {
  absl::StatusOr<PageRequest> page = PageFromFlags(c.args);
  if (!page.ok()) return c.Usage(page.status());
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<v1::ListDetectorsResponse> r = c.client->ListDetectors(*page);
  if (!r.ok()) return Fail("detector ls", r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  Table t({"NAME", "VERSION", "SHAPE", "GAIN", "RDNOISE", "SATURATION", "STORED"});
  for (const v1::DetectorSpec& d : r->detectors()) {
    t.AddRow({d.name(), absl::StrCat(d.version()), absl::StrCat(d.width(), "x", d.height()),
              FormatNumber(d.gain()), FormatNumber(d.read_noise()), FormatNumber(d.saturation()),
              TimeText(d.has_created_at(), d.created_at())});
  }
  std::cout << t.Render();
  PrintNextPage(NextPageToken(*r), c.json);
  return 0;
}

int DqBits(Context& c) {
  if (int rc = c.Connect(); rc >= 0) return rc;
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

}  // namespace

std::vector<Command> DetectorCommands() {
  return {
      {"detector put",
       "detector put SPEC.json",
       "store a detector spec (a new version of it)",
       {},
       DetectorPut},
      {"detector get",
       "detector get NAME [--version N]",
       "print a detector spec (as SPEC.json; --json for the API form)",
       {{"version", 0, FlagKind::kValue, "a given version (default latest)", "N"}},
       DetectorGet},
      {"detector ls", "detector ls [--limit N] [--page-token T]", "list detectors", PageFlags(),
       DetectorLs},
      {"dq-bits",
       "dq-bits [--detector D]",
       "the data-quality bits (core + the detector's)",
       {DetectorFlag()},
       DqBits},
  };
}

}  // namespace calibd::client
