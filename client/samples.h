// Realistic sample raw frames for trying calibd without downloading data: a night of one CCD
// with biases, darks, twilight flats and science lights, plus the detector spec as JSON.
//
//   SampleOptions opt;                 // 1024×1024 illuminated + 32 overscan columns
//   opt.data_width = 64; opt.height = 48;  // small, for tests
//   ASSIGN_OR_RETURN(SampleSet set, MakeSamples("/tmp/night", opt));
//   // set.spec_path = /tmp/night/SPEC.json, set.bias = {/tmp/night/bias/bias_000.fits, ...}
//
// Layout of DIR: SPEC.json, bias/, dark/, flat/, light/ (uint16 FITS, optionally
// tile-compressed). Every frame has IMAGETYP, EXPTIME, DATE-OBS, GAIN, RDNOISE, BIASSEC,
// TRIMSEC, DATASEC, FILTER, INSTRUME, DETECTOR, CCD-TEMP; lights also OBJECT.
// The CCD model: bias level with a row gradient (which the per-row overscan removes), read
// noise, gain, dark current with hot pixels, a smooth pixel response (flat) with a few dead
// pixels, sky, stars (some saturated) and cosmic rays in lights. Noise is seeded: the same
// options give the same bytes.
//
// Thread safety: pure functions (they write files).
#ifndef CALIBD_CLIENT_SAMPLES_H_
#define CALIBD_CLIENT_SAMPLES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/image/frame.h"

namespace calibd::client {

struct SampleOptions {
  std::string detector = "demo/ccd0";
  int data_width = 1024;     // illuminated columns
  int height = 1024;         // rows
  int overscan_width = 32;   // overscan columns right of the data
  int n_bias = 5;
  int n_dark = 5;
  int n_flat = 5;
  int n_light = 3;
  double gain = 1.5;          // e-/ADU
  double read_noise = 5.0;    // e-
  double bias_level = 1000;   // ADU
  double bias_row_slope = 0.02;  // ADU per row
  double dark_current = 0.02;    // e-/s/pixel
  double hot_pixel_fraction = 2e-4;
  double hot_pixel_current = 5;  // e-/s
  double dark_exptime = 300;     // s
  double flat_exptime = 5;
  double flat_level = 25000;     // e-
  double light_exptime = 120;
  double sky = 800;              // e- per pixel over the exposure
  int stars = 40;
  int cosmic_rays = 30;          // per light
  double saturation = 65000;     // ADU, in the detector spec
  std::string filter = "R";
  std::string night = "2026-03-01";  // UTC date of the frames
  // "" = plain uint16 FITS; "RICE_1", "GZIP_1", ... = tile-compressed lights.
  std::string light_compression;
  uint64_t seed = 20260301;
  bool overwrite = false;
};

struct SampleSet {
  std::string spec_path;
  std::vector<std::string> bias, dark, flat, light;
  // A time (RFC 3339) before every frame, usable as --certify-from / --begin.
  std::string certify_from;
};

// The detector spec as the JSON that `calibctl detector put` reads (calibd.v1.DetectorSpec
// in protobuf's JSON mapping).
std::string SampleSpecJson(const SampleOptions& options);

// One frame: kind is "bias", "dark", "flat" or "light"; index picks the noise and the time.
absl::StatusOr<RawFrame> SimulateSampleFrame(const SampleOptions& options,
                                             const std::string& kind, int index);

// Writes everything into `dir` (created if missing). Existing files are ALREADY_EXISTS
// unless options.overwrite.
absl::StatusOr<SampleSet> MakeSamples(const std::string& dir, const SampleOptions& options);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_SAMPLES_H_
