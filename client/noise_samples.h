// Synthetic stacks with known truth for every noise product (`calibctl make-samples --noise`):
// one EMCCD-like detector with per-pixel read noise, a scalar gain, dark current with hot
// pixels, fixed pattern F and clock-induced charge C, a flat response with dead pixels, and
// gain settings of different gains; plus the truth maps themselves.
//
//   NoiseSampleOptions o;                  // 64×48 illuminated + 32 overscan columns
//   o.data_width = o.height = 256;         // --size 256
//   ASSIGN_OR_RETURN(NoiseSampleSet set, MakeNoiseSamples("/tmp/noise", o));
//   // set.bias: 16 biases; set.ptc: 5 flat pairs; set.dark: 3 exposure times × 4;
//   // set.emccd: 5 (EM gain, exposure) settings × 4; set.gainnorm: 3 settings × 2 flats;
//   // set.truth_path: TRUTH.fits (F, D, C, READ_NOISE, RESPONSE, HOT, DEAD maps).
//
// The model (electrons; ADU = bias level + row gradient + e⁻/gain, rounded to uint16; the
// overscan columns carry only the bias and read noise):
//   bias              read noise rn(x, y)                       (no F, no C: the master bias
//                                                                 removes only the bias level)
//   dark  (t, g = 1)  F + t·D + C            + N(0, rn² + signal)
//   EMCCD (t, g)      F + g·t·D + g·C        + N(0, rn² + signal)
//   PTC flat (level L) L·response            + N(0, rn² + signal)
//   gain setting s    L·response, ADU = e⁻ / gain_s (GAINMODE = s)
//   light (t, g)      F + g·t·D + g·C + g·sky·response + N(0, rn² + signal)
// so a noise_model fitted to bias-subtracted EMCCD darks in e⁻ recovers (F, D, C), and a
// synthesized dark for (t, g) is F/g + t·D + C = (F + g·t·D + g·C)/g. Headers: IMAGETYP, EXPTIME,
// EMGAIN, GAIN, GAINMODE, DATE-OBS (the night of `night`), CCD-TEMP, BIASSEC/TRIMSEC/DATASEC.
// Seeded: the same options give the same bytes.
//
// Thread safety: pure functions (they write files).
#ifndef CALIBD_CLIENT_NOISE_SAMPLES_H_
#define CALIBD_CLIENT_NOISE_SAMPLES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/image/frame.h"

namespace calibd::client {

struct NoiseSampleOptions {
  std::string detector = "demo/emccd0";
  int data_width = 64;      // illuminated columns
  int height = 48;          // rows
  int overscan_width = 32;  // overscan columns right of the data (many: the per-row overscan
                            // estimate adds little noise to every pixel)
  int n_bias = 16;
  int frames_per_setting = 4;  // darks per exposure time, EMCCD darks per (g, t)
  double gain = 1.5;           // e⁻/ADU
  double read_noise_min = 4;   // e⁻, at the left edge
  double read_noise_max = 5;   // e⁻, at the right edge (the spec says the mean)
  double bias_level = 1000;    // ADU
  double fpn_mean = 20, fpn_spread = 5;     // F [e⁻]: mean ± half-range
  double dark_mean = 0.0125, dark_spread = 0.0025;  // D [e⁻/s]
  double cic_mean = 0.06, cic_spread = 0.01;        // C [e⁻]
  double hot_fraction = 0.005;
  double hot_current = 1.0;    // e⁻/s
  double dead_fraction = 0.005;
  double dead_response = 0.2;
  std::vector<double> dark_exptimes = {30, 100, 300};
  // (EM gain, exposure) settings of the EMCCD darks.
  std::vector<std::pair<double, double>> em_settings = {
      {1, 30}, {10, 30}, {50, 60}, {100, 100}, {200, 30}};
  std::vector<double> ptc_levels = {2000, 5000, 10000, 20000, 30000};  // e⁻
  // gain_normalisation: settings and their gains (e⁻/ADU), one illumination.
  std::vector<std::pair<std::string, double>> gain_settings = {
      {"low", 3.0}, {"mid", 1.5}, {"high", 0.75}};
  double gainnorm_level = 10000;  // e⁻
  // EMCCD lights at a setting outside the darks' (for calibrate --dark-policy synthesized): a
  // uniform sky of `light_sky` photo-electrons per pixel (× response) multiplied by the EM gain.
  int n_light = 2;
  double light_em_gain = 300, light_exptime = 45, light_sky = 2;
  double saturation = 65000;      // ADU
  double temperature = -85;       // °C, every frame's CCD-TEMP
  // In the spec: D scales by exp(c·ΔT) (the frames are all at `temperature`; the value is
  // what synth-dark --temperature uses).
  double dark_temperature_coefficient = 0.08;  // 1/K
  std::string night = "2026-03-01";
  uint64_t seed = 20260302;
  bool overwrite = false;
};

// The truth at pixel (x, y) of the trimmed frame.
struct NoiseTruth {
  double fpn = 0, dark = 0, cic = 0, read_noise = 0, response = 1;
  bool hot = false, dead = false;
};
NoiseTruth NoiseTruthAt(const NoiseSampleOptions& options, int x, int y);

struct NoiseSampleSet {
  std::string spec_path, truth_path;
  std::vector<std::string> bias, ptc, dark, emccd, gainnorm, light;
  std::string certify_from;  // RFC 3339, before every frame
};

std::string NoiseSampleSpecJson(const NoiseSampleOptions& options);

// One frame: kind "bias" | "ptc" | "dark" | "emccd" | "gainnorm" | "light"; `setting` indexes the level,
// exposure time, (g, t) or gain setting; `index` the frame within it.
absl::StatusOr<RawFrame> SimulateNoiseFrame(const NoiseSampleOptions& options,
                                            const std::string& kind, int setting, int index);

// Writes SPEC.json, TRUTH.fits and bias/, ptc/, dark/, emccd/, gainnorm/, light/ into `dir`. Existing
// files are ALREADY_EXISTS unless options.overwrite.
absl::StatusOr<NoiseSampleSet> MakeNoiseSamples(const std::string& dir,
                                                const NoiseSampleOptions& options);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_NOISE_SAMPLES_H_
