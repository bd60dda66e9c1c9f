#include "core/combine/fixed_networks.h"

#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "core/combine/kernel.h"

namespace calibd::combine::internal {
namespace {

struct Comparator {
  int a, b;
};

// Batcher's merge exchange (Knuth 5.2.2 M), as SortingNetwork builds it: calls
// emit(a, b) for each comparator in order.
template <typename Emit>
constexpr void Batcher(int n, Emit emit) {
  for (int p = 1; p < n; p <<= 1) {
    for (int k = p; k >= 1; k >>= 1) {
      for (int j = k % p; j + k < n; j += 2 * k) {
        for (int i = 0; i < k && i + j + k < n; ++i) {
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) emit(i + j, i + j + k);
        }
      }
    }
  }
}

// A bitonic merger of n wires padded with +inf to a power of two: half-cleaners of stride
// P/2, P/4, ..., 1; comparators with a padded partner leave both wires as they are.
template <typename Emit>
constexpr void BitonicMerger(int n, Emit emit) {
  int p = 1;
  while (p < n) p <<= 1;
  for (int k = p / 2; k >= 1; k >>= 1) {
    for (int i = 0; i + k < n; ++i) {
      if ((i & k) == 0) emit(i, i + k);
    }
  }
}

enum class Kind { kSort, kVMerge };

template <Kind K>
constexpr void Generate(int n, auto emit) {
  if constexpr (K == Kind::kSort) {
    Batcher(n, emit);
  } else {
    BitonicMerger(n, emit);
  }
}

template <Kind K, int N>
constexpr int Count() {
  int c = 0;
  Generate<K>(N, [&](int, int) { ++c; });
  return c;
}

template <Kind K, int N>
constexpr std::array<Comparator, Count<K, N>()> Comparators() {
  std::array<Comparator, Count<K, N>()> out{};
  int c = 0;
  Generate<K>(N, [&](int a, int b) { out[c++] = Comparator{a, b}; });
  return out;
}

template <Kind K, int N>
inline constexpr auto kComparators = Comparators<K, N>();

// One comparator over eight pixels: vminps / vmaxps. MINPS(x, y) is x < y ? x : y and
// MAXPS(y, x) is y > x ? y : x, exactly SortingNetwork::SortLanes's pair, so that equal values
// (-0 and +0) are exchanged, never duplicated. (GCC compiles the ternaries themselves to a
// compare and two blends.)
[[gnu::always_inline]] inline void CompareSwap(v8f& x, v8f& y) {
  const v8f lo = _mm256_min_ps(x, y);
  const v8f hi = _mm256_max_ps(y, x);
  x = lo;
  y = hi;
}

template <Kind K, int N, size_t... I>
[[gnu::always_inline]] inline void Apply(v8f* x, std::index_sequence<I...>) {
  (CompareSwap(x[kComparators<K, N>[I].a], x[kComparators<K, N>[I].b]), ...);
}

// float32 lanes to two halves of doubles and back, in registers (vcvtps2pd / vcvtpd2ps with
// vextractf128 / vinsertf128: going through memory would stall store forwarding).
inline void Widen(v8f x, v4d& lo, v4d& hi) {
  lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
  hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
}

inline v8f Narrow(v4d lo, v4d hi) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}

// Which deviations |x_k - med| of sorted x[0..N) from med (two halves of doubles, the mean of
// the middle values) can be computed in float with LaneMad's bits: those of x[first, end).
// They need med = value + r exactly, with `value` med rounded to float and the remainder r a
// float too, and x_k within a factor of two of `value` (same sign), so that x_k - value is
// exact (Sterbenz's lemma): then one correctly rounded float addition of the two exact terms
// rounds the exact deviation once, as LaneMad does (it rounds the exact double difference to
// float). Values spread wider — up to kEnds cosmic rays or cold pixels at either end of a
// pixel's stack, against a bias level — take the double path; first = end = 0 (all of them)
// for values about zero or more outliers than that.
struct FloatSpan {
  int first = 0, end = 0;
  v8f r;
};
inline constexpr int kEnds = 2;

