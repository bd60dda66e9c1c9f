#include "core/image/dq.h"

namespace calibd {

absl::Span<const DqBitInfo> DqBitRegistry() {
  static constexpr DqBitInfo kBits[] = {
      {kDqBad, "bad", "known bad pixel (bad-pixel map, or bad in a master)"},
      {kDqHot, "hot", "hot pixel: dark current far above the detector's"},
      {kDqDead, "dead", "dead or cold pixel: response far below the flat's"},
      {kDqSaturated, "saturated", "raw value at or above the saturation level"},
      {kDqCosmicRay, "cosmic_ray", "cosmic-ray hit"},
      {kDqNoData, "no_data", "no data: non-finite value, or outside the illuminated area"},
      {kDqNonLinear, "non_linear", "in the non-linear regime of the detector"},
      {kDqRejected, "rejected", "rejected by clipping while combining a master"},
      {kDqLowFlat, "low_flat", "flat response at or below the floor: not divided by"},
  };
  return kBits;
}

}  // namespace calibd
