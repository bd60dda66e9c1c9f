// dark_current: per-pixel weighted linear fit of the dark signal against exposure time, with
// hot pixels flagged (noise.h).
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/image/dq.h"
#include "core/noise/group_fit.h"
#include "core/noise/noise.h"
#include "core/noise/stack.h"
#include "core/status/macros.h"

namespace calibd::noise {

absl::StatusOr<NoiseProduct> BuildDarkCurrent(Sources darks, const DarkCurrentOptions& options,
                                              ThreadPool* pool) {
  if (!(options.gain > 0) || !std::isfinite(options.gain)) {
    return absl::InvalidArgumentError("gain must be finite and > 0 (e- per input unit)");
  }
  if (!(options.hot_sigma > 0)) return absl::InvalidArgumentError("hot_sigma must be > 0");
  internal::Group all;
  for (auto& s : darks) all.push_back(s.get());
  CALIBD_RETURN_IF_ERROR(internal::CheckStack(all, "dark frames for dark current", 3));
  std::vector<double> times;
  for (const combine::FrameSource* f : all) {
    CALIBD_ASSIGN_OR_RETURN(
        double t, internal::HeaderNumber(*f, options.exposure_key, "the exposure time in seconds"));
    if (t < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(f->name(), ": ", options.exposure_key, " = ", t, " is negative"));
    }
    times.push_back(t);
  }
  std::vector<int> index;
  const std::vector<double> distinct = internal::DistinctValues(times, &index);
  if (distinct.size() < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dark current needs darks at >= 3 distinct exposure times, got ", distinct.size(), " (",
        absl::StrJoin(distinct, ", "), " s): supply darks at more exposure times"));
  }
  internal::GroupFitSpec spec;
  spec.p = 2;
  spec.min_usable = 2;
  spec.use_input_variance = options.use_input_variance;
  spec.groups.resize(distinct.size());
  for (size_t i = 0; i < all.size(); ++i) spec.groups[index[i]].push_back(all[i]);
  const bool all_variance = [&] {
    for (const combine::FrameSource* f : all) {
      if (!f->has_variance()) return false;
    }
    return true;
  }();
  if (!(options.use_input_variance && all_variance)) {
    for (size_t g = 0; g < distinct.size(); ++g) {
      if (spec.groups[g].size() < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "exposure time ", distinct[g],
            " s has one dark: without variance planes each "
            "exposure time needs >= 2 darks (the scatter gives the weights); supply more"));
      }
    }
  }
  for (double t : distinct) {
    spec.design.push_back(1.0);
    spec.design.push_back(t);
  }
  const int w = all[0]->width(), h = all[0]->height();
  internal::GroupFitOutput fit = internal::GroupFitOutput::Allocate(2, w, h);
  CALIBD_RETURN_IF_ERROR(internal::FitGroups(spec, options, pool, &fit));

  NoiseProduct p = NoiseProduct::Create(kKindDarkCurrent, w, h);
  Image<float>& rate = p.AddMap("DARK_CURRENT", "electron/s", std::move(fit.beta[1]));
  p.AddMap("DARK_CURRENT_ERR", "electron/s", std::move(fit.err[1]));
  p.AddMap("DARK_INTERCEPT", "electron", std::move(fit.beta[0]));
  p.AddMap("DARK_INTERCEPT_ERR", "electron", std::move(fit.err[0]));
  p.AddMap("DARK_COV", "electron2/s", std::move(fit.cov[0]));
  p.AddMap("NUSABLE", "", std::move(fit.usable));
  for (int64_t i = 0; i < p.dq.num_pixels(); ++i) {
    if (fit.unfit.data()[i]) p.dq.data()[i] |= kDqBad | kDqNoData;
  }
  const auto rates = absl::MakeConstSpan(rate.data(), size_t(rate.num_pixels()));
  const double median = internal::FiniteMedian(rates);
  const double sigma = internal::RobustSigma(rates, median);
  const double threshold = median + std::max(options.hot_sigma * sigma, options.hot_min_rate);
  int64_t hot = 0;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (rate.at(x, y) > threshold) {
        p.dq.at(x, y) |= kDqHot;
        ++hot;
      }
    }
  }
  p.header.Set("DARKCUR", median, "median dark current [e-/s]");
  p.header.Set("DARKSIG", sigma, "robust sigma of the dark-current map [e-/s]");
  p.header.Set("HOTSIGMA", options.hot_sigma, "hot: rate > DARKCUR + HOTSIGMA*DARKSIG");
  p.header.Set("HOTTHRES", threshold, "hot-pixel threshold [e-/s]");
  p.header.Set("NHOT", hot, "hot pixels (DQ hot)");
  p.header.Set("NEXPTIME", static_cast<int64_t>(distinct.size()), "distinct exposure times");
  for (size_t g = 0; g < distinct.size(); ++g) {
    p.header.Set(absl::StrCat("EXPT", g + 1), distinct[g], "exposure time [s]");
    p.header.Set(absl::StrCat("NFRAME", g + 1), static_cast<int64_t>(spec.groups[g].size()),
                 "darks at this exposure time");
  }
  p.header.Set("GAINUSED", options.gain, "e- per input unit applied");
  internal::ZeroNonFinite(&p);
  p.header.AddHistory("dark_current: per-pixel WLS signal = I + t*D over exposure-time means");
  return p;
}

}  // namespace calibd::noise