template <int N>
[[gnu::always_inline]] inline FloatSpan FloatDeviations(const v8f* x, v8f value, v4d med0,
                                                        v4d med1) {
  FloatSpan f;
  v4d v0, v1, b0, b1;
  Widen(value, v0, v1);
  const v4d r0 = med0 - v0, r1 = med1 - v1;
  f.r = Narrow(r0, r1);
  Widen(f.r, b0, b1);  // r is a float when its round trip gives it back
  const int r_exact = _mm256_movemask_pd(_mm256_cmp_pd(b0, r0, _CMP_EQ_OQ)) &
                      _mm256_movemask_pd(_mm256_cmp_pd(b1, r1, _CMP_EQ_OQ));
  if (r_exact != 0xF) return f;
  const v8f twice = value * 2.0f, half = value * 0.5f;
  const v8f lo = _mm256_min_ps(twice, half), hi = _mm256_max_ps(twice, half);
  // Sorted: once every lane of x[k] is >= lo, so are those of x[k + 1], ...
  auto below = [&](int k) {
    return _mm256_movemask_ps(_mm256_cmp_ps(x[k], lo, _CMP_GE_OQ)) != 0xFF;
  };
  auto above = [&](int k) {
    return _mm256_movemask_ps(_mm256_cmp_ps(x[k], hi, _CMP_LE_OQ)) != 0xFF;
  };
  int first = 0;
  while (first <= kEnds && first < N && below(first)) ++first;
  int end = N;
  while (end >= N - kEnds && end > 0 && above(end - 1)) --end;
  if (first > kEnds || end < N - kEnds || first >= end) return f;
  f.first = first;
  f.end = end;
  return f;
}

