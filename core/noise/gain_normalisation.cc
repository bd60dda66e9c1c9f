// gain_normalisation: the response ratio between gain settings from flats of one illumination
// (noise.h).
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/image/section.h"
#include "core/noise/noise.h"
#include "core/noise/stack.h"
#include "core/status/macros.h"

namespace calibd::noise {

absl::StatusOr<std::vector<GainNormalisationRow>> BuildGainNormalisation(
    Sources flats, const GainNormalisationOptions& options) {
  internal::Group all;
  for (auto& s : flats) all.push_back(s.get());
  CALIBD_RETURN_IF_ERROR(internal::CheckStack(all, "flats for gain normalisation", 2));
  const int w = all[0]->width(), h = all[0]->height();
  Section sec = FullSection(w, h);
  if (!options.section.empty()) {
    CALIBD_ASSIGN_OR_RETURN(sec, ParseFitsSection(options.section, w, h));
  }
  struct Acc {
    std::vector<double> frame_means;
    double pixel_var = 0;  // of the single frame, when there is one
    double pixels = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, Acc> acc;
  std::vector<float> data(size_t(w) * sec.height());
  std::vector<uint16_t> dq;
  for (combine::FrameSource* f : all) {
    absl::StatusOr<std::string> setting = f->header().GetText(options.setting_key);
    if (!setting.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(f->name(), ": no header keyword ", options.setting_key,
                       "; supply the gain setting of every flat in it (or name the keyword)"));
    }
    if (!acc.count(*setting)) order.push_back(*setting);
    Acc& a = acc[*setting];
    if (f->has_dq()) dq.resize(data.size());
    absl::Status s =
        f->ReadRows(sec.y0, sec.height(), data.data(), nullptr, f->has_dq() ? dq.data() : nullptr);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("reading ", f->name(), ": ", s.message()));
    }
    double sum = 0, sum2 = 0, n = 0;
    for (int r = 0; r < sec.height(); ++r) {
      for (int x = sec.x0; x < sec.x1; ++x) {
        const size_t i = size_t(r) * w + x;
        const float v = data[i];
        if (!std::isfinite(v) || (f->has_dq() && (dq[i] & options.dq_mask))) continue;
        sum += v;
        sum2 += double(v) * v;
        n += 1;
      }
    }
    if (n < 2) {
      return absl::InvalidArgumentError(absl::StrCat(f->name(), " has no valid pixels"));
    }
    const double mean = sum / n;
    a.frame_means.push_back(mean);
    a.pixel_var = (sum2 - n * mean * mean) / (n - 1);
    a.pixels = n;
  }
  if (order.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gain normalisation needs flats at >= 2 gain settings (", options.setting_key,
        "), got only '", order[0], "': supply flats of the same illumination at each setting"));
  }
  std::vector<GainNormalisationRow> rows;
  for (const std::string& name : order) {
    const Acc& a = acc[name];
    GainNormalisationRow row;
    row.setting = name;
    row.frames = static_cast<int>(a.frame_means.size());
    double s = 0;
    for (double m : a.frame_means) s += m;
    row.response = s / row.frames;
    if (row.frames >= 2) {
      double v = 0;
      for (double m : a.frame_means) v += (m - row.response) * (m - row.response);
      row.response_err = std::sqrt(v / (row.frames - 1) / row.frames);
    } else {
      row.response_err = std::sqrt(a.pixel_var / a.pixels);
    }
    rows.push_back(row);
  }
  size_t ref = 0;
  if (!options.reference.empty()) {
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const auto& r) { return r.setting == options.reference; });
    if (it == rows.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference setting '", options.reference, "' has no flats"));
    }
    ref = it - rows.begin();
  } else {
    for (size_t i = 1; i < rows.size(); ++i) {
      if (rows[i].response < rows[ref].response) ref = i;
    }
  }
  if (!(rows[ref].response > 0)) {
    return absl::InvalidArgumentError("the reference setting's response is not positive");
  }
  const double r0 = rows[ref].response, e0 = rows[ref].response_err / r0;
  for (size_t i = 0; i < rows.size(); ++i) {
    GainNormalisationRow& row = rows[i];
    row.ratio = row.response / r0;
    const double e = row.response_err / row.response;
    row.ratio_err = i == ref ? 0.0 : std::abs(row.ratio) * std::sqrt(e * e + e0 * e0);
  }
  return rows;
}

NoiseProduct GainNormalisationProduct(const std::vector<GainNormalisationRow>& rows,
                                      const std::string& setting_key) {
  NoiseProduct p = NoiseProduct::Create(kKindGainNormalisation, 1, 1);
  p.header.Set("SETKEY", setting_key, "header keyword of the gain setting");
  p.header.Set("NSETTING", static_cast<int64_t>(rows.size()), "rows of the table");
  for (size_t i = 0; i < rows.size(); ++i) {
    const GainNormalisationRow& r = rows[i];
    const std::string n = absl::StrCat(i + 1);
    p.header.Set(absl::StrCat("SET", n), r.setting, "gain setting");
    p.header.Set(absl::StrCat("RESP", n), r.response, "mean response [input units]");
    p.header.Set(absl::StrCat("RESPE", n), r.response_err, "its standard error");
    p.header.Set(absl::StrCat("RATIO", n), r.ratio, "response / the reference's");
    p.header.Set(absl::StrCat("RATIOE", n), r.ratio_err, "its standard error");
    p.header.Set(absl::StrCat("NFRAME", n), r.frames, "flats");
  }
  return p;
}

}  // namespace calibd::noise
