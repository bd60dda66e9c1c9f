// bad_pixels: a DQ map of hot, dead/cold, noisy and under-sampled pixels (noise.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/calib/statistics.h"
#include "core/image/dq.h"
#include "core/noise/noise.h"
#include "core/noise/stack.h"
#include "core/status/macros.h"

namespace calibd::noise {

namespace {

absl::Status CheckShape(const char* what, int w, int h, int* width, int* height) {
  if (*width == 0) {
    *width = w;
    *height = h;
    return absl::OkStatus();
  }
  if (w != *width || h != *height) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad_pixels inputs of different shapes: the ", what, " is ", w, "x", h, ", another input ",
        *width, "x", *height, "; supply products of one detector"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<NoiseProduct> BuildBadPixels(const BadPixelInputs& in,
                                            const BadPixelOptions& options, ThreadPool* pool) {
  if (in.dark_current == nullptr && in.read_noise == nullptr && in.flat == nullptr) {
    return absl::InvalidArgumentError(
        "bad_pixels needs at least one input: a dark_current product, a read_noise product or "
        "a master flat");
  }
  if (!(options.dead_fraction > 0 && options.dead_fraction < 1)) {
    return absl::InvalidArgumentError("dead_fraction must be in (0, 1)");
  }
  if (options.box < 3 || options.box % 2 == 0) {
    return absl::InvalidArgumentError("box must be odd and >= 3");
  }
  if (options.median_step < 1 || options.median_step > options.box) {
    return absl::InvalidArgumentError("median_step must be in [1, box]");
  }
  if (!(options.noisy_sigma > 0)) return absl::InvalidArgumentError("noisy_sigma must be > 0");
  int w = 0, h = 0;
  if (in.dark_current) {
    if (in.dark_current->kind != kKindDarkCurrent) {
      return absl::InvalidArgumentError(
          absl::StrCat("the dark_current input is a ", in.dark_current->kind, " product"));
    }
    RETURN_IF_ERROR(CheckShape("dark_current product", in.dark_current->width,
                               in.dark_current->height, &w, &h));
  }
  const Image<float>* rn = nullptr;
  if (in.read_noise) {
    rn = in.read_noise->Find("READ_NOISE");
    if (rn == nullptr) {
      return absl::InvalidArgumentError("the read_noise input has no READ_NOISE map");
    }
    RETURN_IF_ERROR(CheckShape("read_noise product", rn->width(), rn->height(), &w, &h));
  }
  if (in.flat) RETURN_IF_ERROR(CheckShape("flat", in.flat->width(), in.flat->height(), &w, &h));

  NoiseProduct p = NoiseProduct::Create(kKindBadPixels, w, h);
  int64_t nhot = 0, ndead = 0, nnoisy = 0, nfew = 0;
  for (const NoiseProduct* src : {in.dark_current, in.read_noise}) {
    if (src == nullptr) continue;
    for (int64_t i = 0; i < p.dq.num_pixels(); ++i) {
      const uint16_t d = src->dq.data()[i];
      if ((d & kDqHot) && !(p.dq.data()[i] & kDqHot)) {
        p.dq.data()[i] |= kDqHot;
        ++nhot;
      }
      if ((d & kDqNoData) && !(p.dq.data()[i] & kDqNoData)) {
        p.dq.data()[i] |= kDqBad | kDqNoData;
        ++nfew;
      }
    }
  }
  double rn_median = 0, rn_sigma = 0;
  if (rn != nullptr) {
    const auto all = absl::MakeConstSpan(rn->data(), size_t(rn->num_pixels()));
    rn_median = internal::FiniteMedian(all);
    rn_sigma = internal::RobustSigma(all, rn_median);
    const double limit = rn_median + options.noisy_sigma * rn_sigma;
    for (int64_t i = 0; i < rn->num_pixels(); ++i) {
      if (rn->data()[i] > limit) {
        p.dq.data()[i] |= kDqBad;
        ++nnoisy;
      }
    }
    p.header.Set("NOISYLIM", limit, "noisy: read noise above this [e-]");
  }
  if (in.flat != nullptr) {
    // Local median in a box (clipped at the edges) of the finite, DQ-clean flat values.
    const CalibratedFrame& f = *in.flat;
    Image<uint8_t> dead = Image<uint8_t>::Filled(w, h, 0);
    const int half = options.box / 2;
    const int step = options.median_step;
    const int gw = (w - 1) / step + 1, gh = (h - 1) / step + 1;
    Image<float> local = Image<float>::Allocate(gw, gh);
    ParallelFor(pool, gh, 1, [&](int64_t g0, int64_t g1) {
      std::vector<double> window;
      for (int gy = static_cast<int>(g0); gy < g1; ++gy) {
        const int y = std::min(h - 1, gy * step);
        for (int gx = 0; gx < gw; ++gx) {
          const int x = std::min(w - 1, gx * step);
          window.clear();
          for (int yy = std::max(0, y - half); yy <= std::min(h - 1, y + half); ++yy) {
            for (int xx = std::max(0, x - half); xx <= std::min(w - 1, x + half); ++xx) {
              const float u = f.data.at(xx, yy);
              if (std::isfinite(u) && !(f.has_dq() && f.dq.at(xx, yy) != 0)) window.push_back(u);
            }
          }
          local.at(gx, gy) = window.empty()
                                 ? std::numeric_limits<float>::quiet_NaN()
                                 : static_cast<float>(calib::Median(absl::MakeSpan(window)));
        }
      }
    });
    ParallelFor(pool, h, 16, [&](int64_t y0, int64_t y1) {
      for (int y = static_cast<int>(y0); y < y1; ++y) {
        const int gy = std::min(gh - 1, (y + step / 2) / step);
        for (int x = 0; x < w; ++x) {
          const float m = local.at(std::min(gw - 1, (x + step / 2) / step), gy);
          if (!std::isfinite(m)) continue;
          const float v = f.data.at(x, y);
          if (!std::isfinite(v) || v < options.dead_fraction * m) dead.at(x, y) = 1;
        }
      }
    });
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        if (dead.at(x, y)) {
          p.dq.at(x, y) |= kDqDead;
          ++ndead;
        }
        if (f.has_dq() && (f.dq.at(x, y) & (kDqBad | kDqDead))) {
          p.dq.at(x, y) |= f.dq.at(x, y) & (kDqBad | kDqDead);
        }
      }
    }
  }
  p.header.Set("NHOT", nhot, "hot pixels (from the dark_current product)");
  p.header.Set("NDEAD", ndead, "dead/cold pixels (flat < DEADFRAC x local median)");
  p.header.Set("NNOISY", nnoisy, "noisy pixels (read noise > NOISYLIM)");
  p.header.Set("NFEW", nfew, "pixels with too few good frames");
  p.header.Set("DEADFRAC", options.dead_fraction, "dead threshold, fraction of local median");
  p.header.Set("DEADBOX", options.box, "local-median box [pixels]");
  p.header.Set("DEADSTEP", options.median_step, "local medians every DEADSTEP pixels");
  p.header.Set("NOISYSIG", options.noisy_sigma, "noisy threshold [robust sigma]");
  return p;
}

}  // namespace calibd::noise
