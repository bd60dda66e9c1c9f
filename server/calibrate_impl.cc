#include "server/calibrate_impl.h"

#include <chrono>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/calib/keywords.h"
#include "core/status/macros.h"
#include "core/store/store.h"
#include "server/metrics.h"
#include "server/noise_calibration.h"

namespace calibd::server {
namespace {

// FITS keyword stem for a kind: "BIAS", "DARK", "FLAT", "READ" ... (at most 5 characters, so
// stem + "VER"/"SHA" stays within the 8 characters of a plain keyword).
std::string KindStem(absl::string_view kind) {
  std::string stem;
  for (char c : kind) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) stem.push_back(absl::ascii_toupper(c));
    if (stem.size() == 5) break;
  }
  return stem;
}

std::string FlatKey(const std::string& sha256, const calib::FlatOptions& o) {
  std::string key = absl::StrCat(sha256, "/", static_cast<int>(o.norm), "/", o.value, "/", o.floor);
  if (o.stats_region) {
    absl::StrAppend(&key, "/", o.stats_region->x0, ",", o.stats_region->x1, ",",
                    o.stats_region->y0, ",", o.stats_region->y1);
  }
  return key;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const calib::PreparedFlat>> CalibrateImpl::PrepareFlat(
    const std::string& sha256, const CalibratedFrame& flat,
    const calib::FlatOptions& options) const {
  const std::string key = FlatKey(sha256, options);
  {
    absl::MutexLock lock(&flat_mu_);
    for (auto it = flats_.begin(); it != flats_.end(); ++it) {
      if (it->first == key) {
        flats_.splice(flats_.begin(), flats_, it);
        if (backend_->metrics) backend_->metrics->CacheAccess("prepared_flat", true);
        return flats_.front().second;
      }
    }
  }
  if (backend_->metrics) backend_->metrics->CacheAccess("prepared_flat", false);
  CALIBD_ASSIGN_OR_RETURN(
      calib::PreparedFlat prepared,
      calib::NormalizeFlat(flat, options, backend_->pool, backend_->buffers));
  auto shared = std::make_shared<const calib::PreparedFlat>(std::move(prepared));
  absl::MutexLock lock(&flat_mu_);
  flats_.emplace_front(key, shared);
  while (flats_.size() > kFlatCacheEntries) flats_.pop_back();
  return shared;
}

absl::Status CalibrateImpl::Prepare(FrameRequest request, PreparedFrame& out,
                                    absl::string_view kind_hint) const {
  out.request = std::move(request);
  const FrameRequest& req = out.request;
  const std::string name = req.frame_id.empty() ? std::string("frame") :
                           absl::StrCat("frame '", req.frame_id, "'");
  if (req.width <= 0 || req.height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": width and height must be > 0, got ", req.width, "x", req.height));
  }
  if (req.num_pixels() > backend_->limits.max_frame_pixels) {
    return absl::ResourceExhaustedError(absl::StrCat(
        name, ": ", req.num_pixels(), " pixels exceed the server's limit of ",
        backend_->limits.max_frame_pixels, " (--max-frame-pixels)"));
  }
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  if (req.detector.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": no detector given"));
  }
  absl::StatusOr<store::DetectorRecord> det = st->GetDetector(req.detector);
  if (!det.ok()) {
    if (absl::IsNotFound(det.status())) {
      return absl::NotFoundError(absl::StrCat(
          name, ": unknown detector '", req.detector, "'; register it with PutDetector "
          "(calibctl detector put SPEC.json)"));
    }
    return Annotate(det.status(), name);
  }
  out.spec = std::move(det->spec);
  out.detector_version = det->version;
  const store::DetectorSpec& spec = out.spec;
  if (req.width != spec.width || req.height != spec.height) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: shape %dx%d differs from detector %s's %dx%d", name, req.width, req.height,
        spec.name, spec.width, spec.height));
  }

  // Selection: the recipe's masters and the noise products in use (noise_calibration.h).
  std::vector<std::string> kinds = NeededKinds(req.header, req.recipe, kind_hint);
  const NoisePlan plan = PlanNoise(spec, req.recipe, kinds, kind_hint);
  bool measured_dark = false;
  if (!plan.SelectKinds(kinds).empty()) {
    store::SelectionRequest sel;
    sel.detector = req.detector;
    sel.detector_version = out.detector_version;
    sel.header = req.header;
    sel.policy = req.selection.policy;
    sel.max_age = req.selection.max_age_micros;
    sel.pinned = req.selection.pins;
    absl::StatusOr<store::SelectionResult> r = SelectForPlan(*st, std::move(sel), plan, kinds);
    if (!r.ok()) return Annotate(r.status(), absl::StrCat(name, ": selecting masters"));
    out.selection = std::move(*r);
    if (backend_->metrics) {
      for (const store::KindSelection& k : out.selection->kinds) {
        const bool ok = k.status.ok() && k.chosen_by.has_value();
        if (!ok && !plan.Required(k.kind)) continue;  // optional products: no "miss"
        backend_->metrics->SelectionOutcome(
            ok ? std::string(store::SelectionMethodName(*k.chosen_by)) : std::string("miss"));
      }
    }
    for (const store::KindSelection& k : out.selection->kinds) {
      if (!k.status.ok() && plan.Required(k.kind)) {
        return Annotate(k.status, absl::StrCat(name, ": ", k.kind));
      }
    }
    for (const store::KindSelection& k : out.selection->kinds) {
      if (!k.status.ok() || (k.kind != "bias" && k.kind != "dark" && k.kind != "flat")) continue;
      const store::MasterVersion& v = *k.chosen;
      absl::StatusOr<std::shared_ptr<const CalibratedFrame>> m = st->LoadMaster(v.sha256);
      if (!m.ok()) {
        return Annotate(m.status(), absl::StrCat(name, ": loading ", k.kind, " v", v.version));
      }
      AppliedMaster a;
      a.kind = k.kind;
      a.version = v.version;
      a.sha256 = v.sha256;
      a.method = k.chosen_by.value_or(store::SelectionMethod::kCertified);
      a.age_seconds = double(out.selection->time - v.obs_time) / store::kMicrosPerSecond;
      out.applied.push_back(a);
      if (backend_->metrics) backend_->metrics->MasterAge(k.kind, a.age_seconds);
      if (k.kind == "bias") {
        out.masters.bias = *m;
      } else if (k.kind == "dark") {
        out.masters.dark = *m;
        measured_dark = true;
      } else if (k.kind == "flat") {
        out.masters.flat = *m;
      }
    }
  }

  if (backend_->metrics && !out.applied.empty()) {
    const store::MasterCacheStats cs = st->CacheStats();
    backend_->metrics->ObserveCacheCounters("masters", cs.hits, cs.misses, double(cs.bytes));
  }
  const bool synthesized = plan.dark_needed && !measured_dark &&
                           (plan.synthesized_only() || plan.may_fall_back());
  CALIBD_ASSIGN_OR_RETURN(out.options,
                          BuildRecipeOptions(spec, req, measured_dark || synthesized));
  if (out.selection) {
    NoiseContext ctx;
    ctx.backend = backend_;
    ctx.cache = &noise_cache_;
    ctx.spec = &spec;
    ctx.request = &req;
    ctx.plan = &plan;
    ctx.name = name;
    CALIBD_RETURN_IF_ERROR(ApplyNoiseProducts(ctx, *out.selection, out.options, out.masters,
                                              out.applied, out.noise_cards));
  }
  if (measured_dark && out.options.scale_dark) {
    absl::StatusOr<double> t = HeaderExposure(spec, out.masters.dark->header);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": the master dark has no usable exposure time (", spec.keys.exposure,
          "): ", t.status().message(), "; re-upload it with the card or set recipe.dark_scale=false"));
    }
    out.masters.dark_exptime = *t;
  }
  if (out.masters.flat != nullptr) {
    std::string flat_sha;
    for (const AppliedMaster& a : out.applied) {
      if (a.kind == "flat") flat_sha = a.sha256;
    }
    // Shape first, so a mismatched flat reports the shape, not its normalisation.
    CALIBD_RETURN_IF_ERROR(Annotate(
        calib::Validate(out.options, out.masters, req.width, req.height), name));
    absl::StatusOr<std::shared_ptr<const calib::PreparedFlat>> pf =
        PrepareFlat(flat_sha, *out.masters.flat, out.options.flat);
    if (!pf.ok()) return Annotate(pf.status(), absl::StrCat(name, ": flat ", flat_sha.substr(0, 12)));
    out.masters.prepared_flat = *pf;
  }
  return Annotate(calib::Validate(out.options, out.masters, req.width, req.height), name);
}

