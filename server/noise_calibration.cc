// Dark policies and noise products in Calibrate (noise_calibration.h).
#include "server/noise_calibration.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/calib/noise_inputs.h"
#include "core/image/dq.h"
#include "core/image/section.h"
#include "core/noise/noise.h"
#include "core/noise/noise_product.h"
#include "core/status/macros.h"
#include "server/metrics.h"
#include "server/store_impl.h"

namespace calibd::server {
namespace {

constexpr absl::string_view kReadNoise = noise::kKindReadNoise;
constexpr absl::string_view kGain = noise::kKindGain;
constexpr absl::string_view kBadPixels = noise::kKindBadPixels;
constexpr absl::string_view kNoiseModel = noise::kKindNoiseModel;
constexpr absl::string_view kDarkCurrent = noise::kKindDarkCurrent;

ProductUse UseOf(const std::optional<bool>& switch_value, bool calibrating) {
  if (!switch_value.has_value()) return calibrating ? ProductUse::kOptional : ProductUse::kOff;
  return *switch_value ? ProductUse::kRequired : ProductUse::kOff;
}

store::KindSelection* Find(store::SelectionResult& s, absl::string_view kind) {
  for (store::KindSelection& k : s.kinds) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

// The chosen version of `kind`, or null when it was not selected or not selectable.
const store::KindSelection* Chosen(store::SelectionResult& s, absl::string_view kind) {
  const store::KindSelection* k = Find(s, kind);
  return k != nullptr && k->status.ok() && k->chosen.has_value() ? k : nullptr;
}

std::string Label(const store::KindSelection& k) {
  return absl::StrCat(k.kind, " v", k.chosen->version);
}

std::string Method(const store::KindSelection& k) {
  return std::string(
      store::SelectionMethodName(k.chosen_by.value_or(store::SelectionMethod::kCertified)));
}

AppliedMaster MakeApplied(const store::SelectionResult& s, const store::KindSelection& k,
                          absl::string_view used_as, std::string detail) {
  AppliedMaster a;
  a.kind = k.kind;
  a.version = k.chosen->version;
  a.sha256 = k.chosen->sha256;
  a.method = k.chosen_by.value_or(store::SelectionMethod::kCertified);
  a.age_seconds = double(s.time - k.chosen->obs_time) / store::kMicrosPerSecond;
  a.used_as = std::string(used_as);
  a.detail = std::move(detail);
  return a;
}

int64_t FrameBytes(const CalibratedFrame& f) {
  return f.data.num_pixels() * 4 + f.variance.num_pixels() * 4 + f.dq.num_pixels() * 2;
}

int64_t ProductBytes(const noise::NoiseProduct& p) {
  return int64_t(p.maps.size()) * p.width * p.height * 4 + p.dq.num_pixels() * 2;
}

absl::StatusOr<noise::NoiseProduct> LoadProduct(const NoiseContext& ctx,
                                                const store::KindSelection& k) {
  StoreImpl store(ctx.backend);
  CALIBD_ASSIGN_OR_RETURN(std::string path, store.BlobPath(k.chosen->sha256));
  absl::StatusOr<noise::NoiseProduct> p = noise::ReadNoiseProduct(path);
  if (!p.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the stored ", Label(k), " is not a readable noise product (", p.status().message(),
        "); rebuild it with calibctl build --kind ", k.kind));
  }
  if (p->kind != k.kind) {
    return absl::FailedPreconditionError(
        absl::StrCat("the stored ", Label(k), " is a ", p->kind, " product"));
  }
  return p;
}

// The stored product of a chosen version, read from its blob. `keep`: cache the whole product
// (a model synthesizes many darks); else only what is derived from it is cached.
absl::StatusOr<std::shared_ptr<const noise::NoiseProduct>> Product(const NoiseContext& ctx,
                                                                   const store::KindSelection& k,
                                                                   bool keep = false) {
  if (!keep) {
    CALIBD_ASSIGN_OR_RETURN(noise::NoiseProduct p, LoadProduct(ctx, k));
    return std::make_shared<const noise::NoiseProduct>(std::move(p));
  }
  return ctx.cache->GetOrCompute<noise::NoiseProduct>(
      absl::StrCat("product/", k.chosen->sha256), [&]() { return LoadProduct(ctx, k); },
      ProductBytes);
}

absl::Status CheckShape(const NoiseContext& ctx, const store::KindSelection& k, int w, int h,
                        int want_w, int want_h) {
  if (w == want_w && h == want_h) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: %s is %dx%d, the frame calibrates to %dx%d (detector %s)", ctx.name, Label(k), w, h,
      want_w, want_h, ctx.spec->name));
}

