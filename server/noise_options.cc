// NoiseBuildOptions → options_text (noise_options.h).
#include "server/noise_options.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace calibd::server {

std::map<std::string, std::string> NoiseOptionsText(const v1::NoiseBuildOptions& o) {
  std::map<std::string, std::string> t;
  auto number = [&](const char* key, bool has, double v) {
    if (has) t[absl::StrCat("noise.", key)] = absl::StrCat(v);
  };
  auto text = [&](const char* key, const std::string& v) {
    if (!v.empty()) t[absl::StrCat("noise.", key)] = v;
  };
  number("min_frames", o.has_min_frames(), o.min_frames());
  number("hot_sigma", o.has_hot_sigma(), o.hot_sigma());
  number("hot_min_rate", o.has_hot_min_rate(), o.hot_min_rate());
  number("dead_fraction", o.has_dead_fraction(), o.dead_fraction());
  number("box", o.has_box(), o.box());
  number("noisy_sigma", o.has_noisy_sigma(), o.noisy_sigma());
  if (!o.sections().empty()) t["noise.sections"] = absl::StrJoin(o.sections(), ";");
  if (!o.level_sizes().empty()) t["noise.level_sizes"] = absl::StrJoin(o.level_sizes(), ",");
  number("saturation_fraction", o.has_saturation_fraction(), o.saturation_fraction());
  number("max_saturated_fraction", o.has_max_saturated_fraction(), o.max_saturated_fraction());
  number("nonlinearity_sigma", o.has_nonlinearity_sigma(), o.nonlinearity_sigma());
  text("prescan_section", o.prescan_section());
  if (o.has_unweighted()) t["noise.unweighted"] = o.unweighted() ? "true" : "false";
  text("setting_key", o.setting_key());
  text("section", o.section());
  text("reference", o.reference());
  return t;
}

}  // namespace calibd::server
