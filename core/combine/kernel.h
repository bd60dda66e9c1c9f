// The per-pixel core of combine (internal to core/combine): sorting networks applied to
// per-pixel value vectors laid out lane-major (value k of lane l at v[k * kLanes + l], so one
// comparator is one vector min and one vector max over kLanes pixels), and the reduction of one
// pixel's sorted survivors (extrema and sigma clipping, mean / median / sum, variance).
//
//   const SortingNetwork net(n);
//   net.SortLanes(values);          // values[n * kLanes], +inf marks "no value"
//   PixelResult r = ReducePixel(values + lane, kLanes, count, nullptr, nullptr, params);
//
// The band kernels at the end (LaneGroup, LaneGroupUnsorted, ScalarPixel) apply these to one
// band of the stack; Combine (combine.cc) drives them band by band over the thread pool.
//
// Thread safety: SortingNetwork is immutable once built; ReducePixel is pure; the band kernels
// only read the BandContext and write the output pixels they are given, so disjoint pixel
// ranges may run concurrently (each with its own scratch).
#ifndef CALIBD_CORE_COMBINE_KERNEL_H_
#define CALIBD_CORE_COMBINE_KERNEL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "core/combine/combine.h"
#include "core/combine/fixed_networks.h"

namespace calibd::combine::internal {

inline constexpr int kLanes = 8;

// GCC/Clang vector types: one AVX2 register of kLanes pixels.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));

inline v8f Splat(float f) { return v8f{f, f, f, f, f, f, f, f}; }
inline v8f Abs(v8f x) {
  v8i bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits &= 0x7FFFFFFF;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}
inline constexpr double kMadToStd = 1.482602218505602;  // astropy's mad_std factor

// Batcher's odd-even merge sort for any n (comparators touching indices >= n dropped, which is
// sorting with +inf padding). For n <= kMaxFixed the lane functions run the same network
// unrolled in registers (fixed_networks.h); beyond, this comparator list.
class SortingNetwork {
 public:
  explicit SortingNetwork(int n);
  int size() const { return n_; }
  const std::vector<std::pair<int, int>>& comparators() const { return comparators_; }
  // Sorts each of the kLanes columns of v[n * kLanes] ascending.
  void SortLanes(float* v) const;
  // The same for columns that fall then rise ("V"-shaped, +inf allowed at either end): a
  // bitonic merger when n <= kMaxFixed (about a third of the comparators), else SortLanes.
  void SortVLanes(float* v) const;
  // Sorts v[n] ascending (scalar; for tests of the network itself).
  void Sort(float* v) const;