// READ_NOISE with the pixels the product could not measure set to its median RDNOISE.
absl::StatusOr<Image<float>> ReadNoiseMap(const noise::NoiseProduct& p) {
  const Image<float>* rn = p.Find("READ_NOISE");
  if (rn == nullptr) return absl::FailedPreconditionError("the read_noise product has no READ_NOISE map");
  const double fill = p.header.GetDouble("RDNOISE").value_or(0.0);
  Image<float> out = rn->Clone();
  for (int64_t i = 0; i < out.num_pixels(); ++i) {
    const float v = out.data()[i];
    const bool bad = (!p.dq.empty() && p.dq.data()[i] != 0) || !std::isfinite(v) || v < 0;
    if (bad) out.data()[i] = static_cast<float>(fill);
  }
  return out;
}

struct GainUse {
  double scalar = 0;                          // > 0 when one gain serves the frame
  std::shared_ptr<const Image<float>> map;    // else per pixel
  std::string detail;
};

absl::StatusOr<GainUse> GainOf(const noise::NoiseProduct& p, int w, int h, double outside) {
  GainUse use;
  absl::StatusOr<double> g = p.header.GetDouble("GAIN");
  if (g.ok()) {
    if (!(*g > 0) || !std::isfinite(*g)) {
      return absl::FailedPreconditionError(absl::StrCat("the gain product's GAIN ", *g, " is not > 0"));
    }
    if (!p.header.Has("SECT1")) {
      use.scalar = *g;
      use.detail = absl::StrFormat("GAIN %.6g e-/ADU", *g);
      return use;
    }
    std::vector<calib::SectionGain> sections;
    std::string parts;
    for (int i = 1; p.header.Has(absl::StrCat("SECT", i)); ++i) {
      CALIBD_ASSIGN_OR_RETURN(std::string text, p.header.GetString(absl::StrCat("SECT", i)));
      absl::StatusOr<Section> s = ParseFitsSection(text, w, h);
      if (!s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("the gain product's SECT", i, " ", text, ": ", s.status().message()));
      }
      const std::string key = i == 1 ? std::string("GAIN") : absl::StrCat("GAIN", i);
      CALIBD_ASSIGN_OR_RETURN(double gi, p.header.GetDouble(key));
      sections.push_back({*s, gi});
      absl::StrAppend(&parts, i == 1 ? "" : ", ", absl::StrFormat("%.6g", gi), " ", text);
    }
    CALIBD_ASSIGN_OR_RETURN(Image<float> map, calib::GainMapFromSections(w, h, sections, outside));
    use.map = std::make_shared<const Image<float>>(std::move(map));
    use.detail = absl::StrCat("GAIN per amplifier [e-/ADU]: ", parts);
    return use;
  }
  const Image<float>* m = p.Find("GAIN");
  if (m == nullptr) {
    return absl::FailedPreconditionError("the gain product has neither a GAIN card nor a GAIN map");
  }
  Image<float> map = m->Clone();
  int64_t filled = 0;
  for (int64_t i = 0; i < map.num_pixels(); ++i) {
    const float v = map.data()[i];
    if (!(v > 0) || !std::isfinite(v) || (!p.dq.empty() && p.dq.data()[i] != 0)) {
      map.data()[i] = static_cast<float>(outside);
      ++filled;
    }
  }
  use.map = std::make_shared<const Image<float>>(std::move(map));
  use.detail = absl::StrCat("GAIN map per pixel (", filled, " unmeasured pixels at ", outside, ")");
  return use;
}

std::string Num(double v) { return absl::StrFormat("%.17g", v); }

}  // namespace

std::vector<std::string> NoisePlan::ModelKinds() {
  return {std::string(kNoiseModel), std::string(kDarkCurrent)};
}

std::vector<std::string> NoisePlan::SelectKinds(const std::vector<std::string>& master_kinds) const {
  std::vector<std::string> kinds;
  for (const std::string& k : master_kinds) {
    if (k == "dark" && synthesized_only()) continue;
    kinds.push_back(k);
  }
  if (synthesized_only()) {
    for (std::string& k : ModelKinds()) kinds.push_back(std::move(k));
  }
  if (read_noise != ProductUse::kOff) kinds.emplace_back(kReadNoise);
  if (gain != ProductUse::kOff) kinds.emplace_back(kGain);
  if (bad_pixels != ProductUse::kOff) kinds.emplace_back(kBadPixels);
  return kinds;
}

