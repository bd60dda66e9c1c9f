#include "client/noise_samples.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/sample_files.h"
#include "core/fits/fits.h"
#include "core/image/dq.h"
#include "core/image/section.h"
#include "core/noise/noise_product.h"
#include "core/random/gaussian.h"
#include "core/status/macros.h"

namespace calibd::client {
namespace {

using random::HashUniform;


// A uniform deviate in [mean − spread, mean + spread) for map `salt` at (x, y).
double Spread(const NoiseSampleOptions& o, int salt, int x, int y, double mean, double spread) {
  return mean + spread * (2 * HashUniform(o.seed, 10000 * salt + x, y) - 1);
}

}  // namespace

NoiseTruth NoiseTruthAt(const NoiseSampleOptions& o, int x, int y) {
  NoiseTruth t;
  t.fpn = Spread(o, 1, x, y, o.fpn_mean, o.fpn_spread);
  t.dark = Spread(o, 2, x, y, o.dark_mean, o.dark_spread);
  t.cic = Spread(o, 3, x, y, o.cic_mean, o.cic_spread);
  t.hot = HashUniform(o.seed, 40000 + x, y) < o.hot_fraction;
  if (t.hot) t.dark = o.hot_current;
  const double fx = o.data_width > 1 ? double(x) / (o.data_width - 1) : 0;
  t.read_noise = o.read_noise_min + (o.read_noise_max - o.read_noise_min) * fx;
  const double cx = (x + 0.5) / o.data_width - 0.5, cy = (y + 0.5) / o.height - 0.5;
  t.response = (1.0 - 0.2 * (cx * cx + cy * cy)) * (1 + 0.02 * (HashUniform(o.seed, 50000 + x, y) - 0.5));
  t.dead = HashUniform(o.seed, 60000 + x, y) < o.dead_fraction;
  if (t.dead) t.response *= o.dead_response;
  return t;
}

std::string NoiseSampleSpecJson(const NoiseSampleOptions& o) {
  const int w = o.data_width + o.overscan_width;
  const std::string trimsec = FormatFitsSection(Section{0, o.data_width, 0, o.height});
  const std::string biassec = FormatFitsSection(Section{o.data_width, w, 0, o.height});
  const double rn = 0.5 * (o.read_noise_min + o.read_noise_max);
  return absl::StrFormat(
      R"({
  "name": "%s",
  "description": "synthetic EMCCD with known noise truth, written by calibctl make-samples --noise",
  "width": %d,
  "height": %d,
  "overscan_section": "%s",
  "trim_section": "%s",
  "data_section": "%s",
  "gain": %g,
  "read_noise": %g,
  "saturation": %g,
  "keys": {"exposure": "EXPTIME", "time": "DATE-OBS", "temperature": "CCD-TEMP",
           "em_gain": "EMGAIN"},
  "configuration_keys": {"default": []},
  "dark_temperature_coefficient": %g
}
)",
      o.detector, w, o.height, biassec, trimsec, trimsec, o.gain, rn, o.saturation,
      o.dark_temperature_coefficient);
}

