#include "client/requests.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/convert.h"
#include "core/status/macros.h"

namespace calibd::client {
namespace {

// A time flag into a Timestamp field, only when the flag was given: `field` is the message's
// mutable_xxx accessor, called only then (calling it sets the field's presence).
template <typename FieldFn>
absl::Status TimeFlag(const ParsedArgs& args, const std::string& flag, FieldFn field) {
  if (!args.Has(flag)) return absl::OkStatus();
  absl::StatusOr<absl::Time> t = ParseTime(args.Value(flag));
  if (!t.ok())
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", t.status().message()));
  *field() = TimeToProto(*t);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PositiveInt(const ParsedArgs& args, const std::string& flag) {
  CALIBD_ASSIGN_OR_RETURN(int64_t v, ParseInt(flag, args.Value(flag)));
  if (v < 1) return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be 1 or more"));
  return v;
}

absl::StatusOr<int> IntFlag(const ParsedArgs& args, const std::string& flag, int fallback) {
  if (!args.Has(flag)) return fallback;
  CALIBD_ASSIGN_OR_RETURN(int64_t v, ParseInt(flag, args.Value(flag)));
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", v, " is out of range"));
  }
  return static_cast<int>(v);
}

// One value of `flag` that must be one of `choices` (absent = `fallback`).
absl::StatusOr<std::string> Choice(const ParsedArgs& args, const std::string& flag,
                                   absl::Span<const std::string> choices,
                                   const std::string& fallback = "") {
  if (!args.Has(flag)) return fallback;
  const std::string v = args.Value(flag);
  CALIBD_RETURN_IF_ERROR(CheckChoice(flag, v, choices));
  return v;
}

}  // namespace

FlagSpec DetectorFlag() {
  return {"detector", 'd', FlagKind::kValue, "detector, instrument/detector", "NAME"};
}
FlagSpec KindFlag() {
  return {"kind", 'k', FlagKind::kValue, "kind of master: bias, dark, flat, ...", "KIND"};
}
FlagSpec ConfigFlag() {
  return {"config", 0, FlagKind::kRepeated,
          "series configuration KEY=VALUE (when a kind has several series)", "KEY=VALUE"};
}
FlagSpec AttrFlag() {
  return {"attr", 0, FlagKind::kRepeated, "attribute stored with the version", "KEY=VALUE"};
}
FlagSpec PolicyFlag() {
  return {"policy", 0, FlagKind::kValue,
          "master selection: strict (certified only, default) or nearest", "POLICY"};
}
FlagSpec MaxAgeFlag() {
  return {"max-age", 0, FlagKind::kValue, "with nearest: the farthest fallback, days", "DAYS"};
}
FlagSpec PinFlag() {
  return {"pin", 0, FlagKind::kRepeated, "use this version of a kind", "KIND=VERSION"};
}
std::vector<FlagSpec> PageFlags() {
  return {
      {"limit", 0, FlagKind::kValue, "at most N entries (one page; default the server's)", "N"},
      {"page-token", 0, FlagKind::kValue, "continue after the page that printed TOKEN", "TOKEN"}};
}

absl::StatusOr<std::map<std::string, std::string>> KeyValuesFromFlags(const ParsedArgs& args,
                                                                      const std::string& flag) {
  std::map<std::string, std::string> out;
  for (const std::string& kv : args.Values(flag)) {
    absl::StatusOr<std::pair<std::string, std::string>> p = ParseKeyValue(kv);
    if (!p.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", p.status().message()));
    }
    out[p->first] = p->second;
  }
  return out;
}

absl::StatusOr<std::string> RequiredFlag(const ParsedArgs& args, const std::string& flag) {
  std::string v = args.Value(flag);
  if (v.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, " is required"));
  return v;
}

