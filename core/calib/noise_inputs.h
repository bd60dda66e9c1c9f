// What the recipe takes from the noise products (core/noise): a dark synthesized in electrons
// turned into the ADU master dark the fused kernel subtracts, and a per-amplifier gain map.
// The products themselves are read elsewhere (server/noise_calibration.h); these are the
// arithmetic, kept here so it lives in one place next to the recipe that uses it.
//
//   // A synthesized dark (e⁻, made for frames divided by the EM gain: F/g + t·D + C) for a
//   // frame of EM gain 10 read out at 2 e⁻/ADU:
//   ASSIGN_OR_RETURN(CalibratedFrame dark_adu,
//                    calib::DarkElectronsToAdu(dark_e, /*em_gain=*/10, /*gain=*/2.0,
//                                              /*gain_map=*/nullptr, &pool));
//   masters.dark = std::make_shared<const CalibratedFrame>(std::move(dark_adu));
//   masters.dark_exptime = exptime;   // made for this exposure: scale 1
//
//   // Gains per amplifier (sections in calibrated, i.e. trimmed, coordinates):
//   ASSIGN_OR_RETURN(Image<float> map,
//       calib::GainMapFromSections(64, 48, {{left, 1.5}, {right, 2.0}}, /*outside=*/1.5));
//
// The math. A raw frame in ADU, overscan- and bias-subtracted, holds on average
//   K_adu = g_em · K_e / k          (k the gain in e⁻/ADU, g_em the EM gain, 1 without one)
// where K_e is the dark in electrons of a frame divided by the EM gain — corgidrp's
// F/g + t·D + C for a noise_model, t·D for a dark_current product (g·t·D + g·C + F electrons
// come out of the EM register; the recipe works in ADU before the gain step). So the dark is
// converted with the gain the recipe uses for the frame (the gain product's when one is used,
// per pixel with a gain map), exactly as a measured master dark in ADU is subtracted:
//   data K_adu = K_e · g_em / k,  variance σ²_adu = σ²_e · (g_em / k)²,  DQ unchanged.
//
// Thread safety: pure functions; `pool` may be shared.
#ifndef CALIBD_CORE_CALIB_NOISE_INPUTS_H_
#define CALIBD_CORE_CALIB_NOISE_INPUTS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "core/image/frame.h"
#include "core/image/image.h"
#include "core/image/section.h"
#include "core/parallel/thread_pool.h"

namespace calibd::calib {

// The ADU master dark for a dark in electrons (see above). `gain_map` (e⁻/ADU per pixel, the
// dark's shape, all > 0) replaces `gain` when given. INVALID_ARGUMENT for em_gain or gain not
// finite and > 0, a map of another shape, or an empty dark. The header is copied, BUNIT adu.
absl::StatusOr<CalibratedFrame> DarkElectronsToAdu(const CalibratedFrame& dark_e, double em_gain,
                                                   double gain, const Image<float>* gain_map,
                                                   ThreadPool* pool = nullptr);

struct SectionGain {
  Section section;  // calibrated (trimmed) coordinates
  double gain = 1;  // e⁻/ADU, > 0
};
// A width × height gain map: each pixel the gain of the first section holding it, else
// `outside`. INVALID_ARGUMENT for a section outside the frame or a gain not finite and > 0.
absl::StatusOr<Image<float>> GainMapFromSections(int width, int height,
                                                 const std::vector<SectionGain>& sections,
                                                 double outside);

}  // namespace calibd::calib

#endif  // CALIBD_CORE_CALIB_NOISE_INPUTS_H_
