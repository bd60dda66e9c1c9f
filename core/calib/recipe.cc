// Validate and the fused Calibrate: one pass per row band doing every step at once.
#include "core/calib/recipe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/calib/keywords.h"
#include "core/calib/statistics.h"
#include "core/image/dq.h"
#include "core/status/macros.h"

namespace calibd::calib {
namespace {

std::string Shape(int w, int h) { return absl::StrCat(w, "×", h); }

template <typename T>
absl::Status CheckShape(absl::string_view what, const Image<T>& image, int w, int h) {
  if (image.width() == w && image.height() == h) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is ", Shape(image.width(), image.height()), " but the trimmed frame is ",
                   Shape(w, h), "; use a master made for this detector's TRIMSEC"));
}

absl::Status CheckMaster(absl::string_view what, const CalibratedFrame& m, int w, int h) {
  CALIBD_RETURN_IF_ERROR(CheckShape(absl::StrCat("the master ", what), m.data, w, h));
  if (m.has_variance()) {
    CALIBD_RETURN_IF_ERROR(
        CheckShape(absl::StrCat("the master ", what, "'s variance plane"), m.variance, w, h));
  }
  if (m.has_dq()) {
    CALIBD_RETURN_IF_ERROR(
        CheckShape(absl::StrCat("the master ", what, "'s DQ plane"), m.dq, w, h));
  }
  return absl::OkStatus();
}

Section TrimSection(const RecipeOptions& options, int w, int h) {
  return options.trim.has_value() ? *options.trim : FullSection(w, h);
}

bool UseBias(const RecipeOptions& o, const Masters& m) { return o.subtract_bias && m.bias; }
bool UseDark(const RecipeOptions& o, const Masters& m) { return o.subtract_dark && m.dark; }
bool UseFlat(const RecipeOptions& o, const Masters& m) {
  return o.divide_flat && (m.flat || m.prepared_flat);
}

// Everything the row kernel needs, resolved once per frame.
struct Plan {
  const RawImage* raw = nullptr;
  Section trim;
  int width = 0, height = 0;
  bool raw_is_float = false;
  float saturation = 0;
  bool check_saturation = false;
  // Overscan: per-row values indexed by raw row, or per-column values for the trimmed columns.
  bool overscan = false, overscan_per_row = true;
  std::vector<float> overscan_rows;  // indexed by raw row
  std::vector<float> overscan_cols;  // indexed by trimmed column
  // Variance.
  bool variance = false;
  float inv_gain = 1, rn2_over_g2 = 0;  // scalar path
  const Image<float>* gain_map = nullptr;
  const Image<float>* rn_map = nullptr;
  float read_noise = 0, gain = 1;
  // Masters.
  const CalibratedFrame* bias = nullptr;
  const CalibratedFrame* dark = nullptr;
  float dark_scale = 0, dark_scale2 = 0;
  const PreparedFlat* flat = nullptr;
  const Image<uint16_t>* bad_pixels = nullptr;
  uint16_t bad_pixel_bits = 0;
  bool to_electrons = false;
  float gain2 = 1;
  // Statistics.
  bool stats = false;
  int sample_row_step = 1, sample_col_step = 1;
};

struct RowStats {
  double sum = 0, sum2 = 0;
  int64_t good = 0, flagged = 0, saturated = 0, no_data = 0, low_flat = 0, bad = 0;
};

