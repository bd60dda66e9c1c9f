// Recipe options from a request: the mapping DetectorSpec + frame header + per-request
// overrides (server/requests.h) → calib::RecipeOptions, and the master kinds the recipe needs.
//
//   std::vector<std::string> kinds = NeededKinds(req.header, req.recipe, /*kind_hint=*/"");
//   // ... select the masters of `kinds` ...
//   absl::StatusOr<calib::RecipeOptions> opts =
//       BuildRecipeOptions(spec, req, /*dark_applied=*/true);
//
// Defaults by frame type (IMAGETYP, or the kind being built): bias/zero frames get overscan and
// trim only; darks also get the bias; flats the bias and the dark; everything else (lights)
// bias, dark and flat. Every step can be switched on or off by RecipeOverrides.
//
// Thread safety: pure functions.
#ifndef CALIBD_SERVER_RECIPE_OPTIONS_H_
#define CALIBD_SERVER_RECIPE_OPTIONS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/calib/recipe.h"
#include "core/image/header.h"
#include "core/store/detector.h"
#include "server/requests.h"

namespace calibd::server {

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

#endif  // CALIBD_SERVER_RECIPE_OPTIONS_H_
