// Recipe building: the transport-free request types of the server (what convert.cc makes out
// of the proto messages) and the mapping DetectorSpec + frame header + per-request overrides →
// calib::RecipeOptions and the master kinds the recipe needs.
//
//   FrameRequest req;                       // from the wire (server/convert.h)
//   std::vector<std::string> kinds = NeededKinds(spec, req.header, req.recipe, "");
//   ... select masters ...
//   ASSIGN_OR_RETURN(calib::RecipeOptions opts,
//                    BuildRecipeOptions(spec, req, /*dark_applied=*/true));
//
// Defaults by frame type (IMAGETYP, or the kind being built): bias/zero frames get overscan and
// trim only; darks also get the bias; flats the bias and the dark; everything else (lights)
// bias, dark and flat. Every step can be switched on or off by RecipeOverrides.
//
// Thread safety: value types and pure functions.
#ifndef CALIBD_SERVER_RECIPE_BUILDER_H_
#define CALIBD_SERVER_RECIPE_BUILDER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/calib/recipe.h"
#include "core/image/header.h"
#include "core/image/image.h"
#include "core/store/detector.h"
#include "core/store/selection.h"

namespace calibd::server {

// Per-request changes to the recipe (proto calibd.v1.RecipeOverrides). Unset = default.
struct RecipeOverrides {
  std::optional<bool> overscan, trim, bias, dark, flat;
  std::string overscan_statistic;  // "median" | "mean" | "clipped_mean" | "" (median)
  std::string overscan_fit;        // "per_line" | "whole" | "polynomial" | ""
  std::optional<int> overscan_poly_order;
  std::string overscan_axis;       // "auto" | "row" | "column" | ""
  std::string overscan_section, trim_section;
  std::optional<double> gain, read_noise, saturation;
  std::optional<bool> dark_scale;
  std::string flat_norm;           // "mean" | "clipped_mean" | ""
  std::optional<double> flat_value, flat_floor, exptime;
  std::optional<bool> variance;
};

// How masters are selected (proto calibd.v1.SelectionOptions).
struct SelectionSpec {
  store::SelectionPolicy policy = store::SelectionPolicy::kStrict;
  int64_t max_age_micros = 0;  // kNearest only; 0 = any
  std::map<std::string, store::PinnedVersion> pins;  // kind → pin
};

// One raw frame to calibrate (proto calibd.v1.FrameHeader).
struct FrameRequest {
  std::string frame_id;
  std::string detector;
  Header header;
  int width = 0;
  int height = 0;
  PixelType pixel_type = PixelType::kUint16;
  RecipeOverrides recipe;
  SelectionSpec selection;
  calib::RecipeOptions::Unit unit = calib::RecipeOptions::Unit::kAdu;
  bool want_data = true, want_variance = true, want_dq = true;

  int64_t num_pixels() const { return int64_t{width} * height; }
  int64_t num_bytes() const { return num_pixels() * static_cast<int64_t>(PixelSize(pixel_type)); }
};

// "bias", "dark", "flat", "light" (anything else): what the frame is, from IMAGETYP (or the
// kind of master being built when `kind_hint` is not empty).
std::string FrameType(const Header& header, absl::string_view kind_hint);

// The master kinds the recipe needs for this frame, in recipe order (bias, dark, flat).
std::vector<std::string> NeededKinds(const Header& header, const RecipeOverrides& overrides,
                                     absl::string_view kind_hint);

// The recipe options for `request` on `spec`. `dark_applied`: a master dark will be subtracted
// (then a scaled dark needs the frame's exposure: INVALID_ARGUMENT when the header has no
// exposure keyword and no override). Bad override values are INVALID_ARGUMENT.
absl::StatusOr<calib::RecipeOptions> BuildRecipeOptions(const store::DetectorSpec& spec,
                                                        const FrameRequest& request,
                                                        bool dark_applied);

// The exposure time [s] of a header by the spec's exposure keyword; NOT_FOUND when absent.
absl::StatusOr<double> HeaderExposure(const store::DetectorSpec& spec, const Header& header);

// The calibrated (trimmed) shape of a detector's frames: what its masters must have.
absl::StatusOr<std::pair<int, int>> TrimmedShape(const store::DetectorSpec& spec);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_RECIPE_BUILDER_H_
