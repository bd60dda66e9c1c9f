// Detector characterisation: read noise, photon-transfer gain, dark current, bad pixels, the
// EMCCD noise model (corgidrp's calibrate_darks_lsq), gain normalisation (SPECTACLE's ISO
// table) and synthesized darks — each product built from streamed stacks of frames that were
// pre-processed like the inputs of a master (overscan, trim, master bias where needed), read
// through the same combine::FrameSource as Combine, in row bands whose height follows a memory
// budget (memory ∝ output maps, not ∝ frames).
//
//   std::vector<std::unique_ptr<combine::FrameSource>> biases = ...;  // FitsSource(path)
//   noise::ReadNoiseOptions options;
//   options.gain = 1.5;                      // e⁻ per input unit (1 when frames are in e⁻)
//   ASSIGN_OR_RETURN(noise::NoiseProduct rn,
//                    noise::BuildReadNoise(std::move(biases), options, &pool));
//   double median_rn = *rn.header.GetDouble("RDNOISE");
//
// Units: every input value is multiplied by `gain` (e⁻ per input unit) and its variance by
// gain², so every product is in e⁻. An input value is masked when its DQ has a bit of
// `dq_mask` or it is not finite. Maps are finite (the store's rule for masters): a pixel that
// could not be measured is 0 with DQ bad|no_data (bad, for the per-pixel gain).
// Errors (absl codes, messages say what to supply):
//   INVALID_ARGUMENT  too few frames / levels / exposure times / settings (naming what was
//                     found), frames of different shapes (naming the first that differs),
//                     a missing or non-numeric EXPTIME / gain keyword (naming frame and key),
//                     no usable flat level (naming each level and why), bad options
//   others            from reading a source, annotated with its name()
//
// Thread safety: the functions are reentrant; `pool` (may be null) is used for pixel work. A
// FrameSource is used by one thread at a time.
#ifndef CALIBD_CORE_NOISE_NOISE_H_
#define CALIBD_CORE_NOISE_NOISE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/combine/combine.h"
#include "core/image/frame.h"
#include "core/noise/noise_product.h"
#include "core/parallel/thread_pool.h"

