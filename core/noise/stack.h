// The shared machinery of core/noise (not a public API): per-pixel statistics of groups of
// frames read band by band through combine::FrameSource, per-pixel weighted least squares with
// up to three parameters, header numbers with messages that say what to supply, and robust
// map statistics.
//
//   internal::GroupStats stats;
//   RETURN_IF_ERROR(internal::AccumulateBand(group, y0, rows, options, true, pool, &stats));
//   double mean = stats.mean[i], var_of_mean = stats.VarianceOfMean(i, true);
//
// Thread safety: functions are reentrant; a GroupStats belongs to one caller.
#ifndef CALIBD_CORE_NOISE_STACK_H_
#define CALIBD_CORE_NOISE_STACK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/combine/combine.h"
#include "core/noise/noise.h"
#include "core/parallel/thread_pool.h"

namespace calibd::noise::internal {

using Group = std::vector<combine::FrameSource*>;

// Per-pixel Welford statistics of one group over one band (values × gain, variance × gain²).
struct GroupStats {
  int frames = 0;               // frames in the group
  bool input_variance = false;  // every frame had a variance plane (var_sum filled)
  std::vector<double> mean;     // of the valid values
  std::vector<double> m2;       // Σ (x − mean)² of the valid values
  std::vector<double> var_sum;  // Σ input variance of the valid values
  std::vector<uint16_t> count;  // valid values

  // Sample variance (ddof 1); NaN for fewer than 2 values.
  double SampleVariance(size_t i) const;
  // The variance of the mean: Σv/n² (input variance, when asked for and present) or s²/n.
  double VarianceOfMean(size_t i, bool use_input_variance) const;
};

// Rows [y0, y0 + rows) of every frame of `group` into `out` (reset first). Reads the variance
// plane when `want_variance` and every frame has one.
absl::Status AccumulateBand(const Group& group, int y0, int rows, const StackOptions& options,
                            bool want_variance, ThreadPool* pool, GroupStats* out);

// Every frame has the first one's shape: INVALID_ARGUMENT naming the first that differs.
// Also rejects an empty list, naming `what` ("biases") and `at_least`.
absl::Status CheckStack(const Group& frames, absl::string_view what, int at_least);

// Rows per band so that `bytes_per_pixel` of scratch for each pixel of a band stays within
// `budget` (at least 1, at most `height`).
int PlanBandRows(int64_t budget, int width, int height, int64_t bytes_per_pixel);

// A numeric header value of a frame: INVALID_ARGUMENT naming the frame and the keyword when it
// is missing or not a number, saying what to supply (`what`, e.g. "the exposure time").
absl::StatusOr<double> HeaderNumber(const combine::FrameSource& frame, absl::string_view key,
                                    absl::string_view what);

// Weighted least squares y = X·β with p <= 3 parameters over m points (X row-major m×p):
// β, the covariance (XᵀWX)⁻¹ (p×p row-major) and χ² = Σw(y − Xβ)². Columns are scaled before
// the Cholesky solve. False when XᵀWX is singular (rank < p).
bool SolveWls(int p, int m, const double* x, const double* y, const double* w, double* beta,
              double* cov, double* chi2);

// Median and robust σ (1.4826·MAD) of the finite values; NaN when there are none.
double FiniteMedian(absl::Span<const float> values);
double RobustSigma(absl::Span<const float> values, double median);

// Every non-finite map value becomes 0 (the store's rule: masters are finite, bad pixels are
// flagged in DQ — each product has flagged them already).
void ZeroNonFinite(NoiseProduct* product);

// Distinct values (relative tolerance 1e-6) of `values`, ascending; `index[i]` = the group of i.
std::vector<double> DistinctValues(absl::Span<const double> values, std::vector<int>* index);

}  // namespace calibd::noise::internal

#endif  // CALIBD_CORE_NOISE_STACK_H_
