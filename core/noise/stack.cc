// Band statistics, per-pixel least squares and header numbers for core/noise (stack.h).
#include "core/noise/stack.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/calib/statistics.h"

namespace calibd::noise::internal {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

double GroupStats::SampleVariance(size_t i) const {
  return count[i] >= 2 ? m2[i] / (count[i] - 1) : kNaN;
}

double GroupStats::VarianceOfMean(size_t i, bool use_input_variance) const {
  const int n = count[i];
  if (n == 0) return kNaN;
  if (use_input_variance && input_variance) return var_sum[i] / (double(n) * n);
  return n >= 2 ? m2[i] / (n - 1) / n : kNaN;
}

absl::Status AccumulateBand(const Group& group, int y0, int rows, const StackOptions& options,
                            bool want_variance, ThreadPool* pool, GroupStats* out) {
  if (group.empty()) return absl::InvalidArgumentError("an empty group of frames");
  const int width = group[0]->width();
  const size_t n = size_t(rows) * size_t(width);
  out->frames = static_cast<int>(group.size());
  out->input_variance = want_variance;
  for (const combine::FrameSource* f : group) {
    if (!f->has_variance()) out->input_variance = false;
  }
  out->mean.assign(n, 0.0);
  out->m2.assign(n, 0.0);
  out->count.assign(n, 0);
  if (out->input_variance) {
    out->var_sum.assign(n, 0.0);
  } else {
    out->var_sum.clear();
  }
  std::vector<float> data(n), variance;
  std::vector<uint16_t> dq;
  if (out->input_variance) variance.resize(n);
  const double gain = options.gain;
  const double gain2 = gain * gain;
  const uint16_t mask = options.dq_mask;
  for (combine::FrameSource* f : group) {
    const bool has_dq = f->has_dq();
    if (has_dq) dq.resize(n);
    absl::Status s =
        f->ReadRows(y0, rows, data.data(), out->input_variance ? variance.data() : nullptr,
                    has_dq ? dq.data() : nullptr);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("reading ", f->name(), ": ", s.message()));
    }
    ParallelFor(pool, rows, 16, [&](int64_t r0, int64_t r1) {
      for (size_t i = size_t(r0) * width; i < size_t(r1) * width; ++i) {
        const float v = data[i];
        if (!std::isfinite(v) || (has_dq && (dq[i] & mask) != 0)) continue;
        if (out->input_variance && !std::isfinite(variance[i])) continue;
        const double x = double(v) * gain;
        const int c = ++out->count[i];
        const double d = x - out->mean[i];
        out->mean[i] += d / c;
        out->m2[i] += d * (x - out->mean[i]);
        if (out->input_variance) out->var_sum[i] += double(variance[i]) * gain2;
      }
    });
  }
  return absl::OkStatus();
}

absl::Status CheckStack(const Group& frames, absl::string_view what, int at_least) {
  if (static_cast<int>(frames.size()) < at_least) {
    return absl::InvalidArgumentError(absl::StrCat("need at least ", at_least, " ", what, ", got ",
                                                   frames.size(), ": supply more"));
  }
  const int w = frames[0]->width(), h = frames[0]->height();
  if (w <= 0 || h <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(frames[0]->name(), " is empty"));
  }
  for (const combine::FrameSource* f : frames) {
    if (f->width() != w || f->height() != h) {
      return absl::InvalidArgumentError(
          absl::StrCat("frames of different shapes: ", f->name(), " is ", f->width(), "x",
                       f->height(), ", ", frames[0]->name(), " is ", w, "x", h,
                       "; supply frames pre-processed (trimmed) to one shape"));
    }
  }
  return absl::OkStatus();
}

int PlanBandRows(int64_t budget, int width, int height, int64_t bytes_per_pixel) {
  const int64_t per_row = std::max<int64_t>(1, int64_t{width} * bytes_per_pixel);
  const int64_t rows = budget / per_row;
  return static_cast<int>(std::clamp<int64_t>(rows, 1, std::max(1, height)));
}

absl::StatusOr<double> HeaderNumber(const combine::FrameSource& frame, absl::string_view key,
                                    absl::string_view what) {
  absl::StatusOr<double> v = frame.header().GetDouble(key);
  if (!v.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        frame.name(), ": ",
        absl::IsNotFound(v.status()) ? "no header keyword " : "non-numeric header keyword ", key,
        "; supply ", what, " as a number in ", key,
        " (or name the keyword the detector spec uses)"));
  }
  if (!std::isfinite(*v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(frame.name(), ": ", key, " is not finite; supply ", what));
  }
  return *v;
}

