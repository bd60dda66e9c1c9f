#include "core/combine/kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/combine/fixed_networks.h"
#include "core/image/dq.h"

namespace calibd::combine::internal {

namespace {
std::atomic<bool> fixed_kernels_enabled{true};
}  // namespace

void SetFixedKernelsEnabled(bool enabled) { fixed_kernels_enabled.store(enabled); }
bool FixedKernelsEnabled() { return fixed_kernels_enabled.load(std::memory_order_relaxed); }

SortingNetwork::SortingNetwork(int n)
    : n_(n),
      fixed_sort_(FixedKernelsEnabled() ? FixedLaneSorter(n) : nullptr),
      fixed_vmerge_(FixedKernelsEnabled() ? FixedVMerger(n) : nullptr) {
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
  if (fixed_sort_ != nullptr) return fixed_sort_(v);
  for (const auto& [a, b] : comparators_) {  // one vminps + one vmaxps each
    v8f x, y;
    std::memcpy(&x, v + a * kLanes, sizeof x);
    std::memcpy(&y, v + b * kLanes, sizeof y);
    const v8f lo = _mm256_min_ps(x, y);  // x < y ? x : y
    const v8f hi = _mm256_max_ps(y, x);  // x < y ? y : x
    std::memcpy(v + a * kLanes, &lo, sizeof lo);
    std::memcpy(v + b * kLanes, &hi, sizeof hi);
  }
}

void SortingNetwork::SortVLanes(float* v) const {
  if (fixed_vmerge_ != nullptr) return fixed_vmerge_(v);
  SortLanes(v);
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
  network.SortVLanes(dev);
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

namespace {

inline bool PassThreshold(double x, const BandContext& c) { return x >= c.min_d && x <= c.max_d; }

// Gathers the n values of pixels [p, p + lanes) into lanes of v (scaled; +inf where masked,
// non-finite or outside the thresholds); counts valid (DQ/finite) and passing values per lane.
// `pivot` gets a passing value of each lane (0 if none): a shift for float sums.
inline void GatherLanes(const BandContext& c, int64_t p, int lanes, float* v, internal::v8i& valid,
                        internal::v8i& count, internal::v8f& pivot) {
  using internal::v8f;
  using internal::v8i;
  const int n = c.n;
  const v8f inf = internal::Splat(std::numeric_limits<float>::infinity());
  const v8f fmax = internal::Splat(std::numeric_limits<float>::max());
  const v8f minv = internal::Splat(c.min_value), maxv = internal::Splat(c.max_value);
  valid = v8i{0, 0, 0, 0, 0, 0, 0, 0};
  count = valid;
  pivot = internal::Splat(0.0f);
  v8i have_pivot = valid;
  v8i live = valid;  // -1 on lanes that hold a pixel
  for (int l = 0; l < lanes; ++l) live[l] = -1;
  for (int i = 0; i < n; ++i) {
    const float* d = (*c.data)[i] + p;
    const uint16_t* q = (*c.dq)[i] ? (*c.dq)[i] + p : nullptr;
    v8f x;
    v8i ok;
    if (lanes == kLanes) {
      std::memcpy(&x, d, sizeof x);
      ok = live;
      if (q != nullptr) {
        internal::v8u16 qq;
        std::memcpy(&qq, q, sizeof qq);
        const v8i qi = __builtin_convertvector(qq, v8i);
        ok &= (qi & int{c.dq_mask}) == 0;
      }
    } else {
      x = inf;
      ok = v8i{0, 0, 0, 0, 0, 0, 0, 0};
      for (int l = 0; l < lanes; ++l) {
        x[l] = d[l];
        ok[l] = (q == nullptr || (q[l] & c.dq_mask) == 0) ? -1 : 0;
      }
    }
    const v8i fin = ok & (internal::Abs(x) <= fmax);
    const v8i pass = fin & (x >= minv) & (x <= maxv);
    const v8f scaled = x * internal::Splat(c.scale_f[i]);
    const v8f stored = pass ? scaled : inf;
    std::memcpy(v + i * kLanes, &stored, sizeof stored);
    pivot = (pass & ~have_pivot) ? scaled : pivot;
    have_pivot |= pass;
    valid -= fin;   // masks are -1
    count -= pass;
  }
}

}  // namespace

// Mean (or sum) with optional mean/std sigma clipping needs no sorting: rejected values become
// +inf in place, and each pass runs over all n values in float, shifted by a per-lane pivot.
void LaneGroupUnsorted(const BandContext& c, int64_t p, int lanes, float* v, Tally& tally) {
  using internal::v8f;
  using internal::v8i;
  const int n = c.n;
  v8i valid, count;
  v8f pivot;
  GatherLanes(c, p, lanes, v, valid, count, pivot);
  const v8f inf = internal::Splat(std::numeric_limits<float>::infinity());
  const v8f zero = internal::Splat(0.0f);
  const auto& sc = c.params.sigma_clip;
  v8f mean_d, var;
  v8i m;
  auto stats = [&] {
    v8f s1 = zero;
    m = v8i{0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < n; ++k) {
      v8f x;
      std::memcpy(&x, v + k * kLanes, sizeof x);
      const v8i alive = x < inf;
      s1 += alive ? x - pivot : zero;
      m -= alive;
    }
    const v8f mf = __builtin_convertvector(m, v8f);
    mean_d = m > 0 ? s1 / mf : zero;
    v8f q = zero;
    for (int k = 0; k < n; ++k) {
      v8f x;
      std::memcpy(&x, v + k * kLanes, sizeof x);
      const v8f d = x - pivot - mean_d;
      q += x < inf ? d * d : zero;
    }
    var = m > 0 ? q / mf : zero;
  };
  stats();
  if (sc.enabled) {
    const v8f low = internal::Splat(static_cast<float>(sc.low));
    const v8f high = internal::Splat(static_cast<float>(sc.high));
    for (int iter = 0; sc.max_iters == 0 || iter < sc.max_iters; ++iter) {
      v8f sd = zero;
      for (int l = 0; l < kLanes; ++l) sd[l] = std::sqrt(var[l]);
      const v8f centre = pivot + mean_d;
      const v8f lob = centre - low * sd, hib = centre + high * sd;
      const v8i clip = m > 1;  // one value: nothing to clip
      v8i rejected = v8i{0, 0, 0, 0, 0, 0, 0, 0};
      for (int k = 0; k < n; ++k) {
        v8f x;
        std::memcpy(&x, v + k * kLanes, sizeof x);
        const v8i r = clip & (x < inf) & ((x < lob) | (x > hib));
        x = r ? inf : x;
        std::memcpy(v + k * kLanes, &x, sizeof x);
        rejected |= r;
      }
      bool any = false;
      for (int l = 0; l < kLanes; ++l) any |= rejected[l] != 0;
      if (!any) break;
      stats();
    }
  }
  const bool sum = c.params.method == CombineOptions::Method::kSum;
  for (int l = 0; l < lanes; ++l) {
    const int64_t o = p + l;
    tally.valid += valid[l];
    if (m[l] <= 0) {
      c.out_data[o] = c.params.empty_value;
      if (c.out_var) c.out_var[o] = 0;
      c.out_count[o] = 0;
      c.out_dq[o] = valid[l] == 0 ? kDqNoData : kDqRejected;
      continue;
    }
    tally.used += m[l];
    const double mean = double{pivot[l]} + double{mean_d[l]};
    c.out_data[o] = static_cast<float>(sum ? mean * m[l] : mean);
    if (c.out_var) c.out_var[o] = static_cast<float>(sum ? double{var[l]} * m[l] : double{var[l]} / m[l]);
    c.out_count[o] = static_cast<uint16_t>(m[l]);
    c.out_dq[o] = 0;
  }
}

void LaneGroup(const BandContext& c, int64_t p, int lanes, float* v, float* dev, Tally& tally) {
  const int n = c.n;
  internal::v8i valid, count;
  internal::v8f pivot;
  GatherLanes(c, p, lanes, v, valid, count, pivot);
  c.network->SortLanes(v);

  // Survivors of lane l are v[k][l] for k in [lo[l], hi[l]).
  alignas(32) int lo[kLanes], hi[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const bool none = c.params.nlow + c.params.nhigh >= count[l];
    lo[l] = none ? 0 : c.params.nlow;
    hi[l] = none ? 0 : count[l] - c.params.nhigh;
  }
  alignas(32) double mean[kLanes], var[kLanes], med[kLanes];
  const bool median_out = c.params.method == CombineOptions::Method::kMedian;
  const auto& sc = c.params.sigma_clip;
  if (sc.enabled) {
    for (int iter = 0; sc.max_iters == 0 || iter < sc.max_iters; ++iter) {
      internal::LaneMedian(v, lo, hi, med);  // the centre, or just the pivot of the sums
      internal::v8f pivot_med, mean_f, var_f, centre, spread = internal::Splat(0.0f);
      for (int l = 0; l < kLanes; ++l) pivot_med[l] = static_cast<float>(med[l]);
      internal::LaneMeanVarF(v, n, lo, hi, pivot_med, mean_f, var_f);
      if (sc.spread == CombineOptions::Spread::kStd) {
        for (int l = 0; l < kLanes; ++l) spread[l] = std::sqrt(var_f[l]);
      } else {
        alignas(32) double mad[kLanes];
        internal::LaneMad(v, dev, n, lo, hi, med, *c.network, mad);
        for (int l = 0; l < kLanes; ++l) {
          spread[l] = static_cast<float>(internal::kMadToStd * mad[l]);
        }
      }
      for (int l = 0; l < kLanes; ++l) {
        centre[l] = sc.center == CombineOptions::Center::kMedian ? static_cast<float>(med[l])
                                                                  : mean_f[l];
      }
      internal::v8f lob = centre - static_cast<float>(sc.low) * spread;
      internal::v8f hib = centre + static_cast<float>(sc.high) * spread;
      for (int l = 0; l < kLanes; ++l) {
        if (hi[l] - lo[l] <= 1) {  // one value: nothing to clip (astropy's std is 0 there)
          lob[l] = -HUGE_VALF;
          hib[l] = HUGE_VALF;
        }
      }
      if (!internal::LaneClipF(v, n, lob, hib, lo, hi)) break;
    }
  }
  if (median_out) {
    internal::LaneMedian(v, lo, hi, med);
  } else {
    internal::LaneMeanVar(v, n, lo, hi, mean, var, /*with_var=*/c.out_var != nullptr);
  }
  alignas(32) double mad[kLanes] = {0};
  if (median_out && c.out_var != nullptr) internal::LaneMad(v, dev, n, lo, hi, med, *c.network, mad);
  for (int l = 0; l < lanes; ++l) {
    const int m = hi[l] - lo[l];
    const int64_t o = p + l;
    tally.valid += valid[l];
    if (m <= 0) {
      c.out_data[o] = c.params.empty_value;
      if (c.out_var) c.out_var[o] = 0;
      c.out_count[o] = 0;
      c.out_dq[o] = valid[l] == 0 ? kDqNoData : kDqRejected;
      continue;
    }
    tally.used += m;
    double value, variance;
    switch (c.params.method) {
      case CombineOptions::Method::kMedian: {
        value = med[l];
        const double sd = internal::kMadToStd * mad[l];
        variance = sd * sd / m;
        break;
      }
      case CombineOptions::Method::kSum:
        value = mean[l] * m;
        variance = var[l] * m;
        break;
      default:
        value = mean[l];
        variance = var[l] / m;
        break;
    }
    c.out_data[o] = static_cast<float>(value);
    if (c.out_var) c.out_var[o] = static_cast<float>(variance);
    c.out_count[o] = static_cast<uint16_t>(m);
    c.out_dq[o] = 0;
  }
}

void ScalarPixel(const BandContext& c, int64_t p, char* slot, Tally& tally) {
  const int n = c.n;
  float* vals = reinterpret_cast<float*>(slot);
  float* vars = vals + n;
  float* sorted_vals = vars + n;
  float* sorted_vars = sorted_vals + n;
  int* frames = reinterpret_cast<int*>(sorted_vars + n);
  int* order = frames + n;
  int count = 0, valid = 0;
  for (int i = 0; i < n; ++i) {
    const float x = (*c.data)[i][p];
    const uint16_t* q = (*c.dq)[i];
    const bool fin = ValueOk(x) && (q == nullptr || (q[p] & c.dq_mask) == 0);
    valid += fin;
    if (!fin || !PassThreshold(x, c)) continue;
    vals[count] = x * c.scale_f[i];
    const float* var = (*c.variance)[i];
    vars[count] = var ? static_cast<float>(var[p] * (*c.scale)[i] * (*c.scale)[i]) : 0.0f;
    frames[count] = i;
    order[count] = count;
    ++count;
  }
  std::sort(order, order + count, [&](int a, int b) {
    return vals[a] < vals[b] || (vals[a] == vals[b] && a < b);
  });
  for (int k = 0; k < count; ++k) {
    sorted_vals[k] = vals[order[k]];
    sorted_vars[k] = vars[order[k]];
  }
  for (int k = 0; k < count; ++k) order[k] = frames[order[k]];
  const internal::PixelResult r =
      internal::ReducePixel(sorted_vals, 1, count, order, sorted_vars, c.params);
  c.out_data[p] = r.value;
  if (c.out_var) c.out_var[p] = r.variance;
  c.out_count[p] = static_cast<uint16_t>(r.count);
  c.out_dq[p] = r.count > 0 ? 0 : (valid == 0 ? kDqNoData : kDqRejected);
  tally.valid += valid;
  tally.used += r.count;
}

}  // namespace calibd::combine::internal
