// What the recipe records in a calibrated frame's header: one keyword per applied step plus a
// HISTORY line each, so the output says every step it went through. The server adds the
// masters' versions and sha256 (its own keywords); these are the step cards only.
//
//   Header h;
//   calib::AddRecipeCards(options, masters, stats, h);
//   // CALOVSCN = 'median per-row'   / overscan statistic and fit
//   // OVSCLVL  = 1000.23            / mean overscan level subtracted [adu]
//   // BIASSEC  = '[65:72,1:48]'     / overscan region (raw coordinates)
//   // TRIMSEC  = '[1:64,1:48]'      / trim section (raw coordinates)
//   // CALVAR   = T                  / variance plane: ccdproc create_deviation
//   // RDNOISE  = 5.0                / read noise [electron] (or 'map')
//   // CALBIAS  = T                  / master bias subtracted
//   // CALDARK  = T,  DARKSCL = 3.0  / master dark subtracted, scale exptime/dark_exptime
//   // CALFLAT  = T,  FLATNORM = 20012.4, FLATFLOR = 0.0
//   // GAIN     = 1.5, CALGAIN = T   / data multiplied by gain
//   // BUNIT    = 'electron'
//   // SATURATE = 65535.0
//   // HISTORY calibd: overscan median per-row over [65:72,1:48], level 1000.23 adu
//   // ...
//
// Thread safety: pure functions; constants.
#ifndef CALIBD_CORE_CALIB_KEYWORDS_H_
#define CALIBD_CORE_CALIB_KEYWORDS_H_

#include "core/calib/recipe.h"
#include "core/image/header.h"

namespace calibd::calib {

inline constexpr char kKeyOverscan[] = "CALOVSCN";      // string: statistic and fit
inline constexpr char kKeyOverscanLevel[] = "OVSCLVL";  // double [adu]
inline constexpr char kKeyBiasSec[] = "BIASSEC";        // string, FITS section
inline constexpr char kKeyTrimSec[] = "TRIMSEC";        // string, FITS section
inline constexpr char kKeyVariance[] = "CALVAR";        // bool
inline constexpr char kKeyReadNoise[] = "RDNOISE";      // double [electron] or 'map'
inline constexpr char kKeyBias[] = "CALBIAS";           // bool
inline constexpr char kKeyDark[] = "CALDARK";           // bool
inline constexpr char kKeyDarkScale[] = "DARKSCL";      // double
inline constexpr char kKeyFlat[] = "CALFLAT";           // bool
inline constexpr char kKeyFlatNorm[] = "FLATNORM";      // double
inline constexpr char kKeyFlatFloor[] = "FLATFLOR";     // double
inline constexpr char kKeyGain[] = "GAIN";              // double [electron/adu] or 'map'
inline constexpr char kKeyGainApplied[] = "CALGAIN";    // bool
inline constexpr char kKeyUnit[] = "BUNIT";             // 'adu' or 'electron'
inline constexpr char kKeySaturation[] = "SATURATE";    // double [adu], when finite
inline constexpr char kKeyBadPixels[] = "CALBPM";       // bool: bad-pixel map applied

// Appends the cards and HISTORY lines for the steps `options` and `masters` apply (the same
// decisions Calibrate makes), with the values from `stats` (overscan level, dark scale, flat
// normalisation). Existing cards with these keywords are replaced.
void AddRecipeCards(const RecipeOptions& options, const Masters& masters,
                    const FrameStats& stats, Header& header);

}  // namespace calibd::calib

#endif  // CALIBD_CORE_CALIB_KEYWORDS_H_
