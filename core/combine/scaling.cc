#include "core/combine/scaling.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/combine/kernel.h"
#include "core/image/section.h"
#include "core/status/macros.h"

namespace calibd::combine::internal {
namespace {

using Scale = CombineOptions::Scale;

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

// Reads the rows of `section` of `source` band by band into the workspace and calls
// fn(values_row, dq_row_or_null, count) for each row's section columns.
template <typename Fn>
absl::Status ForEachSectionRow(FrameSource& source, const Section& section, Workspace& ws,
                               Fn fn) {
  if (const CalibratedFrame* f = source.in_memory(); f != nullptr) {
    for (int y = section.y0; y < section.y1; ++y) {
      fn(f->data.row(y) + section.x0, f->has_dq() ? f->dq.row(y) + section.x0 : nullptr,
         section.width());
    }
    return absl::OkStatus();
  }
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

}  // namespace

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

}  // namespace calibd::combine::internal
