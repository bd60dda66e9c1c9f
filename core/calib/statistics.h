// Small robust statistics on double vectors, shared by the overscan, the flat normalisation and
// the frame statistics of core/calib.
//
//   std::vector<double> v = ...;
//   double m = calib::Median(v);                        // reorders v; NumPy's median
//   double c = calib::ClippedMean(v, /*sigma=*/3, /*iters=*/5);
//   std::vector<double> coef = calib::FitPolynomial(t, y, /*order=*/2);   // least squares
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_CALIB_STATISTICS_H_
#define CALIBD_CORE_CALIB_STATISTICS_H_

#include <vector>

#include "absl/types/span.h"

namespace calibd::calib {

// Plain mean; NaN for an empty span.
double Mean(absl::Span<const double> values);

// NumPy's median (mean of the two middle values for an even count); reorders `values`.
// NaN for an empty span.
double Median(absl::Span<double> values);

// Sigma-clipped mean: repeatedly drop values farther than sigma × std (population std of the
// kept values) from their median, until nothing changes or `iters` rounds; the mean of what is
// kept. Reorders `values`. NaN for an empty span.
double ClippedMean(absl::Span<double> values, double sigma, int iters);

// Least-squares polynomial c0 + c1·t + … + c_order·t^order through (t[i], y[i]), by Householder
// QR of the Vandermonde matrix (t should be scaled to about [−1, 1]). Needs t.size() > order.
std::vector<double> FitPolynomial(absl::Span<const double> t, absl::Span<const double> y,
                                  int order);

double EvaluatePolynomial(absl::Span<const double> coefficients, double t);

}  // namespace calibd::calib

#endif  // CALIBD_CORE_CALIB_STATISTICS_H_
