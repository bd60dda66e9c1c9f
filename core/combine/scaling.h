// Per-frame scale factors for combine (internal to core/combine): none, given, exposure
// ratios, or the inverse of each frame's mean or exact median over the scale section (valid
// pixels only: DQ & dq_mask == 0 and finite), read band by band through the workspace.
//
//   ASSIGN_OR_RETURN(std::vector<double> f, ScaleFactors(inputs, options, ws));
//   // f[i] multiplies every value of frame i.
//
// Errors are INVALID_ARGUMENT naming the frame (no numeric exposure card, no valid pixel in the
// section, a non-positive level), or the source's own read error annotated with its name.
//
// Thread safety: uses the whole workspace; call before the band kernels run.
#ifndef CALIBD_CORE_COMBINE_SCALING_H_
#define CALIBD_CORE_COMBINE_SCALING_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/combine/combine.h"
#include "core/combine/workspace.h"

namespace calibd::combine::internal {

// `inputs` are validated (ValidateOptions) and of one shape; for median scaling the
// workspace holds a histogram.
absl::StatusOr<std::vector<double>> ScaleFactors(std::vector<std::unique_ptr<FrameSource>>& inputs,
                                                 const CombineOptions& options, Workspace& ws);

}  // namespace calibd::combine::internal

#endif  // CALIBD_CORE_COMBINE_SCALING_H_
