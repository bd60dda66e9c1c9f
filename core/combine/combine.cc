#include "core/combine/combine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "core/combine/kernel.h"
#include "core/image/dq.h"
#include "core/image/section.h"
#include "core/status/macros.h"

namespace calibd::combine {
namespace {

using internal::kLanes;
using Method = CombineOptions::Method;
using Scale = CombineOptions::Scale;
using Variance = CombineOptions::Variance;

constexpr int kMaxInputs = 65535;  // the count plane is uint16
constexpr int kMaxSlots = 16;      // scratch slots reserved for concurrent chunks
constexpr size_t kAlign = 64;
constexpr int64_t kHistogramBytes = int64_t{65536} * sizeof(uint32_t);

size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// True when a value needs its frame identity (weights, propagated variance): those pixels take
// the scalar path that sorts (value, frame) pairs; all others sort bare values in SIMD lanes.
bool NeedsFrameIdentity(const CombineOptions& o) {
  return (!o.weights.empty() && o.method != Method::kMedian) ||
         o.variance == Variance::kPropagated;
}

// Per-slot scratch: lane-major values for the SIMD path, or value/frame/variance arrays and an
// index permutation for the scalar path.
size_t SlotBytes(int n) {
  return 2 * AlignUp(size_t(n) * kLanes * sizeof(float)) + AlignUp(size_t(n) * sizeof(float)) * 4 +
         AlignUp(size_t(n) * sizeof(int)) * 2;
}

// What the pool's size classes may add on top of a request (at most 1/8): plan within 8/9.
int64_t PlanningBudget(int64_t budget) { return budget / 9 * 8; }

absl::Status CheckFinite(double v, absl::string_view what) {
  if (!std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be finite, got ", v));
  }
  return absl::OkStatus();
}

// Order-preserving map of a float's bits to an unsigned key.
inline uint32_t FloatKey(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float KeyFloat(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The working memory of one Combine call, carved out of one buffer.
struct Workspace {
  Buffer buffer;
  size_t bytes = 0;
  std::vector<float*> data;
  std::vector<float*> variance;
  std::vector<uint16_t*> dq;
  std::vector<char*> slots;
  uint32_t* histogram = nullptr;  // kHistogramBytes, when scaling by a median
  absl::Mutex mu;
  std::vector<int> free_slots ABSL_GUARDED_BY(mu);

  char* AcquireSlot() {
    absl::MutexLock lock(&mu);
    if (free_slots.empty()) return nullptr;
    const int s = free_slots.back();
    free_slots.pop_back();
    return slots[s];
  }
  void ReleaseSlot(char* p) {
    absl::MutexLock lock(&mu);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i] == p) free_slots.push_back(static_cast<int>(i));
    }
  }
};

bool ValueOk(float x) { return std::fabs(x) <= std::numeric_limits<float>::max(); }

// --- per-frame statistics for scaling --------------------------------------------------------

// Reads the rows of `section` of `source` band by band into the workspace and calls
// fn(values_row, dq_row_or_null, count) for each row's section columns.
template <typename Fn>
absl::Status ForEachSectionRow(FrameSource& source, const Section& section, Workspace& ws,
                               Fn fn) {
  const int w = source.width();
  const bool use_dq = source.has_dq();
  const size_t row_bytes = size_t(w) * (sizeof(float) + (use_dq ? sizeof(uint16_t) : 0));
  const size_t hist = ws.histogram != nullptr ? kHistogramBytes : 0;
  const size_t avail = ws.bytes - hist;  // the whole workspace: nothing else is in use yet
  const int rows_cap = std::max<int>(1, std::min<int64_t>(section.height(), avail / row_bytes));
  float* data = reinterpret_cast<float*>(ws.buffer.as<char>() + hist);
  uint16_t* dq = use_dq ? reinterpret_cast<uint16_t*>(data + size_t(rows_cap) * w) : nullptr;
  for (int y = section.y0; y < section.y1; y += rows_cap) {
    const int rows = std::min(rows_cap, section.y1 - y);
    CALIBD_RETURN_IF_ERROR(
        Annotate(source.ReadRows(y, rows, data, nullptr, dq), source.name()));
    for (int r = 0; r < rows; ++r) {
      fn(data + size_t(r) * w + section.x0, dq ? dq + size_t(r) * w + section.x0 : nullptr,
         section.width());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> SectionMean(FrameSource& source, const Section& section, Workspace& ws,
                                   uint16_t dq_mask) {
  double sum = 0;
  int64_t count = 0;
  CALIBD_RETURN_IF_ERROR(ForEachSectionRow(
      source, section, ws, [&](const float* v, const uint16_t* q, int n) {
        for (int i = 0; i < n; ++i) {
          if (ValueOk(v[i]) && (q == nullptr || (q[i] & dq_mask) == 0)) {
            sum += v[i];
            ++count;
          }
        }
      }));
  if (count == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source.name(), " has no valid pixel in the scale section; choose another section"));
  }
  return sum / count;
}

// Exact median by a two-pass radix select over the float bits: pass 1 counts the top 16 bits,
// pass 2 the low 16 bits inside the one or two buckets holding the middle ranks.
absl::StatusOr<double> SectionMedian(FrameSource& source, const Section& section, Workspace& ws,
                                     uint16_t dq_mask) {
  uint32_t* hist = ws.histogram;
  std::fill(hist, hist + 65536, 0u);
  int64_t count = 0;
  auto valid = [&](float v, const uint16_t* q, int i) {
    return ValueOk(v) && (q == nullptr || (q[i] & dq_mask) == 0);
  };
  CALIBD_RETURN_IF_ERROR(ForEachSectionRow(
      source, section, ws, [&](const float* v, const uint16_t* q, int n) {
        for (int i = 0; i < n; ++i) {
          if (valid(v[i], q, i)) {
            ++hist[FloatKey(v[i]) >> 16];
            ++count;
          }
        }
      }));
  if (count == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source.name(), " has no valid pixel in the scale section; choose another section"));
  }
  const int64_t ranks[2] = {(count - 1) / 2, count / 2};
  uint32_t bucket[2];
  int64_t below[2];  // values in buckets before bucket[r]
  for (int r = 0; r < 2; ++r) {
    int64_t acc = 0;
    uint32_t b = 0;
    while (acc + hist[b] <= ranks[r]) acc += hist[b++];
    bucket[r] = b;
    below[r] = acc;
  }
  double result = 0;
  for (int r = 0; r < 2; ++r) {
    if (r == 1 && bucket[1] == bucket[0]) {
      // Same bucket: reuse the second-pass histogram of r = 0 (still in hist).
    } else {
      std::fill(hist, hist + 65536, 0u);
      const uint32_t want = bucket[r];
      CALIBD_RETURN_IF_ERROR(ForEachSectionRow(
          source, section, ws, [&](const float* v, const uint16_t* q, int n) {
            for (int i = 0; i < n; ++i) {
              if (valid(v[i], q, i)) {
                const uint32_t k = FloatKey(v[i]);
                if ((k >> 16) == want) ++hist[k & 0xFFFF];
              }
            }
          }));
    }
    int64_t acc = below[r];
    uint32_t lowbits = 0;
    while (acc + hist[lowbits] <= ranks[r]) acc += hist[lowbits++];
    result += 0.5 * double{KeyFloat((bucket[r] << 16) | lowbits)};
  }
  return result;
}