namespace calibd::noise {

using Sources = std::vector<std::unique_ptr<combine::FrameSource>>;

struct StackOptions {
  double gain = 1.0;                                 // e⁻ per input unit, > 0
  uint16_t dq_mask = 0xFFFF;                         // input DQ bits that mask a value
  int64_t memory_budget_bytes = int64_t{256} << 20;  // band scratch (outputs not counted)
};

// ---- read_noise: per-pixel unbiased std over a bias stack ------------------------------
// Maps READ_NOISE (e⁻; std with ddof 1 of the valid values), READ_NOISE_ERR (its standard
// error for Gaussian noise, σ/√(2(n−1))), NFRAMES (valid values per pixel). A pixel with
// fewer than `min_frames` valid values gets 0 and DQ bad|no_data. Header RDNOISE (median
// of the map, e⁻), RDNOISEE (its standard error, 1.2533·robust σ of the map/√N_pix), NCOMBINE.
// One pass (Welford, double) over ≥ 2 frames.
struct ReadNoiseOptions : StackOptions {
  int min_frames = 2;  // >= 2
};
absl::StatusOr<NoiseProduct> BuildReadNoise(Sources biases, const ReadNoiseOptions& options,
                                            ThreadPool* pool = nullptr);

// ---- gain: the photon transfer curve ------------------------------------------------------
// `flats` are grouped into illumination levels by the order given: `level_sizes[i]` frames
// each (default: consecutive pairs); every level needs >= 2 frames. Frames are bias
// subtracted except for a constant: the mean of `biases` (>= 2 frames) over each section is
// subtracted from the level's mean. Per section (amplifier) and level:
//   mean = mean over the section of the level's first two frames, minus the biases' mean,
//   var  = var(F1 − F2) / 2 over the section (ddof 1; the flat pattern cancels),
// values are in input units (ADU). Weighted least squares var = a + mean/g with the variance
// of a sample variance, 2·var²/(N−1), as each point's variance. Levels are excluded (and
// named in the header, EXCLn) when their mean exceeds `saturation_fraction`·`saturation`,
// more than `max_saturated_fraction` of the pair's pixels are >= `saturation` or carry DQ
// saturated, or (then, one at a time, highest residual first) their residual from the fit
// exceeds `nonlinearity_sigma` σ — while >= 3 levels remain. Header GAIN (e⁻/ADU, the first
// section's; GAINn per section), GAINERR, RDNOISE = g·√a (e⁻, fitted), RDNOISEE, RDNOISEB
// (e⁻, from var(B1 − B2)/2 of the first two biases), NLEVELS, LEVn_MEAN, LEVn_VAR, LEVn_USE.
// Maps GAIN (e⁻/ADU per pixel, from the per-pixel mean–variance over each level's frames,
// weighted with the fitted curve; needs >= 3 usable levels with >= 2 frames each), GAIN_ERR,
// DQ bad where the per-pixel slope is not positive. Fewer than 3 levels, or fewer than 3
// usable → INVALID_ARGUMENT naming the levels and why.
struct GainOptions {
  std::vector<int> level_sizes;       // empty: pairs
  std::vector<std::string> sections;  // FITS sections, one per amplifier; empty: the frame
  double saturation = 0;              // input units; 0: unknown (only DQ saturated counts)
  double saturation_fraction = 0.9;
  double max_saturated_fraction = 0.001;
  double nonlinearity_sigma = 5.0;
  uint16_t dq_mask = 0xFFFF & ~uint16_t{8};  // saturated values count, they are not masked
  int64_t memory_budget_bytes = int64_t{256} << 20;
};
absl::StatusOr<NoiseProduct> BuildGain(Sources flats, Sources biases, const GainOptions& options,
                                       ThreadPool* pool = nullptr);

// ---- dark_current: per-pixel weighted linear fit of signal against exposure time ----------
// Frames (bias subtracted) are grouped by `exposure_key` (>= 3 distinct times, frames with
// times within 1e-6 relative are one group). Per pixel and group: the mean of the valid values
// and the variance of that mean — from the inputs' variance planes (Σv/n², when every frame
// has one and `use_input_variance`), else s²/n (ddof 1; groups then need >= 2 frames). Weighted
// least squares signal = I + t·D over the groups with >= half their frames valid (>= 2
// groups needed, else 0 and DQ bad|no_data). Maps DARK_CURRENT (e⁻/s), DARK_CURRENT_ERR,
// DARK_INTERCEPT (e⁻), DARK_INTERCEPT_ERR, DARK_COV (cov(I, D), e⁻²/s). Hot pixels: D above the
// detector's rate (the median of the map) by more than `hot_sigma` × the map's robust σ
// (1.4826·MAD) and by `hot_min_rate` → DQ hot. Header DARKCUR (median, e⁻/s), NHOT, HOTSIGMA,
// NEXPTIME, EXPTn, NFRAMEn.
struct DarkCurrentOptions : StackOptions {
  std::string exposure_key = "EXPTIME";
  bool use_input_variance = true;
  double hot_sigma = 5.0;
  double hot_min_rate = 0.0;  // e⁻/s
};
absl::StatusOr<NoiseProduct> BuildDarkCurrent(Sources darks, const DarkCurrentOptions& options,
                                              ThreadPool* pool = nullptr);

// ---- bad_pixels: a DQ map from the products above and/or a flat --------------------------
// hot:   the dark_current product's DQ hot                                  → DQ hot
// dead:  flat / (median of the flat in a `box`×`box` window) < dead_fraction → DQ dead
//        (the window's median is computed every `median_step` pixels, the nearest used: the
//        local level varies slowly, a dead pixel is a point; 16x fewer medians at step 4)
// noisy: read noise > median + noisy_sigma × robust σ of the read-noise map  → DQ bad
// few:   no_data in any given product (too few good frames)                 → DQ bad|no_data
// At least one input. Header NHOT, NDEAD, NNOISY, NFEW and the thresholds used. The
// product has no float maps, only DQ.
struct BadPixelOptions {
  double dead_fraction = 0.5;  // ccdproc ccdmask / corgidrp's cold threshold, relative
  int box = 15;                // odd, >= 3
  int median_step = 4;         // local medians on a grid of this step (nearest one used); 1 = exact
  double noisy_sigma = 5.0;
};
struct BadPixelInputs {
  const NoiseProduct* dark_current = nullptr;
  const NoiseProduct* read_noise = nullptr;
  const CalibratedFrame* flat = nullptr;  // a normalised master flat (its DQ bad/dead copied)
};
absl::StatusOr<NoiseProduct> BuildBadPixels(const BadPixelInputs& inputs,
                                            const BadPixelOptions& options,
                                            ThreadPool* pool = nullptr);

// ---- noise_model: mean = F + g·t·D + g·C per pixel (corgidrp calibrate_darks_lsq) ---------
// Darks in e⁻ (bias subtracted, not divided by the EM gain) are grouped into sub-stacks by
// (g = `em_gain_key`, t = `exposure_key`); >= 4 distinct settings whose design [1, g·t, g]
// has rank 3. Per pixel and sub-stack: mean and variance of the mean as for dark_current; a
// sub-stack is usable for a pixel when at least half its frames are valid there. Weighted
// least squares over the usable sub-stacks (weights 1/var of the mean; `weighted` false: equal
// weights, errors from the residual scatter). A pixel with < 4 usable sub-stacks is not fitted:
// 0 in every map, DQ bad|no_data. Maps FPN (F, e⁻), DARK_CURRENT (D, e⁻/s), CIC (C, e⁻), each _ERR,
// the covariances COV_F_D, COV_F_C, COV_D_C (what a synthesized dark's variance needs),
// ADJ_R2 (weighted adjusted R²; 0 where undefined: exactly 3 usable or no spread), NUSABLE.
// Negative values are kept (corgidrp makes them positive; that biases the means). Header
// NSETTING, SETn_G, SETn_T, SETn_N, FPNMEAN, CICMEAN, DCMEAN (means over fitted pixels), and
// when `prescan_section` is given BIASOFF (median of F + C over it, e⁻) and BIASOFFE.
struct NoiseModelOptions : StackOptions {
  std::string exposure_key = "EXPTIME";
  std::string em_gain_key = "EMGAIN";  // the detector spec's logical key em_gain
  bool weighted = true;
  bool use_input_variance = true;
  std::string prescan_section;        // FITS section of the frame; "" = none
  std::optional<double> temperature;  // recorded as TEMPMOD (for temperature scaling)
};
absl::StatusOr<NoiseProduct> BuildNoiseModel(Sources darks, const NoiseModelOptions& options,
                                             ThreadPool* pool = nullptr);

// ---- gain_normalisation: response ratio between gain settings ---------------------------
// Flats of one illumination at each setting (`setting_key`, any header value); per setting the
// mean over `section` of each frame's valid pixels; the setting's response is the mean of the
// frames' means, its error their std/√n (ddof 1; one frame: the pixel std/√N_pix); ratio =
// response / the reference setting's (`reference`, default the setting with the lowest
// response). >= 2 settings. The table is also a NoiseProduct without maps: header NSETTING,
// SETn (text), RESPn, RESPEn, RATIOn, RATIOEn, NFRAMEn.
struct GainNormalisationRow {
  std::string setting;
  int frames = 0;
  double response = 0;
  double response_err = 0;
  double ratio = 0;
  double ratio_err = 0;
};
struct GainNormalisationOptions {
  std::string setting_key = "GAINMODE";
  std::string section;    // "" = whole frame
  std::string reference;  // "" = the lowest response
  uint16_t dq_mask = 0xFFFF;
};
absl::StatusOr<std::vector<GainNormalisationRow>> BuildGainNormalisation(
    Sources flats, const GainNormalisationOptions& options);
NoiseProduct GainNormalisationProduct(const std::vector<GainNormalisationRow>& rows,
                                      const std::string& setting_key);

// ---- synthesized darks ------------------------------------------------------------------
// From a noise_model: data = F/g + t·D + C (e⁻, a dark for frames divided by the EM gain, as
// corgidrp's build_synthesized_dark); variance = aᵀΣa with a = (1/g, t, 1) and Σ each pixel's
// covariance of (F, D, C). From a dark_current product (no multi-gain model; g ignored):
// data = t·D, variance t²·var(D). DQ: the product's. Temperature scaling (when
// `temperature_coefficient` and `temperature` are set and the product has TEMPMOD): D is
// multiplied by exp(c·(T − TEMPMOD)). Header: SYNTHDRK = T, SYNMODEL = kind, EXPTIME, EMGAIN.
struct SynthDarkRequest {
  double exptime = 0;  // s, >= 0
  double em_gain = 1;  // > 0
  std::optional<double> temperature;
  std::optional<double> temperature_coefficient;  // c, 1/K
};
absl::StatusOr<CalibratedFrame> SynthesizeDark(const NoiseProduct& model,
                                               const SynthDarkRequest& request,
                                               ThreadPool* pool = nullptr);

}  // namespace calibd::noise

#endif  // CALIBD_CORE_NOISE_NOISE_H_
