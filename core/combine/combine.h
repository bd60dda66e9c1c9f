// Combine: build a master (bias, dark, flat, ...) from a stack of frames — mean, median or sum,
// with threshold, extrema and sigma clipping, per-frame scaling and weights, DQ-aware — in row
// bands whose height follows a memory budget, so memory is bounded by the budget, not by the
// number of frames.
//
//   std::vector<std::unique_ptr<combine::FrameSource>> inputs;
//   for (const std::string& path : paths) {
//     ASSIGN_OR_RETURN(auto source, combine::FitsSource(path, {}));
//     inputs.push_back(std::move(source));
//   }
//   combine::CombineOptions options;              // median, 3σ/3σ clip around the median,
//   options.memory_budget_bytes = 512 << 20;      // iterated until stable
//   ASSIGN_OR_RETURN(combine::CombineResult master,
//                    combine::Combine(std::move(inputs), options, &pool, &buffers));
//   // master.frame: data, variance, dq; master.count: frames used per pixel.
//
// How the stack is read: each input is opened once (by its FrameSource) and read band after
// band, top to bottom, so every input byte is read once; a frame already in memory
// (FrameSource::in_memory, e.g. MemorySource) is read in place, not copied into a band. The band height is the largest that
// keeps the working buffers (N bands of data, plus variance and DQ where needed) within
// `memory_budget_bytes`, capped at ~24 MB of band data or 32 rows, whichever is larger
// (larger bands stop paying: they fall out of the last-level cache between read and combine).
// Scaling by a median or mean needs each frame's statistic first: that costs extra reads of
// the statistics section of every frame — one for the mean, two for the median (an exact
// radix select over the float bits, in a 256 KiB histogram whatever the frame size). The
// output (data, variance, dq, count: 12 bytes per pixel) is allocated once and is not part of
// the budget.
//
// Small stacks (2..32 inputs) run sorting networks unrolled at compile time in registers; a
// plain median (no clipping) keeps each pixel's values in registers from gather to output
// (core/combine/fixed_networks.h). Results are the same bits as the general kernels'.
//
// Per pixel, in this order (values of masked inputs are never counted):
//   1. an input value is masked when its DQ is nonzero (any bit in `dq_mask`) or it is not
//      finite;
//   2. absolute thresholds: values < min_value or > max_value (before scaling, like ccdproc's
//      minmax_clipping) are rejected;
//   3. values are multiplied by the frame's scale factor;
//   4. extrema clipping: the nlow lowest and nhigh highest surviving values are rejected;
//   5. sigma clipping around the mean or median with std or MAD-std, `max_iters` times or until
//      nothing changes (a rejected value is never taken back, as astropy's sigma_clip does);
//   6. the mean (weighted by `weights`), median or sum of the survivors.
// A pixel left with no value gets `empty_value`, count 0 and DQ kDqNoData (no input had valid
// data) or kDqRejected (every valid value was clipped).
//
// Agreement with astropy ccdproc 2.4 (`ccdproc.combine`): mean/median/sum, one sigma-clip
// iteration (its default) with centre mean|median and spread std|mad_std, extrema clipping,
// min/max clipping, given scale factors and 1-D weights reproduce its data and uncertainty to
// float32 precision. Where ccdproc 2.4 differs, on purpose:
//   - ccdproc's sigma_clipping replaces the mask built so far (input masks, extrema and min/max
//     rejections are forgotten); here rejections only accumulate.
//   - ccdproc clips extrema and sigma on unscaled values; here on scaled values (what flats of
//     different levels need). Thresholds are on unscaled values in both.
//   - ccdproc's extrema clip counts masked values among the nlow/nhigh; here only survivors.
//   - ccdproc's weighted mean divides by the sum of all weights, rejected frames included; here
//     by the sum of the survivors' weights. Weights do not apply to the median (as in ccdproc).
//   - 1/median and 1/mean scaling use the frame's valid (DQ-clean, finite) pixels; a ccdproc
//     scale function sees every pixel.
// Arithmetic: values are float32 as stored; clipping statistics are float32 sums shifted by a
// per-pixel pivot (a survivor, or the median), final means and spreads float64 (sorted path)
// or pivot-shifted float32 (mean/std path) — agreement with ccdproc's float64 is ~1e-7
// relative; a value within that distance of a clipping bound may fall the other way.
// Output variance, Variance::kCcdproc (σ² of ccdproc's StdDevUncertainty): mean → std²/n,
// median → (1.4826·MAD)²/n, sum → std²·n, std with ddof 0 over the n survivors (scaled).
// Variance::kPropagated uses the inputs' variance planes: mean → Σw²s²v/(Σw)², sum → Σw²s²v,
// median → (π/2)·Σs²v/n² (the median's asymptotic efficiency for Gaussian noise).
//
// Thread safety: Combine is reentrant; it uses `pool` for both cores (ParallelFor over the
// pixels of a band, and over the inputs when reading a band). A FrameSource is used by one
// thread at a time. The `cancelled` flag may be set from any thread while Combine runs.
#ifndef CALIBD_CORE_COMBINE_COMBINE_H_
#define CALIBD_CORE_COMBINE_COMBINE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/fits/fits.h"
#include "core/image/buffer_pool.h"
#include "core/image/frame.h"
#include "core/image/header.h"
#include "core/image/image.h"
#include "core/parallel/thread_pool.h"

