// Per-pixel weighted least squares over sub-stack means (group_fit.h).
#include "core/noise/group_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status/macros.h"

namespace calibd::noise::internal {

GroupFitOutput GroupFitOutput::Allocate(int p, int width, int height) {
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  GroupFitOutput out;
  for (int j = 0; j < p; ++j) out.beta.push_back(Image<float>::Filled(width, height, kNaN));
  for (int j = 0; j < p; ++j) out.err.push_back(Image<float>::Filled(width, height, kNaN));
  for (int j = 0; j < p * (p - 1) / 2; ++j) {
    out.cov.push_back(Image<float>::Filled(width, height, kNaN));
  }
  out.adj_r2 = Image<float>::Filled(width, height, kNaN);
  out.usable = Image<float>::Filled(width, height, 0);
  out.unfit = Image<uint16_t>::Filled(width, height, 0);
  return out;
}

absl::Status FitGroups(const GroupFitSpec& spec, const StackOptions& options, ThreadPool* pool,
                       GroupFitOutput* out) {
  const int m = static_cast<int>(spec.groups.size());
  const int p = spec.p;
  if (m == 0 || p < 1 || p > 3 || spec.design.size() != size_t(m) * p) {
    return absl::InternalError("FitGroups: inconsistent design");
  }
  {  // The design itself must have rank p.
    std::vector<double> ones(m, 1.0), y(m, 0.0);
    double beta[3], cov[9], chi2;
    if (!SolveWls(p, m, spec.design.data(), y.data(), ones.data(), beta, cov, &chi2)) {
      return absl::InvalidArgumentError(
          "the settings do not determine the model (the design has rank < the number of "
          "parameters): supply sub-stacks whose settings vary independently");
    }
  }
  const int w = spec.groups[0][0]->width(), h = spec.groups[0][0]->height();
  const int band = PlanBandRows(options.memory_budget_bytes, w, h, 30 * int64_t{m} + 10);
  std::vector<GroupStats> stats(m);
  for (int y0 = 0; y0 < h; y0 += band) {
    const int rows = std::min(band, h - y0);
    for (int g = 0; g < m; ++g) {
      CALIBD_RETURN_IF_ERROR(AccumulateBand(spec.groups[g], y0, rows, options,
                                            spec.use_input_variance, pool, &stats[g]));
    }
    ParallelFor(pool, rows, 8, [&](int64_t r0, int64_t r1) {
      std::vector<double> y(m), wt(m);
      for (int64_t r = r0; r < r1; ++r) {
        for (int x = 0; x < w; ++x) {
          const size_t i = size_t(r) * w + x;
          const int yy = y0 + static_cast<int>(r);
          int usable = 0;
          for (int g = 0; g < m; ++g) {
            const GroupStats& s = stats[g];
            const int need = std::max(1, (s.frames + 1) / 2);
            wt[g] = 0;
            y[g] = 0;
            if (s.count[i] < need) continue;
            if (spec.weighted) {
              const double v = s.VarianceOfMean(i, spec.use_input_variance);
              if (!(v > 0) || !std::isfinite(v)) continue;
              wt[g] = 1 / v;
            } else {
              wt[g] = 1;
            }
            y[g] = s.mean[i];
            ++usable;
          }
          out->usable.at(x, yy) = static_cast<float>(usable);
          double beta[3], cov[9], chi2;
          if (usable < std::max(spec.min_usable, p) || (!spec.weighted && usable <= p) ||
              !SolveWls(p, m, spec.design.data(), y.data(), wt.data(), beta, cov, &chi2)) {
            out->unfit.at(x, yy) = 1;
            continue;
          }
          const double cov_scale = spec.weighted ? 1.0 : chi2 / (usable - p);
          for (int j = 0; j < p; ++j) out->beta[j].at(x, yy) = static_cast<float>(beta[j]);
          for (int j = 0; j < p; ++j) {
            out->err[j].at(x, yy) = static_cast<float>(std::sqrt(cov[j * p + j] * cov_scale));
          }
          int k = 0;
          for (int j = 0; j < p; ++j) {
            for (int l = j + 1; l < p; ++l) {
              out->cov[k++].at(x, yy) = static_cast<float>(cov[j * p + l] * cov_scale);
            }
          }
          // Weighted adjusted R²: 1 − (1 − R²)(n − 1)/(n − p), R² = 1 − χ²/Σw(y − ȳw)².
          if (usable > p) {
            double sw = 0, swy = 0;
            for (int g = 0; g < m; ++g) {
              sw += wt[g];
              swy += wt[g] * y[g];
            }
            const double ybar = swy / sw;
            double sst = 0;
            for (int g = 0; g < m; ++g) sst += wt[g] * (y[g] - ybar) * (y[g] - ybar);
            if (sst > 0) {
              const double r2 = 1 - chi2 / sst;
              out->adj_r2.at(x, yy) =
                  static_cast<float>(1 - (1 - r2) * (usable - 1) / double(usable - p));
            }
          }
        }
      }
    });
  }
  return absl::OkStatus();
}

}  // namespace calibd::noise::internal