// The per-pixel arithmetic of every step in one loop. Absent planes are replaced by
// "neutral" rows (zeros, ones) that stay in L1, so one loop serves every recipe; the steps'
// order of operations is the documented one. Restrict parameters let it vectorise.
template <typename T, bool kVariance, bool kMaps>
void FusedRow(int w, const T* __restrict r, float o, const float* __restrict oc,
              const float* __restrict b, const float* __restrict bv, const uint16_t* __restrict bq,
              const float* __restrict k, const float* __restrict kv, const uint16_t* __restrict kq,
              float s, float s2, const float* __restrict inv, const float* __restrict nv,
              const uint16_t* __restrict fq, const uint16_t* __restrict bp, uint16_t bpk,
              const float* __restrict gm, const float* __restrict rm, const float* __restrict gor,
              float ig, float c, float go, float go2, float sat, float* __restrict d_out,
              float* __restrict v_out, uint16_t* __restrict q_out) {
  for (int x = 0; x < w; ++x) {
    const float rv = static_cast<float>(r[x]);
    const float d0 = rv - o - oc[x];  // overscan (per row: oc = 0; per column: o = 0)
    float d = ((d0 - b[x]) - s * k[x]) * inv[x];
    int m = (rv >= sat ? kDqSaturated : 0) | (std::isfinite(rv) ? 0 : kDqNoData) | bq[x] | kq[x] |
            fq[x] | (bp[x] & bpk) | (bp[x] != 0 ? kDqBad : 0);
    if constexpr (kVariance) {
      const float pos = std::max(d0, 0.0f);
      float v;
      if constexpr (kMaps) {
        const float g = gm[x], rn = rm[x];
        v = (g * pos + rn * rn) / (g * g);
      } else {
        v = pos * ig + c;
      }
      v = (v + bv[x]) + s2 * kv[x];
      v = inv[x] * inv[x] * (v + d * d * nv[x]);
      if constexpr (kMaps) {
        d *= gor[x];
        v *= gor[x] * gor[x];
      } else {
        d *= go;
        v *= go2;
      }
      m |= (std::isfinite(d) && std::isfinite(v)) ? 0 : kDqNoData;
      v_out[x] = v;
    } else {
      if constexpr (kMaps) {
        d *= gor[x];
      } else {
        d *= go;
      }
      m |= std::isfinite(d) ? 0 : kDqNoData;
    }
    d_out[x] = d;
    q_out[x] = static_cast<uint16_t>(m);
  }
}

// The planes FusedRow reads and writes for one row (see FusedRow for the meaning of each).
struct RowPlanes {
  const float *oc, *b, *bv, *k, *kv, *inv, *nv, *gm, *rm, *gor;
  const uint16_t *bq, *kq, *fq, *bp;
  uint16_t bpk;
  float o, s, s2, ig, c, go, go2, sat;
  float* d;
  float* v;
  uint16_t* q;
};

template <typename T, bool kVariance, bool kMaps>
void RunFused(int w, const void* raw_row, const RowPlanes& a) {
  FusedRow<T, kVariance, kMaps>(w, static_cast<const T*>(raw_row), a.o, a.oc, a.b, a.bv, a.bq, a.k,
                                a.kv, a.kq, a.s, a.s2, a.inv, a.nv, a.fq, a.bp, a.bpk, a.gm, a.rm, a.gor,
                                a.ig, a.c, a.go, a.go2, a.sat, a.d, a.v, a.q);
}

// Dispatches to the FusedRow instantiation for (raw type, variance?, maps?).
template <typename T>
void Fused(bool variance, bool maps, int w, const void* raw_row, const RowPlanes& a) {
  if (variance) {
    maps ? RunFused<T, true, true>(w, raw_row, a) : RunFused<T, true, false>(w, raw_row, a);
  } else {
    maps ? RunFused<T, false, true>(w, raw_row, a) : RunFused<T, false, false>(w, raw_row, a);
  }
}

// Neutral rows for absent planes, shared read-only by every band of one Calibrate call.
struct NeutralRows {
  std::vector<float> zeros, ones, gain, read_noise;
  std::vector<uint16_t> no_dq;
};