absl::StatusOr<v1::SelectionOptions> SelectionFromFlags(const ParsedArgs& args) {
  v1::SelectionOptions sel;
  CALIBD_ASSIGN_OR_RETURN(std::string policy,
                          Choice(args, "policy", {"strict", "nearest"}, "strict"));
  sel.set_policy(policy == "nearest" ? v1::SELECTION_POLICY_NEAREST : v1::SELECTION_POLICY_STRICT);
  if (args.Has("max-age")) {
    CALIBD_ASSIGN_OR_RETURN(double days, ParseDouble("max-age", args.Value("max-age")));
    if (days < 0) return absl::InvalidArgumentError("--max-age must be 0 or more days");
    sel.mutable_max_age()->set_seconds(static_cast<int64_t>(days * 86400));
  }
  for (const std::string& pin : args.Values("pin")) {
    CALIBD_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(pin));
    v1::PinnedVersion* p = sel.add_pins();
    p->set_kind(kv.first);
    int64_t v = 0;
    if (absl::SimpleAtoi(kv.second, &v) && v > 0) {
      p->set_version(v);
    } else if (kv.second.size() == 64) {
      p->set_sha256(kv.second);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--pin ", pin, ": give KIND=VERSION (a number) or KIND=SHA256"));
    }
  }
  return sel;
}

absl::StatusOr<PutMasterOptions> PutMasterOptionsFromFlags(const ParsedArgs& args) {
  PutMasterOptions o;
  CALIBD_ASSIGN_OR_RETURN(o.detector, RequiredFlag(args, "detector"));
  CALIBD_ASSIGN_OR_RETURN(o.kind, RequiredFlag(args, "kind"));
  CALIBD_ASSIGN_OR_RETURN(o.attributes, KeyValuesFromFlags(args, "attr"));
  CALIBD_ASSIGN_OR_RETURN(o.configuration, KeyValuesFromFlags(args, "config"));
  return o;
}

absl::StatusOr<VersionChoice> VersionChoiceFromFlags(const ParsedArgs& args) {
  if (args.Has("version") == args.Has("at")) {
    return absl::InvalidArgumentError("give exactly one of --version N and --at TIME");
  }
  VersionChoice which;
  if (args.Has("version")) {
    CALIBD_ASSIGN_OR_RETURN(which.version, PositiveInt(args, "version"));
  } else {
    absl::StatusOr<absl::Time> at = ParseTime(args.Value("at"));
    if (!at.ok()) return absl::InvalidArgumentError(absl::StrCat("--at: ", at.status().message()));
    which.at = *at;
  }
  return which;
}

absl::StatusOr<v1::CertifyRequest> CertifyRequestFromFlags(const ParsedArgs& args) {
  v1::CertifyRequest req;
  CALIBD_ASSIGN_OR_RETURN(*req.mutable_detector(), RequiredFlag(args, "detector"));
  CALIBD_ASSIGN_OR_RETURN(*req.mutable_kind(), RequiredFlag(args, "kind"));
  CALIBD_RETURN_IF_ERROR(RequiredFlag(args, "version").status());
  CALIBD_ASSIGN_OR_RETURN(int64_t version, PositiveInt(args, "version"));
  req.set_version(version);
  CALIBD_ASSIGN_OR_RETURN(auto config, KeyValuesFromFlags(args, "config"));
  req.mutable_configuration()->insert(config.begin(), config.end());
  CALIBD_RETURN_IF_ERROR(RequiredFlag(args, "begin").status());
  CALIBD_RETURN_IF_ERROR(TimeFlag(args, "begin", [&] { return req.mutable_begin(); }));
  CALIBD_RETURN_IF_ERROR(TimeFlag(args, "end", [&] { return req.mutable_end(); }));
  req.set_replace(args.Bool("replace"));
  req.set_reason(args.Value("reason"));
  return req;
}

absl::StatusOr<v1::DecertifyRequest> DecertifyRequestFromFlags(const ParsedArgs& args) {
  v1::DecertifyRequest req;
  CALIBD_ASSIGN_OR_RETURN(*req.mutable_detector(), RequiredFlag(args, "detector"));
  CALIBD_ASSIGN_OR_RETURN(*req.mutable_kind(), RequiredFlag(args, "kind"));
  CALIBD_RETURN_IF_ERROR(RequiredFlag(args, "version").status());
  CALIBD_ASSIGN_OR_RETURN(int64_t version, PositiveInt(args, "version"));
  req.set_version(version);
  CALIBD_ASSIGN_OR_RETURN(auto config, KeyValuesFromFlags(args, "config"));
  req.mutable_configuration()->insert(config.begin(), config.end());
  CALIBD_RETURN_IF_ERROR(TimeFlag(args, "begin", [&] { return req.mutable_begin(); }));
  CALIBD_RETURN_IF_ERROR(TimeFlag(args, "end", [&] { return req.mutable_end(); }));
  req.set_reason(args.Value("reason"));
  return req;
}

