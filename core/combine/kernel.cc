#include "core/combine/kernel.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace calibd::combine::internal {

SortingNetwork::SortingNetwork(int n) : n_(n) {
  // Knuth's iterative form of Batcher's merge exchange: for p = 1, 2, 4, ...; k = p, p/2, ...
  // compare (i + j, i + j + k) when both lie in the same block of 2p.
  for (int p = 1; p < n; p <<= 1) {
    for (int k = p; k >= 1; k >>= 1) {
      for (int j = k % p; j + k < n; j += 2 * k) {
        for (int i = 0; i < k && i + j + k < n; ++i) {
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) {
            comparators_.emplace_back(i + j, i + j + k);
          }
        }
      }
    }
  }
}

void SortingNetwork::SortLanes(float* v) const {
  for (const auto& [a, b] : comparators_) {  // one vminps + one vmaxps each
    v8f x, y;
    std::memcpy(&x, v + a * kLanes, sizeof x);
    std::memcpy(&y, v + b * kLanes, sizeof y);
    const v8f lo = x < y ? x : y;
    const v8f hi = x < y ? y : x;
    std::memcpy(v + a * kLanes, &lo, sizeof lo);
    std::memcpy(v + b * kLanes, &hi, sizeof hi);
  }
}

void SortingNetwork::Sort(float* v) const {
  for (const auto& [a, b] : comparators_) {
    const float lo = std::min(v[a], v[b]);
    const float hi = std::max(v[a], v[b]);
    v[a] = lo;
    v[b] = hi;
  }
}

void LaneMad(const float* v, float* dev, int n, const int* lo, const int* hi, const double* med,
             const SortingNetwork& network, double* mad) {
  const v4f inf = {HUGE_VALF, HUGE_VALF, HUGE_VALF, HUGE_VALF};
  for (int h = 0; h < 2; ++h) {
    const v4i lo4 = LoadInts(lo + 4 * h), hi4 = LoadInts(hi + 4 * h);
    const v4d m = LoadDoubles(med + 4 * h);
    for (int k = 0; k < n; ++k) {
      const v4d d = LoadHalf(v, k, h) - m;
      const v4f a = __builtin_convertvector(d < 0 ? -d : d, v4f);
      const v4i kk = {k, k, k, k};
      const v4f out = (kk >= lo4) & (kk < hi4) ? a : inf;
      std::memcpy(dev + k * kLanes + 4 * h, &out, sizeof out);
    }
  }
  network.SortLanes(dev);
  for (int l = 0; l < kLanes; ++l) {
    const int m = hi[l] - lo[l];
    mad[l] = m > 0 ? 0.5 * (double{dev[((m - 1) / 2) * kLanes + l]} +
                            double{dev[(m / 2) * kLanes + l]})
                   : 0.0;
  }
}

namespace {

// Median of sorted x[lo..hi) (stride s); hi > lo.
inline double SortedMedian(const float* x, int s, int lo, int hi) {
  const int m = hi - lo;
  return 0.5 * (double{x[(lo + (m - 1) / 2) * s]} + double{x[(lo + m / 2) * s]});
}

// Median of |x - med| over sorted x[lo..hi): merge the two sides outward from the middle.
double SortedMad(const float* x, int s, int lo, int hi, double med) {
  const int m = hi - lo;
  const int k1 = (m - 1) / 2, k2 = m / 2;
  int left = lo + (m - 1) / 2;  // x[left] <= med
  int right = left + 1;         // x[right] >= med
  double d1 = 0, d = 0;
  for (int k = 0; k <= k2; ++k) {
    const double dl = left >= lo ? med - x[left * s] : HUGE_VAL;
    const double dr = right < hi ? x[right * s] - med : HUGE_VAL;
    if (dl <= dr) {
      d = dl;
      --left;
    } else {
      d = dr;
      ++right;
    }
    if (k == k1) d1 = d;
  }
  return 0.5 * (d1 + d);
}

}  // namespace