// One output row yt: every step at once, fused.
void CalibrateRow(const Plan& p, const NeutralRows& n, int yt, float* scratch,
                  Image<float>& out_data, Image<float>& out_var, Image<uint16_t>& out_dq,
                  RowStats* rs, std::vector<float>* sample) {
  const int w = p.width;
  const int yr = p.trim.y0 + yt;
  float* d = out_data.row(yt);
  float* v = p.variance ? out_var.row(yt) : nullptr;
  uint16_t* q = out_dq.row(yt);
  float* r = scratch;

  const float* zeros = n.zeros.data();
  const uint16_t* no_dq = n.no_dq.data();
  float o = 0;
  const float* oc = zeros;
  if (p.overscan) {
    if (p.overscan_per_row) {
      o = p.overscan_rows[yr];
    } else {
      oc = p.overscan_cols.data();
    }
  }
  const CalibratedFrame* bias = p.bias;
  const float* b = bias != nullptr ? bias->data.row(yt) : zeros;
  const float* bv = bias != nullptr && bias->has_variance() ? bias->variance.row(yt) : zeros;
  const uint16_t* bq = bias != nullptr && bias->has_dq() ? bias->dq.row(yt) : no_dq;
  const CalibratedFrame* dark = p.dark;
  const float* k = dark != nullptr ? dark->data.row(yt) : zeros;
  const float* kv = dark != nullptr && dark->has_variance() ? dark->variance.row(yt) : zeros;
  const uint16_t* kq = dark != nullptr && dark->has_dq() ? dark->dq.row(yt) : no_dq;
  const PreparedFlat* flat = p.flat;
  const float* inv = flat != nullptr ? flat->inverse.row(yt) : n.ones.data();
  const float* nv =
      flat != nullptr && !flat->norm_variance.empty() ? flat->norm_variance.row(yt) : zeros;
  const uint16_t* fq = flat != nullptr && !flat->dq.empty() ? flat->dq.row(yt) : no_dq;
  const uint16_t* bp = p.bad_pixels != nullptr ? p.bad_pixels->row(yt) : no_dq;
  const bool maps = p.gain_map != nullptr || p.rn_map != nullptr;
  const float* gm = p.gain_map != nullptr ? p.gain_map->row(yt) : n.gain.data();
  const float* rm = p.rn_map != nullptr ? p.rn_map->row(yt) : n.read_noise.data();
  const float sat = p.check_saturation ? p.saturation : std::numeric_limits<float>::quiet_NaN();
  // Output gain: g (electrons) or 1 (ADU); with maps, per pixel.
  const float go = p.to_electrons ? p.gain : 1.0f;
  const float go2 = p.to_electrons ? p.gain2 : 1.0f;
  const float* gor = p.to_electrons ? gm : n.ones.data();
  // uint16 and float32 raw rows are read in place; other types are converted first.
  const void* raw_row = nullptr;
  const PixelType type = p.raw->type();
  if (type == PixelType::kUint16) {
    raw_row = p.raw->row<uint16_t>(yr) + p.trim.x0;
  } else if (type == PixelType::kFloat32) {
    raw_row = p.raw->row<float>(yr) + p.trim.x0;
  } else {
    p.raw->RowToFloat(yr, p.trim.x0, w, r);
    raw_row = r;
  }
  const RowPlanes planes{oc,
                         b,
                         bv,
                         k,
                         kv,
                         inv,
                         nv,
                         gm,
                         rm,
                         gor,
                         bq,
                         kq,
                         fq,
                         bp,
                         p.bad_pixel_bits,
                         o,
                         p.dark_scale,
                         p.dark_scale2,
                         p.inv_gain,
                         p.rn2_over_g2,
                         go,
                         go2,
                         sat,
                         d,
                         v,
                         q};
  if (type == PixelType::kUint16) {
    Fused<uint16_t>(p.variance, maps, w, raw_row, planes);
  } else {
    Fused<float>(p.variance, maps, w, raw_row, planes);
  }

  if (rs != nullptr) {
    // Good pixels' values (0 elsewhere) into the scratch row, then sums in double with
    // explicit 4-lane vectors (a plain double reduction would not vectorise).
    for (int x = 0; x < w; ++x) r[x] = q[x] == 0 ? d[x] : 0.0f;
    typedef float V4f __attribute__((vector_size(16)));
    typedef double V4d __attribute__((vector_size(32)));
    // Two independent accumulator pairs hide the add latency.
    V4d acc = {0, 0, 0, 0}, acc2 = {0, 0, 0, 0}, accb = {0, 0, 0, 0}, acc2b = {0, 0, 0, 0};
    int x = 0;
    for (; x + 8 <= w; x += 8) {
      V4f f, g;
      std::memcpy(&f, r + x, sizeof f);
      std::memcpy(&g, r + x + 4, sizeof g);
      const V4d v4 = __builtin_convertvector(f, V4d);
      const V4d u4 = __builtin_convertvector(g, V4d);
      acc += v4;
      acc2 += v4 * v4;
      accb += u4;
      acc2b += u4 * u4;
    }
    acc += accb;
    acc2 += acc2b;
    double sum = acc[0] + acc[1] + acc[2] + acc[3];
    double sum2 = acc2[0] + acc2[1] + acc2[2] + acc2[3];
    for (; x < w; ++x) {
      sum += r[x];
      sum2 += static_cast<double>(r[x]) * r[x];
    }
    int good = 0, sat = 0, nodata = 0, low = 0, bad = 0;
    for (int i = 0; i < w; ++i) good += q[i] == 0;
    if (good < w) {  // most rows have no flagged pixel: count the bits only when needed
      for (int i = 0; i < w; ++i) {
        const uint16_t m = q[i];
        sat += (m & kDqSaturated) != 0;
        nodata += (m & kDqNoData) != 0;
        low += (m & kDqLowFlat) != 0;
        bad += (m & kDqBad) != 0;
      }
    }
    rs->sum = sum;
    rs->sum2 = sum2;
    rs->good = good;
    rs->flagged = w - good;
    rs->saturated = sat;
    rs->no_data = nodata;
    rs->low_flat = low;
    rs->bad = bad;
    if (sample != nullptr) {
      for (int x = 0; x < w; x += p.sample_col_step) {
        if (q[x] == 0) sample->push_back(d[x]);
      }
    }
  }
}

}  // namespace