bool SolveWls(int p, int m, const double* x, const double* y, const double* w, double* beta,
              double* cov, double* chi2) {
  // Column scales (the largest |x| of each column), so XᵀWX is well conditioned.
  double scale[3] = {1, 1, 1};
  for (int j = 0; j < p; ++j) {
    double mx = 0;
    for (int i = 0; i < m; ++i) mx = std::max(mx, std::abs(x[i * p + j]));
    scale[j] = mx > 0 ? mx : 1;
  }
  double a[3][3] = {}, b[3] = {};
  for (int i = 0; i < m; ++i) {
    if (!(w[i] > 0)) continue;
    double xs[3];
    for (int j = 0; j < p; ++j) xs[j] = x[i * p + j] / scale[j];
    for (int j = 0; j < p; ++j) {
      b[j] += w[i] * xs[j] * y[i];
      for (int k = 0; k <= j; ++k) a[j][k] += w[i] * xs[j] * xs[k];
    }
  }
  // Cholesky a = L Lᵀ.
  double l[3][3] = {};
  double trace = 0;
  for (int j = 0; j < p; ++j) trace += a[j][j];
  for (int j = 0; j < p; ++j) {
    double d = a[j][j];
    for (int k = 0; k < j; ++k) d -= l[j][k] * l[j][k];
    if (!(d > 1e-12 * trace)) return false;
    l[j][j] = std::sqrt(d);
    for (int i = j + 1; i < p; ++i) {
      double s = a[i][j];
      for (int k = 0; k < j; ++k) s -= l[i][k] * l[j][k];
      l[i][j] = s / l[j][j];
    }
  }
  // inv(L), then inv(A) = inv(L)ᵀ inv(L).
  double li[3][3] = {};
  for (int j = 0; j < p; ++j) {
    li[j][j] = 1 / l[j][j];
    for (int i = j + 1; i < p; ++i) {
      double s = 0;
      for (int k = j; k < i; ++k) s -= l[i][k] * li[k][j];
      li[i][j] = s / l[i][i];
    }
  }
  double ai[3][3] = {};
  for (int j = 0; j < p; ++j) {
    for (int k = 0; k < p; ++k) {
      double s = 0;
      for (int i = std::max(j, k); i < p; ++i) s += li[i][j] * li[i][k];
      ai[j][k] = s;
    }
  }
  for (int j = 0; j < p; ++j) {
    double s = 0;
    for (int k = 0; k < p; ++k) s += ai[j][k] * b[k];
    beta[j] = s / scale[j];
  }
  for (int j = 0; j < p; ++j) {
    for (int k = 0; k < p; ++k) cov[j * p + k] = ai[j][k] / (scale[j] * scale[k]);
  }
  double c2 = 0;
  for (int i = 0; i < m; ++i) {
    if (!(w[i] > 0)) continue;
    double fit = 0;
    for (int j = 0; j < p; ++j) fit += x[i * p + j] * beta[j];
    c2 += w[i] * (y[i] - fit) * (y[i] - fit);
  }
  *chi2 = c2;
  return true;
}

double FiniteMedian(absl::Span<const float> values) {
  std::vector<double> v;
  v.reserve(values.size());
  for (float f : values) {
    if (std::isfinite(f)) v.push_back(f);
  }
  return calib::Median(absl::MakeSpan(v));
}

double RobustSigma(absl::Span<const float> values, double median) {
  std::vector<double> v;
  v.reserve(values.size());
  for (float f : values) {
    if (std::isfinite(f)) v.push_back(std::abs(f - median));
  }
  return 1.482602218505602 * calib::Median(absl::MakeSpan(v));
}

void ZeroNonFinite(NoiseProduct* product) {
  for (NoiseMap& m : product->maps) {
    float* d = m.data.data();
    for (int64_t i = 0; i < m.data.num_pixels(); ++i) {
      if (!std::isfinite(d[i])) d[i] = 0.0f;
    }
  }
}

std::vector<double> DistinctValues(absl::Span<const double> values, std::vector<int>* index) {
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> distinct;
  for (double v : sorted) {
    if (distinct.empty() || std::abs(v - distinct.back()) > 1e-6 * std::max(std::abs(v), 1e-300)) {
      distinct.push_back(v);
    }
  }
  index->assign(values.size(), 0);
  for (size_t i = 0; i < values.size(); ++i) {
    size_t best = 0;
    for (size_t k = 1; k < distinct.size(); ++k) {
      if (std::abs(values[i] - distinct[k]) < std::abs(values[i] - distinct[best])) best = k;
    }
    (*index)[i] = static_cast<int>(best);
  }
  return distinct;
}

}  // namespace calibd::noise::internal
