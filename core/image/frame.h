// The frames calibd moves around: a raw frame as the camera made it, and a calibrated frame
// (also the shape of every stored master: data, variance, DQ).
//
//   RawFrame raw = ...;                       // header + typed pixels
//   CalibratedFrame out;
//   out.data = Image<float>::Allocate(w, h, &pool);
//   out.variance = Image<float>::Allocate(w, h, &pool);   // ADU² or e⁻², as `unit` says
//   out.dq = Image<uint16_t>::Filled(w, h, 0, &pool);
//
// A master may leave `variance` or `dq` empty (0×0): "not known" / "all good".
//
// Thread safety: value types (move-only through their images).
#ifndef CALIBD_CORE_IMAGE_FRAME_H_
#define CALIBD_CORE_IMAGE_FRAME_H_

#include <cstdint>
#include <string>

#include "core/image/header.h"
#include "core/image/image.h"

namespace calibd {

struct RawFrame {
  Header header;
  RawImage pixels;
};

struct CalibratedFrame {
  Header header;
  Image<float> data;
  Image<float> variance;  // empty = unknown
  Image<uint16_t> dq;     // empty = all zero
  std::string unit = "adu";  // "adu" or "electron" (BUNIT); variance is in unit²

  int width() const { return data.width(); }
  int height() const { return data.height(); }
  bool has_variance() const { return !variance.empty(); }
  bool has_dq() const { return !dq.empty(); }
};

}  // namespace calibd

#endif  // CALIBD_CORE_IMAGE_FRAME_H_
