// calibctl build: combine raw frames into a new master on the server.
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/command.h"
#include "client/format.h"
#include "client/requests.h"

namespace calibd::client {
namespace {

int Build(Context& c) {
  absl::StatusOr<v1::BuildOptions> o = BuildOptionsFromFlags(c.args);
  if (!o.ok()) return c.Usage(o.status());
  const std::vector<std::string>& files = c.args.positional();
  if (files.empty()) return c.Usage("build needs the raw FITS files to combine");
  if (int rc = c.Connect(); rc >= 0) return rc;
  int64_t total = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    total += static_cast<int64_t>(std::filesystem::file_size(f, ec));
  }
  ProgressBar bar(absl::StrCat("build ", o->kind(), " from ", files.size(), " frames"), total,
                  ProgressBar::Enabled(c.json));
  absl::StatusOr<v1::BuildMasterResponse> r =
      c.client->BuildMaster(*o, files, [&](int64_t done, int64_t) { bar.Update(done); });
  bar.Finish();
  if (!r.ok()) return Fail(absl::StrCat("build ", o->detector(), " ", o->kind()), r.status());
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

}  // namespace

std::vector<Command> BuildCommands() {
  return {
      {"build",
       "build --detector D --kind K [--method median|mean|sum] [--sigma-clip LOW,HIGH] "
       "[--maxiters N] [--clip-extrema NLOW,NHIGH] [--scale none|median|mean|exposure] "
       "[--certify-from TIME] FILES...",
       "combine raw frames into a new master (inputs pre-processed by the kind's recipe)",
       {DetectorFlag(),
        KindFlag(),
        ConfigFlag(),
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
        PolicyFlag(),
        MaxAgeFlag(),
        PinFlag(),
        AttrFlag(),
        {"certify-from", 0, FlagKind::kValue, "certify the new version from this time", "TIME"},
        {"certify-until", 0, FlagKind::kValue, "... until this time (default open)", "TIME"},
        {"replace", 0, FlagKind::kBool, "replace overlapping certifications"}},
       Build},
  };
}

}  // namespace calibd::client