absl::StatusOr<RawFrame> SimulateNoiseFrame(const NoiseSampleOptions& o, const std::string& kind,
                                            int setting, int index) {
  if (o.data_width <= 0 || o.height <= 0 || o.overscan_width <= 0) {
    return absl::InvalidArgumentError("noise sample frames need width, height and overscan > 0");
  }
  double exptime = 0, em_gain = 1, level = 0, gain = o.gain;
  std::string type, mode = "mid";
  double hour = 17;
  if (kind == "bias") {
    type = "bias";
  } else if (kind == "ptc") {
    if (setting < 0 || setting >= int(o.ptc_levels.size())) {
      return absl::InvalidArgumentError("ptc level out of range");
    }
    type = "flat";
    level = o.ptc_levels[setting];
    exptime = 1 + setting;
    hour = 18;
  } else if (kind == "dark") {
    if (setting < 0 || setting >= int(o.dark_exptimes.size())) {
      return absl::InvalidArgumentError("dark exposure time out of range");
    }
    type = "dark";
    exptime = o.dark_exptimes[setting];
    hour = 19;
  } else if (kind == "emccd") {
    if (setting < 0 || setting >= int(o.em_settings.size())) {
      return absl::InvalidArgumentError("EMCCD setting out of range");
    }
    type = "dark";
    em_gain = o.em_settings[setting].first;
    exptime = o.em_settings[setting].second;
    hour = 20;
  } else if (kind == "gainnorm") {
    if (setting < 0 || setting >= int(o.gain_settings.size())) {
      return absl::InvalidArgumentError("gain setting out of range");
    }
    type = "flat";
    mode = o.gain_settings[setting].first;
    gain = o.gain_settings[setting].second;
    level = o.gainnorm_level;
    exptime = 2;
    hour = 22;
  } else if (kind == "light") {
    type = "light";
    em_gain = o.light_em_gain;
    exptime = o.light_exptime;
    hour = 23;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown noise sample kind '", kind, "'; use bias, ptc, dark, emccd, gainnorm or light"));
  }
  CALIBD_ASSIGN_OR_RETURN(absl::Time night, ParseSampleNight(o.night));
  const absl::Time t = night + absl::Hours(hour) + absl::Seconds(600 * setting + 30 * index);
  const bool dark_signal = kind == "dark" || kind == "emccd" || kind == "light";
  const double sky = kind == "light" ? o.light_sky : 0;
  const int w = o.data_width + o.overscan_width, h = o.height;
  random::Gaussian rng(random::Mix64(
      o.seed ^ random::Mix64((uint64_t(uint8_t(kind[0])) << 40) + (uint64_t(setting) << 20) +
                             uint64_t(index))));
  RawFrame frame;
  frame.pixels = RawImage::Allocate(PixelType::kUint16, w, h);
  for (int y = 0; y < h; ++y) {
    uint16_t* row = frame.pixels.row<uint16_t>(y);
    const double bias = o.bias_level + 0.02 * y + 2.0 * std::sin(0.05 * y);
    for (int x = 0; x < w; ++x) {
      double e = 0, rn = o.read_noise_min;
      if (x < o.data_width) {
        const NoiseTruth truth = NoiseTruthAt(o, x, y);
        rn = truth.read_noise;
        if (dark_signal) {
          e = truth.fpn + em_gain * (exptime * truth.dark + truth.cic + sky * truth.response);
        }
        if (level > 0) e = level * truth.response;
      }
      e += std::sqrt(rn * rn + std::max(e, 0.0)) * rng.Next();
      const double adu = bias + e / gain;
      row[x] = static_cast<uint16_t>(std::clamp<long>(std::lround(adu), 0, 65535));
    }
  }
  Header& hd = frame.header;
  const size_t slash = o.detector.find('/');
  hd.Set("INSTRUME", o.detector.substr(0, slash), "instrument");
  hd.Set("DETECTOR", slash == std::string::npos ? o.detector : o.detector.substr(slash + 1),
         "detector");
  hd.Set("IMAGETYP", type, "frame type");
  hd.Set("EXPTIME", exptime, "exposure time [s]");
  hd.Set("EMGAIN", em_gain, "EM gain");
  hd.Set("GAIN", gain, "e-/ADU");
  hd.Set("GAINMODE", mode, "gain setting");
  hd.Set("DATE-OBS", absl::FormatTime("%Y-%m-%dT%H:%M:%E3S", t, absl::UTCTimeZone()),
         "start of exposure, UTC");
  hd.Set("CCD-TEMP", o.temperature, "detector temperature [C]");
  hd.Set("BIASSEC", FormatFitsSection(Section{o.data_width, w, 0, h}), "overscan region");
  hd.Set("TRIMSEC", FormatFitsSection(Section{0, o.data_width, 0, h}), "illuminated region");
  hd.Set("DATASEC", FormatFitsSection(Section{0, o.data_width, 0, h}), "illuminated region");
  hd.AddComment("synthetic frame with known noise truth, written by calibctl make-samples --noise");
  return frame;
}

