// GroupFit: the per-pixel weighted least-squares fit of sub-stack means against a design that
// is the same for every pixel (one row per sub-stack) — dark current (signal = I + t·D) and
// the EMCCD noise model (mean = F + g·t·D + g·C) are both this. Streams the sub-stacks band by
// band (memory: the output planes plus ~30 bytes × sub-stacks per pixel of a band). Internal
// to core/noise.
//
//   internal::GroupFitSpec spec;
//   spec.groups = {{&a, &b}, {&c, &d}, {&e, &f}};   // frames of each sub-stack
//   spec.design = {1, 10, 1, 30, 1, 100};           // rows [1, t]
//   spec.p = 2;
//   internal::GroupFitOutput out = internal::GroupFitOutput::Allocate(2, w, h);
//   RETURN_IF_ERROR(internal::FitGroups(spec, options, pool, &out));
//
// Thread safety: reentrant; the frames are read by the calling thread.
#ifndef CALIBD_CORE_NOISE_GROUP_FIT_H_
#define CALIBD_CORE_NOISE_GROUP_FIT_H_

#include <vector>

#include "absl/status/status.h"
#include "core/image/image.h"
#include "core/noise/noise.h"
#include "core/noise/stack.h"

namespace calibd::noise::internal {

struct GroupFitSpec {
  std::vector<Group> groups;
  std::vector<double> design;  // groups.size() × p, row-major
  int p = 2;                   // 2 or 3
  int min_usable = 2;          // sub-stacks a pixel needs (>= p)
  bool weighted = true;        // 1/var(mean) weights; else equal weights, scatter errors
  bool use_input_variance = true;
};

struct GroupFitOutput {
  std::vector<Image<float>> beta;  // p planes
  std::vector<Image<float>> err;   // p planes: sqrt of the covariance's diagonal
  std::vector<Image<float>> cov;   // the off-diagonal covariances, (0,1), (0,2), (1,2)
  Image<float> adj_r2;
  Image<float> usable;    // usable sub-stacks per pixel
  Image<uint16_t> unfit;  // 1 where the pixel could not be fitted

  static GroupFitOutput Allocate(int p, int width, int height);
};

// INVALID_ARGUMENT when the design has rank < p; reading errors as AccumulateBand.
absl::Status FitGroups(const GroupFitSpec& spec, const StackOptions& options, ThreadPool* pool,
                       GroupFitOutput* out);

}  // namespace calibd::noise::internal

#endif  // CALIBD_CORE_NOISE_GROUP_FIT_H_
