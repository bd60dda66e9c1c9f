#include "tests/testing/synthetic.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/image/section.h"

namespace calibd::testing {

double FlatResponse(const CcdModel& ccd, int x, int y) {
  const double fx = double(x) / std::max(1, ccd.data_width - 1);
  const double fy = double(y) / std::max(1, ccd.height - 1);
  return 1.0 + ccd.flat_amplitude * (std::sin(6.1 * fx + 1.3 * fy) * 0.7 + (fx - 0.5) * 0.6);
}

RawFrame SimulateFrame(const CcdModel& ccd, FrameKind kind, uint64_t seed) {
  Gaussian rng(seed);
  const int w = ccd.width(), h = ccd.height;
  RawFrame frame;
  frame.pixels = RawImage::Allocate(PixelType::kUint16, w, h);
  const double exptime = kind == FrameKind::kBias ? 0.0 : ccd.exptime;
  for (int y = 0; y < h; ++y) {
    uint16_t* row = frame.pixels.row<uint16_t>(y);
    const double bias = ccd.bias_level + ccd.bias_row_slope * y;
    for (int x = 0; x < w; ++x) {
      double electrons = 0;
      if (x < ccd.data_width) {
        electrons = ccd.dark_current * exptime;
        if (kind == FrameKind::kFlat) electrons += ccd.flat_level * FlatResponse(ccd, x, y);
        if (kind == FrameKind::kLight) electrons += ccd.sky * FlatResponse(ccd, x, y);
        // Poisson noise, Gaussian approximation (every level here is large).
        electrons += std::sqrt(std::max(electrons, 0.0)) * rng.Next();
      }
      const double adu = bias + (electrons + ccd.read_noise * rng.Next()) / ccd.gain;
      row[x] = static_cast<uint16_t>(std::clamp(std::lround(adu), 0l, 65535l));
    }
  }
  Header& hd = frame.header;
  static constexpr const char* kTypes[] = {"bias", "dark", "flat", "light"};
  hd.Set("IMAGETYP", kTypes[static_cast<int>(kind)], "frame type");
  hd.Set("EXPTIME", exptime, "exposure time [s]");
  hd.Set("GAIN", ccd.gain, "e-/ADU");
  hd.Set("RDNOISE", ccd.read_noise, "read noise [e-]");
  hd.Set("BIASSEC", FormatFitsSection(Section{ccd.data_width, w, 0, h}), "overscan");
  hd.Set("TRIMSEC", FormatFitsSection(Section{0, ccd.data_width, 0, h}), "illuminated");
  hd.Set("DATE-OBS", ccd.date_obs, "start of exposure, UTC");
  return frame;
}

RawFrame MakeFrame(int width, int height, PixelType type,
                   const std::function<double(int, int)>& value) {
  RawFrame frame;
  frame.pixels = RawImage::Allocate(type, width, height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double v = value(x, y);
      void* row = frame.pixels.row_data(y);
      switch (type) {
        case PixelType::kUint8: static_cast<uint8_t*>(row)[x] = static_cast<uint8_t>(v); break;
        case PixelType::kInt16: static_cast<int16_t*>(row)[x] = static_cast<int16_t>(v); break;
        case PixelType::kUint16: static_cast<uint16_t*>(row)[x] = static_cast<uint16_t>(v); break;
        case PixelType::kInt32: static_cast<int32_t*>(row)[x] = static_cast<int32_t>(v); break;
        case PixelType::kUint32: static_cast<uint32_t*>(row)[x] = static_cast<uint32_t>(v); break;
        case PixelType::kInt64: static_cast<int64_t*>(row)[x] = static_cast<int64_t>(v); break;
        case PixelType::kFloat32: static_cast<float*>(row)[x] = static_cast<float>(v); break;
        case PixelType::kFloat64: static_cast<double*>(row)[x] = v; break;
      }
    }
  }
  return frame;
}

}  // namespace calibd::testing
