#include "server/recipe_options.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/image/section.h"
#include "core/status/macros.h"

namespace calibd::server {

std::string FrameType(const Header& header, absl::string_view kind_hint) {
  std::string t;
  if (!kind_hint.empty()) {
    t = absl::AsciiStrToLower(kind_hint);
  } else {
    absl::StatusOr<std::string> s = header.GetText("IMAGETYP");
    if (s.ok()) t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(*s));
  }
  if (t == "bias" || t == "zero") return "bias";
  if (absl::StrContains(t, "dark")) return "dark";
  if (absl::StrContains(t, "flat")) return "flat";
  return "light";
}

std::vector<std::string> NeededKinds(const Header& header, const RecipeOverrides& o,
                                     absl::string_view kind_hint) {
  const std::string type = FrameType(header, kind_hint);
  bool bias = type != "bias";
  bool dark = type == "flat" || type == "light";
  bool flat = type == "light";
  if (o.bias) bias = *o.bias;
  if (o.dark) dark = *o.dark;
  if (o.flat) flat = *o.flat;
  std::vector<std::string> kinds;
  if (bias) kinds.push_back("bias");
  if (dark) kinds.push_back("dark");
  if (flat) kinds.push_back("flat");
  return kinds;
}

absl::StatusOr<double> HeaderExposure(const store::DetectorSpec& spec, const Header& header) {
  const std::string& key = spec.keys.exposure;
  absl::StatusOr<double> t = header.GetDouble(key);
  if (!t.ok()) {
    if (absl::IsNotFound(t.status())) {
      return absl::NotFoundError(absl::StrCat("header has no exposure time (", key, ")"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("exposure time ", key, " is not a number: ", t.status().message()));
  }
  return *t;
}

absl::StatusOr<std::pair<int, int>> TrimmedShape(const store::DetectorSpec& spec) {
  if (spec.trim_section.empty()) return std::make_pair(spec.width, spec.height);
  CALIBD_ASSIGN_OR_RETURN(Section s, ParseFitsSection(spec.trim_section, spec.width, spec.height));
  return std::make_pair(s.width(), s.height());
}

namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("recipe override: ", what));
}

}  // namespace

