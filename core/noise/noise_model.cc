// noise_model: mean = F + g·t·D + g·C per pixel from sub-stacks at (EM gain, exposure time)
// settings, as corgidrp's calibrate_darks_lsq (noise.h).
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/calib/statistics.h"
#include "core/image/dq.h"
#include "core/image/section.h"
#include "core/noise/group_fit.h"
#include "core/noise/noise.h"
#include "core/noise/stack.h"
#include "core/status/macros.h"

namespace calibd::noise {

namespace {

bool Near(double a, double b) {
  return std::abs(a - b) <= 1e-6 * std::max(std::abs(a), std::abs(b));
}

}  // namespace

absl::StatusOr<NoiseProduct> BuildNoiseModel(Sources darks, const NoiseModelOptions& options,
                                             ThreadPool* pool) {
  if (!(options.gain > 0) || !std::isfinite(options.gain)) {
    return absl::InvalidArgumentError("gain must be finite and > 0 (e- per input unit)");
  }
  internal::Group all;
  for (auto& s : darks) all.push_back(s.get());
  CALIBD_RETURN_IF_ERROR(internal::CheckStack(all, "dark frames for the noise model", 4));
  std::vector<std::pair<double, double>> settings;  // (g, t)
  std::vector<int> index;
  for (const combine::FrameSource* f : all) {
    CALIBD_ASSIGN_OR_RETURN(
        double g, internal::HeaderNumber(*f, options.em_gain_key, "the EM gain (em_gain)"));
    CALIBD_ASSIGN_OR_RETURN(
        double t, internal::HeaderNumber(*f, options.exposure_key, "the exposure time in seconds"));
    if (!(g > 0) || t < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(f->name(), ": EM gain ", g, " must be > 0 and exposure ", t, " >= 0"));
    }
    int k = 0;
    while (k < static_cast<int>(settings.size()) &&
           !(Near(settings[k].first, g) && Near(settings[k].second, t))) {
      ++k;
    }
    if (k == static_cast<int>(settings.size())) settings.emplace_back(g, t);
    index.push_back(k);
  }
  {  // Settings in increasing (g, t), whatever the order of the frames.
    std::vector<int> order(settings.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int>(k);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return settings[a] < settings[b]; });
    std::vector<int> rank(settings.size());
    std::vector<std::pair<double, double>> sorted;
    for (size_t k = 0; k < order.size(); ++k) {
      rank[order[k]] = static_cast<int>(k);
      sorted.push_back(settings[order[k]]);
    }
    for (int& i : index) i = rank[i];
    settings = std::move(sorted);
  }
  auto describe = [&] {
    std::vector<std::string> s;
    for (auto& [g, t] : settings) s.push_back(absl::StrCat("(g=", g, ", t=", t, " s)"));
    return absl::StrJoin(s, ", ");
  };
  if (settings.size() < 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the noise model needs sub-stacks at >= 4 distinct (EM gain, exposure time) settings, "
        "got ",
        settings.size(), ": ", describe(), "; supply darks at more settings"));
  }
  internal::GroupFitSpec spec;
  spec.p = 3;
  spec.min_usable = 4;
  spec.weighted = options.weighted;
  spec.use_input_variance = options.use_input_variance;
  spec.groups.resize(settings.size());
  for (size_t i = 0; i < all.size(); ++i) spec.groups[index[i]].push_back(all[i]);
  bool all_variance = true;
  for (const combine::FrameSource* f : all) all_variance = all_variance && f->has_variance();
  if (options.weighted && !(options.use_input_variance && all_variance)) {
    for (size_t k = 0; k < settings.size(); ++k) {
      if (spec.groups[k].size() < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "setting (g=", settings[k].first, ", t=", settings[k].second,
            " s) has one frame: "
            "weighting by the sub-stack scatter needs >= 2 frames per setting (or variance "
            "planes); supply more"));
      }
    }
  }
  for (auto& [g, t] : settings) {
    spec.design.insert(spec.design.end(), {1.0, g * t, g});
  }
  const int w = all[0]->width(), h = all[0]->height();
  internal::GroupFitOutput fit = internal::GroupFitOutput::Allocate(3, w, h);
  absl::Status s = internal::FitGroups(spec, options, pool, &fit);
  if (absl::IsInvalidArgument(s)) {
    return absl::InvalidArgumentError(absl::StrCat(s.message(), "; settings found: ", describe()));
  }
  CALIBD_RETURN_IF_ERROR(s);

  NoiseProduct p = NoiseProduct::Create(kKindNoiseModel, w, h);
  int64_t fitted = 0;
  double sums[3] = {0, 0, 0};
  for (int64_t i = 0; i < p.dq.num_pixels(); ++i) {
    if (fit.unfit.data()[i]) {
      p.dq.data()[i] |= kDqBad | kDqNoData;
      continue;
    }
    ++fitted;
    for (int j = 0; j < 3; ++j) sums[j] += fit.beta[j].data()[i];
  }
  // The bias offset over the prescan, before the planes move into the product.
  double bias_offset = 0, bias_offset_err = 0;
  if (!options.prescan_section.empty()) {
    CALIBD_ASSIGN_OR_RETURN(Section sec, ParseFitsSection(options.prescan_section, w, h));
    std::vector<double> v, var;
    for (int y = sec.y0; y < sec.y1; ++y) {
      for (int x = sec.x0; x < sec.x1; ++x) {
        if (fit.unfit.at(x, y)) continue;
        v.push_back(fit.beta[0].at(x, y) + fit.beta[2].at(x, y));
        const double ef = fit.err[0].at(x, y), ec = fit.err[2].at(x, y);
        var.push_back(ef * ef + ec * ec + 2 * fit.cov[1].at(x, y));
      }
    }
    if (v.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("no fitted pixel in prescan_section ", options.prescan_section));
    }
    bias_offset_err = 1.2533 * std::sqrt(calib::Mean(var) / double(v.size()));
    bias_offset = calib::Median(absl::MakeSpan(v));
  }
  const char* names[3] = {"FPN", "DARK_CURRENT", "CIC"};
  const char* units[3] = {"electron", "electron/s", "electron"};
  for (int j = 0; j < 3; ++j) {
    p.AddMap(names[j], units[j], std::move(fit.beta[j]));
    p.AddMap(absl::StrCat(names[j], "_ERR"), units[j], std::move(fit.err[j]));
  }
  p.AddMap("COV_F_D", "electron2/s", std::move(fit.cov[0]));
  p.AddMap("COV_F_C", "electron2", std::move(fit.cov[1]));
  p.AddMap("COV_D_C", "electron2/s", std::move(fit.cov[2]));
  p.AddMap("ADJ_R2", "", std::move(fit.adj_r2));
  p.AddMap("NUSABLE", "", std::move(fit.usable));
  const char* mean_keys[3] = {"FPNMEAN", "DCMEAN", "CICMEAN"};
  for (int j = 0; j < 3; ++j) {
    p.header.Set(mean_keys[j], fitted > 0 ? sums[j] / fitted : 0.0,
                 absl::StrCat("mean of ", names[j], " over fitted pixels"));
  }
  p.header.Set("NFITTED", fitted, "pixels fitted (>= 4 usable sub-stacks)");
  p.header.Set("NSETTING", static_cast<int64_t>(settings.size()), "(EM gain, exptime) settings");
  for (size_t k = 0; k < settings.size(); ++k) {
    p.header.Set(absl::StrCat("SET", k + 1, "_G"), settings[k].first, "EM gain");
    p.header.Set(absl::StrCat("SET", k + 1, "_T"), settings[k].second, "exposure time [s]");
    p.header.Set(absl::StrCat("SET", k + 1, "_N"), static_cast<int64_t>(spec.groups[k].size()),
                 "frames");
  }
  if (!options.prescan_section.empty()) {
    p.header.Set("BIASOFF", bias_offset, "bias offset: median of F + C over the prescan [e-]");
    p.header.Set("BIASOFFE", bias_offset_err, "its standard error [e-]");
  }
  if (options.temperature) p.header.Set("TEMPMOD", *options.temperature, "temperature [C]");
  p.header.Set("EMGAINKY", options.em_gain_key, "header keyword of the EM gain");
  p.header.Set("GAINUSED", options.gain, "e- per input unit applied");
  internal::ZeroNonFinite(&p);
  p.header.AddHistory("noise_model: per-pixel WLS mean = F + g*t*D + g*C over sub-stacks");
  return p;
}

}  // namespace calibd::noise
