#include "client/samples.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/sample_files.h"
#include "core/fits/fits.h"
#include "core/image/section.h"
#include "core/random/gaussian.h"
#include "core/status/macros.h"

namespace calibd::client {
namespace {

using random::HashUniform;
using Rng = random::Gaussian;  // Next() is a standard normal deviate

// Pixel response: a smooth vignetting-like pattern, ±few % pixel-to-pixel, a few dead pixels.
double Response(const SampleOptions& o, int x, int y) {
  const double fx = (x + 0.5) / o.data_width - 0.5, fy = (y + 0.5) / o.height - 0.5;
  double r = 1.0 - 0.25 * (fx * fx + fy * fy) + 0.03 * std::sin(9.0 * fx + 4.0 * fy);
  r *= 1.0 + 0.02 * (HashUniform(o.seed, 1000 + x, y) - 0.5);
  if (HashUniform(o.seed, 2000 + x, y) < 1e-4) r *= 0.05;  // dead
  return r;
}

double DarkCurrent(const SampleOptions& o, int x, int y) {
  return HashUniform(o.seed, 3000 + x, y) < o.hot_pixel_fraction ? o.hot_pixel_current
                                                                 : o.dark_current;
}

struct Star {
  double x, y, flux, sigma;
};

std::vector<Star> Stars(const SampleOptions& o) {
  Rng rng(o.seed ^ 0x5A5A);
  std::vector<Star> stars;
  for (int i = 0; i < o.stars; ++i) {
    Star s;
    s.x = rng.Uniform() * o.data_width;
    s.y = rng.Uniform() * o.height;
    // A steep luminosity function: most faint, the brightest saturate.
    s.flux = 2e3 * std::pow(10.0, 2.5 * rng.Uniform());
    s.sigma = 1.6;
    if (i == 0) s.flux = 4e6;  // one star certainly saturates
    stars.push_back(s);
  }
  return stars;
}


}  // namespace

std::string SampleSpecJson(const SampleOptions& o) {
  const int w = o.data_width + o.overscan_width;
  const std::string trimsec = FormatFitsSection(Section{0, o.data_width, 0, o.height});
  const std::string biassec = FormatFitsSection(Section{o.data_width, w, 0, o.height});
  return absl::StrFormat(
      R"({
  "name": "%s",
  "description": "synthetic CCD written by calibctl make-samples",
  "width": %d,
  "height": %d,
  "overscan_section": "%s",
  "trim_section": "%s",
  "data_section": "%s",
  "gain": %g,
  "read_noise": %g,
  "saturation": %g,
  "keys": {"exposure": "EXPTIME", "time": "DATE-OBS", "filter": "FILTER",
           "temperature": "CCD-TEMP"},
  "configuration_keys": {"default": [], "flat": ["filter"]}
}
)",
      o.detector, w, o.height, biassec, trimsec, trimsec, o.gain, o.read_noise, o.saturation);
}

