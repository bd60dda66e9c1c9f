// Synthesized darks from a noise_model or dark_current product (noise.h).
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/noise/noise.h"

namespace calibd::noise {

absl::StatusOr<CalibratedFrame> SynthesizeDark(const NoiseProduct& model,
                                               const SynthDarkRequest& request, ThreadPool* pool) {
  if (!(request.exptime >= 0) || !std::isfinite(request.exptime)) {
    return absl::InvalidArgumentError("exptime must be finite and >= 0 s");
  }
  if (!(request.em_gain > 0) || !std::isfinite(request.em_gain)) {
    return absl::InvalidArgumentError("em_gain must be finite and > 0");
  }
  const bool multi = model.kind == kKindNoiseModel;
  if (!multi && model.kind != kKindDarkCurrent) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a synthesized dark needs a noise_model or dark_current product, not ", model.kind));
  }
  auto need = [&](const char* name) -> absl::StatusOr<const Image<float>*> {
    const Image<float>* m = model.Find(name);
    if (m == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ", model.kind, " product has no ", name, " map"));
    }
    return m;
  };
  double dark_scale = 1;
  if (request.temperature && request.temperature_coefficient) {
    absl::StatusOr<double> t_model = model.header.GetDouble("TEMPMOD");
    if (!t_model.ok()) {
      return absl::FailedPreconditionError(
          "temperature scaling asked for, but the product records no TEMPMOD (build it with "
          "its temperature)");
    }
    dark_scale = std::exp(*request.temperature_coefficient * (*request.temperature - *t_model));
  }
  const int w = model.width, h = model.height;
  CalibratedFrame out;
  out.unit = "electron";
  out.data = Image<float>::Allocate(w, h);
  out.variance = Image<float>::Allocate(w, h);
  out.dq = model.dq.Clone();
  const double t = request.exptime, g = request.em_gain;
  const double td = t * dark_scale;
  absl::StatusOr<const Image<float>*> d = need("DARK_CURRENT");
  absl::StatusOr<const Image<float>*> de = need("DARK_CURRENT_ERR");
  if (!d.ok()) return d.status();
  if (!de.ok()) return de.status();
  if (multi) {
    const char* names[] = {"FPN", "FPN_ERR", "CIC", "CIC_ERR", "COV_F_D", "COV_F_C", "COV_D_C"};
    const Image<float>* m[7];
    for (int k = 0; k < 7; ++k) {
      absl::StatusOr<const Image<float>*> p = need(names[k]);
      if (!p.ok()) return p.status();
      m[k] = *p;
    }
    // a = (1/g, t', 1): var = a ᵀ Σ a.
    const double a0 = 1 / g, a1 = td, a2 = 1;
    ParallelFor(pool, h, 16, [&](int64_t y0, int64_t y1) {
      for (int64_t i = y0 * w; i < y1 * w; ++i) {
        const double f = m[0]->data()[i], c = m[2]->data()[i], dc = (*d)->data()[i];
        const double vf = double(m[1]->data()[i]) * m[1]->data()[i];
        const double vc = double(m[3]->data()[i]) * m[3]->data()[i];
        const double vd = double((*de)->data()[i]) * (*de)->data()[i];
        const double v =
            a0 * a0 * vf + a1 * a1 * vd + a2 * a2 * vc +
            2 * (a0 * a1 * m[4]->data()[i] + a0 * a2 * m[5]->data()[i] + a1 * a2 * m[6]->data()[i]);
        const bool ok = std::isfinite(f + c + dc);
        out.data.data()[i] = ok ? static_cast<float>(a0 * f + a1 * dc + a2 * c) : 0.0f;
        out.variance.data()[i] = ok ? static_cast<float>(v) : 0.0f;
      }
    });
  } else {
    ParallelFor(pool, h, 16, [&](int64_t y0, int64_t y1) {
      for (int64_t i = y0 * w; i < y1 * w; ++i) {
        const double dc = (*d)->data()[i], e = (*de)->data()[i];
        const bool ok = std::isfinite(dc) && std::isfinite(e);
        out.data.data()[i] = ok ? static_cast<float>(td * dc) : 0.0f;
        out.variance.data()[i] = ok ? static_cast<float>(td * td * e * e) : 0.0f;
      }
    });
  }
  out.header.Set("IMAGETYP", "dark");
  out.header.Set("SYNTHDRK", true, "synthesized from a noise product");
  out.header.Set("SYNMODEL", model.kind, "product kind used");
  out.header.Set("EXPTIME", t, "exposure time [s]");
  out.header.Set("EMGAIN", g, "EM gain");
  if (dark_scale != 1) out.header.Set("DARKSCAL", dark_scale, "exp(c*(T - TEMPMOD))");
  out.header.AddHistory(multi ? "synthesized dark F/g + t*D + C (corgidrp build_synthesized_dark)"
                              : "synthesized dark t*D from dark_current");
  return out;
}

}  // namespace calibd::noise
