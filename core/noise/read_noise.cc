// read_noise: the per-pixel unbiased standard deviation over a bias stack (noise.h).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/image/dq.h"
#include "core/noise/noise.h"
#include "core/noise/stack.h"
#include "core/status/macros.h"

namespace calibd::noise {

absl::StatusOr<NoiseProduct> BuildReadNoise(Sources biases, const ReadNoiseOptions& options,
                                            ThreadPool* pool) {
  if (!(options.gain > 0) || !std::isfinite(options.gain)) {
    return absl::InvalidArgumentError("gain must be finite and > 0 (e- per input unit)");
  }
  if (options.min_frames < 2) {
    return absl::InvalidArgumentError("min_frames must be >= 2 (a std needs two values)");
  }
  internal::Group group;
  for (auto& s : biases) group.push_back(s.get());
  CALIBD_RETURN_IF_ERROR(internal::CheckStack(group, "bias frames for read noise", 2));
  const int w = group[0]->width(), h = group[0]->height();
  NoiseProduct p = NoiseProduct::Create(kKindReadNoise, w, h);
  Image<float>& rn = p.AddMap("READ_NOISE", "electron");
  Image<float>& err = p.AddMap("READ_NOISE_ERR", "electron");
  Image<float>& nf = p.AddMap("NFRAMES", "");
  const int band = internal::PlanBandRows(options.memory_budget_bytes, w, h, 24);
  internal::GroupStats stats;
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  for (int y0 = 0; y0 < h; y0 += band) {
    const int rows = std::min(band, h - y0);
    CALIBD_RETURN_IF_ERROR(internal::AccumulateBand(group, y0, rows, options, false, pool, &stats));
    for (int r = 0; r < rows; ++r) {
      for (int x = 0; x < w; ++x) {
        const size_t i = size_t(r) * w + x;
        const int n = stats.count[i];
        nf.at(x, y0 + r) = static_cast<float>(n);
        if (n < options.min_frames) {
          rn.at(x, y0 + r) = kNaN;
          err.at(x, y0 + r) = kNaN;
          p.dq.at(x, y0 + r) |= kDqBad | kDqNoData;
          continue;
        }
        const double sigma = std::sqrt(stats.SampleVariance(i));
        rn.at(x, y0 + r) = static_cast<float>(sigma);
        err.at(x, y0 + r) = static_cast<float>(sigma / std::sqrt(2.0 * (n - 1)));
      }
    }
  }
  const auto all = absl::MakeConstSpan(rn.data(), size_t(rn.num_pixels()));
  const double median = internal::FiniteMedian(all);
  const int n = static_cast<int>(group.size());
  int64_t good = 0;
  for (float v : all) good += std::isfinite(v) ? 1 : 0;
  p.header.Set("RDNOISE", median, "median read noise [e-]");
  // The standard error of a median: sqrt(pi/2) x the map's robust spread / sqrt(N).
  const double spread = internal::RobustSigma(all, median);
  p.header.Set("RDNOISEE", good > 0 ? 1.2533 * spread / std::sqrt(double(good)) : 0.0,
               "standard error of RDNOISE [e-]");
  p.header.Set("NCOMBINE", n, "bias frames");
  p.header.Set("GAINUSED", options.gain, "e- per input unit applied");
  internal::ZeroNonFinite(&p);
  p.header.AddHistory(absl::StrCat("read_noise: std (ddof 1) over ", n, " biases per pixel"));
  return p;
}

}  // namespace calibd::noise