absl::StatusOr<v1::BuildOptions> BuildOptionsFromFlags(const ParsedArgs& args) {
  v1::BuildOptions o;
  CALIBD_ASSIGN_OR_RETURN(*o.mutable_detector(), RequiredFlag(args, "detector"));
  CALIBD_ASSIGN_OR_RETURN(*o.mutable_kind(), RequiredFlag(args, "kind"));
  v1::CombineOptions* co = o.mutable_combine();
  CALIBD_ASSIGN_OR_RETURN(*co->mutable_method(), Choice(args, "method", {"median", "mean", "sum"}));
  const bool clip_flags = args.Has("sigma-clip") || args.Has("maxiters") ||
                          args.Has("clip-center") || args.Has("clip-spread");
  if (args.Bool("no-clip")) {
    if (clip_flags) return absl::InvalidArgumentError("--no-clip contradicts the sigma-clip flags");
    co->mutable_sigma_clip()->set_enabled(false);
  } else if (clip_flags) {
    v1::CombineOptions::SigmaClip* sc = co->mutable_sigma_clip();
    sc->set_enabled(true);
    std::pair<double, double> sigmas(3.0, 3.0);
    if (args.Has("sigma-clip")) {
      CALIBD_ASSIGN_OR_RETURN(sigmas, ParseDoublePair(args.Value("sigma-clip")));
    }
    if (sigmas.first <= 0 || sigmas.second <= 0) {
      return absl::InvalidArgumentError("--sigma-clip values must be > 0");
    }
    sc->set_low(sigmas.first);
    sc->set_high(sigmas.second);
    if (args.Has("maxiters")) {
      CALIBD_ASSIGN_OR_RETURN(int iters, IntFlag(args, "maxiters", 0));
      if (iters < 0) return absl::InvalidArgumentError("--maxiters must be 0 or more");
      sc->set_max_iters(iters);
    }
    CALIBD_ASSIGN_OR_RETURN(*sc->mutable_center(), Choice(args, "clip-center", {"median", "mean"}));
    CALIBD_ASSIGN_OR_RETURN(*sc->mutable_spread(), Choice(args, "clip-spread", {"std", "mad_std"}));
  }
  if (args.Has("clip-extrema")) {
    CALIBD_ASSIGN_OR_RETURN(auto n, ParseIntPair(args.Value("clip-extrema")));
    co->set_nlow(n.first);
    co->set_nhigh(n.second);
  }
  if (args.Has("min-value")) {
    CALIBD_ASSIGN_OR_RETURN(double v, ParseDouble("min-value", args.Value("min-value")));
    co->set_min_value(v);
  }
  if (args.Has("max-value")) {
    CALIBD_ASSIGN_OR_RETURN(double v, ParseDouble("max-value", args.Value("max-value")));
    co->set_max_value(v);
  }
  CALIBD_ASSIGN_OR_RETURN(*co->mutable_scale(),
                          Choice(args, "scale", {"none", "median", "mean", "exposure"}));
  CALIBD_ASSIGN_OR_RETURN(*o.mutable_selection(), SelectionFromFlags(args));
  CALIBD_ASSIGN_OR_RETURN(auto attrs, KeyValuesFromFlags(args, "attr"));
  o.mutable_attributes()->insert(attrs.begin(), attrs.end());
  CALIBD_ASSIGN_OR_RETURN(auto config, KeyValuesFromFlags(args, "config"));
  o.mutable_configuration()->insert(config.begin(), config.end());
  if (args.Has("certify-until") && !args.Has("certify-from")) {
    return absl::InvalidArgumentError("--certify-until needs --certify-from");
  }
  CALIBD_RETURN_IF_ERROR(TimeFlag(args, "certify-from", [&] { return o.mutable_certify_begin(); }));
  CALIBD_RETURN_IF_ERROR(TimeFlag(args, "certify-until", [&] { return o.mutable_certify_end(); }));
  o.set_certify_replace(args.Bool("replace"));
  CALIBD_ASSIGN_OR_RETURN(*o.mutable_noise(), NoiseBuildOptionsFromFlags(args, o.kind()));
  return o;
}

bool IsNoiseKind(const std::string& kind) {
  for (const char* k : {"read_noise", "gain", "dark_current", "bad_pixels", "noise_model",
                        "gain_normalisation"}) {
    if (kind == k) return true;
  }
  return false;
}