// The median (and MAD-std variance) of eight pixels whose N values all pass: LaneGroup's
// arithmetic for lo = 0, hi = N in every lane, with the values kept in registers. false (and
// nothing written) when some value of some lane does not pass, or fewer than eight lanes.
template <int N>
bool MedianGroup(const BandContext& c, int64_t p, int lanes, Tally& tally) {
  if (lanes != kLanes) return false;
  const v8f fmax = Splat(std::numeric_limits<float>::max());
  const v8f minv = Splat(c.min_value), maxv = Splat(c.max_value);
  const int mask = c.dq_mask;
  v8i all = {-1, -1, -1, -1, -1, -1, -1, -1};
  const float* const* data = c.data->data();
  const uint16_t* const* dq = c.dq->data();
  v8f x[N];
#pragma GCC unroll 64
  for (int i = 0; i < N; ++i) {
    std::memcpy(&x[i], data[i] + p, sizeof x[i]);
    v8i ok = Abs(x[i]) <= fmax;
    if (c.thresholds) ok &= (x[i] >= minv) & (x[i] <= maxv);
    if (const uint16_t* q = dq[i]; q != nullptr) {
      v8u16 qq;
      std::memcpy(&qq, q + p, sizeof qq);
      ok &= (__builtin_convertvector(qq, v8i) & mask) == 0;
    }
    all &= ok;
    if (!c.unit_scale) x[i] *= Splat(c.scale_f[i]);
  }
  for (int l = 0; l < kLanes; ++l) {
    if (all[l] == 0) return false;
  }
  Apply<Kind::kSort, N>(x, std::make_index_sequence<kComparators<Kind::kSort, N>.size()>());
  v4d a0, a1, b0, b1;
  Widen(x[(N - 1) / 2], a0, a1);
  Widen(x[N / 2], b0, b1);
  const v4d med0 = 0.5 * (a0 + b0), med1 = 0.5 * (a1 + b1);
  const v8f value = Narrow(med0, med1);
  std::memcpy(c.out_data + p, &value, sizeof value);
  if (c.out_var != nullptr) {
    // dev_k = |x_k - med| as LaneMad computes it (in double, then rounded to float), the sign
    // known from the position: x_k <= med up to the lower middle, >= from the upper one.
    const FloatSpan f = FloatDeviations<N>(x, value, med0, med1);
#pragma GCC unroll 64
    for (int k = 0; k < N; ++k) {
      if (k >= f.first && k < f.end) {
        // med = value + r exactly and value - x_k is exact: one rounding, of the exact value.
        x[k] = k <= (N - 1) / 2 ? (value - x[k]) + f.r : (x[k] - value) - f.r;
      } else {
        v4d d0, d1;
        Widen(x[k], d0, d1);
        x[k] = k <= (N - 1) / 2 ? Narrow(med0 - d0, med1 - d1) : Narrow(d0 - med0, d1 - med1);
      }
    }
    // The r-th smallest deviation (0-based) is min over i of max(dev_i, dev_(i+r)): the r+1
    // values nearest the median are consecutive in sorted order, and |x - med| of any value
    // between two others is at most the larger of theirs (rounding to float keeps the order).
    auto ranked = [&](int r) {
      v8f best = _mm256_max_ps(x[0], x[r]);
#pragma GCC unroll 64
      for (int i = 1; i + r < N; ++i) best = _mm256_min_ps(best, _mm256_max_ps(x[i], x[i + r]));
      return best;
    };
    Widen(ranked((N - 1) / 2), a0, a1);
    Widen(ranked(N / 2), b0, b1);
    const v4d sd0 = kMadToStd * (0.5 * (a0 + b0)), sd1 = kMadToStd * (0.5 * (a1 + b1));
    const v8f var = Narrow(sd0 * sd0 / double{N}, sd1 * sd1 / double{N});
    std::memcpy(c.out_var + p, &var, sizeof var);
  }
  const v8u16 count = {N, N, N, N, N, N, N, N}, zero = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(c.out_count + p, &count, sizeof count);
  std::memcpy(c.out_dq + p, &zero, sizeof zero);
  tally.valid += int64_t{N} * kLanes;
  tally.used += int64_t{N} * kLanes;
  return true;
}

template <Kind K, int N>
void Run(float* v) {
  v8f x[N];
  for (int k = 0; k < N; ++k) std::memcpy(&x[k], v + k * kLanes, sizeof x[k]);
  Apply<K, N>(x, std::make_index_sequence<kComparators<K, N>.size()>());
  for (int k = 0; k < N; ++k) std::memcpy(v + k * kLanes, &x[k], sizeof x[k]);
}

template <Kind K, int... N>
constexpr std::array<LaneSorter, kMaxFixed + 1> Table(std::integer_sequence<int, N...>) {
  return {nullptr, nullptr, &Run<K, N + 2>...};
}

template <int... N>
constexpr std::array<MedianGroupFn, kMaxFixed + 1> MedianTable(std::integer_sequence<int, N...>) {
  return {nullptr, nullptr, &MedianGroup<N + 2>...};
}

constexpr auto kSorters = Table<Kind::kSort>(std::make_integer_sequence<int, kMaxFixed - 1>());
constexpr auto kMedians = MedianTable(std::make_integer_sequence<int, kMaxFixed - 1>());
constexpr auto kMergers = Table<Kind::kVMerge>(std::make_integer_sequence<int, kMaxFixed - 1>());

}  // namespace

LaneSorter FixedLaneSorter(int n) { return n >= 2 && n <= kMaxFixed ? kSorters[n] : nullptr; }
LaneSorter FixedVMerger(int n) { return n >= 2 && n <= kMaxFixed ? kMergers[n] : nullptr; }
MedianGroupFn FixedMedianGroup(int n) { return n >= 2 && n <= kMaxFixed ? kMedians[n] : nullptr; }

}  // namespace calibd::combine::internal
