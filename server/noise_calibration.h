// How Calibrate uses the noise products (issue 8): the dark policy (measured, synthesized,
// measured else synthesized) and the read-noise map, gain and bad-pixel products, each selected
// like a master. CalibrateImpl::Prepare plans the kinds to select with PlanNoise, selects them
// with the masters, and hands the result to ApplyNoiseProducts, which loads what was chosen
// (through a NoiseCache), fills the recipe's Masters/RecipeOptions, and records provenance:
// AppliedMaster entries, header cards and the selection trail.
//
//   NoisePlan plan = PlanNoise(spec, req.recipe, kinds, kind_hint);
//   std::vector<std::string> select = plan.SelectKinds(kinds);
//   ... Select(select) (and, for measured_else_synthesized without a measured dark,
//       Select(plan.ModelKinds()) appended) ...
//   RETURN_IF_ERROR(ApplyNoiseProducts(ctx, selection, options, masters, applied, cards));
//
// Rules (docs/noise.md "Calibrating with noise products"):
// - Dark policy: the request's, else the detector spec's (default measured); only when the
//   recipe subtracts a dark. synthesized: the noise_model is used, else the dark_current
//   product; neither → NOT_FOUND naming what to build. measured_else_synthesized: the measured
//   master dark when selectable, else synthesized (the trail's "dark" entry says why); neither
//   → FAILED_PRECONDITION (the selection's code under STRICT) naming both.
// - The synthesized dark is made for the frame's exposure time (recipe.exptime, else the
//   header's), its EM gain (the spec's em_gain keyword; 1 when absent) and, when the spec gives
//   a dark temperature coefficient and the frame its temperature, scaled by exp(c·(T − TEMPMOD)).
//   It is in e⁻ and converted to ADU with the gain in use (calib::DarkElectronsToAdu), then
//   subtracted like a measured dark with scale 1.
// - read_noise_map / gain_product / bad_pixels: unset = used when selectable (Calibrate; build
//   pre-processing leaves them off unless asked), true = required (not selectable → the frame
//   fails with the selection's status), false = off. The read-noise map replaces the scalar read
//   noise per pixel (pixels the product could not measure take its median RDNOISE); the gain
//   product's GAIN (per amplifier with SECTn/GAINn; without a GAIN card its map) replaces the
//   spec's gain unless the request overrides the gain; the bad-pixel map's bits are OR-ed into
//   DQ with kDqBad.
//
// Thread safety: PlanNoise is pure; ApplyNoiseProducts runs on a worker (it reads blobs and does
// pixel work) and may run concurrently (the cache is thread-safe).
#ifndef CALIBD_SERVER_NOISE_CALIBRATION_H_
#define CALIBD_SERVER_NOISE_CALIBRATION_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/calib/recipe.h"
#include "core/image/header.h"
#include "core/store/detector.h"
#include "core/store/selection.h"
#include "server/backend.h"
#include "server/calibrate_impl.h"
#include "server/noise_cache.h"
#include "server/requests.h"

namespace calibd::server {

// How a noise product is used for one frame.
enum class ProductUse { kOff, kOptional, kRequired };

struct NoisePlan {
  bool dark_needed = false;  // the recipe subtracts a dark
  store::DarkPolicy dark_policy = store::DarkPolicy::kMeasured;
  ProductUse read_noise = ProductUse::kOff;
  ProductUse gain = ProductUse::kOff;
  ProductUse bad_pixels = ProductUse::kOff;

  // What the first Select asks for: the recipe's master kinds (without "dark" under
  // synthesized), the model kinds under synthesized, and the noise products in use.
  std::vector<std::string> SelectKinds(const std::vector<std::string>& master_kinds) const;
  // noise_model, dark_current.
  static std::vector<std::string> ModelKinds();
  bool synthesized_only() const {
    return dark_needed && dark_policy == store::DarkPolicy::kSynthesized;
  }
  bool may_fall_back() const {
    return dark_needed && dark_policy == store::DarkPolicy::kMeasuredElseSynthesized;
  }
  // Is a failed selection of `kind` the frame's failure? (masters and required products)
  bool Required(absl::string_view kind) const;
};

// The plan for a frame whose recipe needs `master_kinds` (NeededKinds). `kind_hint` non-empty =
// pre-processing build inputs (noise products then default to off).
NoisePlan PlanNoise(const store::DetectorSpec& spec, const RecipeOverrides& overrides,
                    const std::vector<std::string>& master_kinds, absl::string_view kind_hint);

// The selection for a frame under `plan`, shared by Calibrate and the Select RPC: the plan's
// kinds (SelectKinds), and for measured_else_synthesized without a measured dark the model
// kinds in a second look. `request.kinds` is ignored.
absl::StatusOr<store::SelectionResult> SelectForPlan(store::CalibrationStore& store,
                                                     store::SelectionRequest request,
                                                     const NoisePlan& plan,
                                                     const std::vector<std::string>& master_kinds);

// Makes the trail's "dark" entry name `model` (a chosen noise_model or dark_current entry) with
// `reason`: a measured dark's miss is rewritten (fallback), else the entry is added; the
// dark_current entry is dropped once the noise_model was chosen. Returns the model's entry.
const store::KindSelection* RecordSynthesizedDark(store::SelectionResult& selection,
                                                  const store::KindSelection& model,
                                                  const std::string& reason);

// For the Select RPC: the dark Calibrate would use under `plan`, said in the trail without
// synthesizing it (a no-op under measured, or when a measured dark or no model was chosen).
void ExplainDark(store::SelectionResult& selection, const NoisePlan& plan);

struct NoiseContext {
  const Backend* backend = nullptr;
  NoiseCache* cache = nullptr;
  const store::DetectorSpec* spec = nullptr;
  const FrameRequest* request = nullptr;
  const NoisePlan* plan = nullptr;
  std::string name;  // "frame 'x'", for messages
};

// Applies the chosen noise products and, when the plan calls for it, the synthesized dark.
// `selection` holds every kind selected (SelectKinds, plus ModelKinds after a fallback); its
// "dark" entry is added (synthesized) or rewritten (fallback) to say which dark was used.
// `options` come from BuildRecipeOptions; `masters` hold the measured masters already loaded.
// Appends to `applied` and to `cards` (header cards and HISTORY for the output).
absl::Status ApplyNoiseProducts(const NoiseContext& ctx, store::SelectionResult& selection,
                                calib::RecipeOptions& options, calib::Masters& masters,
                                std::vector<AppliedMaster>& applied, Header& cards);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_NOISE_CALIBRATION_H_
