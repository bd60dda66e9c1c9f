#include "server/convert.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status/macros.h"
#include "server/noise_options.h"
#include "server/status_util.h"

namespace calibd::server {

RecipeOverrides RecipeOverridesFromProto(const v1::RecipeOverrides& r) {
  RecipeOverrides o;
  if (r.has_overscan()) o.overscan = r.overscan();
  if (r.has_trim()) o.trim = r.trim();
  if (r.has_bias()) o.bias = r.bias();
  if (r.has_dark()) o.dark = r.dark();
  if (r.has_flat()) o.flat = r.flat();
  o.overscan_statistic = r.overscan_statistic();
  o.overscan_fit = r.overscan_fit();
  if (r.has_overscan_poly_order()) o.overscan_poly_order = r.overscan_poly_order();
  o.overscan_axis = r.overscan_axis();
  o.overscan_section = r.overscan_section();
  o.trim_section = r.trim_section();
  if (r.has_gain()) o.gain = r.gain();
  if (r.has_read_noise()) o.read_noise = r.read_noise();
  if (r.has_saturation()) o.saturation = r.saturation();
  if (r.has_dark_scale()) o.dark_scale = r.dark_scale();
  o.flat_norm = r.flat_norm();
  if (r.has_flat_value()) o.flat_value = r.flat_value();
  if (r.has_flat_floor()) o.flat_floor = r.flat_floor();
  if (r.has_exptime()) o.exptime = r.exptime();
  if (r.has_variance()) o.variance = r.variance();
  // An unknown dark_policy number is refused by CheckRecipeOverrides; here it reads as unset.
  o.dark_policy = api::DarkPolicyFromProto(r.dark_policy()).value_or(std::nullopt);
  if (r.has_read_noise_map()) o.read_noise_map = r.read_noise_map();
  if (r.has_gain_product()) o.gain_product = r.gain_product();
  if (r.has_bad_pixels()) o.bad_pixels = r.bad_pixels();
  return o;
}

absl::Status CheckRecipeOverrides(const v1::RecipeOverrides& r) {
  return api::DarkPolicyFromProto(r.dark_policy()).status();
}

absl::StatusOr<SelectionSpec> SelectionFromProto(const v1::SelectionOptions& s) {
  SelectionSpec out;
  switch (s.policy()) {
    case v1::SELECTION_POLICY_UNSPECIFIED:
    case v1::SELECTION_POLICY_STRICT: out.policy = store::SelectionPolicy::kStrict; break;
    case v1::SELECTION_POLICY_NEAREST: out.policy = store::SelectionPolicy::kNearest; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown selection policy ", s.policy()));
  }
  if (s.has_max_age()) {
    out.max_age_micros = s.max_age().seconds() * store::kMicrosPerSecond + s.max_age().nanos() / 1000;
    if (out.max_age_micros < 0) return absl::InvalidArgumentError("max_age must be >= 0");
  }
  for (const v1::PinnedVersion& p : s.pins()) {
    if (p.kind().empty()) return absl::InvalidArgumentError("a pinned version needs a kind");
    if (p.version() <= 0 && p.sha256().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pin for ", p.kind(), " needs a version > 0 or a sha256"));
    }
    store::PinnedVersion pin;
    pin.version = p.version();
    pin.sha256 = p.sha256();
    out.pins[p.kind()] = pin;
  }
  return out;
}

absl::StatusOr<FrameRequest> FrameRequestFromProto(const v1::FrameHeader& h) {
  FrameRequest r;
  r.frame_id = h.frame_id();
  r.detector = h.detector();
  r.header = HeaderFromProto(h.cards());
  r.width = h.width();
  r.height = h.height();
  if (r.width <= 0 || r.height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame '", r.frame_id, "': width and height must be > 0, got ", r.width, "x", r.height));
  }
  CALIBD_ASSIGN_OR_RETURN(r.pixel_type, PixelTypeFromProto(h.pixel_type()));
  CALIBD_RETURN_IF_ERROR(CheckRecipeOverrides(h.recipe()));
  r.recipe = RecipeOverridesFromProto(h.recipe());
  CALIBD_ASSIGN_OR_RETURN(r.selection, SelectionFromProto(h.selection()));
  switch (h.unit()) {
    case v1::OUTPUT_UNIT_UNSPECIFIED:
    case v1::OUTPUT_UNIT_ADU: r.unit = calib::RecipeOptions::Unit::kAdu; break;
    case v1::OUTPUT_UNIT_ELECTRON: r.unit = calib::RecipeOptions::Unit::kElectron; break;
    default: return absl::InvalidArgumentError(absl::StrCat("unknown output unit ", h.unit()));
  }
  if (h.output_pixel_type() != v1::PIXEL_TYPE_UNSPECIFIED &&
      h.output_pixel_type() != v1::PIXEL_TYPE_FLOAT32) {
    return absl::InvalidArgumentError("output_pixel_type: only PIXEL_TYPE_FLOAT32 is supported");
  }
  if (h.planes_size() > 0) {
    r.want_data = r.want_variance = r.want_dq = false;
    for (int p : h.planes()) {
      switch (p) {
        case v1::PLANE_DATA: r.want_data = true; break;
        case v1::PLANE_VARIANCE: r.want_variance = true; break;
        case v1::PLANE_DQ: r.want_dq = true; break;
        default: return absl::InvalidArgumentError(absl::StrCat("unknown plane ", p));
      }
    }
  }
  return r;
}

store::Configuration ConfigurationFromProto(
    const google::protobuf::Map<std::string, std::string>& m) {
  return store::Configuration(m.begin(), m.end());
}

void ConfigurationToProto(const store::Configuration& c,
                          google::protobuf::Map<std::string, std::string>* m) {
  for (const auto& [k, v] : c) (*m)[k] = v;
}

SeriesKey SeriesKeyFromProto(const std::string& detector, const std::string& kind,
                             const google::protobuf::Map<std::string, std::string>& configuration) {
  return SeriesKey{detector, kind, ConfigurationFromProto(configuration)};
}

void DetectorRecordToProto(const store::DetectorRecord& r, v1::DetectorSpec* p) {
  const store::DetectorSpec& s = r.spec;
  *p = api::DetectorSpecToProto(s);
  p->set_version(r.version);
  if (r.created_at != 0) *p->mutable_created_at() = TimeMicrosToProto(r.created_at);
  p->set_actor(r.actor);
}

void CertificationToProto(const store::Certification& c, v1::Certification* p) {
  p->set_id(c.id);
  p->set_series_id(c.series_id);
  p->set_version(c.version);
  *p->mutable_begin() = TimeMicrosToProto(c.begin);
  if (c.end) *p->mutable_end() = TimeMicrosToProto(*c.end);
  if (c.created_at != 0) *p->mutable_created_at() = TimeMicrosToProto(c.created_at);
  p->set_actor(c.actor);
  p->set_reason(c.reason);
}

void MasterVersionToProto(const store::MasterVersion& v,
                          const std::vector<store::Certification>& certifications,
                          v1::MasterVersion* p) {
  p->set_series_id(v.series_id);
  p->set_detector(v.detector);
  p->set_kind(v.kind);
  ConfigurationToProto(v.configuration, p->mutable_configuration());
  p->set_version(v.version);
  p->set_sha256(v.sha256);
  p->set_size_bytes(v.size_bytes);
  p->set_width(v.width);
  p->set_height(v.height);
  if (v.created_at != 0) *p->mutable_created_at() = TimeMicrosToProto(v.created_at);
  if (v.obs_time != 0) *p->mutable_obs_time() = TimeMicrosToProto(v.obs_time);
  p->set_detector_version(v.detector_version);
  p->set_actor(v.actor);
  for (const auto& [k, val] : v.attributes) (*p->mutable_attributes())[k] = val;
  v1::Provenance* prov = p->mutable_provenance();
  for (const std::string& s : v.provenance.input_sha256) prov->add_input_sha256(s);
  for (const auto& [k, val] : v.provenance.options) (*prov->mutable_options())[k] = val;
  prov->set_software_version(v.provenance.software_version);
  for (const auto& [k, val] : v.statistics) (*p->mutable_statistics())[k] = val;
  for (const store::Certification& c : certifications) {
    CertificationToProto(c, p->add_certifications());
  }
  if (v.decertified_at) *p->mutable_decertified_at() = TimeMicrosToProto(*v.decertified_at);
  if (v.superseded_at) *p->mutable_superseded_at() = TimeMicrosToProto(*v.superseded_at);
}

void AuditEntryToProto(const store::AuditEntry& e, v1::HistoryEvent* p) {
  p->set_id(e.id);
  *p->mutable_time() = TimeMicrosToProto(e.time);
  p->set_actor(e.actor);
  p->set_action(e.action);
  p->set_subject(e.subject);
  p->set_details(e.details);
}

namespace {
v1::SelectionOutcome OutcomeOf(store::SelectionMethod method) {
  switch (method) {
    case store::SelectionMethod::kPinned: return v1::SELECTION_OUTCOME_PINNED;
    case store::SelectionMethod::kNearest: return v1::SELECTION_OUTCOME_NEAREST;
    case store::SelectionMethod::kCertified: return v1::SELECTION_OUTCOME_CERTIFIED;
  }
  return v1::SELECTION_OUTCOME_CERTIFIED;
}
v1::SelectionOutcome OutcomeOf(const store::KindSelection& k) {
  if (!k.status.ok() || !k.chosen_by.has_value()) return v1::SELECTION_OUTCOME_MISS;
  return OutcomeOf(*k.chosen_by);
}
}  // namespace

void TrailToProto(const store::SelectionResult& r,
                  google::protobuf::RepeatedPtrField<v1::SelectionTrailEntry>* trail) {
  for (const store::KindSelection& k : r.kinds) {
    v1::SelectionTrailEntry* e = trail->Add();
    e->set_kind(k.kind);
    e->set_outcome(OutcomeOf(k));
    e->mutable_status()->set_code(static_cast<int>(k.status.code()));
    e->mutable_status()->set_message(CapMessage(k.status.message()));
    if (k.chosen) {
      e->set_version(k.chosen->version);
      e->set_sha256(k.chosen->sha256);
    }
    for (const store::TrailEntry& t : k.trail) {
      v1::SelectionCandidate* c = e->add_candidates();
      c->set_series_id(t.series_id);
      c->set_version(t.version);
      c->set_sha256(t.sha256);
      ConfigurationToProto(t.configuration, c->mutable_configuration());
      if (t.certification) CertificationToProto(*t.certification, c->mutable_certification());
      c->set_chosen(t.chosen);
      c->set_reason(t.reason);
    }
    e->set_candidates_omitted(k.candidates_omitted);
  }
}

void SelectedMastersToProto(const store::SelectionResult& r,
                            google::protobuf::RepeatedPtrField<v1::AppliedMaster>* masters) {
  for (const store::KindSelection& k : r.kinds) {
    if (!k.status.ok() || !k.chosen) continue;
    v1::AppliedMaster* m = masters->Add();
    m->set_kind(k.kind);
    m->set_version(k.chosen->version);
    m->set_sha256(k.chosen->sha256);
    m->set_outcome(OutcomeOf(k));
    m->set_age_seconds(double(r.time - k.chosen->obs_time) / store::kMicrosPerSecond);
    m->set_used_as(k.kind);
  }
}

void AppliedMasterToProto(const AppliedMaster& a, v1::AppliedMaster* p) {
  p->set_kind(a.kind);
  p->set_version(a.version);
  p->set_sha256(a.sha256);
  p->set_outcome(OutcomeOf(a.method));
  p->set_age_seconds(a.age_seconds);
  p->set_used_as(a.used_as.empty() ? a.kind : a.used_as);
  p->set_detail(a.detail);
}

void ResultHeaderToProto(const FrameResult& r, v1::ResultHeader* p) {
  p->set_frame_id(r.frame_id);
  p->mutable_status()->set_code(static_cast<int>(r.status.code()));
  p->mutable_status()->set_message(CapMessage(r.status.message()));
  if (r.selection) TrailToProto(*r.selection, p->mutable_trail());
  if (!r.status.ok()) return;
  p->set_width(r.frame.width());
  p->set_height(r.frame.height());
  p->set_unit(r.frame.unit == "electron" ? v1::OUTPUT_UNIT_ELECTRON : v1::OUTPUT_UNIT_ADU);
  if (r.want_data) p->add_planes(v1::PLANE_DATA);
  if (r.want_variance && r.frame.has_variance()) p->add_planes(v1::PLANE_VARIANCE);
  if (r.want_dq && r.frame.has_dq()) p->add_planes(v1::PLANE_DQ);
  for (const AppliedMaster& a : r.applied) AppliedMasterToProto(a, p->add_masters());
  const calib::FrameStats& s = r.stats;
  v1::FrameStatistics* st = p->mutable_statistics();
  st->set_median(s.median);
  st->set_mean(s.mean);
  st->set_stddev(s.stddev);
  st->set_pixels(s.pixels);
  st->set_flagged(s.flagged);
  st->set_flagged_fraction(s.flagged_fraction);
  st->set_saturated(s.saturated);
  st->set_no_data(s.no_data);
  st->set_low_flat(s.low_flat);
  st->set_bad(s.bad);
  st->set_overscan_level(s.overscan_level);
  st->set_dark_scale(s.dark_scale);
  st->set_flat_norm(s.flat_norm);
  st->set_gain(s.gain);
  HeaderToProto(r.frame.header, p->mutable_cards());
  p->set_compute_seconds(r.compute_seconds);
}

absl::StatusOr<combine::CombineOptions> CombineOptionsFromProto(const v1::CombineOptions& c) {
  combine::CombineOptions o;
  if (!c.method().empty()) {
    CALIBD_ASSIGN_OR_RETURN(o.method, combine::ParseMethod(c.method()));
  }
  if (c.has_min_value()) o.min_value = c.min_value();
  if (c.has_max_value()) o.max_value = c.max_value();
  o.nlow = c.nlow();
  o.nhigh = c.nhigh();
  if (c.has_sigma_clip()) {
    const v1::CombineOptions::SigmaClip& s = c.sigma_clip();
    o.sigma_clip.enabled = s.enabled();
    if (s.low() != 0) o.sigma_clip.low = s.low();
    if (s.high() != 0) o.sigma_clip.high = s.high();
    if (s.center().empty() || s.center() == "median") {
      o.sigma_clip.center = combine::CombineOptions::Center::kMedian;
    } else if (s.center() == "mean") {
      o.sigma_clip.center = combine::CombineOptions::Center::kMean;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("sigma_clip.center '", s.center(), "' is not median|mean"));
    }
    if (s.spread().empty() || s.spread() == "std") {
      o.sigma_clip.spread = combine::CombineOptions::Spread::kStd;
    } else if (s.spread() == "mad_std") {
      o.sigma_clip.spread = combine::CombineOptions::Spread::kMadStd;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("sigma_clip.spread '", s.spread(), "' is not std|mad_std"));
    }
    o.sigma_clip.max_iters = s.max_iters();
  }
  if (!c.scale().empty()) {
    CALIBD_ASSIGN_OR_RETURN(o.scale, combine::ParseScale(c.scale()));
  }
  o.scale_factors.assign(c.scale_factors().begin(), c.scale_factors().end());
  o.scale_section = c.scale_section();
  o.exposure_reference = c.exposure_reference();
  o.weights.assign(c.weights().begin(), c.weights().end());
  if (c.variance().empty() || c.variance() == "ccdproc") {
    o.variance = combine::CombineOptions::Variance::kCcdproc;
  } else if (c.variance() == "propagated") {
    o.variance = combine::CombineOptions::Variance::kPropagated;
  } else if (c.variance() == "none") {
    o.variance = combine::CombineOptions::Variance::kNone;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("variance '", c.variance(), "' is not ccdproc|propagated|none"));
  }
  return o;
}