namespace calibd::combine {

// A source of row bands of one input frame: data, and optionally variance and DQ.
// Combine reads each row once, bands in increasing order; scaling by a median or mean first
// reads the statistics section's rows once more (twice for a median that does not fit in the
// budget). Rows may therefore be requested again and out of order.
class FrameSource {
 public:
  virtual ~FrameSource();

  virtual int width() const = 0;
  virtual int height() const = 0;
  virtual const Header& header() const = 0;
  // Rows [y0, y0 + rows) into data[rows * width()], and likewise variance (ADU², or the unit's
  // square) and dq when non-null. Asking for variance or DQ the source does not have is
  // FAILED_PRECONDITION; rows out of range INVALID_ARGUMENT.
  virtual absl::Status ReadRows(int y0, int rows, float* data, float* variance,
                                uint16_t* dq) = 0;
  virtual bool has_variance() const = 0;
  virtual bool has_dq() const = 0;
  // A name for error messages (the file path, or "memory frame #i").
  virtual std::string name() const = 0;
  // The whole frame when it is already in memory: Combine then reads its rows in place instead
  // of copying them into band buffers (ReadRows is not called). nullptr by default.
  virtual const CalibratedFrame* in_memory() const { return nullptr; }
};

// A frame already in memory (tests, small stacks, frames just calibrated). No copy: Combine
// reads its rows in place (FrameSource::in_memory).
std::unique_ptr<FrameSource> MemorySource(std::shared_ptr<const CalibratedFrame> frame,
                                          std::string name = "memory frame");

// OK, or CANCELLED ("the build was cancelled") once `*cancelled` is true; nullptr is never
// cancelled. The one test of a build's cancel flag, between bands (Combine, CancellableSource,
// server/noise_build.cc).
absl::Status CheckNotCancelled(const std::atomic<bool>* cancelled);

// `source`, whose ReadRows fails with CANCELLED (reading nothing) once `*cancelled` is true: how
// a reader that is not Combine (the noise builds of core/noise) stops between bands when the
// build is cancelled. Everything else is forwarded, in_memory() too (Combine, which then skips
// ReadRows, checks the flag itself). `cancelled` may be nullptr (never cancelled) and must
// outlive the returned source.
std::unique_ptr<FrameSource> CancellableSource(std::unique_ptr<FrameSource> source,
                                               const std::atomic<bool>* cancelled);

// A FITS file in calibd's calibrated layout (core/fits/fits.h): the data HDU chosen by
// `options`, plus the UNCERT (standard deviation → variance) and DQ HDUs when present (MASK
// without DQ gives kDqBad). Opened once with fits::BandReader; errors as fits::BandReader::Open.
absl::StatusOr<std::unique_ptr<FrameSource>> FitsSource(const std::string& path,
                                                        const fits::ReadOptions& options = {});

struct CombineOptions {
  enum class Method { kMean, kMedian, kSum };
  Method method = Method::kMedian;

  // 2. Absolute thresholds on unscaled values (ccdproc minmax_clip_min / minmax_clip_max).
  std::optional<double> min_value;
  std::optional<double> max_value;

  // 4. Extrema clipping (ccdproc clip_extrema nlow / nhigh). nlow + nhigh must be < N.
  int nlow = 0;
  int nhigh = 0;

  // 5. Sigma clipping. The default: 3σ/3σ around the median, std, until stable.
  enum class Center { kMean, kMedian };
  enum class Spread { kStd, kMadStd };  // MAD-std = 1.482602218505602 · median(|x − median|)
  struct SigmaClip {
    bool enabled = true;
    double low = 3.0;    // reject x < centre − low·spread   (must be > 0)
    double high = 3.0;   // reject x > centre + high·spread  (must be > 0)
    Center center = Center::kMedian;
    Spread spread = Spread::kStd;
    int max_iters = 0;   // 0: until nothing changes; ccdproc's combine does 1
  };
  SigmaClip sigma_clip;