bool NoisePlan::Required(absl::string_view kind) const {
  if (kind == kReadNoise) return read_noise == ProductUse::kRequired;
  if (kind == kGain) return gain == ProductUse::kRequired;
  if (kind == kBadPixels) return bad_pixels == ProductUse::kRequired;
  if (kind == kNoiseModel || kind == kDarkCurrent) return false;  // ApplyNoiseProducts decides
  if (kind == "dark") return !may_fall_back();
  return true;  // bias, flat
}

NoisePlan PlanNoise(const store::DetectorSpec& spec, const RecipeOverrides& overrides,
                    const std::vector<std::string>& master_kinds, absl::string_view kind_hint) {
  NoisePlan plan;
  plan.dark_needed = std::find(master_kinds.begin(), master_kinds.end(), "dark") != master_kinds.end();
  plan.dark_policy = overrides.dark_policy.value_or(spec.dark_policy);
  const bool calibrating = kind_hint.empty();
  plan.read_noise = UseOf(overrides.read_noise_map, calibrating);
  plan.gain = UseOf(overrides.gain_product, calibrating);
  plan.bad_pixels = UseOf(overrides.bad_pixels, calibrating);
  return plan;
}

const store::KindSelection* RecordSynthesizedDark(store::SelectionResult& selection,
                                                  const store::KindSelection& chosen_model,
                                                  const std::string& reason) {
  const store::KindSelection model = chosen_model;  // `chosen_model` may live in `selection`
  store::TrailEntry entry;
  entry.series_id = model.chosen->series_id;
  entry.version = model.chosen->version;
  entry.sha256 = model.chosen->sha256;
  entry.configuration = model.chosen->configuration;
  entry.chosen = true;
  entry.reason = reason;
  store::KindSelection dark_entry;
  dark_entry.kind = "dark";
  dark_entry.chosen = *model.chosen;
  dark_entry.chosen_by = model.chosen_by;
  dark_entry.method = model.method;
  if (store::KindSelection* measured = Find(selection, "dark")) {
    // Fallback: rewrite the miss, keep its candidates.
    measured->status = absl::OkStatus();
    measured->chosen = dark_entry.chosen;
    measured->chosen_by = dark_entry.chosen_by;
    measured->method = dark_entry.method;
    measured->trail.push_back(std::move(entry));
  } else {
    dark_entry.trail.push_back(std::move(entry));
    auto at = std::find_if(selection.kinds.begin(), selection.kinds.end(),
                           [](const store::KindSelection& k) {
                             return k.kind == kNoiseModel || k.kind == kDarkCurrent;
                           });
    selection.kinds.insert(at, std::move(dark_entry));
  }
  // The dark_current entry is noise once the noise_model was chosen.
  if (model.kind == kNoiseModel) {
    selection.kinds.erase(std::remove_if(selection.kinds.begin(), selection.kinds.end(),
                                         [](const store::KindSelection& k) {
                                           return k.kind == kDarkCurrent;
                                         }),
                          selection.kinds.end());
  }
  return Chosen(selection, model.kind);
}

absl::StatusOr<store::SelectionResult> SelectForPlan(store::CalibrationStore& store,
                                                     store::SelectionRequest request,
                                                     const NoisePlan& plan,
                                                     const std::vector<std::string>& master_kinds) {
  request.kinds = plan.SelectKinds(master_kinds);
  CALIBD_ASSIGN_OR_RETURN(store::SelectionResult out, store.Select(request));
  if (!plan.may_fall_back()) return out;
  // measured_else_synthesized without a measured dark: the models, in a second look.
  const store::KindSelection* dark = Find(out, "dark");
  if (dark == nullptr || dark->status.ok()) return out;
  request.kinds = NoisePlan::ModelKinds();
  CALIBD_ASSIGN_OR_RETURN(store::SelectionResult models, store.Select(request));
  for (store::KindSelection& m : models.kinds) out.kinds.push_back(std::move(m));
  return out;
}

