#include "core/calib/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace calibd::calib {

double Mean(absl::Span<const double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double Median(absl::Span<double> values) {
  const size_t n = values.size();
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  const size_t mid = n / 2;
  std::nth_element(values.begin(), values.begin() + mid, values.end());
  const double upper = values[mid];
  if (n % 2 == 1) return upper;
  const double lower = *std::max_element(values.begin(), values.begin() + mid);
  return 0.5 * (lower + upper);
}

double ClippedMean(absl::Span<double> values, double sigma, int iters) {
  size_t n = values.size();
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  for (int iter = 0; iter < iters && n > 1; ++iter) {
    absl::Span<double> kept = values.subspan(0, n);
    const double mean = Mean(kept);
    double ss = 0;
    for (double v : kept) ss += (v - mean) * (v - mean);
    const double std = std::sqrt(ss / static_cast<double>(n));
    const double center = Median(kept);
    const double limit = sigma * std;
    // Move the kept values to the front.
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
      if (std::fabs(values[i] - center) <= limit) values[k++] = values[i];
    }
    if (k == n || k == 0) break;
    n = k;
  }
  return Mean(values.subspan(0, n));
}

std::vector<double> FitPolynomial(absl::Span<const double> t, absl::Span<const double> y,
                                  int order) {
  const int m = static_cast<int>(t.size());
  const int p = order + 1;
  // A (m × p, column-major) and b; Householder QR in place.
  std::vector<double> a(static_cast<size_t>(m) * p);
  std::vector<double> b(y.begin(), y.end());
  for (int i = 0; i < m; ++i) {
    double power = 1;
    for (int j = 0; j < p; ++j) {
      a[static_cast<size_t>(j) * m + i] = power;
      power *= t[i];
    }
  }
  for (int j = 0; j < p; ++j) {
    double* col = &a[static_cast<size_t>(j) * m];
    double norm = 0;
    for (int i = j; i < m; ++i) norm += col[i] * col[i];
    norm = std::sqrt(norm);
    if (norm == 0) continue;
    const double alpha = col[j] > 0 ? -norm : norm;
    // v = x - alpha e1, stored in col[j..m).
    col[j] -= alpha;
    double vnorm2 = 0;
    for (int i = j; i < m; ++i) vnorm2 += col[i] * col[i];
    auto reflect = [&](double* x) {
      double dot = 0;
      for (int i = j; i < m; ++i) dot += col[i] * x[i];
      const double f = 2 * dot / vnorm2;
      for (int i = j; i < m; ++i) x[i] -= f * col[i];
    };
    for (int k = j + 1; k < p; ++k) reflect(&a[static_cast<size_t>(k) * m]);
    reflect(b.data());
    // R's diagonal is alpha; keep it in a separate slot by restoring the column's top.
    col[j] = alpha;
    for (int i = j + 1; i < m; ++i) col[i] = 0;
  }
  std::vector<double> c(p, 0.0);
  for (int j = p - 1; j >= 0; --j) {
    double s = b[j];
    for (int k = j + 1; k < p; ++k) s -= a[static_cast<size_t>(k) * m + j] * c[k];
    const double r = a[static_cast<size_t>(j) * m + j];
    c[j] = r != 0 ? s / r : 0.0;
  }
  return c;
}

double EvaluatePolynomial(absl::Span<const double> coefficients, double t) {
  double v = 0;
  for (size_t j = coefficients.size(); j-- > 0;) v = v * t + coefficients[j];
  return v;
}

}  // namespace calibd::calib