namespace {

// A noise flag: its name, the kinds it applies to, its help text.
struct NoiseFlag {
  const char* name;
  std::vector<std::string> kinds;
  const char* help;
  const char* value;  // "" = boolean
};

const std::vector<NoiseFlag>& NoiseFlagTable() {
  static const auto* table = new std::vector<NoiseFlag>{
      {"min-frames", {"read_noise"}, "read_noise: fewest valid frames per pixel (default 2)", "N"},
      {"hot-sigma", {"dark_current"},
       "dark_current: hot = rate above the median by K robust sigma (default 5)", "K"},
      {"hot-min-rate", {"dark_current"},
       "dark_current: ... and above the median by at least R e-/s (default 0)", "R"},
      {"dead-fraction", {"bad_pixels"},
       "bad_pixels: dead = flat below F x its local median (default 0.5)", "F"},
      {"box", {"bad_pixels"}, "bad_pixels: local-median window, odd (default 15)", "N"},
      {"noisy-sigma", {"bad_pixels"},
       "bad_pixels: noisy = read noise above median + K robust sigma (default 5)", "K"},
      {"amp-section", {"gain"},
       "gain: an amplifier's FITS section, repeated (default the whole frame)", "SECTION"},
      {"level-sizes", {"gain"},
       "gain: flats per illumination level, in the order given (default pairs)", "N,N,..."},
      {"saturation-fraction", {"gain"},
       "gain: exclude levels with mean above F x saturation (default 0.9)", "F"},
      {"max-saturated-fraction", {"gain"},
       "gain: exclude levels with more than F of pixels saturated (default 0.001)", "F"},
      {"nonlinearity-sigma", {"gain"},
       "gain: drop the worst level while its residual exceeds K sigma (default 5)", "K"},
      {"prescan-section", {"noise_model"},
       "noise_model: where the bias offset BIASOFF is measured (FITS section)", "SECTION"},
      {"unweighted", {"noise_model"}, "noise_model: equal weights (errors from the scatter)", ""},
      {"setting-key", {"gain_normalisation"},
       "gain_normalisation: header keyword of the gain setting (default GAINMODE)", "KEY"},
      {"norm-section", {"gain_normalisation"},
       "gain_normalisation: the section measured (default the frame)", "SECTION"},
      {"reference", {"gain_normalisation"},
       "gain_normalisation: the reference setting (default the lowest response)", "SETTING"},
  };
  return *table;
}

absl::StatusOr<double> NonNegative(const ParsedArgs& args, const char* flag, bool positive) {
  CALIBD_ASSIGN_OR_RETURN(double v, ParseDouble(flag, args.Value(flag)));
  if (!(positive ? v > 0 : v >= 0) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be ", positive ? "> 0" : ">= 0", ", got ", v));
  }
  return v;
}

absl::StatusOr<double> Fraction(const ParsedArgs& args, const char* flag) {
  CALIBD_ASSIGN_OR_RETURN(double v, ParseDouble(flag, args.Value(flag)));
  if (!(v > 0 && v <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be in (0, 1], got ", v));
  }
  return v;
}

}  // namespace

std::vector<FlagSpec> NoiseBuildFlags() {
  std::vector<FlagSpec> out;
  for (const NoiseFlag& f : NoiseFlagTable()) {
    const bool repeated = std::string(f.name) == "amp-section";
    out.push_back({f.name, 0,
                   *f.value == 0 ? FlagKind::kBool
                   : repeated    ? FlagKind::kRepeated
                                 : FlagKind::kValue,
                   f.help, f.value});
  }
  return out;
}

absl::StatusOr<v1::NoiseBuildOptions> NoiseBuildOptionsFromFlags(const ParsedArgs& args,
                                                                 const std::string& kind) {
  for (const NoiseFlag& f : NoiseFlagTable()) {
    if (!args.Has(f.name)) continue;
    if (std::find(f.kinds.begin(), f.kinds.end(), kind) == f.kinds.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--", f.name, " applies to --kind ",
                                                     absl::StrJoin(f.kinds, ", "), " only"));
    }
  }
  v1::NoiseBuildOptions n;
  if (args.Has("min-frames")) {
    CALIBD_ASSIGN_OR_RETURN(int v, IntFlag(args, "min-frames", 2));
    if (v < 2) return absl::InvalidArgumentError("--min-frames must be 2 or more");
    n.set_min_frames(v);
  }
  if (args.Has("hot-sigma")) {
    CALIBD_ASSIGN_OR_RETURN(double v, NonNegative(args, "hot-sigma", true));
    n.set_hot_sigma(v);
  }
  if (args.Has("hot-min-rate")) {
    CALIBD_ASSIGN_OR_RETURN(double v, NonNegative(args, "hot-min-rate", false));
    n.set_hot_min_rate(v);
  }
  if (args.Has("dead-fraction")) {
    CALIBD_ASSIGN_OR_RETURN(double v, Fraction(args, "dead-fraction"));
    n.set_dead_fraction(v);
  }
  if (args.Has("box")) {
    CALIBD_ASSIGN_OR_RETURN(int v, IntFlag(args, "box", 15));
    if (v < 3 || v % 2 == 0) return absl::InvalidArgumentError("--box must be odd and >= 3");
    n.set_box(v);
  }
  if (args.Has("noisy-sigma")) {
    CALIBD_ASSIGN_OR_RETURN(double v, NonNegative(args, "noisy-sigma", true));
    n.set_noisy_sigma(v);
  }
  for (const std::string& s : args.Values("amp-section")) n.add_sections(s);
  if (args.Has("level-sizes")) {
    for (absl::string_view part : absl::StrSplit(args.Value("level-sizes"), ',')) {
      CALIBD_ASSIGN_OR_RETURN(int64_t v, ParseInt("level-sizes", part));
      if (v < 2) {
        return absl::InvalidArgumentError("--level-sizes: every level needs 2 or more flats");
      }
      n.add_level_sizes(static_cast<int32_t>(v));
    }
  }
  if (args.Has("saturation-fraction")) {
    CALIBD_ASSIGN_OR_RETURN(double v, Fraction(args, "saturation-fraction"));
    n.set_saturation_fraction(v);
  }
  if (args.Has("max-saturated-fraction")) {
    CALIBD_ASSIGN_OR_RETURN(double v, Fraction(args, "max-saturated-fraction"));
    n.set_max_saturated_fraction(v);
  }
  if (args.Has("nonlinearity-sigma")) {
    CALIBD_ASSIGN_OR_RETURN(double v, NonNegative(args, "nonlinearity-sigma", true));
    n.set_nonlinearity_sigma(v);
  }
  n.set_prescan_section(args.Value("prescan-section"));
  if (args.Bool("unweighted")) n.set_unweighted(true);
  n.set_setting_key(args.Value("setting-key"));
  n.set_section(args.Value("norm-section"));
  n.set_reference(args.Value("reference"));
  return n;
}

