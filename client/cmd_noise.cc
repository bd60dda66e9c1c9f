// calibctl synth-dark: a dark for any (exposure time, EM gain) from the detector's stored noise
// model, written as a calibrated FITS file (data e⁻, UNCERT, MASK, DQ).
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/command.h"
#include "client/convert.h"
#include "client/format.h"
#include "client/requests.h"
#include "core/fits/fits.h"

namespace calibd::client {
namespace {

int SynthDark(Context& c) {
  absl::StatusOr<v1::SynthesizeDarkRequest> req = SynthesizeDarkRequestFromFlags(c.args);
  if (!req.ok()) return c.Usage(req.status());
  absl::StatusOr<std::string> out = RequiredFlag(c.args, "output");
  if (!out.ok()) return c.Usage(out.status());
  if (!c.args.positional().empty()) return c.Usage("synth-dark takes no files");
  const bool overwrite = c.args.Bool("overwrite");
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(*out, ec)) {
    return Fail(absl::StrCat("synth-dark ", *out),
                absl::AlreadyExistsError(absl::StrCat(*out, " exists; pass --overwrite")));
  }
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<SynthesizedDark> dark = c.client->SynthesizeDark(*req);
  const std::string what = absl::StrCat("synth-dark ", req->detector());
  if (!dark.ok()) return Fail(what, dark.status());
  fits::WriteOptions wo;
  wo.overwrite = overwrite;
  if (absl::Status s = fits::WriteCalibratedFrame(*out, dark->frame, wo); !s.ok()) {
    return Fail(absl::StrCat(what, ": write ", *out), s);
  }
  const v1::ResultHeader& r = dark->header.result();
  const v1::MasterVersion& m = dark->header.model();
  if (c.json) {
    JsonWriter j;
    j.BeginObject();
    j.Key("output");
    j.String(*out);
    j.Key("header");
    j.Raw(ProtoJson(dark->header));
    j.EndObject();
    std::cout << j.str() << "\n";
    return 0;
  }
  const std::string outcome = r.masters_size() > 0 ? OutcomeName(r.masters(0).outcome()) : "-";
  std::cout << "wrote " << *out << ": synthesized dark for t=" << FormatNumber(req->exptime(), 6)
            << " s, g=" << FormatNumber(req->em_gain() == 0 ? 1 : req->em_gain(), 6) << ", "
            << r.width() << "x" << r.height() << " electron, median "
            << FormatNumber(r.statistics().median(), 4) << ", flagged "
            << FormatNumber(100 * r.statistics().flagged_fraction(), 3) << "%\n"
            << "  from " << m.detector() << " " << m.kind() << " version " << m.version() << " ("
            << outcome << ")  sha256 " << m.sha256() << "\n";
  return 0;
}

}  // namespace

std::vector<Command> NoiseCommands() {
  return {
      {"synth-dark",
       "synth-dark --detector D --exptime T [--em-gain G] [--temperature C] "
       "[--version N | --at TIME] -o OUT.fits",
       "a master dark for any (t, g) from the stored noise_model (else dark_current product)",
       {DetectorFlag(),
        {"exptime", 0, FlagKind::kValue, "exposure time in seconds (> 0)", "T"},
        {"em-gain", 0, FlagKind::kValue, "EM gain (default 1)", "G"},
        {"temperature", 0, FlagKind::kValue,
         "detector temperature in C: scales the dark current by exp(c dT) (needs the spec's c)",
         "C"},
        {"version", 0, FlagKind::kValue, "this model version (default: certified now, else latest)",
         "N"},
        {"at", 0, FlagKind::kValue, "the model version certified at this time", "TIME"},
        ConfigFlag(),
        {"output", 'o', FlagKind::kValue, "the FITS file to write", "OUT.fits"},
        {"overwrite", 0, FlagKind::kBool, "replace an existing output"}},
       SynthDark},
  };
}

}  // namespace calibd::client
