// The server's transport-free request types: what server/convert.cc makes of the calibd.v1
// proto messages and what the implementation classes (calibrate_impl, build_impl, store_impl)
// take. Plain values: unset optionals mean "the default".
//
//   FrameRequest req;
//   req.frame_id = "r0001";
//   req.detector = "lfc/chip0";
//   req.width = 2048;
//   req.height = 4096;
//   req.pixel_type = PixelType::kUint16;
//   req.recipe.flat = false;                               // skip the flat for this frame
//   req.selection.policy = store::SelectionPolicy::kNearest;
//   int64_t bytes = req.num_bytes();                       // what the client streams
//
// Thread safety: value types.
#ifndef CALIBD_SERVER_REQUESTS_H_
#define CALIBD_SERVER_REQUESTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/calib/recipe.h"
#include "core/image/header.h"
#include "core/image/image.h"
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
  // Where the dark comes from; unset = the detector spec's dark_policy.
  std::optional<store::DarkPolicy> dark_policy;
  // The noise products: unset = used when selectable; true = required; false = not used.
  std::optional<bool> read_noise_map, gain_product, bad_pixels;
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

}  // namespace calibd::server

#endif  // CALIBD_SERVER_REQUESTS_H_