  // 3. Per-frame scaling: every value of frame i is multiplied by scale_factors()[i].
  enum class Scale {
    kNone,           // 1
    kGiven,          // `scale_factors`, one per input, finite and > 0
    kInverseMedian,  // 1 / median of the frame over `scale_section` (valid pixels only)
    kInverseMean,    // 1 / mean of the frame over `scale_section` (valid pixels only)
    kExposure,       // exposure_reference / header[exposure_key] (output EXPTIME = reference)
  };
  Scale scale = Scale::kNone;
  std::vector<double> scale_factors;
  std::string scale_section;            // FITS notation, e.g. "[100:900,100:900]"; "" = all
  std::string exposure_key = "EXPTIME";
  double exposure_reference = 0;        // 0: the first input's exposure

  // Per-frame weights for the mean (and sum), one per input, finite and >= 0; empty = equal.
  std::vector<double> weights;

  enum class Variance {
    kCcdproc,     // from the spread of the survivors, as ccdproc's uncertainty
    kPropagated,  // from the inputs' variance planes (every input must have one)
    kNone,        // no variance plane in the result
  };
  Variance variance = Variance::kCcdproc;

  // Inputs' DQ bits that mask a value (a value with dq & dq_mask != 0 is never counted).
  uint16_t dq_mask = 0xFFFF;
  // Data of a pixel with no surviving value (its DQ says why).
  float empty_value = 0.0f;

  // Bytes of working buffers (input bands and scratch); the band height follows from it.
  // Too small for a single row of every input → RESOURCE_EXHAUSTED naming the minimum.
  int64_t memory_budget_bytes = int64_t{256} << 20;
};

struct CombineResult {
  // data, variance (unless Variance::kNone), dq (kDqNoData / kDqRejected where no value
  // survived, else 0); the header is the first input's with NCOMBINE and the options recorded.
  CalibratedFrame frame;
  Image<uint16_t> count;               // values used per pixel
  double rejected_fraction = 0;        // values clipped / valid values offered
  double masked_fraction = 0;          // values masked by DQ or non-finite / all values
  std::vector<double> scale_factors;   // the factor applied to each input (1 when none)
  // How the work was cut (for tests, metrics and logs).
  int band_rows = 0;                   // rows per band
  int num_bands = 0;
  int64_t working_bytes = 0;           // peak bytes of working buffers (<= the budget)
};

// Checks `options` against a stack of `num_inputs` frames: INVALID_ARGUMENT naming the field
// (unknown enum value, nlow + nhigh >= N, thresholds <= 0, wrong number of weights or scale
// factors, non-finite or negative values, min_value > max_value, empty stack).
absl::Status ValidateOptions(const CombineOptions& options, int num_inputs);

// Combines the inputs (all the same shape, else INVALID_ARGUMENT naming the first frame that
// differs). Errors reading a source are returned annotated with its name(). When `cancelled`
// is set (by another thread: a client that went away, a deadline), Combine stops before the
// next band or statistics pass and returns CANCELLED; nothing it made is kept.
absl::StatusOr<CombineResult> Combine(std::vector<std::unique_ptr<FrameSource>> inputs,
                                      const CombineOptions& options, ThreadPool* pool = nullptr,
                                      BufferPool* buffers = nullptr,
                                      const std::atomic<bool>* cancelled = nullptr);

// The band height Combine would use for N inputs of this width (0 if not even one row fits).
int PlanBandRows(const CombineOptions& options, int num_inputs, int width, int height,
                 bool read_variance, bool read_dq);

// Names used in the API, CLI and headers: "mean" | "median" | "sum"; "none" | "given" |
// "median" | "mean" | "exposure"; "mean" | "median" (centre); "std" | "mad_std".
absl::StatusOr<CombineOptions::Method> ParseMethod(absl::string_view name);
absl::string_view MethodName(CombineOptions::Method method);
absl::StatusOr<CombineOptions::Scale> ParseScale(absl::string_view name);
absl::string_view ScaleName(CombineOptions::Scale scale);

// The effective options in one line, as Combine writes them into the HISTORY card and a
// master's provenance should record them: "method=median sigma=3/3 cen=median dev=mad_std
// iters=0 scale=none" (clipping, thresholds and weights only when they apply).
std::string OptionsSummary(const CombineOptions& options);

}  // namespace calibd::combine

#endif  // CALIBD_CORE_COMBINE_COMBINE_H_