absl::Status CalibrateImpl::Run(const PreparedFrame& prep, RawImage raw, FrameResult& out) const {
  const auto start = std::chrono::steady_clock::now();
  const FrameRequest& req = prep.request;
  out.frame_id = req.frame_id;
  out.selection = prep.selection;
  out.applied = prep.applied;
  out.want_data = req.want_data;
  out.want_variance = req.want_variance;
  out.want_dq = req.want_dq;

  RawFrame frame;
  frame.header = req.header;
  frame.pixels = std::move(raw);
  CALIBD_ASSIGN_OR_RETURN(
      out.frame, calib::Calibrate(frame, prep.masters, prep.options, backend_->pool,
                                  backend_->buffers, &out.stats));
  frame.pixels = RawImage();  // give the raw buffer back to the pool now

  Header& h = out.frame.header;
  h.Set("CALDET", prep.spec.name, "calibd detector");
  h.Set("CALDETV", prep.detector_version, "calibd detector spec version");
  if (prep.selection) {
    h.Set("CALPOL", std::string(store::SelectionPolicyName(prep.selection->policy)),
          "calibd master selection policy");
  }
  for (const AppliedMaster& a : prep.applied) {
    const std::string stem = KindStem(a.kind);
    h.Set(absl::StrCat(stem, "VER"), a.version, absl::StrCat("calibd master ", a.kind, " version"));
    h.Set(absl::StrCat(stem, "SHA"), a.sha256, absl::StrCat("calibd master ", a.kind, " sha256"));
    h.AddHistory(absl::StrCat("calibd: ", a.kind, " v", a.version, " (",
                              store::SelectionMethodName(a.method), ") sha256 ",
                              a.sha256));
  }
  for (const HeaderCard& c : prep.noise_cards.cards()) {
    if (c.key == "HISTORY") {
      h.Append(c);
    } else {
      h.Set(c.key, c.value, c.comment);
    }
  }
  if (!req.want_variance) out.frame.variance = Image<float>();
  out.compute_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (backend_->metrics) backend_->metrics->FrameCalibrated(req.detector);
  return absl::OkStatus();
}

}  // namespace calibd::server