 private:
  int n_;
  std::vector<std::pair<int, int>> comparators_;
  void (*fixed_sort_)(float*) = nullptr;
  void (*fixed_vmerge_)(float*) = nullptr;
};

// --- all eight lanes at once over lane-major sorted values v[k * kLanes + l] ---------------
// Survivors of lane l are k in [lo[l], hi[l]); lanes with an empty range give 0 / NaN-free
// zeros and are ignored by the caller.

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

// Lanes [4h, 4h + 4) of row k of v, widened to double.
inline v4d LoadHalf(const float* v, int k, int h) {
  v4f f;
  std::memcpy(&f, v + k * kLanes + 4 * h, sizeof f);
  return __builtin_convertvector(f, v4d);
}
inline v4i LoadInts(const int* p) {
  v4i r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
inline v4d LoadDoubles(const double* p) {
  v4d r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
// -1 (all bits) in the 64-bit lanes whose range [lo, hi) holds k.
inline v4l InRange(int k, v4i lo, v4i hi) {
  const v4i kk = {k, k, k, k};
  return __builtin_convertvector((kk >= lo) & (kk < hi), v4l);
}

// Mean and (with_var) population variance of each lane's survivors, in double, two passes.
inline void LaneMeanVar(const float* v, int n, const int* lo, const int* hi, double* mean,
                        double* var, bool with_var) {
  const v4d zero = {0, 0, 0, 0};
  for (int h = 0; h < 2; ++h) {
    const v4i lo4 = LoadInts(lo + 4 * h), hi4 = LoadInts(hi + 4 * h);
    const v4d m = __builtin_convertvector(hi4 - lo4, v4d);
    v4d sum = zero;
    for (int k = 0; k < n; ++k) sum += InRange(k, lo4, hi4) ? LoadHalf(v, k, h) : zero;
    const v4d mu = m > zero ? sum / m : zero;
    std::memcpy(mean + 4 * h, &mu, sizeof mu);
    if (!with_var) continue;
    v4d q = zero;
    for (int k = 0; k < n; ++k) {
      const v4d d = LoadHalf(v, k, h) - mu;
      q += InRange(k, lo4, hi4) ? d * d : zero;
    }
    const v4d vr = m > zero ? q / m : zero;
    std::memcpy(var + 4 * h, &vr, sizeof vr);
  }
}

// Float versions for the clipping iterations: sums shifted by a per-lane pivot inside the
// range (the median), 8 lanes per instruction. Mean and population variance into mean/var.
inline void LaneMeanVarF(const float* v, int n, const int* lo, const int* hi, v8f pivot,
                         v8f& mean, v8f& var) {
  v8i lo8, hi8;
  std::memcpy(&lo8, lo, sizeof lo8);
  std::memcpy(&hi8, hi, sizeof hi8);
  const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0};
  v8f s1 = zero;
  for (int k = 0; k < n; ++k) {
    v8f x;
    std::memcpy(&x, v + k * kLanes, sizeof x);
    const v8i kk = {k, k, k, k, k, k, k, k};
    s1 += (kk >= lo8) & (kk < hi8) ? x - pivot : zero;
  }
  const v8i m = hi8 - lo8;
  const v8f mf = __builtin_convertvector(m, v8f);
  const v8f mean_d = m > 0 ? s1 / mf : zero;
  v8f q = zero;
  for (int k = 0; k < n; ++k) {
    v8f x;
    std::memcpy(&x, v + k * kLanes, sizeof x);
    const v8i kk = {k, k, k, k, k, k, k, k};
    const v8f d = x - pivot - mean_d;
    q += (kk >= lo8) & (kk < hi8) ? d * d : zero;
  }
  mean = pivot + mean_d;
  var = m > 0 ? q / mf : zero;
}

// LaneClip with float bounds.
inline bool LaneClipF(const float* v, int n, v8f lob, v8f hib, int* lo, int* hi) {
  v8i lo8, hi8;
  std::memcpy(&lo8, lo, sizeof lo8);
  std::memcpy(&hi8, hi, sizeof hi8);
  v8i below = {0, 0, 0, 0, 0, 0, 0, 0}, above = below;
  for (int k = 0; k < n; ++k) {
    v8f x;
    std::memcpy(&x, v + k * kLanes, sizeof x);
    const v8i kk = {k, k, k, k, k, k, k, k};
    const v8i in = (kk >= lo8) & (kk < hi8);
    below -= in & (x < lob);
    above -= in & (x > hib);
  }
  bool changed = false;
  for (int l = 0; l < kLanes; ++l) {
    changed |= (below[l] | above[l]) != 0;
    lo[l] += below[l];
    hi[l] = std::max(lo[l], hi[l] - above[l]);
  }
  return changed;
}

// Median of each lane's survivors (mean of the two middle values for an even count).
inline void LaneMedian(const float* v, const int* lo, const int* hi, double* med) {
  for (int l = 0; l < kLanes; ++l) {
    const int m = hi[l] - lo[l];
    if (m <= 0) {
      med[l] = 0;
      continue;
    }
    med[l] = 0.5 * (double{v[(lo[l] + (m - 1) / 2) * kLanes + l]} +
                    double{v[(lo[l] + m / 2) * kLanes + l]});
  }
}

class SortingNetwork;
// Median absolute deviation from med of each lane's survivors: |x - med| (+inf outside the
// range) into dev, sorted, middle picked. Returns it in mad. Each lane's survivors must be
// sorted (as LaneGroup keeps them): then dev falls then rises and a merger sorts it.
void LaneMad(const float* v, float* dev, int n, const int* lo, const int* hi, const double* med,
             const SortingNetwork& network, double* mad);

// What the reduction needs to know; pointers may be null when unused.
struct ReduceParams {
  CombineOptions::Method method = CombineOptions::Method::kMedian;
  int nlow = 0;
  int nhigh = 0;
  CombineOptions::SigmaClip sigma_clip;
  CombineOptions::Variance variance = CombineOptions::Variance::kCcdproc;
  const double* weights = nullptr;       // per frame, or null
  const double* scale = nullptr;         // per frame (for propagated variance)
  float empty_value = 0.0f;
};

struct PixelResult {
  float value = 0;
  float variance = 0;
  int count = 0;  // survivors
};

// Reduces one pixel: x[k * stride], k < n, sorted ascending, are the values that passed the
// DQ / finiteness / threshold tests (already scaled). `frame[k]` (or null) is the input index
// of value k, needed for weights and propagated variance (`input_variance[k]`, parallel to x
// with stride 1, the inputs' variance already multiplied by scale²).
PixelResult ReducePixel(const float* x, int stride, int n, const int* frame,
                        const float* input_variance, const ReduceParams& params);

// --- the band kernels: one band of the stack, eight pixels (or one) at a time -------------

// A valid value: finite (|x| <= FLT_MAX; NaN fails too).
inline bool ValueOk(float x) { return std::fabs(x) <= std::numeric_limits<float>::max(); }

// Everything the band kernels read and write for the band being combined.
struct BandContext {
  int n = 0;
  int64_t pixels = 0;  // in the band
  // Per input, the band's first row (in the workspace, or in place in a frame in memory).
  const std::vector<const float*>* data;
  const std::vector<const float*>* variance;  // entries null unless read
  const std::vector<const uint16_t*>* dq;     // entries null when the input has none
  const std::vector<double>* scale;
  std::vector<float> scale_f;
  bool unit_scale = false;  // every scale factor is 1
  bool thresholds = false;  // min_value or max_value is set
  float min_value = -std::numeric_limits<float>::infinity();
  float max_value = std::numeric_limits<float>::infinity();
  double min_d = -HUGE_VAL, max_d = HUGE_VAL;
  uint16_t dq_mask = 0xFFFF;
  internal::ReduceParams params;
  const internal::SortingNetwork* network = nullptr;
  bool identity = false;
  bool unsorted = false;  // mean/sum, no extrema, sigma clip (if any) around the mean with std
  // A plain median of a small stack: tried first on each group of eight pixels (see
  // fixed_networks.h); null when it does not apply.
  MedianGroupFn fixed_median = nullptr;
  // outputs (already offset to the band's first pixel)
  float* out_data = nullptr;
  float* out_var = nullptr;
  uint16_t* out_dq = nullptr;
  uint16_t* out_count = nullptr;
};

// What a chunk of pixels counted: valid input values and values used after clipping.
struct Tally {
  int64_t valid = 0;
  int64_t used = 0;
};

// Pixels [p, p + lanes), lanes <= kLanes, through the SIMD path: values gathered into lanes of
// `v` (n × kLanes floats of scratch; `dev` the same size), sorted by the network, clipped and
// reduced together.
void LaneGroup(const BandContext& c, int64_t p, int lanes, float* v, float* dev, Tally& tally);

// The same for mean or sum with at most mean/std sigma clipping: no sorting needed.
void LaneGroupUnsorted(const BandContext& c, int64_t p, int lanes, float* v, Tally& tally);

// Tests: false makes Combine use only the general kernels (to show the fixed-N ones give the
// same bits). Default true.
void SetFixedKernelsEnabled(bool enabled);
bool FixedKernelsEnabled();

// One pixel through the scalar path that keeps each value's frame (weights, propagated
// variance); `slot` is SlotBytes(n) of scratch past the two lane arrays.
void ScalarPixel(const BandContext& c, int64_t p, char* slot, Tally& tally);

}  // namespace calibd::combine::internal

#endif  // CALIBD_CORE_COMBINE_KERNEL_H_