absl::StatusOr<std::vector<double>> ScaleFactors(
    std::vector<std::unique_ptr<FrameSource>>& inputs, const CombineOptions& o, Workspace& ws) {
  const int n = static_cast<int>(inputs.size());
  std::vector<double> f(n, 1.0);
  switch (o.scale) {
    case Scale::kNone:
      break;
    case Scale::kGiven:
      f = o.scale_factors;
      break;
    case Scale::kExposure: {
      std::vector<double> t(n);
      for (int i = 0; i < n; ++i) {
        absl::StatusOr<double> e = inputs[i]->header().GetDouble(o.exposure_key);
        if (!e.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "scaling by exposure: frame ", i, " (", inputs[i]->name(), ") has no numeric ",
              o.exposure_key, " card: ", e.status().message()));
        }
        if (!(*e > 0) || !std::isfinite(*e)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "scaling by exposure: frame ", i, " (", inputs[i]->name(), ") has ",
              o.exposure_key, " = ", *e, "; it must be > 0"));
        }
        t[i] = *e;
      }
      const double ref = o.exposure_reference > 0 ? o.exposure_reference : t[0];
      for (int i = 0; i < n; ++i) f[i] = ref / t[i];
      break;
    }
    case Scale::kInverseMedian:
    case Scale::kInverseMean: {
      Section section = FullSection(inputs[0]->width(), inputs[0]->height());
      if (!o.scale_section.empty()) {
        absl::StatusOr<Section> s =
            ParseFitsSection(o.scale_section, inputs[0]->width(), inputs[0]->height());
        if (!s.ok()) return Annotate(s.status(), "scale_section");
        section = *s;
      }
      for (int i = 0; i < n; ++i) {
        absl::StatusOr<double> stat =
            o.scale == Scale::kInverseMedian ? SectionMedian(*inputs[i], section, ws, o.dq_mask)
                                             : SectionMean(*inputs[i], section, ws, o.dq_mask);
        if (!stat.ok()) return stat.status();
        if (!(*stat > 0) || !std::isfinite(*stat)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "frame ", i, " (", inputs[i]->name(), ") has ", ScaleName(o.scale), " ", *stat,
              " over the scale section; scaling by its inverse needs a positive level"));
        }
        f[i] = 1.0 / *stat;
      }
      break;
    }
  }
  return f;
}

