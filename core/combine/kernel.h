// The per-pixel core of combine (internal to core/combine): sorting networks applied to
// per-pixel value vectors laid out lane-major (value k of lane l at v[k * kLanes + l], so one
// comparator is one vector min and one vector max over kLanes pixels), and the reduction of one
// pixel's sorted survivors (extrema and sigma clipping, mean / median / sum, variance).
//
//   const SortingNetwork& net = SortingNetwork::For(n);
//   net.SortLanes(values);          // values[n * kLanes], +inf marks "no value"
//   PixelResult r = ReducePixel(values + lane, kLanes, count, nullptr, params);
//
// Thread safety: SortingNetwork is immutable once built; ReducePixel is pure.
#ifndef CALIBD_CORE_COMBINE_KERNEL_H_
#define CALIBD_CORE_COMBINE_KERNEL_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "core/combine/combine.h"

namespace calibd::combine::internal {

inline constexpr int kLanes = 8;
inline constexpr double kMadToStd = 1.482602218505602;  // astropy's mad_std factor

// Batcher's odd-even merge sort for any n (comparators touching indices >= n dropped, which is
// sorting with +inf padding).
class SortingNetwork {
 public:
  explicit SortingNetwork(int n);
  int size() const { return n_; }
  const std::vector<std::pair<int, int>>& comparators() const { return comparators_; }
  // Sorts each of the kLanes columns of v[n * kLanes] ascending.
  void SortLanes(float* v) const;
  // Sorts v[n] ascending (scalar; for tests of the network itself).
  void Sort(float* v) const;

 private:
  int n_;
  std::vector<std::pair<int, int>> comparators_;
};

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

}  // namespace calibd::combine::internal

#endif  // CALIBD_CORE_COMBINE_KERNEL_H_