absl::Status Validate(const RecipeOptions& options, const Masters& masters, int raw_width,
                      int raw_height) {
  if (raw_width <= 0 || raw_height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the raw frame is ", Shape(raw_width, raw_height), "; it has no pixels"));
  }
  const Section trim = TrimSection(options, raw_width, raw_height);
  if (!trim.InFrame(raw_width, raw_height)) {
    return absl::InvalidArgumentError(
        absl::StrCat("TRIMSEC ", FormatFitsSection(trim), " is empty or outside the ",
                     Shape(raw_width, raw_height), " raw frame; give a section inside it"));
  }
  if (trim.x_reversed || trim.y_reversed) {
    return absl::InvalidArgumentError(absl::StrCat("TRIMSEC ", FormatFitsSection(trim),
                                                   " is reversed; flipping is not supported, list "
                                                   "each range low to high"));
  }
  const int w = trim.width(), h = trim.height();
  const OverscanOptions& os = options.overscan;
  if (os.statistic != OverscanOptions::Statistic::kNone) {
    const Section& r = os.region;
    if (!r.InFrame(raw_width, raw_height)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "overscan region (BIASSEC) ", FormatFitsSection(r), " is empty or outside the ",
          Shape(raw_width, raw_height), " raw frame; give a section inside it"));
    }
    if (os.fit != OverscanOptions::Fit::kWhole) {
      const bool per_row = OverscanPerRow(os);
      if (per_row && (trim.y0 < r.y0 || trim.y1 > r.y1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("per-row overscan: BIASSEC ", FormatFitsSection(r),
                         " does not cover the rows of "
                         "TRIMSEC ",
                         FormatFitsSection(trim), "; extend BIASSEC or use a whole-region fit"));
      }
      if (!per_row && (trim.x0 < r.x0 || trim.x1 > r.x1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("per-column overscan: BIASSEC ", FormatFitsSection(r),
                         " does not cover the "
                         "columns of TRIMSEC ",
                         FormatFitsSection(trim), "; extend BIASSEC or use a whole-region fit"));
      }
      if (os.fit == OverscanOptions::Fit::kPolynomial) {
        const int lines = per_row ? r.height() : r.width();
        if (os.poly_order < 0 || os.poly_order > 9 || lines <= os.poly_order) {
          return absl::InvalidArgumentError(
              absl::StrCat("overscan polynomial order ", os.poly_order,
                           " must be 0..9 and below the ", lines, " overscan lines"));
        }
      }
    }
    if (os.statistic == OverscanOptions::Statistic::kClippedMean &&
        !(os.clip_sigma > 0 && os.clip_iters >= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("overscan clipped mean needs clip_sigma > 0 and clip_iters >= 1 (got ",
                       os.clip_sigma, ", ", os.clip_iters, ")"));
    }
  }
  if (!(std::isfinite(options.gain) && options.gain > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gain must be a finite number > 0 e-/ADU, got ", options.gain));
  }
  if (!(std::isfinite(options.read_noise) && options.read_noise >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("read noise must be a finite number >= 0 e-, got ", options.read_noise));
  }
  if (std::isnan(options.saturation)) {
    return absl::InvalidArgumentError("saturation level is NaN; give a number or infinity");
  }
  if (options.band_rows < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("band_rows must be >= 1, got ", options.band_rows));
  }
  if (UseBias(options, masters)) CALIBD_RETURN_IF_ERROR(CheckMaster("bias", *masters.bias, w, h));
  if (UseDark(options, masters)) {
    CALIBD_RETURN_IF_ERROR(CheckMaster("dark", *masters.dark, w, h));
    if (options.scale_dark) {
      if (!(std::isfinite(masters.dark_exptime) && masters.dark_exptime > 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the master dark's exposure time is ", masters.dark_exptime,
            "; scaling the dark needs a dark exposure > 0 s (or turn off dark scaling)"));
      }
      if (!(std::isfinite(options.exptime) && options.exptime >= 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the frame's exposure time is ", options.exptime,
            "; scaling the dark needs the frame exposure (>= 0 s, e.g. from EXPTIME)"));
      }
    }
  }
  if (UseFlat(options, masters)) {
    if (masters.prepared_flat) {
      const PreparedFlat& f = *masters.prepared_flat;
      CALIBD_RETURN_IF_ERROR(CheckShape("the prepared flat", f.inverse, w, h));
      if (!f.norm_variance.empty()) {
        CALIBD_RETURN_IF_ERROR(CheckShape("the prepared flat's variance", f.norm_variance, w, h));
      }
      if (!f.dq.empty()) CALIBD_RETURN_IF_ERROR(CheckShape("the prepared flat's DQ", f.dq, w, h));
    } else {
      CALIBD_RETURN_IF_ERROR(CheckMaster("flat", *masters.flat, w, h));
      const FlatOptions& fo = options.flat;
      if (fo.norm == FlatOptions::Norm::kValue && !(std::isfinite(fo.value) && fo.value > 0)) {
        return absl::InvalidArgumentError(absl::StrCat("NaN flat: the flat normalisation value is ",
                                                       fo.value, "; give a finite value > 0"));
      }
      if (fo.norm != FlatOptions::Norm::kValue && fo.stats_region.has_value() &&
          !fo.stats_region->InFrame(w, h)) {
        return absl::InvalidArgumentError(
            absl::StrCat("flat statistics section ", FormatFitsSection(*fo.stats_region),
                         " is empty or outside the ", Shape(w, h), " flat"));
      }
    }
  }
  if (masters.read_noise_map) {
    CALIBD_RETURN_IF_ERROR(CheckShape("the read-noise map", *masters.read_noise_map, w, h));
  }
  if (masters.gain_map) CALIBD_RETURN_IF_ERROR(CheckShape("the gain map", *masters.gain_map, w, h));
  if (masters.bad_pixels) {
    CALIBD_RETURN_IF_ERROR(CheckShape("the bad-pixel map", *masters.bad_pixels, w, h));
  }
  return absl::OkStatus();
}