namespace {

// Which NoiseBuildOptions fields each noise kind reads (server/noise_build.cc).
const std::map<std::string, std::vector<std::string>>& NoiseOptionsByKind() {
  static const auto* kinds = new std::map<std::string, std::vector<std::string>>{
      {"read_noise", {"min_frames"}},
      {"gain", {"sections", "level_sizes", "saturation_fraction", "max_saturated_fraction",
                "nonlinearity_sigma"}},
      {"dark_current", {"hot_sigma", "hot_min_rate"}},
      {"bad_pixels", {"dead_fraction", "box", "noisy_sigma"}},
      {"noise_model", {"prescan_section", "unweighted"}},
      {"gain_normalisation", {"setting_key", "section", "reference"}},
  };
  return *kinds;
}

// The shortest text that reads back as `v` ("1000000", "0.5", "1e-07").
std::string ExactNumber(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : absl::StrCat(v);
}

}  // namespace

absl::Status AddNoiseBuildOptions(const std::string& kind, const v1::NoiseBuildOptions& noise,
                                  std::map<std::string, std::string>& options_text) {
  const std::map<std::string, std::string> text = NoiseOptionsText(noise);
  if (text.empty()) return absl::OkStatus();
  const auto& by_kind = NoiseOptionsByKind();
  auto it = by_kind.find(kind);
  if (it == by_kind.end()) {
    std::vector<std::string> kinds;
    for (const auto& [k, unused] : by_kind) kinds.push_back(k);
    return absl::InvalidArgumentError(absl::StrCat(
        "noise options (", text.begin()->first, ", ...) are options of the noise kinds (",
        absl::StrJoin(kinds, ", "), "), not of '", kind, "'"));
  }
  const google::protobuf::Descriptor* d = noise.GetDescriptor();
  const google::protobuf::Reflection* refl = noise.GetReflection();
  for (const auto& [key, value] : text) {
    const std::string name = key.substr(6);  // after "noise."
    if (std::find(it->second.begin(), it->second.end(), name) == it->second.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " is not an option of '", kind, "' (its options: ", absl::StrJoin(it->second, ", "),
          ")"));
    }
    // Doubles in their exact shortest text (NoiseOptionsText's StrCat keeps 6 digits).
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(name);
    if (f != nullptr && f->type() == google::protobuf::FieldDescriptor::TYPE_DOUBLE &&
        !f->is_repeated()) {
      options_text[key] = ExactNumber(refl->GetDouble(noise, f));
    } else {
      options_text[key] = value;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BuildRequest> BuildRequestFromProto(const v1::BuildOptions& o) {
  BuildRequest r;
  r.detector = o.detector();
  r.kind = o.kind();
  CALIBD_ASSIGN_OR_RETURN(r.combine, CombineOptionsFromProto(o.combine()));
  CALIBD_RETURN_IF_ERROR(CheckRecipeOverrides(o.preprocess()));
  r.preprocess = RecipeOverridesFromProto(o.preprocess());
  CALIBD_ASSIGN_OR_RETURN(r.selection, SelectionFromProto(o.selection()));
  r.configuration = ConfigurationFromProto(o.configuration());
  r.attributes.insert(o.attributes().begin(), o.attributes().end());
  if (o.has_certify_begin()) {
    CALIBD_ASSIGN_OR_RETURN(r.certify_begin, TimeMicrosFromProto(o.certify_begin(), "certify_begin"));
  }
  if (o.has_certify_end()) {
    CALIBD_ASSIGN_OR_RETURN(r.certify_end, TimeMicrosFromProto(o.certify_end(), "certify_end"));
  }
  r.certify_replace = o.certify_replace();
  r.options_text["combine"] = o.combine().ShortDebugString();
  r.options_text["preprocess"] = o.preprocess().ShortDebugString();
  CALIBD_RETURN_IF_ERROR(AddNoiseBuildOptions(r.kind, o.noise(), r.options_text));
  return r;
}

void SelectionResultToProto(const store::SelectionResult& r, v1::SelectResponse* p) {
  SelectedMastersToProto(r, p->mutable_masters());
  TrailToProto(r, p->mutable_trail());
  *p->mutable_frame_time() = TimeMicrosToProto(r.time);
  ConfigurationToProto(r.configuration, p->mutable_configuration());
}

void DqBitsToProto(const std::vector<DqBitEntry>& bits, v1::GetDqBitsResponse* p) {
  for (const DqBitEntry& b : bits) {
    v1::DqBit* q = p->add_bits();
    q->set_bit(b.bit);
    q->set_name(b.name);
    q->set_description(b.description);
  }
}

absl::StatusOr<PutMasterInput> PutMasterInputFromProto(const v1::PutMasterHeader& h) {
  PutMasterInput in;
  in.detector = h.detector();
  in.kind = h.kind();
  in.configuration = ConfigurationFromProto(h.configuration());
  in.attributes.insert(h.attributes().begin(), h.attributes().end());
  if (h.has_obs_time()) {
    CALIBD_ASSIGN_OR_RETURN(in.obs_time, TimeMicrosFromProto(h.obs_time(), "obs_time"));
  }
  in.declared_bytes = h.total_bytes();
  in.client_sha256 = h.sha256();
  return in;
}

void BuildResultToProto(const BuildResult& r,
                        const std::vector<store::Certification>& certifications,
                        v1::BuildMasterResponse* p) {
  MasterVersionToProto(r.version, certifications, p->mutable_version());
  v1::BuildStatistics* st = p->mutable_statistics();
  st->set_inputs(r.inputs);
  st->set_rejected_fraction(r.rejected_fraction);
  st->set_noise(r.noise);
  st->set_combine_seconds(r.combine_seconds);
  if (r.certification) CertificationToProto(*r.certification, p->mutable_certification());
  for (const std::string& s : r.input_sha256) p->add_input_sha256(s);
}

}  // namespace calibd::server
