// Synthetic frames with known answers, for unit, conformance and integration tests.
//
//   CcdModel ccd;                        // 64×48 with 8 overscan columns, bias 1000 ADU, ...
//   ccd.exptime = 30;
//   RawFrame light = SimulateFrame(ccd, FrameKind::kLight, /*seed=*/7);
//   RawFrame bias  = SimulateFrame(ccd, FrameKind::kBias, /*seed=*/8);
//
// Frames are uint16 (like a CCD's ADC) with FITS headers: IMAGETYP, EXPTIME, GAIN, RDNOISE,
// BIASSEC, TRIMSEC, DATE-OBS. The noise is seeded, so a test is deterministic.
//
// Thread safety: pure functions.
#ifndef CALIBD_TESTS_TESTING_SYNTHETIC_H_
#define CALIBD_TESTS_TESTING_SYNTHETIC_H_

#include <cstdint>
#include <functional>
#include <string>

#include "core/image/frame.h"
#include "core/image/image.h"
#include "core/random/gaussian.h"

namespace calibd::testing {

struct CcdModel {
  int data_width = 64;       // illuminated columns
  int height = 48;
  int overscan_width = 8;    // columns to the right of the data (BIASSEC)
  double bias_level = 1000;  // ADU
  double bias_row_slope = 0.05;  // ADU per row: a gradient the overscan removes
  double read_noise = 5.0;   // e⁻
  double gain = 1.5;         // e⁻/ADU
  double dark_current = 0.2; // e⁻/s/pixel
  double exptime = 10.0;     // s
  double sky = 2000.0;       // e⁻ per pixel in a light (flats: `flat_level`)
  double flat_level = 20000.0;
  double flat_amplitude = 0.1;  // ± pixel response around 1
  std::string date_obs = "2026-03-01T02:03:04.5";
  int width() const { return data_width + overscan_width; }
};

enum class FrameKind { kBias, kDark, kFlat, kLight };

// The pixel response (≈1 ± amplitude) the model uses at (x, y) of the data region.
double FlatResponse(const CcdModel& ccd, int x, int y);

RawFrame SimulateFrame(const CcdModel& ccd, FrameKind kind, uint64_t seed);

// A frame of `type` whose pixel (x, y) is value(x, y), cast to the type.
RawFrame MakeFrame(int width, int height, PixelType type,
                   const std::function<double(int, int)>& value);

// Standard normal samples, reproducible across platforms: the one generator in core
// (core/random/gaussian.h), named here for the tests that already use it.
using Gaussian = ::calibd::random::Gaussian;

}  // namespace calibd::testing

#endif  // CALIBD_TESTS_TESTING_SYNTHETIC_H_
