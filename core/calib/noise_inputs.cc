// Noise products → recipe inputs (noise_inputs.h).
#include "core/calib/noise_inputs.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace calibd::calib {
namespace {

bool PositiveFinite(double v) { return v > 0 && std::isfinite(v); }

}  // namespace

absl::StatusOr<CalibratedFrame> DarkElectronsToAdu(const CalibratedFrame& dark_e, double em_gain,
                                                   double gain, const Image<float>* gain_map,
                                                   ThreadPool* pool) {
  if (!PositiveFinite(em_gain)) {
    return absl::InvalidArgumentError(absl::StrCat("EM gain must be finite and > 0, got ", em_gain));
  }
  if (gain_map == nullptr && !PositiveFinite(gain)) {
    return absl::InvalidArgumentError(absl::StrCat("gain must be finite and > 0, got ", gain));
  }
  const int w = dark_e.width(), h = dark_e.height();
  if (dark_e.data.empty()) return absl::InvalidArgumentError("the synthesized dark is empty");
  if (gain_map != nullptr && (gain_map->width() != w || gain_map->height() != h)) {
    return absl::InvalidArgumentError(absl::StrCat("the gain map is ", gain_map->width(), "x",
                                                   gain_map->height(), ", the dark ", w, "x", h));
  }
  if (dark_e.has_variance() && (dark_e.variance.width() != w || dark_e.variance.height() != h)) {
    return absl::InvalidArgumentError("the synthesized dark's variance has another shape");
  }
  CalibratedFrame out;
  out.header = dark_e.header;
  out.unit = "adu";
  out.data = Image<float>::Allocate(w, h);
  if (dark_e.has_variance()) out.variance = Image<float>::Allocate(w, h);
  if (dark_e.has_dq()) out.dq = dark_e.dq.Clone();
  const double scalar = em_gain / gain;
  ParallelFor(pool, h, 16, [&](int64_t y0, int64_t y1) {
    for (int64_t i = y0 * w; i < y1 * w; ++i) {
      const double f = gain_map != nullptr ? em_gain / gain_map->data()[i] : scalar;
      out.data.data()[i] = static_cast<float>(dark_e.data.data()[i] * f);
      if (dark_e.has_variance()) {
        out.variance.data()[i] = static_cast<float>(dark_e.variance.data()[i] * f * f);
      }
    }
  });
  out.header.Set("BUNIT", "adu", "converted from electron: x EM gain / gain");
  return out;
}

absl::StatusOr<Image<float>> GainMapFromSections(int width, int height,
                                                 const std::vector<SectionGain>& sections,
                                                 double outside) {
  if (!PositiveFinite(outside)) {
    return absl::InvalidArgumentError(absl::StrCat("gain must be finite and > 0, got ", outside));
  }
  for (const SectionGain& s : sections) {
    if (!s.section.InFrame(width, height)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gain section ", FormatFitsSection(s.section), " is outside the ", width, "x", height,
          " frame"));
    }
    if (!PositiveFinite(s.gain)) {
      return absl::InvalidArgumentError(absl::StrCat("gain of section ",
                                                     FormatFitsSection(s.section),
                                                     " must be finite and > 0, got ", s.gain));
    }
  }
  Image<float> map = Image<float>::Allocate(width, height);
  for (int y = 0; y < height; ++y) {
    float* row = map.data() + int64_t{y} * width;
    for (int x = 0; x < width; ++x) {
      double g = outside;
      for (const SectionGain& s : sections) {
        if (x >= s.section.x0 && x < s.section.x1 && y >= s.section.y0 && y < s.section.y1) {
          g = s.gain;
          break;
        }
      }
      row[x] = static_cast<float>(g);
    }
  }
  return map;
}

}  // namespace calibd::calib