absl::StatusOr<RawFrame> SimulateSampleFrame(const SampleOptions& o, const std::string& kind,
                                             int index) {
  if (o.data_width <= 0 || o.height <= 0 || o.overscan_width <= 0) {
    return absl::InvalidArgumentError("sample frames need width, height and overscan > 0");
  }
  const bool is_bias = kind == "bias", is_dark = kind == "dark", is_flat = kind == "flat",
             is_light = kind == "light";
  if (!is_bias && !is_dark && !is_flat && !is_light) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown sample kind '", kind, "'; use bias, dark, flat or light"));
  }
  CALIBD_ASSIGN_OR_RETURN(absl::Time night, ParseSampleNight(o.night));
  const double exptime = is_bias   ? 0
                         : is_dark ? o.dark_exptime
                         : is_flat ? o.flat_exptime
                                   : o.light_exptime;
  absl::Time t;
  if (is_bias) t = night + absl::Hours(18) + absl::Seconds(30 * index);
  if (is_dark) t = night + absl::Hours(18.5) + absl::Seconds((o.dark_exptime + 30) * index);
  if (is_flat) t = night + absl::Hours(19.25) + absl::Seconds(60 * index);
  if (is_light) t = night + absl::Hours(21) + absl::Seconds((o.light_exptime + 60) * index);

  const int w = o.data_width + o.overscan_width, h = o.height;
  const uint64_t frame_seed =
      random::Mix64(o.seed ^ random::Mix64((static_cast<uint64_t>(kind[0]) << 32) + index));
  Rng rng(frame_seed);

  // Light: sky + stars (a small field drift between exposures) + cosmic rays, in electrons.
  std::vector<float> signal;
  if (is_light) {
    signal.assign(size_t(o.data_width) * h, static_cast<float>(o.sky));
    for (Star s : Stars(o)) {
      s.x += 0.7 * index;
      s.y += 0.4 * index;
      const int r = static_cast<int>(std::ceil(5 * s.sigma));
      const double norm = s.flux / (2 * M_PI * s.sigma * s.sigma);
      for (int y = std::max(0, int(s.y) - r); y < std::min(h, int(s.y) + r + 1); ++y) {
        for (int x = std::max(0, int(s.x) - r); x < std::min(o.data_width, int(s.x) + r + 1); ++x) {
          const double dx = x + 0.5 - s.x, dy = y + 0.5 - s.y;
          signal[size_t(y) * o.data_width + x] +=
              static_cast<float>(norm * std::exp(-(dx * dx + dy * dy) / (2 * s.sigma * s.sigma)));
        }
      }
    }
    for (int i = 0; i < o.cosmic_rays; ++i) {
      int x = static_cast<int>(rng.Uniform() * o.data_width);
      int y = static_cast<int>(rng.Uniform() * h);
      const double e = 3000 + 20000 * rng.Uniform();
      const int len = 1 + static_cast<int>(rng.Uniform() * 4);
      for (int k = 0; k < len && x < o.data_width; ++k, ++x) {
        signal[size_t(y) * o.data_width + x] += static_cast<float>(e / len);
      }
    }
  }

  RawFrame frame;
  frame.pixels = RawImage::Allocate(PixelType::kUint16, w, h);
  for (int y = 0; y < h; ++y) {
    uint16_t* row = frame.pixels.row<uint16_t>(y);
    const double bias = o.bias_level + o.bias_row_slope * y + 2.0 * std::sin(0.05 * y);
    for (int x = 0; x < w; ++x) {
      double electrons = 0;
      if (x < o.data_width) {
        electrons = DarkCurrent(o, x, y) * exptime;
        if (is_flat) electrons += o.flat_level * (1 + 0.01 * index) * Response(o, x, y);
        if (is_light) electrons += signal[size_t(y) * o.data_width + x] * Response(o, x, y);
        electrons += std::sqrt(std::max(electrons, 0.0)) * rng.Next();  // shot noise
      }
      const double adu = bias + (electrons + o.read_noise * rng.Next()) / o.gain;
      row[x] = static_cast<uint16_t>(std::clamp<long>(std::lround(adu), 0, 65535));
    }
  }

  Header& hd = frame.header;
  static constexpr const char* kTypes[] = {"bias", "dark", "flat", "light"};
  const char* type = is_bias ? kTypes[0] : is_dark ? kTypes[1] : is_flat ? kTypes[2] : kTypes[3];
  const size_t slash = o.detector.find('/');
  hd.Set("INSTRUME", o.detector.substr(0, slash), "instrument");
  hd.Set("DETECTOR", slash == std::string::npos ? o.detector : o.detector.substr(slash + 1),
         "detector");
  hd.Set("IMAGETYP", type, "frame type");
  if (is_light) hd.Set("OBJECT", "demo field", "target");
  hd.Set("FILTER", is_bias || is_dark ? "dark" : o.filter, "filter");
  hd.Set("EXPTIME", exptime, "exposure time [s]");
  hd.Set("DATE-OBS", absl::FormatTime("%Y-%m-%dT%H:%M:%E3S", t, absl::UTCTimeZone()),
         "start of exposure, UTC");
  hd.Set("GAIN", o.gain, "e-/ADU");
  hd.Set("RDNOISE", o.read_noise, "read noise [e-]");
  hd.Set("CCD-TEMP", -100.0 + 0.1 * rng.Next(), "detector temperature [C]");
  hd.Set("BIASSEC", FormatFitsSection(Section{o.data_width, w, 0, h}), "overscan region");
  hd.Set("TRIMSEC", FormatFitsSection(Section{0, o.data_width, 0, h}), "illuminated region");
  hd.Set("DATASEC", FormatFitsSection(Section{0, o.data_width, 0, h}), "illuminated region");
  hd.AddComment("synthetic frame written by calibctl make-samples");
  return frame;
}

absl::StatusOr<SampleSet> MakeSamples(const std::string& dir, const SampleOptions& o) {
  SampleSet set;
  set.spec_path = dir + "/SPEC.json";
  CALIBD_RETURN_IF_ERROR(StartSampleDir(dir, set.spec_path, SampleSpecJson(o), {}, o.overwrite));
  CALIBD_ASSIGN_OR_RETURN(absl::Time night, ParseSampleNight(o.night));
  set.certify_from = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", night, absl::UTCTimeZone());
  struct Batch {
    const char* kind;
    int n;
    std::vector<std::string>* out;
  };
  for (const Batch& b :
       {Batch{"bias", o.n_bias, &set.bias}, Batch{"dark", o.n_dark, &set.dark},
        Batch{"flat", o.n_flat, &set.flat}, Batch{"light", o.n_light, &set.light}}) {
    for (int i = 0; i < b.n; ++i) {
      CALIBD_ASSIGN_OR_RETURN(RawFrame frame, SimulateSampleFrame(o, b.kind, i));
      const std::string compression = std::string(b.kind) == "light" ? o.light_compression : "";
      CALIBD_RETURN_IF_ERROR(WriteSampleFrame(dir, b.kind, absl::StrFormat("%s_%03d", b.kind, i),
                                              frame, compression, o.overwrite, b.out));
    }
  }
  return set;
}

}  // namespace calibd::client
