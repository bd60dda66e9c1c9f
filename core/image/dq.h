// The data-quality (DQ) bits of a calibrated frame: one registry for the whole project.
//
//   dq.at(x, y) |= kDqSaturated;
//   for (const DqBitInfo& bit : DqBitRegistry()) std::cout << bit.bit << " " << bit.name;
//
// A pixel with any bit set is masked (astropy CCDData's boolean MASK is dq != 0).
// Instruments may name further bits above kDqLastCoreBit in their detector spec.
//
// Thread safety: constants and a static, immutable table.
#ifndef CALIBD_CORE_IMAGE_DQ_H_
#define CALIBD_CORE_IMAGE_DQ_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace calibd {

enum DqBit : uint16_t {
  kDqBad = 1,            // known bad pixel (bad-pixel map, or bad in a master)
  kDqHot = 2,            // hot pixel: dark current far above the detector's
  kDqDead = 4,           // dead or cold pixel: response far below the flat's
  kDqSaturated = 8,      // raw value at or above the saturation level
  kDqCosmicRay = 16,     // cosmic-ray hit
  kDqNoData = 32,        // no data: non-finite value, or outside the illuminated area
  kDqNonLinear = 64,     // in the non-linear regime of the detector
  kDqRejected = 128,     // rejected by clipping while combining a master
  kDqLowFlat = 256,      // flat response at or below the floor: not divided by
  kDqLastCoreBit = kDqLowFlat,
};

struct DqBitInfo {
  uint16_t bit;
  absl::string_view name;         // short, snake_case: "saturated"
  absl::string_view description;  // one sentence
};

// Every core bit, in increasing order.
absl::Span<const DqBitInfo> DqBitRegistry();

}  // namespace calibd

#endif  // CALIBD_CORE_IMAGE_DQ_H_
