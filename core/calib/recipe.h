// The calibration recipe: overscan → trim → variance → bias → dark → flat → gain, with DQ,
// run as one fused pass per row band (ccdproc 2.4 `ccd_process` semantics, float32 output).
//
//   calib::RecipeOptions options;
//   options.overscan.statistic = calib::OverscanOptions::Statistic::kMedian;
//   options.overscan.region = *ParseFitsSection("[4097:4128,*]", raw.width(), raw.height());
//   options.trim = *ParseFitsSection("[1:4096,*]", raw.width(), raw.height());
//   options.gain = 1.5;  options.read_noise = 4.2;  options.exptime = 30;
//   calib::Masters masters;                    // shared, immutable, cached by the store
//   masters.bias = bias;  masters.dark = dark;  masters.dark_exptime = 300;
//   masters.flat = flat;                       // or masters.prepared_flat (cached NormalizeFlat)
//   calib::FrameStats stats;
//   CALIBD_ASSIGN_OR_RETURN(CalibratedFrame out,
//       calib::Calibrate(raw, masters, options, &thread_pool, &buffer_pool, &stats));
//
// Order and semantics (ccdproc 2.4 `ccd_process` with gain_corrected=False):
//  1. overscan: per line (per row when the BIASSEC region is at least as tall as it is wide,
//     else per column — ccdproc's overscan_axis rule) mean / median / sigma-clipped mean, or one
//     value for the whole region, or a power-series polynomial of order n fitted by least
//     squares to the per-line values against the line index counted from the region's first
//     line (ccdproc's `model=Polynomial1D(n)` + LinearLSQFitter). Computed in double.
//  2. trim to TRIMSEC (raw coordinates).
//  3. variance from the data at this point (overscan-subtracted, not yet bias-subtracted),
//     ccdproc `create_deviation`: σ² = (g·max(D, 0) + RN²) / g² ADU². A negative D counts as 0
//     (ccdproc's disregard_nan=True; its default turns those pixels' uncertainty into NaN).
//     RN is `read_noise` or the per-pixel `Masters::read_noise_map` (e⁻), g is `gain` or
//     `Masters::gain_map` (e⁻/ADU).
//  4. bias: D −= B; σ² += σ_B² when the master has a variance plane.
//  5. dark: D −= s·K with s = exptime / dark_exptime when scale_dark (else s = 1); σ² += s²·σ_K².
//     A synthesized dark (a noise_model's F/g + t·D + C or a dark_current's t·D, in e⁻, made
//     for this frame's t and EM gain g) is given here in ADU: K = K_e·g/k, σ_K² = σ_Ke²·(g/k)²
//     with k the gain in use (noise_inputs.h: DarkElectronsToAdu), and s = 1.
//  6. flat: D /= F/n, n the normalisation (FlatOptions); σ² = (σ²+ D_new²·σ_F²/n²)·(n/F)²
//     (astropy NDData divide with StdDevUncertainty, the flat's variance normalised too).
//     Flat pixels whose stored value is ≤ FlatOptions::floor (or non-finite) get kDqLowFlat and
//     are NOT divided: data and variance there keep their bias/dark-subtracted values.
//     (ccdproc instead clamps the flat to min_value.)
//  7. gain (output_unit == kElectron): D ×= g, σ² ×= g²; the unit becomes "electron".
//  DQ: raw ≥ saturation → kDqSaturated; non-finite raw value or non-finite result → kDqNoData;
//  bad_pixels ≠ 0 → kDqBad, plus its bits within Masters::bad_pixel_bits (a bad_pixels
//  product's hot, dead, no_data …); the masters' DQ planes are OR-ed in. Data under a DQ bit is still
//  computed (not replaced), except that non-finite results stay as they are.
//
// Arithmetic is float32 per pixel over row bands; statistics, overscan and the flat
// normalisation are computed in double. Results are bit-identical with and without a pool and
// for any band size.
//
// Thread safety: all functions are pure (inputs const, outputs new); Masters are immutable and
// may be shared by any number of concurrent Calibrate calls. A ThreadPool / BufferPool passed in
// may be shared with other callers.
#ifndef CALIBD_CORE_CALIB_RECIPE_H_
#define CALIBD_CORE_CALIB_RECIPE_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/image/buffer_pool.h"
#include "core/image/frame.h"
#include "core/image/image.h"
#include "core/image/section.h"
#include "core/parallel/thread_pool.h"