absl::StatusOr<CalibratedFrame> Calibrate(const RawImage& raw, const Masters& masters,
                                          const RecipeOptions& options, ThreadPool* pool,
                                          BufferPool* buffers, FrameStats* stats) {
  CALIBD_RETURN_IF_ERROR(Validate(options, masters, raw.width(), raw.height()));
  Plan p;
  p.raw = &raw;
  p.trim = TrimSection(options, raw.width(), raw.height());
  p.width = p.trim.width();
  p.height = p.trim.height();
  p.raw_is_float = raw.type() == PixelType::kFloat32 || raw.type() == PixelType::kFloat64;
  p.check_saturation = options.saturation < std::numeric_limits<double>::infinity();
  p.saturation = static_cast<float>(options.saturation);

  FrameStats local;
  CALIBD_ASSIGN_OR_RETURN(OverscanModel overscan, MeasureOverscan(raw, options.overscan, pool));
  if (!overscan.values.empty()) {
    p.overscan = true;
    p.overscan_per_row = overscan.per_row;
    if (overscan.per_row) {
      p.overscan_rows.assign(raw.height(), 0.0f);
      for (int y = p.trim.y0; y < p.trim.y1; ++y) {
        p.overscan_rows[y] = static_cast<float>(overscan.At(0, y));
      }
    } else {
      p.overscan_cols.resize(p.width);
      for (int x = 0; x < p.width; ++x) {
        p.overscan_cols[x] = static_cast<float>(overscan.At(p.trim.x0 + x, 0));
      }
    }
    local.overscan_level = overscan.Level();
  }

  p.gain = static_cast<float>(options.gain);
  p.gain2 = static_cast<float>(options.gain * options.gain);
  p.read_noise = static_cast<float>(options.read_noise);
  p.gain_map = masters.gain_map.get();
  p.rn_map = masters.read_noise_map.get();
  p.variance = options.compute_variance;
  p.inv_gain = static_cast<float>(1.0 / options.gain);
  p.rn2_over_g2 =
      static_cast<float>(options.read_noise * options.read_noise / (options.gain * options.gain));
  if (UseBias(options, masters)) p.bias = masters.bias.get();
  if (UseDark(options, masters)) {
    p.dark = masters.dark.get();
    const double s = options.scale_dark ? options.exptime / masters.dark_exptime : 1.0;
    p.dark_scale = static_cast<float>(s);
    p.dark_scale2 = static_cast<float>(s * s);
    local.dark_scale = s;
  }
  PreparedFlat own_flat;
  if (UseFlat(options, masters)) {
    if (masters.prepared_flat) {
      p.flat = masters.prepared_flat.get();
    } else {
      CALIBD_ASSIGN_OR_RETURN(own_flat, NormalizeFlat(*masters.flat, options.flat, pool, buffers));
      p.flat = &own_flat;
    }
    local.flat_norm = p.flat->norm;
  }
  p.bad_pixels = masters.bad_pixels.get();
  p.bad_pixel_bits = masters.bad_pixel_bits;
  p.to_electrons = options.output_unit == RecipeOptions::Unit::kElectron;
  if (p.to_electrons) {
    if (p.gain_map != nullptr) {
      double sum = 0;
      for (int y = 0; y < p.height; ++y) {
        for (float g : p.gain_map->Row(y)) sum += g;
      }
      local.gain = sum / static_cast<double>(p.gain_map->num_pixels());
    } else {
      local.gain = options.gain;
    }
  }

  CalibratedFrame out;
  out.data = Image<float>::Allocate(p.width, p.height, buffers);
  if (p.variance) out.variance = Image<float>::Allocate(p.width, p.height, buffers);
  out.dq = Image<uint16_t>::Allocate(p.width, p.height, buffers);
  out.unit = p.to_electrons ? "electron" : "adu";

  p.stats = stats != nullptr;
  std::vector<RowStats> row_stats;
  std::vector<std::vector<float>> samples;
  if (p.stats) {
    row_stats.resize(p.height);
    // A regular grid of at most 2^16 samples.
    constexpr int64_t kMaxSamples = int64_t{1} << 16;
    int step = 1;
    while (static_cast<int64_t>((p.height + step - 1) / step) * ((p.width + step - 1) / step) >
           kMaxSamples) {
      ++step;
    }
    p.sample_row_step = step;
    p.sample_col_step = step;
    samples.resize((p.height + step - 1) / step);
  }
  NeutralRows neutral;
  neutral.zeros.assign(p.width, 0.0f);
  neutral.ones.assign(p.width, 1.0f);
  neutral.no_dq.assign(p.width, 0);
  if (p.gain_map == nullptr) neutral.gain.assign(p.width, p.gain);
  if (p.rn_map == nullptr) neutral.read_noise.assign(p.width, p.read_noise);
  ParallelFor(pool, p.height, options.band_rows, [&](int64_t y0, int64_t y1) {
    std::vector<float> scratch(p.width);
    for (int64_t y = y0; y < y1; ++y) {
      const int yt = static_cast<int>(y);
      std::vector<float>* sample = nullptr;
      if (p.stats && yt % p.sample_row_step == 0) sample = &samples[yt / p.sample_row_step];
      CalibrateRow(p, neutral, yt, scratch.data(), out.data, out.variance, out.dq,
                   p.stats ? &row_stats[yt] : nullptr, sample);
    }
  });

  local.width = p.width;
  local.height = p.height;
  local.pixels = int64_t{p.width} * p.height;
  if (p.stats) {
    double sum = 0, sum2 = 0;
    int64_t good = 0;
    for (const RowStats& rs : row_stats) {
      sum += rs.sum;
      sum2 += rs.sum2;
      good += rs.good;
      local.flagged += rs.flagged;
      local.saturated += rs.saturated;
      local.no_data += rs.no_data;
      local.low_flat += rs.low_flat;
      local.bad += rs.bad;
    }
    local.flagged_fraction =
        local.pixels > 0 ? static_cast<double>(local.flagged) / local.pixels : 0.0;
    if (good > 0) {
      local.mean = sum / good;
      local.stddev = std::sqrt(std::max(0.0, sum2 / good - local.mean * local.mean));
    }
    std::vector<double> all;
    for (const auto& s : samples) all.insert(all.end(), s.begin(), s.end());
    local.median = all.empty() ? 0.0 : Median(absl::MakeSpan(all));
  }
  AddRecipeCards(options, masters, local, out.header);
  if (stats != nullptr) *stats = local;
  return out;
}

absl::StatusOr<CalibratedFrame> Calibrate(const RawFrame& raw, const Masters& masters,
                                          const RecipeOptions& options, ThreadPool* pool,
                                          BufferPool* buffers, FrameStats* stats) {
  CALIBD_ASSIGN_OR_RETURN(CalibratedFrame out,
                          Calibrate(raw.pixels, masters, options, pool, buffers, stats));
  Header header = raw.header;
  for (const HeaderCard& card : out.header.cards()) {
    if (card.key == "HISTORY" || card.key == "COMMENT") {
      header.Append(card);
    } else {
      header.Set(card.key, card.value, card.comment);
    }
  }
  out.header = std::move(header);
  return out;
}

}  // namespace calibd::calib
