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

// The figures a noise product's build stores as statistics, in the order printed.
constexpr const char* kNoiseFigures[] = {"rdnoise", "rdnoisee", "gain",   "gainerr",
                                          "darkcur", "nhot",     "ndead",  "nnoisy",
                                          "fpnmean", "dcmean",   "cicmean", "nfitted"};

int Build(Context& c) {
  absl::StatusOr<v1::BuildOptions> o = BuildOptionsFromFlags(c.args);
  if (!o.ok()) return c.Usage(o.status());
  absl::StatusOr<std::vector<v1::StoredFrameRef>> stored = StoredInputsFromFlags(c.args);
  if (!stored.ok()) return c.Usage(stored.status());
  const std::vector<std::string>& files = c.args.positional();
  if (files.empty() && stored->empty()) {
    return c.Usage("build needs the raw FITS files to combine (or --stored KIND=VERSION inputs)");
  }
  if (int rc = c.Connect(); rc >= 0) return rc;
  int64_t total = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    total += static_cast<int64_t>(std::filesystem::file_size(f, ec));
  }
  ProgressBar bar(absl::StrCat("build ", o->kind(), " from ", files.size(), " frames"), total,
                  ProgressBar::Enabled(c.json));
  absl::StatusOr<v1::BuildMasterResponse> r =
      c.client->BuildMaster(*o, files, [&](int64_t done, int64_t) { bar.Update(done); }, *stored);
  bar.Finish();
  if (!r.ok()) return Fail(absl::StrCat("build ", o->detector(), " ", o->kind()), r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  const v1::MasterVersion& v = r->version();
  if (IsNoiseKind(v.kind())) {
    std::cout << "built " << v.detector() << " " << v.kind() << " version " << v.version()
              << " from " << r->statistics().inputs() << " frames in "
              << FormatSeconds(r->statistics().combine_seconds()) << ":";
    for (const char* key : kNoiseFigures) {
      auto it = v.statistics().find(key);
      if (it != v.statistics().end()) std::cout << " " << key << "=" << FormatNumber(it->second, 5);
    }
    std::cout << "\n  sha256 " << v.sha256() << "\n";
    if (r->has_certification()) {
      std::cout << "  certified for " << CertificationText(r->certification()) << "\n";
    }
    return 0;
  }
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
  std::vector<FlagSpec> flags = {
      DetectorFlag(),
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
      {"replace", 0, FlagKind::kBool, "replace overlapping certifications"},
      {"stored", 0, FlagKind::kRepeated,
       "a stored version of the detector as an input (bad_pixels: dark_current=N, read_noise=N, "
       "flat=N)",
       "KIND=VERSION"}};
  for (FlagSpec& f : NoiseBuildFlags()) flags.push_back(std::move(f));
  return {
      {"build",
       "build --detector D --kind K [--method median|mean|sum] [--sigma-clip LOW,HIGH] "
       "[--maxiters N] [--clip-extrema NLOW,NHIGH] [--scale none|median|mean|exposure] "
       "[--certify-from TIME] [noise options] FILES...",
       "combine raw frames into a new master, or build a noise product (read_noise, gain, "
       "dark_current, bad_pixels, noise_model, gain_normalisation)",
       flags,
       Build},
  };
}

}  // namespace calibd::client
