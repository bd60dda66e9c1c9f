// calibctl make-samples (synthetic raw frames to try calibd with) and health.
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/command.h"
#include "client/exit_codes.h"
#include "client/format.h"
#include "client/noise_samples.h"
#include "client/requests.h"
#include "client/samples.h"

namespace calibd::client {
namespace {

// The JSON a script reads back: the spec (and truth) paths, the detector, where to certify
// from, and each kind's files.
using FileLists = std::vector<std::pair<const char*, const std::vector<std::string>*>>;
void PrintSampleJson(const std::string& spec, const std::string& truth,
                     const std::string& detector, const std::string& certify_from,
                     const FileLists& lists) {
  JsonWriter j;
  j.BeginObject();
  j.Key("spec");
  j.String(spec);
  if (!truth.empty()) {
    j.Key("truth");
    j.String(truth);
  }
  j.Key("detector");
  j.String(detector);
  j.Key("certify_from");
  j.String(certify_from);
  for (const auto& [name, list] : lists) {
    j.Key(name);
    j.BeginArray();
    for (const std::string& p : *list) j.String(p);
    j.EndArray();
  }
  j.EndObject();
  std::cout << j.str() << "\n";
}

int MakeNoiseSamplesCommand(Context& c) {
  const std::string dir = c.args.Value("noise");
  if (dir.empty()) return c.Usage("--noise needs a directory");
  if (c.args.Has("output")) return c.Usage("give either -o DIR or --noise DIR");
  absl::StatusOr<NoiseSampleOptions> o = NoiseSampleOptionsFromFlags(c.args);
  if (!o.ok()) return c.Usage(o.status());
  absl::StatusOr<NoiseSampleSet> set = MakeNoiseSamples(dir, *o);
  if (!set.ok()) return Fail(absl::StrCat("make-samples --noise ", dir), set.status());
  if (c.json) {
    PrintSampleJson(set->spec_path, set->truth_path, o->detector, set->certify_from,
                    {{"bias", &set->bias}, {"ptc", &set->ptc}, {"dark", &set->dark},
                     {"emccd", &set->emccd}, {"gainnorm", &set->gainnorm},
                     {"light", &set->light}});
    return 0;
  }
  std::string settings;
  for (const auto& [g, t] : o->em_settings) {
    absl::StrAppend(&settings, settings.empty() ? "" : ", ", "(", g, ", ", t, " s)");
  }
  std::string times;
  for (double t : o->dark_exptimes) absl::StrAppend(&times, times.empty() ? "" : ", ", t);
  std::cout << "wrote " << set->spec_path << " (detector " << o->detector << ", "
            << o->data_width + o->overscan_width << "x" << o->height << " uint16 with "
            << o->overscan_width << " overscan columns) and the truth maps " << set->truth_path
            << "\n"
            << "  " << set->bias.size() << " biases in " << dir << "/bias/, " << set->ptc.size()
            << " flats (" << o->ptc_levels.size() << " pairs) in " << dir << "/ptc/, "
            << set->dark.size() << " darks (" << times << " s) in " << dir << "/dark/,\n"
            << "  " << set->emccd.size() << " EMCCD darks at (EM gain, exposure) " << settings
            << " in " << dir << "/emccd/, " << set->gainnorm.size() << " flats at "
            << o->gain_settings.size() << " gain settings in " << dir << "/gainnorm/,\n"
            << "  " << set->light.size() << " EMCCD lights at (" << o->light_em_gain << ", "
            << o->light_exptime << " s) in " << dir << "/light/\n"
            << "  frames were taken on " << o->night << "; certify from " << set->certify_from
            << "\n";
  return 0;
}

int MakeSamplesCommand(Context& c) {
  if (c.args.Has("noise")) return MakeNoiseSamplesCommand(c);
  if (c.args.Has("size")) return c.Usage("--size applies to --noise samples (use --width/--height)");
  absl::StatusOr<std::string> dir = RequiredFlag(c.args, "output");
  if (!dir.ok()) return c.Usage(dir.status());
  absl::StatusOr<SampleOptions> o = SampleOptionsFromFlags(c.args);
  if (!o.ok()) return c.Usage(o.status());
  absl::StatusOr<SampleSet> set = MakeSamples(*dir, *o);
  if (!set.ok()) return Fail(absl::StrCat("make-samples ", *dir), set.status());
  if (c.json) {
    PrintSampleJson(set->spec_path, "", o->detector, set->certify_from,
                    {{"bias", &set->bias}, {"dark", &set->dark}, {"flat", &set->flat},
                     {"light", &set->light}});
  } else {
    std::cout << "wrote " << set->spec_path << " (detector " << o->detector << ", "
              << o->data_width + o->overscan_width << "x" << o->height << " uint16 with "
              << o->overscan_width << " overscan columns)\n"
              << "  " << set->bias.size() << " biases in " << *dir << "/bias/, " << set->dark.size()
              << " darks (" << o->dark_exptime << " s) in " << *dir << "/dark/, "
              << set->flat.size() << " flats (" << o->filter << ") in " << *dir << "/flat/, "
              << set->light.size() << " lights (" << o->light_exptime << " s) in " << *dir
              << "/light/\n"
              << "  frames were taken on " << o->night << "; certify masters from "
              << set->certify_from << "\n";
  }
  return 0;
}

int Health(Context& c) {
  if (int rc = c.Connect(); rc >= 0) return rc;
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
  return *r == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitNotServing;
}

}  // namespace

std::vector<Command> SampleCommands() {
  return {
      {"make-samples",
       "make-samples (-o DIR [--small] | --noise DIR [--size N])",
       "write realistic raw frames (bias, dark, flat, light) and SPEC.json for trying calibd; "
       "--noise: stacks with known truth for every noise product",
       {{"output", 'o', FlagKind::kValue, "directory to write", "DIR"},
        {"noise", 0, FlagKind::kValue,
         "write noise-product stacks (biases, flat pairs, darks, EMCCD darks, gain settings) "
         "and TRUTH.fits here instead",
         "DIR"},
        {"size", 0, FlagKind::kValue, "--noise: N x N illuminated pixels (default 64x48)", "N"},
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

std::vector<Command> HealthCommands() {
  return {
      {"health",
       "health [--service NAME]",
       "is the server SERVING? (exit 1 if not)",
       {{"service", 0, FlagKind::kValue, "a service name (default: the whole server)", "NAME"}},
       Health},
  };
}

}  // namespace calibd::client
