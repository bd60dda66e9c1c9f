// BuildMaster for the noise kinds (read_noise, gain, dark_current, noise_model, bad_pixels):
// the inputs a BuildSession collected — pre-processed by the kind's recipe (in ADU), kept in
// memory or spooled as FITS in the calibrated layout, the same BuildInput list a combine
// build uses — or resolved (stored products and masters, by blob path) become one core/noise
// product, written as one multi-HDU FITS file and stored as one version of the kind, with its
// summary figures as statistics.
//
//   if (IsNoiseKind(request.kind)) {
//     return FinishNoiseBuild(backend, request, inputs, spool_dir);
//   }
//
// What each kind reads (detector spec → core options):
//   read_noise    biases; gain = spec.gain (e⁻/ADU)
//   gain          flats (consecutive pairs, IMAGETYP not bias/zero) and biases (IMAGETYP
//                 bias/zero); saturation = spec.saturation
//   dark_current  darks, bias subtracted; gain = spec.gain; EXPTIME = spec.keys.exposure
//   noise_model   EMCCD darks in e⁻ (gain = spec.gain); g from the keyword the spec maps for the
//                 logical key "em_gain" (spec.keys.KeywordFor("em_gain"); "EMGAIN" while the
//                 spec has no such key), t from spec.keys.exposure
//   bad_pixels    stored dark_current / read_noise products and/or a master flat (classified by
//                 their PRODUCT card)
// Options (`request.options_text`, all optional): noise.hot_sigma, noise.dead_fraction,
// noise.box, noise.noisy_sigma, noise.prescan_section, noise.sections (';'-separated FITS
// sections), noise.level_sizes (','-separated), noise.min_frames.
// gain_normalisation is not stored yet: its product is a table (1×1 image + header rows),
// which the store's shape check refuses — FAILED_PRECONDITION saying so.
//
// Thread safety: reentrant; pixel work on backend->pool, run by the build's own thread (never a
// gRPC callback thread, like Combine in BuildSession::Finish).
#ifndef CALIBD_SERVER_NOISE_BUILD_H_
#define CALIBD_SERVER_NOISE_BUILD_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/noise/noise_product.h"
#include "core/store/detector.h"
#include "server/backend.h"
#include "server/build_impl.h"

namespace calibd::server {

bool IsNoiseKind(absl::string_view kind);
// Kinds whose inputs should carry variance planes (the fits weigh sub-stacks by them).
bool NoiseKindWantsVariance(absl::string_view kind);

// The frame type whose recipe pre-processes the inputs of `kind` (the kind hint of
// CalibrateImpl::Prepare): read_noise and gain → "bias" (overscan and trim only: the photon
// transfer subtracts its own biases), dark_current and noise_model → "dark" (also the master
// bias); any other kind unchanged.
std::string PreprocessKindFor(absl::string_view kind);

// Builds the product of `request.kind` from `inputs` (no store access). Once `*cancelled` is
// true (it may be nullptr), the next band read fails with CANCELLED.
absl::StatusOr<noise::NoiseProduct> BuildNoiseProduct(
    const store::DetectorSpec& spec, const BuildRequest& request,
    const std::vector<BuildInput>& inputs, int64_t memory_budget_bytes, ThreadPool* pool,
    const std::atomic<bool>* cancelled = nullptr);
// The same from files in the calibrated layout.
absl::StatusOr<noise::NoiseProduct> BuildNoiseProductFromFiles(
    const store::DetectorSpec& spec, const BuildRequest& request,
    const std::vector<std::string>& paths, int64_t memory_budget_bytes, ThreadPool* pool);

// The whole Finish of a noise build: builds, writes `<spool_dir>/product.fits`, stores it
// (PutMaster with fits_path), certifies when asked. Cancelled (`cancelled` as in
// BuildNoiseProduct, and checked again before the store is written): CANCELLED, nothing stored.
absl::StatusOr<BuildResult> FinishNoiseBuild(const Backend* backend, const BuildRequest& request,
                                             const std::vector<BuildInput>& inputs,
                                             const std::string& spool_dir,
                                             const std::atomic<bool>* cancelled = nullptr);
// The same from files (`sha256[i]` recorded as the provenance of `paths[i]`).
absl::StatusOr<BuildResult> FinishNoiseBuild(const Backend* backend, const BuildRequest& request,
                                             const std::vector<std::string>& paths,
                                             const std::vector<std::string>& sha256,
                                             const std::string& spool_dir);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_NOISE_BUILD_H_