absl::StatusOr<std::vector<v1::StoredFrameRef>> StoredInputsFromFlags(const ParsedArgs& args) {
  std::vector<v1::StoredFrameRef> out;
  for (const std::string& text : args.Values("stored")) {
    CALIBD_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(text));
    int64_t version = 0;
    if (!absl::SimpleAtoi(kv.second, &version) || version < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stored ", text, ": the version must be a number >= 1 (KIND=VERSION)"));
    }
    v1::StoredFrameRef ref;
    ref.set_detector(args.Value("detector"));
    ref.set_kind(kv.first);
    ref.set_version(version);
    out.push_back(std::move(ref));
  }
  return out;
}

absl::StatusOr<v1::SynthesizeDarkRequest> SynthesizeDarkRequestFromFlags(const ParsedArgs& args) {
  v1::SynthesizeDarkRequest r;
  CALIBD_ASSIGN_OR_RETURN(*r.mutable_detector(), RequiredFlag(args, "detector"));
  CALIBD_RETURN_IF_ERROR(RequiredFlag(args, "exptime").status());
  CALIBD_ASSIGN_OR_RETURN(double t, NonNegative(args, "exptime", true));
  r.set_exptime(t);
  if (args.Has("em-gain")) {
    CALIBD_ASSIGN_OR_RETURN(double g, NonNegative(args, "em-gain", true));
    r.set_em_gain(g);
  }
  if (args.Has("temperature")) {
    CALIBD_ASSIGN_OR_RETURN(double c, ParseDouble("temperature", args.Value("temperature")));
    if (!std::isfinite(c)) return absl::InvalidArgumentError("--temperature must be a number");
    r.set_temperature(c);
  }
  if (args.Has("version") && args.Has("at")) {
    return absl::InvalidArgumentError("give at most one of --version N and --at TIME");
  }
  if (args.Has("version")) {
    CALIBD_ASSIGN_OR_RETURN(int64_t v, PositiveInt(args, "version"));
    r.set_version(v);
  }
  CALIBD_RETURN_IF_ERROR(TimeFlag(args, "at", [&] { return r.mutable_at(); }));
  CALIBD_ASSIGN_OR_RETURN(auto config, KeyValuesFromFlags(args, "config"));
  r.mutable_configuration()->insert(config.begin(), config.end());
  return r;
}

