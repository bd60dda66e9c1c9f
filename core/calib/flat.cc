// Flat normalisation (FlatNormalization) and the cacheable PreparedFlat (NormalizeFlat).
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/calib/recipe.h"
#include "core/calib/statistics.h"
#include "core/image/dq.h"
#include "core/status/macros.h"

namespace calibd::calib {
namespace {

absl::Status NanFlat(absl::string_view what, double value) {
  return absl::InvalidArgumentError(absl::StrCat(
      "NaN flat: the flat's normalisation (", what, ") is ", value,
      ", not a finite positive number; check the master flat (all-zero, NaN or negative "
      "pixels in the statistics section) or give a normalisation value"));
}

}  // namespace

absl::StatusOr<double> FlatNormalization(const CalibratedFrame& flat, const FlatOptions& options) {
  if (flat.data.empty()) {
    return absl::InvalidArgumentError("the master flat has no pixels");
  }
  if (options.norm == FlatOptions::Norm::kValue) {
    if (!(std::isfinite(options.value) && options.value > 0)) {
      return NanFlat("given value", options.value);
    }
    return options.value;
  }
  Section region = FullSection(flat.width(), flat.height());
  if (options.stats_region.has_value()) {
    region = *options.stats_region;
    if (!(region.x0 >= 0 && region.y0 >= 0 && region.x1 <= flat.width() &&
          region.y1 <= flat.height() && region.x0 < region.x1 && region.y0 < region.y1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "flat statistics section ", FormatFitsSection(region), " is empty or outside the ",
          flat.width(), "×", flat.height(), " flat"));
    }
  }
  if (options.norm == FlatOptions::Norm::kMean) {
    // ccdproc flat_correct: the plain mean of every pixel, in double.
    double sum = 0;
    for (int y = region.y0; y < region.y1; ++y) {
      const float* row = flat.data.row(y);
      double row_sum = 0;
      for (int x = region.x0; x < region.x1; ++x) row_sum += row[x];
      sum += row_sum;
    }
    const double mean = sum / (static_cast<double>(region.width()) * region.height());
    if (!(std::isfinite(mean) && mean > 0)) return NanFlat("mean", mean);
    return mean;
  }
  // Clipped mean over good pixels: finite, above the floor, no DQ bit.
  std::vector<double> values;
  values.reserve(static_cast<size_t>(region.width()) * region.height());
  for (int y = region.y0; y < region.y1; ++y) {
    const float* row = flat.data.row(y);
    const uint16_t* dq = flat.has_dq() ? flat.dq.row(y) : nullptr;
    for (int x = region.x0; x < region.x1; ++x) {
      const float v = row[x];
      if (!(v > options.floor) || !std::isfinite(v)) continue;
      if (dq != nullptr && dq[x] != 0) continue;
      values.push_back(v);
    }
  }
  const double mean = ClippedMean(absl::MakeSpan(values), 3.0, 10);
  if (!(std::isfinite(mean) && mean > 0)) return NanFlat("sigma-clipped mean", mean);
  return mean;
}

absl::StatusOr<PreparedFlat> NormalizeFlat(const CalibratedFrame& flat, const FlatOptions& options,
                                           ThreadPool* pool, BufferPool* buffers) {
  CALIBD_ASSIGN_OR_RETURN(const double norm, FlatNormalization(flat, options));
  const int w = flat.width();
  const int h = flat.height();
  if (flat.has_variance() && (flat.variance.width() != w || flat.variance.height() != h)) {
    return absl::InvalidArgumentError("the master flat's variance plane has another shape");
  }
  if (flat.has_dq() && (flat.dq.width() != w || flat.dq.height() != h)) {
    return absl::InvalidArgumentError("the master flat's DQ plane has another shape");
  }
  PreparedFlat out;
  out.norm = norm;
  out.inverse = Image<float>::Allocate(w, h, buffers);
  if (flat.has_variance()) out.norm_variance = Image<float>::Allocate(w, h, buffers);
  out.dq = Image<uint16_t>::Allocate(w, h, buffers);
  const double floor = options.floor;
  const double inv_norm2 = 1.0 / (norm * norm);
  std::vector<int64_t> low_per_row(h, 0);
  ParallelFor(pool, h, 64, [&](int64_t y0, int64_t y1) {
    for (int64_t yy = y0; yy < y1; ++yy) {
      const int y = static_cast<int>(yy);
      const float* f = flat.data.row(y);
      float* inv = out.inverse.row(y);
      uint16_t* q = out.dq.row(y);
      const uint16_t* fq = flat.has_dq() ? flat.dq.row(y) : nullptr;
      int64_t low = 0;
      for (int x = 0; x < w; ++x) {
        const double v = f[x];
        const bool ok = v > floor && std::isfinite(v);
        inv[x] = ok ? static_cast<float>(norm / v) : 1.0f;
        q[x] = static_cast<uint16_t>((fq != nullptr ? fq[x] : 0) | (ok ? 0 : kDqLowFlat));
        low += ok ? 0 : 1;
      }
      if (flat.has_variance()) {
        const float* fv = flat.variance.row(y);
        float* nv = out.norm_variance.row(y);
        for (int x = 0; x < w; ++x) {
          nv[x] = q[x] & kDqLowFlat ? 0.0f : static_cast<float>(fv[x] * inv_norm2);
        }
      }
      low_per_row[y] = low;
    }
  });
  for (int64_t n : low_per_row) out.low_pixels += n;
  if (out.low_pixels == 0 && !flat.has_dq()) out.dq = Image<uint16_t>();
  return out;
}

}  // namespace calibd::calib