// --- the band kernel ---------------------------------------------------------------------------

struct BandContext {
  int n = 0;
  int64_t pixels = 0;  // in the band
  const std::vector<float*>* data;
  const std::vector<float*>* variance;  // entries null unless read
  const std::vector<uint16_t*>* dq;     // entries null when the input has none
  const std::vector<double>* scale;
  std::vector<float> scale_f;
  float min_value = -std::numeric_limits<float>::infinity();
  float max_value = std::numeric_limits<float>::infinity();
  bool strict_min = false;  // thresholds compared in double when they are not floats
  double min_d = -HUGE_VAL, max_d = HUGE_VAL;
  uint16_t dq_mask = 0xFFFF;
  internal::ReduceParams params;
  const internal::SortingNetwork* network = nullptr;
  bool identity = false;
  bool unsorted = false;  // mean/sum, no extrema, sigma clip (if any) around the mean with std
  // outputs (already offset to the band's first pixel)
  float* out_data = nullptr;
  float* out_var = nullptr;
  uint16_t* out_dq = nullptr;
  uint16_t* out_count = nullptr;
};

struct Tally {
  int64_t valid = 0;
  int64_t used = 0;
};

inline bool PassThreshold(double x, const BandContext& c) { return x >= c.min_d && x <= c.max_d; }

// Eight pixels [p, p + lanes) through the SIMD path: gather N values per pixel into lanes,
// sort each lane with the network, then clip and reduce all eight lanes together. `v` and
// `dev` are n × kLanes floats of scratch.
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

// One pixel through the scalar path with frame identity.
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

std::string OptionsSummary(const CombineOptions& o, absl::Span<const double> scale) {
  std::string s = absl::StrCat("method=", MethodName(o.method));
  if (o.min_value) absl::StrAppend(&s, " min=", *o.min_value);
  if (o.max_value) absl::StrAppend(&s, " max=", *o.max_value);
  if (o.nlow || o.nhigh) absl::StrAppend(&s, " nlow=", o.nlow, " nhigh=", o.nhigh);
  if (o.sigma_clip.enabled) {
    absl::StrAppend(&s, " sigma=", o.sigma_clip.low, "/", o.sigma_clip.high, " cen=",
                    o.sigma_clip.center == CombineOptions::Center::kMedian ? "median" : "mean",
                    " dev=",
                    o.sigma_clip.spread == CombineOptions::Spread::kStd ? "std" : "mad_std",
                    " iters=", o.sigma_clip.max_iters);
  }
  absl::StrAppend(&s, " scale=", ScaleName(o.scale));
  if (!o.weights.empty()) absl::StrAppend(&s, " weighted");
  return s;
}

}  // namespace

// --- names -------------------------------------------------------------------------------------

absl::StatusOr<CombineOptions::Method> ParseMethod(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "mean" || n == "average") return Method::kMean;
  if (n == "median") return Method::kMedian;
  if (n == "sum") return Method::kSum;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown combine method '", name, "'; use mean, median or sum"));
}

absl::string_view MethodName(CombineOptions::Method method) {
  switch (method) {
    case Method::kMean: return "mean";
    case Method::kMedian: return "median";
    case Method::kSum: return "sum";
  }
  return "unknown";
}