std::vector<FlagSpec> NoiseRecipeFlags() {
  return {
      {"dark-policy", 0, FlagKind::kValue,
       "where the dark comes from: measured, synthesized (from the noise model) or "
       "measured_else_synthesized (default: the detector's)",
       "P"},
      {"read-noise-map", 0, FlagKind::kBool, "require the read_noise product's per-pixel map"},
      {"no-read-noise-map", 0, FlagKind::kBool, "use the scalar read noise, not the map"},
      {"gain-product", 0, FlagKind::kBool, "require the gain product's gain"},
      {"no-gain-product", 0, FlagKind::kBool, "use the spec's gain, not the gain product"},
      {"bad-pixels", 0, FlagKind::kBool, "require the bad_pixels product (OR-ed into DQ)"},
      {"no-bad-pixels", 0, FlagKind::kBool, "do not use the bad_pixels product"},
  };
}

absl::Status NoiseRecipeFromFlags(const ParsedArgs& args, v1::RecipeOverrides* recipe) {
  if (args.Has("dark-policy")) {
    const std::string p = args.Value("dark-policy");
    CALIBD_RETURN_IF_ERROR(
        CheckChoice("dark-policy", p, {"measured", "synthesized", "measured_else_synthesized"}));
    recipe->set_dark_policy(p == "measured"      ? v1::DARK_POLICY_MEASURED
                            : p == "synthesized" ? v1::DARK_POLICY_SYNTHESIZED
                                                 : v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED);
  }
  struct Switch {
    const char* name;
    void (v1::RecipeOverrides::*set)(bool);
  };
  for (const Switch& s : {Switch{"read-noise-map", &v1::RecipeOverrides::set_read_noise_map},
                          Switch{"gain-product", &v1::RecipeOverrides::set_gain_product},
                          Switch{"bad-pixels", &v1::RecipeOverrides::set_bad_pixels}}) {
    const std::string no = absl::StrCat("no-", s.name);
    const bool on = args.Bool(s.name), off = args.Bool(no);
    if (on && off) {
      return absl::InvalidArgumentError(
          absl::StrCat("give --", s.name, " or --", no, ", not both"));
    }
    if (on) (recipe->*s.set)(true);
    if (off) (recipe->*s.set)(false);
  }
  return absl::OkStatus();
}

absl::StatusOr<CalibrateOptions> CalibrateOptionsFromFlags(const ParsedArgs& args) {
  CalibrateOptions o;
  CALIBD_ASSIGN_OR_RETURN(o.detector, RequiredFlag(args, "detector"));
  CALIBD_ASSIGN_OR_RETURN(o.selection, SelectionFromFlags(args));
  CALIBD_ASSIGN_OR_RETURN(std::string unit, Choice(args, "unit", {"adu", "electron"}, "adu"));
  o.unit = unit == "electron" ? v1::OUTPUT_UNIT_ELECTRON : v1::OUTPUT_UNIT_ADU;
  if (args.Has("planes")) {
    for (absl::string_view p : absl::StrSplit(args.Value("planes"), ',')) {
      CALIBD_RETURN_IF_ERROR(CheckChoice("planes", p, {"data", "variance", "dq"}));
      o.planes.push_back(p == "data"       ? v1::PLANE_DATA
                         : p == "variance" ? v1::PLANE_VARIANCE
                                           : v1::PLANE_DQ);
    }
  }
  CALIBD_ASSIGN_OR_RETURN(*o.recipe.mutable_flat_norm(),
                          Choice(args, "flat-norm", {"mean", "clipped_mean"}));
  for (const std::string& step : args.Values("skip")) {
    CALIBD_RETURN_IF_ERROR(CheckChoice("skip", step, {"overscan", "trim", "bias", "dark", "flat"}));
    if (step == "overscan") o.recipe.set_overscan(false);
    if (step == "trim") o.recipe.set_trim(false);
    if (step == "bias") o.recipe.set_bias(false);
    if (step == "dark") o.recipe.set_dark(false);
    if (step == "flat") o.recipe.set_flat(false);
  }
  CALIBD_RETURN_IF_ERROR(NoiseRecipeFromFlags(args, &o.recipe));
  return o;
}

