// Overscan measurement (MeasureOverscan): the per-line model Calibrate subtracts.
#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/calib/recipe.h"
#include "core/calib/statistics.h"
#include "core/status/macros.h"

namespace calibd::calib {
namespace {

using Statistic = OverscanOptions::Statistic;
using Fit = OverscanOptions::Fit;

double Reduce(Statistic statistic, absl::Span<double> values, const OverscanOptions& options) {
  switch (statistic) {
    case Statistic::kMean:
      return Mean(values);
    case Statistic::kMedian:
      return Median(values);
    case Statistic::kClippedMean:
      return ClippedMean(values, options.clip_sigma, options.clip_iters);
    case Statistic::kNone:
      break;
  }
  return 0.0;
}

}  // namespace

bool OverscanPerRow(const OverscanOptions& options) {
  switch (options.axis) {
    case OverscanOptions::Axis::kPerRow:
      return true;
    case OverscanOptions::Axis::kPerColumn:
      return false;
    case OverscanOptions::Axis::kAuto:
      break;
  }
  // ccdproc: overscan_axis = 0 if shape[1] > shape[0] else 1 (axis 1 = one value per row).
  return !(options.region.width() > options.region.height());
}

double OverscanModel::Level() const {
  if (values.empty()) return 0.0;
  return Mean(values);
}

absl::StatusOr<OverscanModel> MeasureOverscan(const RawImage& raw, const OverscanOptions& options,
                                              ThreadPool* pool) {
  OverscanModel model;
  if (options.statistic == Statistic::kNone) return model;
  const Section& r = options.region;
  if (!r.InFrame(raw.width(), raw.height())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "overscan region ", FormatFitsSection(r), " is empty or outside the ", raw.width(), "×",
        raw.height(), " raw frame; give a BIASSEC inside the frame"));
  }
  if (options.statistic == Statistic::kClippedMean &&
      !(options.clip_sigma > 0 && options.clip_iters >= 1)) {
    return absl::InvalidArgumentError(
        "overscan clipped mean needs clip_sigma > 0 and clip_iters >= 1");
  }

  if (options.fit == Fit::kWhole) {
    std::vector<double> all(static_cast<size_t>(r.width()) * r.height());
    for (int y = r.y0; y < r.y1; ++y) {
      raw.RowToDouble(y, r.x0, r.width(), &all[static_cast<size_t>(y - r.y0) * r.width()]);
    }
    const double level = Reduce(options.statistic, absl::MakeSpan(all), options);
    model.per_row = true;
    model.first_line = 0;
    model.values.assign(raw.height(), level);
    return model;
  }

  model.per_row = OverscanPerRow(options);
  const int lines = model.per_row ? r.height() : r.width();
  const int per_line = model.per_row ? r.width() : r.height();
  model.first_line = model.per_row ? r.y0 : r.x0;
  model.values.resize(lines);
  if (model.per_row) {
    ParallelFor(pool, lines, 256, [&](int64_t l0, int64_t l1) {
      std::vector<double> buf(per_line);
      for (int64_t l = l0; l < l1; ++l) {
        raw.RowToDouble(r.y0 + static_cast<int>(l), r.x0, per_line, buf.data());
        model.values[l] = Reduce(options.statistic, absl::MakeSpan(buf), options);
      }
    });
  } else {
    // Transpose the (short) region so each column's values are contiguous.
    std::vector<double> rows(static_cast<size_t>(r.width()) * r.height());
    for (int y = r.y0; y < r.y1; ++y) {
      raw.RowToDouble(y, r.x0, r.width(), &rows[static_cast<size_t>(y - r.y0) * r.width()]);
    }
    ParallelFor(pool, lines, 256, [&](int64_t l0, int64_t l1) {
      std::vector<double> buf(per_line);
      for (int64_t l = l0; l < l1; ++l) {
        for (int i = 0; i < per_line; ++i) buf[i] = rows[static_cast<size_t>(i) * r.width() + l];
        model.values[l] = Reduce(options.statistic, absl::MakeSpan(buf), options);
      }
    });
  }

  if (options.fit == Fit::kPolynomial) {
    if (options.poly_order < 0 || options.poly_order > 9 || lines <= options.poly_order) {
      return absl::InvalidArgumentError(absl::StrCat(
          "overscan polynomial order ", options.poly_order, " needs 0..9 and fewer than the ",
          lines, " overscan lines"));
    }
    model.poly_center = 0.5 * (lines - 1);
    model.poly_scale = lines > 1 ? 0.5 * (lines - 1) : 1.0;
    std::vector<double> t(lines);
    for (int i = 0; i < lines; ++i) t[i] = (i - model.poly_center) / model.poly_scale;
    model.coefficients = FitPolynomial(t, model.values, options.poly_order);
    for (int i = 0; i < lines; ++i) model.values[i] = EvaluatePolynomial(model.coefficients, t[i]);
  }
  for (double v : model.values) {
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "overscan region ", FormatFitsSection(r),
          " holds non-finite values; check BIASSEC or use another overscan statistic"));
    }
  }
  return model;
}

}  // namespace calibd::calib