absl::StatusOr<CombineOptions::Scale> ParseScale(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "none" || n.empty()) return Scale::kNone;
  if (n == "given") return Scale::kGiven;
  if (n == "median") return Scale::kInverseMedian;
  if (n == "mean") return Scale::kInverseMean;
  if (n == "exposure") return Scale::kExposure;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown scaling '", name, "'; use none, given, median, mean or exposure"));
}

absl::string_view ScaleName(CombineOptions::Scale scale) {
  switch (scale) {
    case Scale::kNone: return "none";
    case Scale::kGiven: return "given";
    case Scale::kInverseMedian: return "median";
    case Scale::kInverseMean: return "mean";
    case Scale::kExposure: return "exposure";
  }
  return "unknown";
}

// --- validation and planning -------------------------------------------------------------------

absl::Status ValidateOptions(const CombineOptions& o, int n) {
  if (n <= 0) {
    return absl::InvalidArgumentError("no input frames to combine; give at least one");
  }
  if (n > kMaxInputs) {
    return absl::InvalidArgumentError(
        absl::StrCat(n, " input frames; at most ", kMaxInputs, " can be combined at once"));
  }
  switch (o.method) {
    case Method::kMean: case Method::kMedian: case Method::kSum: break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown combine method ", static_cast<int>(o.method)));
  }
  switch (o.scale) {
    case Scale::kNone: case Scale::kGiven: case Scale::kInverseMedian: case Scale::kInverseMean:
    case Scale::kExposure: break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown scaling ", static_cast<int>(o.scale)));
  }
  switch (o.variance) {
    case Variance::kCcdproc: case Variance::kPropagated: case Variance::kNone: break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown variance estimator ", static_cast<int>(o.variance)));
  }
  if (o.min_value) CALIBD_RETURN_IF_ERROR(CheckFinite(*o.min_value, "min_value"));
  if (o.max_value) CALIBD_RETURN_IF_ERROR(CheckFinite(*o.max_value, "max_value"));
  if (o.min_value && o.max_value && *o.min_value > *o.max_value) {
    return absl::InvalidArgumentError(absl::StrCat("min_value ", *o.min_value,
                                                   " is above max_value ", *o.max_value));
  }
  if (o.nlow < 0 || o.nhigh < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("nlow (", o.nlow, ") and nhigh (", o.nhigh, ") must be >= 0"));
  }
  if (int64_t{o.nlow} + o.nhigh >= n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "extrema clipping nlow + nhigh = ", o.nlow + o.nhigh, " would reject all ", n,
        " frames; it must be below the number of frames"));
  }
  if (o.sigma_clip.enabled) {
    const auto& s = o.sigma_clip;
    if (!(s.low > 0) || !(s.high > 0) || !std::isfinite(s.low) || !std::isfinite(s.high)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sigma-clip thresholds must be finite and > 0, got low ", s.low, " high ", s.high));
    }
    if (s.max_iters < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sigma-clip max_iters must be >= 0 (0 = until stable), got ", s.max_iters));
    }
    if (s.center != CombineOptions::Center::kMean && s.center != CombineOptions::Center::kMedian) {
      return absl::InvalidArgumentError("unknown sigma-clip centre; use mean or median");
    }
    if (s.spread != CombineOptions::Spread::kStd && s.spread != CombineOptions::Spread::kMadStd) {
      return absl::InvalidArgumentError("unknown sigma-clip spread; use std or mad_std");
    }
  }
  if (o.scale == Scale::kGiven) {
    if (static_cast<int>(o.scale_factors.size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat("scaling 'given' needs one factor per frame: ",
                                                     o.scale_factors.size(), " for ", n,
                                                     " frames"));
    }
    for (size_t i = 0; i < o.scale_factors.size(); ++i) {
      if (!(o.scale_factors[i] > 0) || !std::isfinite(o.scale_factors[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "scale factor ", i, " is ", o.scale_factors[i], "; factors must be finite and > 0"));
      }
    }
  } else if (!o.scale_factors.empty()) {
    return absl::InvalidArgumentError(
        "scale_factors are given but scaling is not 'given'; set scale = kGiven or drop them");
  }
  if (o.scale == Scale::kExposure) {
    if (o.exposure_key.empty()) {
      return absl::InvalidArgumentError("scaling by exposure needs an exposure_key");
    }
    if (o.exposure_reference < 0 || !std::isfinite(o.exposure_reference)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "exposure_reference must be >= 0 (0 = the first frame's), got ", o.exposure_reference));
    }
  }
  if (!o.weights.empty()) {
    if (static_cast<int>(o.weights.size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "one weight per frame is needed: ", o.weights.size(), " weights for ", n, " frames"));
    }
    bool any_positive = false;
    for (size_t i = 0; i < o.weights.size(); ++i) {
      if (!(o.weights[i] >= 0) || !std::isfinite(o.weights[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight ", i, " is ", o.weights[i], "; weights must be finite and >= 0"));
      }
      any_positive |= o.weights[i] > 0;
    }
    if (!any_positive) return absl::InvalidArgumentError("every weight is 0; give a positive one");
  }
  if (!std::isfinite(o.empty_value)) {
    return absl::InvalidArgumentError("empty_value must be finite (masters are checked finite)");
  }
  if (o.memory_budget_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_budget_bytes must be > 0, got ", o.memory_budget_bytes));
  }
  return absl::OkStatus();
}

