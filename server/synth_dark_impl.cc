// Synthesized darks from the stored noise products (synth_dark_impl.h).
#include "server/synth_dark_impl.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/noise/noise.h"
#include "core/noise/noise_product.h"
#include "core/status/macros.h"
#include "server/store_impl.h"

namespace calibd::server {

absl::StatusOr<SynthDark> SynthesizeDarkFor(const Backend* backend, const SynthDarkQuery& query) {
  StoreImpl store(backend);
  absl::StatusOr<store::MasterVersion> v = absl::NotFoundError("");
  for (absl::string_view kind : {noise::kKindNoiseModel, noise::kKindDarkCurrent}) {
    v = store.ResolveMaster({query.detector, std::string(kind), query.configuration}, query.version,
                            query.at);
    if (v.ok() || !absl::IsNotFound(v.status())) break;
  }
  if (!v.ok()) {
    if (absl::IsNotFound(v.status())) {
      return absl::NotFoundError(absl::StrCat(
          "detector ", query.detector, " has no noise_model or dark_current product",
          query.at ? " certified at that time" : "",
          ": build one (calibctl build --kind noise_model / dark_current) and certify it"));
    }
    return v.status();
  }
  CALIBD_ASSIGN_OR_RETURN(std::string path, store.BlobPath(v->sha256));
  CALIBD_ASSIGN_OR_RETURN(noise::NoiseProduct product, noise::ReadNoiseProduct(path));
  noise::SynthDarkRequest r;
  r.exptime = query.exptime;
  r.em_gain = query.em_gain;
  r.temperature = query.temperature;
  r.temperature_coefficient = query.temperature_coefficient;
  CALIBD_ASSIGN_OR_RETURN(CalibratedFrame frame, noise::SynthesizeDark(product, r, backend->pool));
  frame.header.Set("SYNMODV", v->version, "version of the model used");
  frame.header.Set("SYNMODSH", v->sha256, "sha256 of the model's blob");
  frame.header.Set("DETECTOR", query.detector);
  SynthDark out;
  out.frame = std::move(frame);
  out.model = std::move(*v);
  return out;
}

}  // namespace calibd::server