absl::StatusOr<NoiseSampleSet> MakeNoiseSamples(const std::string& dir,
                                                const NoiseSampleOptions& o) {
  NoiseSampleSet set;
  set.spec_path = dir + "/SPEC.json";
  set.truth_path = dir + "/TRUTH.fits";
  CALIBD_RETURN_IF_ERROR(StartSampleDir(dir, set.spec_path, NoiseSampleSpecJson(o),
                                        {set.truth_path}, o.overwrite));
  CALIBD_ASSIGN_OR_RETURN(absl::Time night, ParseSampleNight(o.night));
  set.certify_from = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", night, absl::UTCTimeZone());

  // The truth maps, in the product's layout (astropy: fits.open(path)["FPN"].data).
  noise::NoiseProduct truth = noise::NoiseProduct::Create("truth", o.data_width, o.height);
  Image<float>& f = truth.AddMap("FPN", "electron");
  Image<float>& d = truth.AddMap("DARK_CURRENT", "electron/s");
  Image<float>& c = truth.AddMap("CIC", "electron");
  Image<float>& rn = truth.AddMap("READ_NOISE", "electron");
  Image<float>& resp = truth.AddMap("RESPONSE", "");
  for (int y = 0; y < o.height; ++y) {
    for (int x = 0; x < o.data_width; ++x) {
      const NoiseTruth t = NoiseTruthAt(o, x, y);
      f.at(x, y) = float(t.fpn);
      d.at(x, y) = float(t.dark);
      c.at(x, y) = float(t.cic);
      rn.at(x, y) = float(t.read_noise);
      resp.at(x, y) = float(t.response);
      truth.dq.at(x, y) = uint16_t((t.hot ? kDqHot : 0) | (t.dead ? kDqDead : 0));
    }
  }
  truth.header.Set("GAIN", o.gain, "truth: e-/ADU");
  truth.header.Set("DETECTOR", o.detector);
  CALIBD_RETURN_IF_ERROR(noise::WriteNoiseProduct(set.truth_path, truth, /*overwrite=*/true));

  auto write = [&](const std::string& kind, int setting, int index, const std::string& name,
                   std::vector<std::string>* out) -> absl::Status {
    CALIBD_ASSIGN_OR_RETURN(RawFrame frame, SimulateNoiseFrame(o, kind, setting, index));
    return WriteSampleFrame(dir, kind, name, frame, "", o.overwrite, out);
  };
  for (int i = 0; i < o.n_bias; ++i) {
    CALIBD_RETURN_IF_ERROR(write("bias", 0, i, absl::StrFormat("bias_%03d", i), &set.bias));
  }
  for (int l = 0; l < int(o.ptc_levels.size()); ++l) {
    for (int i = 0; i < 2; ++i) {
      CALIBD_RETURN_IF_ERROR(write(
          "ptc", l, i, absl::StrFormat("ptc_%05.0fe_%d", o.ptc_levels[l], i), &set.ptc));
    }
  }
  for (int s = 0; s < int(o.dark_exptimes.size()); ++s) {
    for (int i = 0; i < o.frames_per_setting; ++i) {
      CALIBD_RETURN_IF_ERROR(write(
          "dark", s, i, absl::StrFormat("dark_t%g_%d", o.dark_exptimes[s], i), &set.dark));
    }
  }
  for (int s = 0; s < int(o.em_settings.size()); ++s) {
    for (int i = 0; i < o.frames_per_setting; ++i) {
      CALIBD_RETURN_IF_ERROR(write("emccd", s, i,
                                   absl::StrFormat("em_g%g_t%g_%d", o.em_settings[s].first,
                                                   o.em_settings[s].second, i),
                                   &set.emccd));
    }
  }
  for (int s = 0; s < int(o.gain_settings.size()); ++s) {
    for (int i = 0; i < 2; ++i) {
      CALIBD_RETURN_IF_ERROR(write("gainnorm", s, i,
                                   absl::StrFormat("gn_%s_%d", o.gain_settings[s].first, i),
                                   &set.gainnorm));
    }
  }
  for (int i = 0; i < o.n_light; ++i) {
    CALIBD_RETURN_IF_ERROR(write("light", 0, i,
                                 absl::StrFormat("light_g%g_t%g_%d", o.light_em_gain,
                                                 o.light_exptime, i),
                                 &set.light));
  }
  return set;
}

}  // namespace calibd::client