namespace calibd::calib {

struct OverscanOptions {
  enum class Statistic { kNone, kMean, kMedian, kClippedMean };
  enum class Fit { kPerLine, kWhole, kPolynomial };
  // Which lines the per-line values run along. kAuto: ccdproc's rule — per row (axis 1) unless
  // the region is wider than tall, then per column (axis 0). ccd_process itself always uses
  // per row; a region to the side of the data gives per row under kAuto too.
  enum class Axis { kAuto, kPerRow, kPerColumn };

  Statistic statistic = Statistic::kNone;  // kNone: no overscan subtraction
  Section region;                          // BIASSEC, in raw-frame coordinates
  Fit fit = Fit::kPerLine;
  Axis axis = Axis::kAuto;
  int poly_order = 1;                      // kPolynomial: degree 0..9
  double clip_sigma = 3.0;                 // kClippedMean: symmetric clip around the median
  int clip_iters = 5;                      //   (std), until stable or clip_iters rounds
};

struct FlatOptions {
  enum class Norm { kMean, kClippedMean, kValue };
  Norm norm = Norm::kMean;  // kMean: plain mean of every pixel (ccdproc flat_correct)
  double value = 0;         // kValue: the normalisation, > 0
  // Where kMean / kClippedMean measure, in flat (= trimmed) coordinates; whole flat if unset.
  std::optional<Section> stats_region;
  // Flat pixels with stored value ≤ floor (before normalisation) or non-finite → kDqLowFlat,
  // data not divided there. kClippedMean also leaves them (and DQ-flagged pixels) out.
  double floor = 0.0;
};

struct RecipeOptions {
  OverscanOptions overscan;
  std::optional<Section> trim;  // TRIMSEC in raw coordinates; the whole frame if unset
  double gain = 1.0;            // e⁻/ADU (scalar; Masters::gain_map overrides), > 0
  double read_noise = 0.0;      // e⁻ (Masters::read_noise_map overrides), ≥ 0
  bool compute_variance = true;
  enum class Unit { kAdu, kElectron };
  Unit output_unit = Unit::kElectron;  // ccdproc's gain_correct at the end
  double saturation = std::numeric_limits<double>::infinity();  // raw ADU ≥ this → saturated
  // Each is used only when the master is given.
  bool subtract_bias = true;
  bool subtract_dark = true;
  bool divide_flat = true;
  bool scale_dark = true;  // dark × exptime / dark_exptime
  double exptime = std::numeric_limits<double>::quiet_NaN();  // frame exposure [s]
  FlatOptions flat;
  int band_rows = 64;  // rows per parallel work item (results do not depend on it)
};

// A flat ready to divide by: precomputed once per (flat, FlatOptions) and cacheable.
struct PreparedFlat {
  double norm = 1.0;             // the normalisation n (e.g. the flat's mean)
  Image<float> inverse;          // n / F, or 1 where the flat is low (≤ floor / non-finite)
  Image<float> norm_variance;    // σ_F² / n², 0 where low; empty when the flat has no variance
  Image<uint16_t> dq;            // the flat's DQ | kDqLowFlat; empty when all zero
  int64_t low_pixels = 0;        // how many pixels got kDqLowFlat
  int width() const { return inverse.width(); }
  int height() const { return inverse.height(); }
};

struct Masters {  // shared, immutable, cached by the store; any may be null
  std::shared_ptr<const CalibratedFrame> bias, dark, flat;  // ADU, trimmed shape
  // When set, used instead of `flat` (the server caches NormalizeFlat's result per flat+options).
  std::shared_ptr<const PreparedFlat> prepared_flat;
  double dark_exptime = std::numeric_limits<double>::quiet_NaN();  // the master dark's exposure [s]
  std::shared_ptr<const Image<float>> read_noise_map;  // e⁻, trimmed shape
  std::shared_ptr<const Image<float>> gain_map;        // e⁻/ADU, trimmed shape, all > 0
  std::shared_ptr<const Image<uint16_t>> bad_pixels;   // trimmed shape; nonzero → kDqBad
  // The bits of bad_pixels that are OR-ed into DQ as they are (0: a plain mask, only kDqBad;
  // 0xFFFF for a bad_pixels product whose values are DQ bits: hot, dead, no_data …).
  uint16_t bad_pixel_bits = 0;
};

struct FrameStats {
  // Of the result (output unit) over pixels with dq == 0. The median is estimated from a
  // regular grid sample of at most 2^16 of them; mean and std are exact (double).
  double median = 0, mean = 0, stddev = 0;
  int64_t pixels = 0;            // output pixels
  int64_t flagged = 0;           // with any DQ bit
  double flagged_fraction = 0;
  int64_t saturated = 0, no_data = 0, low_flat = 0, bad = 0;
  double overscan_level = 0;     // mean of the overscan values subtracted (ADU); 0 if none
  double dark_scale = 0;         // s applied to the dark (0 if no dark)
  double flat_norm = 0;          // n used for the flat (0 if no flat)
  double gain = 0;               // scalar gain applied (mean of gain_map if a map)
  int width = 0, height = 0;     // output shape
};

// Checks the options against a raw frame of this shape and the masters: sections inside the
// frame, overscan region not empty, polynomial order, gain > 0, read noise ≥ 0, masters'
// shapes equal to the trimmed shape, dark exposure > 0 and frame exposure ≥ 0 when scaling,
// flat value > 0. INVALID_ARGUMENT naming what is wrong.
absl::Status Validate(const RecipeOptions& options, const Masters& masters, int raw_width,
                      int raw_height);

// Runs the recipe. Output planes come from `buffers` when given. The output header holds the
// recipe's cards (see core/calib/keywords.h); the overload taking a RawFrame starts from a copy
// of the raw header. `stats`, when given, is filled.
absl::StatusOr<CalibratedFrame> Calibrate(const RawImage& raw, const Masters& masters,
                                          const RecipeOptions& options,
                                          ThreadPool* pool = nullptr,
                                          BufferPool* buffers = nullptr,
                                          FrameStats* stats = nullptr);
absl::StatusOr<CalibratedFrame> Calibrate(const RawFrame& raw, const Masters& masters,
                                          const RecipeOptions& options,
                                          ThreadPool* pool = nullptr,
                                          BufferPool* buffers = nullptr,
                                          FrameStats* stats = nullptr);

// ---- The parts Calibrate is made of that are useful on their own. ----
// (Calibrate's arithmetic itself lives only in its fused row kernel; there is no step-at-a-time
// copy of it. tests/calib/recipe_test.cc checks the kernel against the formulas above.)

// The overscan values: one per line of the region (per row: lines are rows region.y0..y1-1;
// per column: columns region.x0..x1-1), after the fit; for kWhole every value is the same.
struct OverscanModel {
  bool per_row = true;          // false: per column
  int first_line = 0;           // raw row (per row) or raw column (per column) of values[0]
  std::vector<double> values;   // empty when statistic == kNone
  // kPolynomial: c0 + c1·t + c2·t² + …, t = (i − poly_center) / poly_scale, i = line − first_line
  // (the fit runs on t in [−1, 1] for conditioning; the same polynomial in i as ccdproc's).
  std::vector<double> coefficients;
  double poly_center = 0, poly_scale = 1;
  double Level() const;         // mean of values (0 when empty)
  // The value to subtract at raw pixel (x, y); lines outside the region are an error in
  // Validate, so callers only ask for covered lines.
  double At(int x, int y) const {
    if (values.empty()) return 0.0;
    return values[(per_row ? y : x) - first_line];
  }
};
// Whether the per-line overscan values run along rows (true) or columns, per `options.axis`.
bool OverscanPerRow(const OverscanOptions& options);
absl::StatusOr<OverscanModel> MeasureOverscan(const RawImage& raw, const OverscanOptions& options,
                                              ThreadPool* pool = nullptr);

// The flat normalisation n of FlatOptions (mean, clipped mean over stats_region, or value).
// INVALID_ARGUMENT "NaN flat" when it is not finite or ≤ 0.
absl::StatusOr<double> FlatNormalization(const CalibratedFrame& flat, const FlatOptions& options);
// FlatNormalization + the per-pixel inverse, normalised variance and low-flat DQ.
absl::StatusOr<PreparedFlat> NormalizeFlat(const CalibratedFrame& flat, const FlatOptions& options,
                                           ThreadPool* pool = nullptr,
                                           BufferPool* buffers = nullptr);

}  // namespace calibd::calib

#endif  // CALIBD_CORE_CALIB_RECIPE_H_