absl::StatusOr<SampleOptions> SampleOptionsFromFlags(const ParsedArgs& args) {
  SampleOptions o;
  if (args.Bool("small")) {
    o.data_width = 128;
    o.height = 96;
    o.overscan_width = 16;
    o.stars = 8;
    o.cosmic_rays = 4;
  }
  CALIBD_ASSIGN_OR_RETURN(o.data_width, IntFlag(args, "width", o.data_width));
  CALIBD_ASSIGN_OR_RETURN(o.height, IntFlag(args, "height", o.height));
  CALIBD_ASSIGN_OR_RETURN(o.overscan_width, IntFlag(args, "overscan", o.overscan_width));
  if (args.Has("frames")) {
    CALIBD_ASSIGN_OR_RETURN(int n, IntFlag(args, "frames", 0));
    if (n < 1) return absl::InvalidArgumentError("--frames must be 1 or more");
    o.n_bias = o.n_dark = o.n_flat = n;
  }
  CALIBD_ASSIGN_OR_RETURN(o.n_light, IntFlag(args, "lights", o.n_light));
  if (o.n_light < 0) return absl::InvalidArgumentError("--lights must be 0 or more");
  if (args.Has("detector")) o.detector = args.Value("detector");
  if (args.Has("seed")) {
    CALIBD_ASSIGN_OR_RETURN(int64_t seed, ParseInt("seed", args.Value("seed")));
    o.seed = static_cast<uint64_t>(seed);
  }
  if (args.Has("night")) o.night = args.Value("night");
  CALIBD_ASSIGN_OR_RETURN(
      o.light_compression,
      Choice(args, "compress", {"RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1"}));
  o.overwrite = args.Bool("overwrite");
  if (o.data_width < 8 || o.height < 8 || o.overscan_width < 2) {
    return absl::InvalidArgumentError("--width and --height must be >= 8 and --overscan >= 2");
  }
  return o;
}

absl::StatusOr<NoiseSampleOptions> NoiseSampleOptionsFromFlags(const ParsedArgs& args) {
  NoiseSampleOptions o;
  for (const char* f : {"small", "width", "height", "overscan", "lights", "compress"}) {
    if (args.Has(f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", f, " does not apply to --noise samples (use --size N)"));
    }
  }
  if (args.Has("size")) {
    CALIBD_ASSIGN_OR_RETURN(int n, IntFlag(args, "size", 64));
    if (n < 16 || n > 8192) return absl::InvalidArgumentError("--size must be in [16, 8192]");
    o.data_width = o.height = n;
    o.overscan_width = std::max(32, n / 16);
  }
  if (args.Has("frames")) {
    CALIBD_ASSIGN_OR_RETURN(int n, IntFlag(args, "frames", 0));
    if (n < 2) return absl::InvalidArgumentError("--frames must be 2 or more for --noise");
    o.frames_per_setting = n;
  }
  if (args.Has("detector")) o.detector = args.Value("detector");
  if (args.Has("seed")) {
    CALIBD_ASSIGN_OR_RETURN(int64_t seed, ParseInt("seed", args.Value("seed")));
    o.seed = static_cast<uint64_t>(seed);
  }
  if (args.Has("night")) o.night = args.Value("night");
  o.overwrite = args.Bool("overwrite");
  return o;
}

absl::StatusOr<PageRequest> PageFromFlags(const ParsedArgs& args) {
  PageRequest page;
  if (args.Has("limit")) {
    CALIBD_ASSIGN_OR_RETURN(int64_t n, PositiveInt(args, "limit"));
    if (n > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("--limit ", n, " is out of range"));
    }
    page.page_size = static_cast<int32_t>(n);
  }
  page.page_token = args.Value("page-token");
  return page;
}

}  // namespace calibd::client