absl::StatusOr<calib::RecipeOptions> BuildRecipeOptions(const store::DetectorSpec& spec,
                                                        const FrameRequest& request,
                                                        bool dark_applied) {
  const RecipeOverrides& o = request.recipe;
  calib::RecipeOptions opt;
  using OS = calib::OverscanOptions;

  // Overscan.
  std::string biassec = o.overscan_section.empty() ? spec.overscan_section : o.overscan_section;
  bool do_overscan = !biassec.empty();
  if (o.overscan) do_overscan = *o.overscan;
  if (do_overscan) {
    if (biassec.empty()) {
      return Bad("overscan asked for but neither the detector spec nor the request names an "
                 "overscan section");
    }
    absl::StatusOr<Section> region = ParseFitsSection(biassec, request.width, request.height);
    if (!region.ok()) return Bad(absl::StrCat("overscan section: ", region.status().message()));
    opt.overscan.region = *region;
    const std::string& st = o.overscan_statistic;
    if (st.empty() || st == "median") {
      opt.overscan.statistic = OS::Statistic::kMedian;
    } else if (st == "mean") {
      opt.overscan.statistic = OS::Statistic::kMean;
    } else if (st == "clipped_mean") {
      opt.overscan.statistic = OS::Statistic::kClippedMean;
    } else {
      return Bad(absl::StrCat("overscan_statistic '", st, "' is not median|mean|clipped_mean"));
    }
    const std::string& fit = o.overscan_fit;
    if (fit.empty() || fit == "per_line") {
      opt.overscan.fit = OS::Fit::kPerLine;
    } else if (fit == "whole") {
      opt.overscan.fit = OS::Fit::kWhole;
    } else if (fit == "polynomial") {
      opt.overscan.fit = OS::Fit::kPolynomial;
    } else {
      return Bad(absl::StrCat("overscan_fit '", fit, "' is not per_line|whole|polynomial"));
    }
    if (o.overscan_poly_order) opt.overscan.poly_order = *o.overscan_poly_order;
    const std::string& axis = o.overscan_axis;
    if (axis.empty() || axis == "auto") {
      opt.overscan.axis = OS::Axis::kAuto;
    } else if (axis == "row") {
      opt.overscan.axis = OS::Axis::kPerRow;
    } else if (axis == "column") {
      opt.overscan.axis = OS::Axis::kPerColumn;
    } else {
      return Bad(absl::StrCat("overscan_axis '", axis, "' is not auto|row|column"));
    }
  } else {
    opt.overscan.statistic = OS::Statistic::kNone;
  }

  // Trim.
  std::string trimsec = o.trim_section.empty() ? spec.trim_section : o.trim_section;
  bool do_trim = !trimsec.empty();
  if (o.trim) do_trim = *o.trim && !trimsec.empty();
  if (do_trim) {
    absl::StatusOr<Section> trim = ParseFitsSection(trimsec, request.width, request.height);
    if (!trim.ok()) return Bad(absl::StrCat("trim section: ", trim.status().message()));
    opt.trim = *trim;
  }

  opt.gain = o.gain.value_or(spec.gain);
  opt.read_noise = o.read_noise.value_or(spec.read_noise);
  if (!(opt.gain > 0) || !std::isfinite(opt.gain)) {
    return Bad(absl::StrCat("gain must be > 0, got ", opt.gain));
  }
  if (!(opt.read_noise >= 0) || !std::isfinite(opt.read_noise)) {
    return Bad(absl::StrCat("read noise must be >= 0, got ", opt.read_noise));
  }
  double saturation = o.saturation.value_or(spec.saturation);
  opt.saturation = saturation > 0 ? saturation : std::numeric_limits<double>::infinity();
  opt.compute_variance = o.variance.value_or(request.want_variance);
  opt.output_unit = request.unit;

  // Steps are applied when their master is given; the kinds were chosen by NeededKinds.
  opt.subtract_bias = true;
  opt.subtract_dark = true;
  opt.divide_flat = true;
  opt.scale_dark = o.dark_scale.value_or(true);

  if (o.exptime) {
    if (!(*o.exptime >= 0)) return Bad("exptime must be >= 0");
    opt.exptime = *o.exptime;
  } else {
    absl::StatusOr<double> t = HeaderExposure(spec, request.header);
    if (t.ok()) {
      opt.exptime = *t;
    } else if (dark_applied && opt.scale_dark) {
      return absl::InvalidArgumentError(absl::StrCat(
          "frame '", request.frame_id, "': ", t.status().message(),
          "; a scaled dark needs it: add the card, set recipe.exptime, or recipe.dark_scale=false"));
    }
  }

  // Flat normalisation.
  if (o.flat_value) {
    if (!(*o.flat_value > 0)) return Bad("flat_value must be > 0");
    opt.flat.norm = calib::FlatOptions::Norm::kValue;
    opt.flat.value = *o.flat_value;
  } else if (o.flat_norm.empty() || o.flat_norm == "mean") {
    opt.flat.norm = calib::FlatOptions::Norm::kMean;
  } else if (o.flat_norm == "clipped_mean") {
    opt.flat.norm = calib::FlatOptions::Norm::kClippedMean;
  } else {
    return Bad(absl::StrCat("flat_norm '", o.flat_norm, "' is not mean|clipped_mean"));
  }
  if (o.flat_floor) opt.flat.floor = *o.flat_floor;
  if (!spec.statistics_section.empty()) {
    int tw = opt.trim ? opt.trim->width() : request.width;
    int th = opt.trim ? opt.trim->height() : request.height;
    absl::StatusOr<Section> s = ParseFitsSection(spec.statistics_section, tw, th);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "detector ", spec.name, " statistics_section: ", s.status().message()));
    }
    opt.flat.stats_region = *s;
  }
  return opt;
}

}  // namespace calibd::server