namespace {

int64_t FixedBytes(const CombineOptions& o, int n) {
  int64_t fixed = int64_t{kMaxSlots} * static_cast<int64_t>(SlotBytes(n));
  if (o.scale == Scale::kInverseMedian) fixed += kHistogramBytes;
  return fixed;
}

// Bands larger than this gain nothing (the per-band overhead is already negligible) and fall
// out of the last-level cache between the read and the combine, so the band is capped here
// even when the budget allows more — but never below kMinPreferredRows rows, so that files on
// disk are still read in large sequential pieces when N is large.
constexpr int64_t kPreferredBandBytes = int64_t{24} << 20;
constexpr int64_t kMinPreferredRows = 32;

int PlanRows(const CombineOptions& o, int n, int width, int height, int64_t bytes_per_row) {
  const int64_t avail =
      std::min(PlanningBudget(o.memory_budget_bytes) - FixedBytes(o, n),
               std::max(kPreferredBandBytes, kMinPreferredRows * bytes_per_row));
  if (avail <= 0 || bytes_per_row <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(height, avail / bytes_per_row));
}

}  // namespace

int PlanBandRows(const CombineOptions& o, int n, int width, int height, bool read_variance,
                 bool read_dq) {
  // Each plane of each input is padded to a cache line (as Combine lays them out).
  const int64_t per_input = int64_t{width} * sizeof(float) + kAlign +
                            (read_variance ? int64_t{width} * sizeof(float) + kAlign : 0) +
                            (read_dq ? int64_t{width} * sizeof(uint16_t) + kAlign : 0);
  return PlanRows(o, n, width, height, per_input * n);
}

// --- Combine -----------------------------------------------------------------------------------

