#include "core/calib/keywords.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calibd::calib {
namespace {

std::string StatisticName(OverscanOptions::Statistic s) {
  switch (s) {
    case OverscanOptions::Statistic::kNone: return "none";
    case OverscanOptions::Statistic::kMean: return "mean";
    case OverscanOptions::Statistic::kMedian: return "median";
    case OverscanOptions::Statistic::kClippedMean: return "clipped-mean";
  }
  return "?";
}

std::string FitName(const OverscanOptions& o) {
  switch (o.fit) {
    case OverscanOptions::Fit::kWhole: return "whole-region";
    case OverscanOptions::Fit::kPolynomial:
      return absl::StrCat("poly", o.poly_order, OverscanPerRow(o) ? " per-row" : " per-column");
    case OverscanOptions::Fit::kPerLine:
      return OverscanPerRow(o) ? "per-row" : "per-column";
  }
  return "?";
}

}  // namespace

void AddRecipeCards(const RecipeOptions& options, const Masters& masters,
                    const FrameStats& stats, Header& header) {
  const OverscanOptions& os = options.overscan;
  if (os.statistic != OverscanOptions::Statistic::kNone) {
    const std::string what = absl::StrCat(StatisticName(os.statistic), " ", FitName(os));
    header.Set(kKeyOverscan, what, "overscan statistic and fit");
    header.Set(kKeyOverscanLevel, stats.overscan_level, "mean overscan level subtracted [adu]");
    header.Set(kKeyBiasSec, FormatFitsSection(os.region), "overscan region (raw coordinates)");
    header.AddHistory(absl::StrFormat("calibd: overscan %s over %s, level %.3f adu", what,
                                      FormatFitsSection(os.region), stats.overscan_level));
  }
  if (options.trim.has_value()) {
    header.Set(kKeyTrimSec, FormatFitsSection(*options.trim), "trim section (raw coordinates)");
    header.AddHistory(absl::StrCat("calibd: trimmed to ", FormatFitsSection(*options.trim)));
  }
  if (options.compute_variance) {
    header.Set(kKeyVariance, true, "variance plane: ccdproc create_deviation");
    if (masters.read_noise_map) {
      header.Set(kKeyReadNoise, "map", "read noise per pixel (map)");
    } else {
      header.Set(kKeyReadNoise, options.read_noise, "read noise [electron]");
    }
    header.AddHistory(absl::StrCat(
        "calibd: variance = (g*max(D,0) + RN^2)/g^2 from the trimmed data, RN ",
        masters.read_noise_map ? "map" : absl::StrFormat("%g e-", options.read_noise)));
  }
  if (options.subtract_bias && masters.bias) {
    header.Set(kKeyBias, true, "master bias subtracted");
    header.AddHistory("calibd: master bias subtracted");
  }
  if (options.subtract_dark && masters.dark) {
    header.Set(kKeyDark, true, "master dark subtracted");
    header.Set(kKeyDarkScale, stats.dark_scale, "dark scale (exptime / dark exptime)");
    header.AddHistory(absl::StrFormat("calibd: master dark subtracted, scaled by %.6g",
                                      stats.dark_scale));
  }
  if (options.divide_flat && (masters.flat || masters.prepared_flat)) {
    header.Set(kKeyFlat, true, "divided by the normalised master flat");
    header.Set(kKeyFlatNorm, stats.flat_norm, "flat normalisation");
    header.Set(kKeyFlatFloor, options.flat.floor, "flat floor: at or below not divided");
    header.AddHistory(absl::StrFormat(
        "calibd: flat divided, normalisation %.6g, pixels <= %g flagged low_flat",
        stats.flat_norm, options.flat.floor));
  }
  if (masters.bad_pixels) {
    header.Set(kKeyBadPixels, true, "bad-pixel map applied to DQ");
    header.AddHistory("calibd: bad-pixel map OR-ed into DQ");
  }
  if (masters.gain_map) {
    header.Set(kKeyGain, "map", "gain per pixel [electron/adu] (map)");
  } else {
    header.Set(kKeyGain, options.gain, "gain [electron/adu]");
  }
  const bool electrons = options.output_unit == RecipeOptions::Unit::kElectron;
  header.Set(kKeyGainApplied, electrons, "data multiplied by the gain");
  if (electrons) header.AddHistory("calibd: gain applied, data in electron");
  header.Set(kKeyUnit, electrons ? "electron" : "adu", "unit of the data");
  if (std::isfinite(options.saturation)) {
    header.Set(kKeySaturation, options.saturation, "saturation level [adu]");
  }
}

}  // namespace calibd::calib