void ExplainDark(store::SelectionResult& selection, const NoisePlan& plan) {
  if (!plan.dark_needed || (!plan.synthesized_only() && !plan.may_fall_back())) return;
  if (Chosen(selection, "dark") != nullptr) return;  // a measured master dark
  const store::KindSelection* model = Chosen(selection, kNoiseModel);
  if (model == nullptr) model = Chosen(selection, kDarkCurrent);
  if (model == nullptr) return;  // the misses stay in the trail: Calibrate fails the frame
  const store::KindSelection* measured = Find(selection, "dark");
  const std::string why =
      plan.synthesized_only()
          ? std::string("dark policy synthesized")
          : absl::StrCat("dark policy measured_else_synthesized: no measured dark (",
                         measured != nullptr ? measured->status.message() : "", ")");
  RecordSynthesizedDark(selection, *model,
                        absl::StrCat("chosen: ", why, "; to be synthesized from ", Label(*model),
                                     " (", Method(*model),
                                     ") for the frame's exposure time and EM gain"));
}

absl::Status ApplyNoiseProducts(const NoiseContext& ctx, store::SelectionResult& selection,
                                calib::RecipeOptions& options, calib::Masters& masters,
                                std::vector<AppliedMaster>& applied, Header& cards) {
  const store::DetectorSpec& spec = *ctx.spec;
  const FrameRequest& req = *ctx.request;
  const NoisePlan& plan = *ctx.plan;
  const int tw = options.trim ? options.trim->width() : req.width;
  const int th = options.trim ? options.trim->height() : req.height;
  auto annotate = [&](const absl::Status& s, const store::KindSelection& k) {
    return Annotate(s, absl::StrCat(ctx.name, ": ", Label(k)));
  };

  // Read noise: the per-pixel term of the variance.
  if (const store::KindSelection* k = Chosen(selection, kReadNoise)) {
    absl::StatusOr<std::shared_ptr<const Image<float>>> map = ctx.cache->GetOrCompute<Image<float>>(
        absl::StrCat("rn/", k->chosen->sha256),
        [&]() -> absl::StatusOr<Image<float>> {
          CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<const noise::NoiseProduct> p, Product(ctx, *k));
          return ReadNoiseMap(*p);
        },
        [](const Image<float>& m) { return m.num_pixels() * int64_t{4}; });
    if (!map.ok()) return annotate(map.status(), *k);
    CALIBD_RETURN_IF_ERROR(CheckShape(ctx, *k, (*map)->width(), (*map)->height(), tw, th));
    masters.read_noise_map = *map;
    const double median = k->chosen->statistics.count("rdnoise")
                              ? k->chosen->statistics.at("rdnoise")
                              : std::nan("");
    applied.push_back(MakeApplied(selection, *k, kReadNoise,
                                  std::isfinite(median)
                                      ? absl::StrFormat("READ_NOISE map, median %.4g e-", median)
                                      : std::string("READ_NOISE map")));
    cards.Set("RDNSRC", Label(*k), "read noise per pixel from this product");
    if (std::isfinite(median)) cards.Set("RDNMED", median, "its median read noise [electron]");
    cards.AddHistory(absl::StrCat("calibd: read noise per pixel from ", Label(*k), " (", Method(*k),
                                  ") sha256 ", k->chosen->sha256));
  }

  // Gain: the product's replaces the spec's (an explicit request gain wins).
  if (const store::KindSelection* k = Chosen(selection, kGain)) {
    if (req.recipe.gain.has_value()) {
      cards.AddHistory(absl::StrCat("calibd: ", Label(*k),
                                    " not used: the request overrides the gain"));
    } else {
      const double outside = spec.gain;
      absl::StatusOr<std::shared_ptr<const GainUse>> use = ctx.cache->GetOrCompute<GainUse>(
          absl::StrCat("gain/", k->chosen->sha256, "/", tw, "x", th, "/", Num(outside)),
          [&]() -> absl::StatusOr<GainUse> {
            CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<const noise::NoiseProduct> p, Product(ctx, *k));
            if (p->width != tw || p->height != th) {
              return CheckShape(ctx, *k, p->width, p->height, tw, th);
            }
            return GainOf(*p, tw, th, outside);
          },
          [](const GainUse& g) { return g.map ? g.map->num_pixels() * int64_t{4} : int64_t{64}; });
      if (!use.ok()) return annotate(use.status(), *k);
      if ((*use)->map) {
        masters.gain_map = (*use)->map;
      } else {
        options.gain = (*use)->scalar;
      }
      applied.push_back(MakeApplied(selection, *k, kGain, (*use)->detail));
      cards.Set("GAINSRC", Label(*k), "gain from this product");
      cards.AddHistory(absl::StrCat("calibd: ", (*use)->detail, " from ", Label(*k), " (",
                                    Method(*k), ") sha256 ", k->chosen->sha256));
    }
  }

  // Bad pixels: OR-ed into DQ with their bits.
  if (const store::KindSelection* k = Chosen(selection, kBadPixels)) {
    absl::StatusOr<std::shared_ptr<const Image<uint16_t>>> dq =
        ctx.cache->GetOrCompute<Image<uint16_t>>(
            absl::StrCat("bpm/", k->chosen->sha256),
            [&]() -> absl::StatusOr<Image<uint16_t>> {
              CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<const noise::NoiseProduct> p, Product(ctx, *k));
              if (p->dq.empty()) return Image<uint16_t>::Filled(p->width, p->height, 0);
              return p->dq.Clone();
            },
            [](const Image<uint16_t>& m) { return m.num_pixels() * int64_t{2}; });
    if (!dq.ok()) return annotate(dq.status(), *k);
    CALIBD_RETURN_IF_ERROR(CheckShape(ctx, *k, (*dq)->width(), (*dq)->height(), tw, th));
    int64_t flagged = 0;
    for (int64_t i = 0; i < (*dq)->num_pixels(); ++i) flagged += (*dq)->data()[i] != 0;
    masters.bad_pixels = *dq;
    masters.bad_pixel_bits = 0xFFFF;
    applied.push_back(MakeApplied(selection, *k, kBadPixels,
                                  absl::StrCat(flagged, " flagged pixels OR-ed into DQ")));
    cards.Set("BPMSRC", Label(*k), "bad-pixel map from this product");
    cards.Set("NBADPIX", flagged, "pixels the bad-pixel map flags");
    cards.AddHistory(absl::StrCat("calibd: bad pixels from ", Label(*k), " (", Method(*k),
                                  ") sha256 ", k->chosen->sha256));
  }

  if (!plan.dark_needed) return absl::OkStatus();
  const std::string policy_name(store::DarkPolicyName(plan.dark_policy));
  if (masters.dark != nullptr) {  // a measured master dark was selected
    cards.Set("DARKSRC", "measured", "the dark subtracted: a measured master dark");
    cards.Set("DARKPOL", policy_name, "calibd dark policy");
    return absl::OkStatus();
  }
  if (!plan.synthesized_only() && !plan.may_fall_back()) return absl::OkStatus();

  // Synthesized: the noise_model, else the dark_current product.
  const store::KindSelection* model = Chosen(selection, kNoiseModel);
  if (model == nullptr) model = Chosen(selection, kDarkCurrent);
  store::KindSelection* measured = Find(selection, "dark");
  const std::string measured_miss =
      measured != nullptr ? std::string(measured->status.message()) : std::string();
  if (model == nullptr) {
    std::string why;
    for (absl::string_view kind : {kNoiseModel, kDarkCurrent}) {
      const store::KindSelection* k = Find(selection, kind);
      absl::StrAppend(&why, why.empty() ? "" : "; ", kind, ": ",
                      k != nullptr ? k->status.message() : "not looked for");
    }
    const std::string build = absl::StrCat(
        "build one (calibctl build --kind noise_model|dark_current FILES...) and certify it");
    if (plan.synthesized_only()) {
      return absl::NotFoundError(absl::StrCat(
          ctx.name, ": dark policy synthesized needs a noise_model or dark_current product of "
          "detector ", spec.name, ", and none is selectable (", why, "): ", build,
          ", or calibrate with dark policy measured"));
    }
    const absl::StatusCode code = measured != nullptr && !measured->status.ok()
                                      ? measured->status.code()
                                      : absl::StatusCode::kFailedPrecondition;
    return absl::Status(code, absl::StrCat(
        ctx.name, ": no measured dark (", measured_miss, ") and no noise_model or dark_current "
        "product to synthesize one (", why, "): certify a master dark, or ", build));
  }

  // The frame's exposure, EM gain and temperature.
  const double t = options.exptime;
  if (!std::isfinite(t) || t < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        ctx.name, ": a synthesized dark needs the frame's exposure time: add the ",
        spec.keys.exposure, " card or set recipe.exptime"));
  }
  double em_gain = 1;
  if (absl::StatusOr<double> g = req.header.GetDouble(spec.keys.em_gain); g.ok()) {
    em_gain = *g;
  } else if (!absl::IsNotFound(g.status())) {
    return absl::InvalidArgumentError(absl::StrCat(ctx.name, ": EM gain ", spec.keys.em_gain,
                                                   " is not a number: ", g.status().message()));
  }
  if (!(em_gain > 0) || !std::isfinite(em_gain)) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx.name, ": EM gain ", spec.keys.em_gain, " = ", em_gain, " must be > 0"));
  }
  std::optional<double> temperature;
  if (spec.dark_temperature_coefficient) {
    absl::StatusOr<double> temp = req.header.GetDouble(spec.keys.temperature);
    if (temp.ok()) {
      temperature = *temp;
    } else if (!absl::IsNotFound(temp.status())) {
      return absl::InvalidArgumentError(absl::StrCat(ctx.name, ": temperature ",
                                                     spec.keys.temperature, " is not a number: ",
                                                     temp.status().message()));
    }
  }
  std::string gain_key = masters.gain_map != nullptr ? std::string("map") : Num(options.gain);
  if (masters.gain_map != nullptr) {
    for (const AppliedMaster& a : applied) {
      if (a.used_as == kGain) absl::StrAppend(&gain_key, "/", a.sha256);
    }
  }
  const std::string key = absl::StrCat(
      "synth/", model->chosen->sha256, "/", Num(t), "/", Num(em_gain), "/",
      temperature ? Num(*temperature) : "-", "/",
      temperature ? Num(*spec.dark_temperature_coefficient) : "-", "/", gain_key);
  bool hit = false;
  absl::StatusOr<std::shared_ptr<const CalibratedFrame>> dark =
      ctx.cache->GetOrCompute<CalibratedFrame>(
          key,
          [&]() -> absl::StatusOr<CalibratedFrame> {
            CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<const noise::NoiseProduct> p,
                                    Product(ctx, *model, /*keep=*/true));
            noise::SynthDarkRequest r;
            r.exptime = t;
            r.em_gain = em_gain;
            if (temperature) {
              r.temperature = temperature;
              r.temperature_coefficient = spec.dark_temperature_coefficient;
            }
            CALIBD_ASSIGN_OR_RETURN(CalibratedFrame e,
                                    noise::SynthesizeDark(*p, r, ctx.backend->pool));
            return calib::DarkElectronsToAdu(e, em_gain, options.gain, masters.gain_map.get(),
                                             ctx.backend->pool);
          },
          FrameBytes, &hit);
  if (ctx.backend->metrics) ctx.backend->metrics->CacheAccess("synthesized_dark", hit);
  if (!dark.ok()) return annotate(dark.status(), *model);
  CALIBD_RETURN_IF_ERROR(CheckShape(ctx, *model, (*dark)->width(), (*dark)->height(), tw, th));
  masters.dark = *dark;
  masters.dark_exptime = t;
  options.scale_dark = false;  // made for this exposure
  const double scale = (*dark)->header.GetDouble("DARKSCAL").value_or(1.0);

  std::string setting = absl::StrFormat("t=%g s, g=%g", t, em_gain);
  if (temperature) {
    absl::StrAppend(&setting, absl::StrFormat(", T=%g (D x %.6g)", *temperature, scale));
  }
  const std::string made = absl::StrCat("synthesized from ", Label(*model), " (", Method(*model),
                                        ") for ", setting);
  const std::string why = plan.synthesized_only()
                              ? std::string("dark policy synthesized")
                              : absl::StrCat("dark policy measured_else_synthesized: no measured "
                                             "dark (", measured_miss, ")");
  applied.push_back(MakeApplied(selection, *model, "dark",
                                absl::StrCat("synthesized for ", setting, "; ", why)));

  // The trail's "dark" entry says which dark was used and why.
  model = RecordSynthesizedDark(selection, *model, absl::StrCat("chosen: ", why, "; ", made));

  cards.Set("DARKSRC", "synthesized", "the dark subtracted: synthesized from a noise product");
  cards.Set("DARKPOL", policy_name, "calibd dark policy");
  cards.Set("SYNTHDRK", true, "the dark was synthesized");
  cards.Set("SYNMODEL", model->kind, "product the dark was synthesized from");
  cards.Set("SYNMODV", model->chosen->version, "its version");
  cards.Set("SYNMODSH", model->chosen->sha256, "its sha256");
  cards.Set("SYNEXPT", t, "exposure time synthesized for [s]");
  cards.Set("SYNEMGN", em_gain, "EM gain synthesized for");
  if (temperature) {
    cards.Set("SYNTEMP", *temperature, "temperature synthesized for");
    cards.Set("SYNDSCAL", scale, "dark current scaled by exp(c*(T - TEMPMOD))");
  }
  cards.AddHistory(absl::StrCat("calibd: dark ", made, " sha256 ", model->chosen->sha256, " (",
                                why, ")"));
  return absl::OkStatus();
}

}  // namespace calibd::server