absl::StatusOr<CombineResult> Combine(std::vector<std::unique_ptr<FrameSource>> inputs,
                                      const CombineOptions& o, ThreadPool* pool,
                                      BufferPool* buffers) {
  const int n = static_cast<int>(inputs.size());
  CALIBD_RETURN_IF_ERROR(ValidateOptions(o, n));
  for (int i = 0; i < n; ++i) {
    if (inputs[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("input frame ", i, " is null"));
    }
  }
  const int width = inputs[0]->width(), height = inputs[0]->height();
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("input frame 0 (", inputs[0]->name(),
                                                   ") is empty: ", width, "x", height));
  }
  for (int i = 1; i < n; ++i) {
    if (inputs[i]->width() != width || inputs[i]->height() != height) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "input frame %d (%s) is %dx%d but frame 0 (%s) is %dx%d; all frames must have one "
          "shape",
          i, inputs[i]->name(), inputs[i]->width(), inputs[i]->height(), inputs[0]->name(),
          width, height));
    }
  }
  const bool propagate = o.variance == Variance::kPropagated;
  if (propagate) {
    for (int i = 0; i < n; ++i) {
      if (!inputs[i]->has_variance()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "propagated variance asked for, but input frame ", i, " (", inputs[i]->name(),
            ") has no variance plane; use the ccdproc estimator or give variance"));
      }
    }
  }

  // Plan the bands and carve the workspace.
  int64_t per_row = 0;
  for (int i = 0; i < n; ++i) {
    per_row += int64_t{width} * sizeof(float) + kAlign;
    if (propagate) per_row += int64_t{width} * sizeof(float) + kAlign;
    if (inputs[i]->has_dq()) per_row += int64_t{width} * sizeof(uint16_t) + kAlign;
  }
  const int band_rows = PlanRows(o, n, width, height, per_row);
  if (band_rows < 1) {
    const int64_t need = (FixedBytes(o, n) + per_row) / 8 * 9 + 9;
    return absl::ResourceExhaustedError(absl::StrCat(
        "memory_budget_bytes = ", o.memory_budget_bytes, " is too small to hold one row of ", n,
        " frames of width ", width, "; give at least ", need));
  }
  const int threads = pool != nullptr ? pool->num_threads() + 1 : 1;
  const int num_slots = std::min(kMaxSlots, threads);
  Workspace ws;
  {
    size_t total = o.scale == Scale::kInverseMedian ? kHistogramBytes : 0;
    for (int i = 0; i < n; ++i) {
      total += AlignUp(size_t(band_rows) * width * sizeof(float));
      if (propagate) total += AlignUp(size_t(band_rows) * width * sizeof(float));
      if (inputs[i]->has_dq()) total += AlignUp(size_t(band_rows) * width * sizeof(uint16_t));
    }
    total += size_t(num_slots) * SlotBytes(n);
    ws.bytes = total;
    ws.buffer = buffers != nullptr ? buffers->Acquire(total) : Buffer::Allocate(total);
    char* p = ws.buffer.as<char>();
    if (o.scale == Scale::kInverseMedian) {
      ws.histogram = reinterpret_cast<uint32_t*>(p);
      p += kHistogramBytes;
    }
    ws.data.resize(n);
    ws.variance.assign(n, nullptr);
    ws.dq.assign(n, nullptr);
    for (int i = 0; i < n; ++i) {
      ws.data[i] = reinterpret_cast<float*>(p);
      p += AlignUp(size_t(band_rows) * width * sizeof(float));
      if (propagate) {
        ws.variance[i] = reinterpret_cast<float*>(p);
        p += AlignUp(size_t(band_rows) * width * sizeof(float));
      }
      if (inputs[i]->has_dq()) {
        ws.dq[i] = reinterpret_cast<uint16_t*>(p);
        p += AlignUp(size_t(band_rows) * width * sizeof(uint16_t));
      }
    }
    absl::MutexLock lock(&ws.mu);
    for (int s = 0; s < num_slots; ++s) {
      ws.slots.push_back(p);
      ws.free_slots.push_back(s);
      p += SlotBytes(n);
    }
  }

  CombineResult result;
  CALIBD_ASSIGN_OR_RETURN(result.scale_factors, ScaleFactors(inputs, o, ws));

  // Outputs.
  CalibratedFrame& out = result.frame;
  out.data = Image<float>::Allocate(width, height, buffers);
  if (o.variance != Variance::kNone) out.variance = Image<float>::Allocate(width, height, buffers);
  out.dq = Image<uint16_t>::Allocate(width, height, buffers);
  result.count = Image<uint16_t>::Allocate(width, height, buffers);

  BandContext c;
  c.n = n;
  c.data = &ws.data;
  c.variance = &ws.variance;
  c.dq = &ws.dq;
  c.scale = &result.scale_factors;
  c.scale_f.assign(result.scale_factors.begin(), result.scale_factors.end());
  if (o.min_value) {
    c.min_d = *o.min_value;
    // Smallest float >= min: x >= min_f  <=>  double(x) >= min.
    float f = static_cast<float>(*o.min_value);
    if (double{f} < *o.min_value) f = std::nextafter(f, HUGE_VALF);
    c.min_value = f;
  }
  if (o.max_value) {
    c.max_d = *o.max_value;
    float f = static_cast<float>(*o.max_value);
    if (double{f} > *o.max_value) f = std::nextafter(f, -HUGE_VALF);
    c.max_value = f;
  }
  c.dq_mask = o.dq_mask;
  c.params.method = o.method;
  c.params.nlow = o.nlow;
  c.params.nhigh = o.nhigh;
  c.params.sigma_clip = o.sigma_clip;
  c.params.variance = o.variance;
  c.params.weights = o.weights.empty() ? nullptr : o.weights.data();
  c.params.scale = result.scale_factors.data();
  c.params.empty_value = o.empty_value;
  const internal::SortingNetwork network(n);
  c.network = &network;
  c.identity = NeedsFrameIdentity(o);
  c.unsorted = o.method != Method::kMedian && o.nlow == 0 && o.nhigh == 0 &&
               (!o.sigma_clip.enabled ||
                (o.sigma_clip.center == CombineOptions::Center::kMean &&
                 o.sigma_clip.spread == CombineOptions::Spread::kStd));

  std::atomic<int64_t> valid_total{0}, used_total{0};
  std::vector<absl::Status> read_status(n);
  int num_bands = 0;
  for (int y0 = 0; y0 < height; y0 += band_rows) {
    const int rows = std::min(band_rows, height - y0);
    ++num_bands;
    ParallelFor(pool, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        read_status[i] = inputs[i]->ReadRows(y0, rows, ws.data[i], ws.variance[i], ws.dq[i]);
      }
    });
    for (int i = 0; i < n; ++i) {
      if (!read_status[i].ok()) {
        return Annotate(read_status[i], absl::StrCat("reading input frame ", i, " (",
                                                     inputs[i]->name(), ") rows ", y0, "..",
                                                     y0 + rows - 1));
      }
    }
    const int64_t pixels = int64_t{rows} * width;
    const int64_t offset = int64_t{y0} * width;
    c.pixels = pixels;
    c.out_data = out.data.data() + offset;
    c.out_var = o.variance != Variance::kNone ? out.variance.data() + offset : nullptr;
    c.out_dq = out.dq.data() + offset;
    c.out_count = result.count.data() + offset;
    const int64_t groups = (pixels + kLanes - 1) / kLanes;
    ParallelFor(pool, groups, 64, [&](int64_t g0, int64_t g1) {
      char* slot = ws.AcquireSlot();
      std::vector<char> own;
      if (slot == nullptr) {  // more concurrent chunks than slots (a pool of > 15 threads)
        own.resize(SlotBytes(n) + kAlign);
        slot = reinterpret_cast<char*>(AlignUp(reinterpret_cast<uintptr_t>(own.data())));
      }
      Tally tally;
      float* lanes = reinterpret_cast<float*>(slot);
      float* dev = reinterpret_cast<float*>(slot + AlignUp(size_t(n) * kLanes * sizeof(float)));
      char* scalar = slot + 2 * AlignUp(size_t(n) * kLanes * sizeof(float));
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t p = g * kLanes;
        const int lanes_here = static_cast<int>(std::min<int64_t>(kLanes, pixels - p));
        if (c.identity) {
          for (int l = 0; l < lanes_here; ++l) ScalarPixel(c, p + l, scalar, tally);
        } else if (c.unsorted) {
          LaneGroupUnsorted(c, p, lanes_here, lanes, tally);
        } else {
          LaneGroup(c, p, lanes_here, lanes, dev, tally);
        }
      }
      valid_total.fetch_add(tally.valid, std::memory_order_relaxed);
      used_total.fetch_add(tally.used, std::memory_order_relaxed);
      if (own.empty()) ws.ReleaseSlot(slot);
    });
  }

  const int64_t all = int64_t{n} * width * height;
  const int64_t valid = valid_total.load();
  result.masked_fraction = double(all - valid) / double(all);
  result.rejected_fraction = valid > 0 ? double(valid - used_total.load()) / double(valid) : 0.0;
  result.band_rows = band_rows;
  result.num_bands = num_bands;
  result.working_bytes = static_cast<int64_t>(ws.bytes);

  out.header = inputs[0]->header();
  // The unit follows the first input's BUNIT (calibrated frames say "adu" or "electron").
  absl::StatusOr<std::string> bunit = out.header.GetString("BUNIT");
  out.unit = bunit.ok() && absl::StartsWithIgnoreCase(*bunit, "electron") ? "electron" : "adu";
  out.header.Set("NCOMBINE", n, "number of frames combined");
  out.header.Set("COMBMETH", std::string(MethodName(o.method)), "combine method");
  out.header.Set("COMBREJ", result.rejected_fraction, "fraction of valid values rejected");
  if (o.scale == Scale::kExposure) {
    out.header.Set(o.exposure_key, result.scale_factors[0] *
                                       inputs[0]->header().GetDouble(o.exposure_key).value_or(0),
                   "exposure all frames were scaled to");
  }
  out.header.AddHistory(absl::StrCat("calibd combine of ", n, " frames: ",
                                     OptionsSummary(o, result.scale_factors)));
  return result;
}

}  // namespace calibd::combine