PixelResult ReducePixel(const float* x, int s, int n, const int* frame,
                        const float* input_variance, const ReduceParams& p) {
  PixelResult r;
  int lo = 0, hi = n;
  if (p.nlow + p.nhigh >= n) {
    hi = lo = 0;
  } else {
    lo = p.nlow;
    hi = n - p.nhigh;
  }

  if (p.sigma_clip.enabled && hi - lo > 1) {
    // Running sums about a pivot inside the range keep the one-pass variance exact enough.
    const double pivot = x[(lo + (hi - lo) / 2) * s];
    double s1 = 0, s2 = 0;
    for (int k = lo; k < hi; ++k) {
      const double d = x[k * s] - pivot;
      s1 += d;
      s2 += d * d;
    }
    for (int iter = 0; p.sigma_clip.max_iters == 0 || iter < p.sigma_clip.max_iters; ++iter) {
      const int m = hi - lo;
      if (m <= 1) break;
      const double mean_d = s1 / m;
      double centre;
      double spread;
      const bool need_median = p.sigma_clip.center == CombineOptions::Center::kMedian ||
                               p.sigma_clip.spread == CombineOptions::Spread::kMadStd;
      const double med = need_median ? SortedMedian(x, s, lo, hi) : 0.0;
      centre = p.sigma_clip.center == CombineOptions::Center::kMedian ? med : pivot + mean_d;
      if (p.sigma_clip.spread == CombineOptions::Spread::kStd) {
        spread = std::sqrt(std::max(0.0, s2 / m - mean_d * mean_d));
      } else {
        spread = kMadToStd * SortedMad(x, s, lo, hi, med);
      }
      const double lob = centre - p.sigma_clip.low * spread;
      const double hib = centre + p.sigma_clip.high * spread;
      int new_lo = lo, new_hi = hi;
      while (new_lo < new_hi && double{x[new_lo * s]} < lob) {
        const double d = x[new_lo * s] - pivot;
        s1 -= d;
        s2 -= d * d;
        ++new_lo;
      }
      while (new_hi > new_lo && double{x[(new_hi - 1) * s]} > hib) {
        const double d = x[(new_hi - 1) * s] - pivot;
        s1 -= d;
        s2 -= d * d;
        --new_hi;
      }
      if (new_lo == lo && new_hi == hi) break;
      lo = new_lo;
      hi = new_hi;
    }
  }

  const int m = hi - lo;
  if (m <= 0) {
    r.value = p.empty_value;
    return r;
  }
  r.count = m;

  // Unweighted mean and std (ddof 0) of the survivors: two passes, as NumPy does.
  double sum = 0;
  for (int k = lo; k < hi; ++k) sum += x[k * s];
  const double mean = sum / m;
  double wsum = sum, wtot = m;
  if (p.weights != nullptr && p.method != CombineOptions::Method::kMedian) {
    wsum = 0;
    wtot = 0;
    for (int k = lo; k < hi; ++k) {
      const double w = p.weights[frame[k]];
      wsum += w * x[k * s];
      wtot += w;
    }
    if (!(wtot > 0) && p.method == CombineOptions::Method::kMean) {
      r.value = p.empty_value;
      r.count = 0;
      return r;
    }
  }

  double med = 0;
  switch (p.method) {
    case CombineOptions::Method::kMedian:
      med = SortedMedian(x, s, lo, hi);
      r.value = static_cast<float>(med);
      break;
    case CombineOptions::Method::kMean:
      r.value = static_cast<float>(wsum / wtot);
      break;
    case CombineOptions::Method::kSum:
      r.value = static_cast<float>(wsum);
      break;
  }

  if (p.variance == CombineOptions::Variance::kCcdproc) {
    if (p.method == CombineOptions::Method::kMedian) {
      const double sd = kMadToStd * SortedMad(x, s, lo, hi, med);
      r.variance = static_cast<float>(sd * sd / m);
    } else {
      double q = 0;
      for (int k = lo; k < hi; ++k) {
        const double d = x[k * s] - mean;
        q += d * d;
      }
      const double var = q / m;  // std² with ddof 0
      r.variance = static_cast<float>(p.method == CombineOptions::Method::kMean ? var / m
                                                                                 : var * m);
    }
  } else if (p.variance == CombineOptions::Variance::kPropagated && input_variance != nullptr) {
    double v = 0;
    if (p.method == CombineOptions::Method::kMedian || p.weights == nullptr) {
      for (int k = lo; k < hi; ++k) v += input_variance[k];
      if (p.method == CombineOptions::Method::kMean) v /= double(m) * m;
      if (p.method == CombineOptions::Method::kMedian) v *= std::numbers::pi / 2 / (double(m) * m);
    } else {
      for (int k = lo; k < hi; ++k) {
        const double w = p.weights[frame[k]];
        v += w * w * input_variance[k];
      }
      if (p.method == CombineOptions::Method::kMean) v /= wtot * wtot;
    }
    r.variance = static_cast<float>(v);
  }
  return r;
}

}  // namespace calibd::combine::internal
