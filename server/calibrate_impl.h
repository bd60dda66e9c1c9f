// CalibrateImpl: the transport-free logic behind Calibrator.Calibrate (and the pre-processing
// of BuildMaster inputs). A frame goes through two stages, so the reactor can read the next
// frame while this one computes:
//   Prepare — as soon as the frame header arrives: detector, limits, shape, selection of the
//             masters and noise products (cached, decoded), the dark policy (a synthesized
//             dark, cached per model and setting; noise_calibration.h), recipe options,
//             validation against the masters;
//   Run     — once every pixel arrived: the recipe over row bands on the worker pool, plus the
//             provenance cards (each applied master's kind, version and sha256, as keywords and
//             HISTORY) in the output header.
//
//   CalibrateImpl impl(&backend);
//   PreparedFrame prep;
//   absl::Status s = impl.Prepare(std::move(request), prep);   // prep.selection set if reached
//   RawImage raw = RawImage::Allocate(type, w, h, backend.buffers);   // filled by the reactor
//   FrameResult result;
//   s = impl.Run(prep, std::move(raw), result);
//
// Errors: unknown detector NOT_FOUND; frame too large RESOURCE_EXHAUSTED; shape differing from
// the detector or the masters, NaN flat, missing EXPTIME for a scaled dark, bad overrides
// INVALID_ARGUMENT; no certified master (or required noise product) under the strict policy
// FAILED_PRECONDITION; dark policy synthesized without a selectable noise_model or dark_current
// product NOT_FOUND; store not open UNAVAILABLE.
//
// Thread safety: Prepare and Run may be called concurrently from any worker thread (the flat
// and noise-product caches are internally locked; Prepare reads blobs and synthesizes darks, so
// never call it on a gRPC callback thread); a PreparedFrame is used by one thread at a time.
#ifndef CALIBD_SERVER_CALIBRATE_IMPL_H_
#define CALIBD_SERVER_CALIBRATE_IMPL_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/calib/recipe.h"
#include "core/image/frame.h"
#include "core/store/selection.h"
#include "server/backend.h"
#include "server/noise_cache.h"
#include "server/recipe_options.h"
#include "server/requests.h"

namespace calibd::server {

// A master that was applied to a frame.
struct AppliedMaster {
  std::string kind;
  int64_t version = 0;
  std::string sha256;
  store::SelectionMethod method = store::SelectionMethod::kCertified;
  double age_seconds = 0;  // frame time − master obs_time
  // The recipe step it served ("bias", "dark", "flat", "read_noise", "gain", "bad_pixels");
  // "" = kind. A synthesized dark: kind "noise_model"/"dark_current", used_as "dark".
  std::string used_as;
  std::string detail;  // how it was used, for people ("synthesized for t=30 s, g=1")
};

struct PreparedFrame {
  FrameRequest request;
  store::DetectorSpec spec;
  int64_t detector_version = 0;
  std::optional<store::SelectionResult> selection;
  std::vector<AppliedMaster> applied;
  calib::RecipeOptions options;
  calib::Masters masters;
  // Cards (and HISTORY) the noise products and the dark policy add to the output header.
  Header noise_cards;
};

struct FrameResult {
  std::string frame_id;
  absl::Status status;
  std::optional<store::SelectionResult> selection;
  std::vector<AppliedMaster> applied;
  CalibratedFrame frame;  // empty planes on error; variance dropped when not wanted
  calib::FrameStats stats;
  bool want_data = true, want_variance = true, want_dq = true;
  double compute_seconds = 0;
};

class CalibrateImpl {
 public:
  explicit CalibrateImpl(const Backend* backend)
      : backend_(backend), noise_cache_(backend->limits.noise_cache_bytes) {}

  // `kind_hint`: when pre-processing build inputs, the kind being built (decides the default
  // steps); "" = from the frame's IMAGETYP.
  absl::Status Prepare(FrameRequest request, PreparedFrame& out,
                       absl::string_view kind_hint = "") const;
  absl::Status Run(const PreparedFrame& prepared, RawImage raw, FrameResult& out) const;

  // A prepared (normalised) flat, cached by sha256 and options. Public for BuildImpl.
  absl::StatusOr<std::shared_ptr<const calib::PreparedFlat>> PrepareFlat(
      const std::string& sha256, const CalibratedFrame& flat,
      const calib::FlatOptions& options) const;

  // Hits, misses and bytes of the noise-product cache (tests, metrics).
  NoiseCache::Stats noise_cache_stats() const { return noise_cache_.stats(); }

 private:
  static constexpr size_t kFlatCacheEntries = 4;
  const Backend* backend_;
  // Read-noise maps, gains, bad-pixel maps, noise models and synthesized darks, by content.
  mutable NoiseCache noise_cache_;
  mutable absl::Mutex flat_mu_;
  mutable std::list<std::pair<std::string, std::shared_ptr<const calib::PreparedFlat>>> flats_
      ABSL_GUARDED_BY(flat_mu_);
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_CALIBRATE_IMPL_H_
