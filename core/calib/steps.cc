// The calibration steps one at a time, on whole frames (for building masters, tools and
// tests). Calibrate does the same arithmetic fused per row; these share its formulas.
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/calib/recipe.h"
#include "core/image/dq.h"
#include "core/status/macros.h"

namespace calibd::calib {
namespace {

template <typename A, typename B>
absl::Status SameShape(absl::string_view what, const Image<A>& a, const Image<B>& b) {
  if (a.width() == b.width() && a.height() == b.height()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " is ", b.width(), "×", b.height(),
                                                 " but the frame is ", a.width(), "×",
                                                 a.height(), "; shapes must match"));
}

// Gives `frame` a DQ plane (all zero) if it has none.
void EnsureDq(CalibratedFrame& frame) {
  if (!frame.has_dq()) frame.dq = Image<uint16_t>::Filled(frame.width(), frame.height(), 0);
}

void OrDq(CalibratedFrame& frame, const Image<uint16_t>& dq) {
  if (dq.empty()) return;
  EnsureDq(frame);
  const int64_t n = frame.dq.num_pixels();
  uint16_t* out = frame.dq.data();
  const uint16_t* in = dq.data();
  for (int64_t i = 0; i < n; ++i) out[i] |= in[i];
}

}  // namespace

absl::StatusOr<Image<float>> Trim(const Image<float>& image, const Section& section,
                                  BufferPool* buffers) {
  if (!(section.x0 >= 0 && section.y0 >= 0 && section.x1 <= image.width() &&
        section.y1 <= image.height() && section.x0 < section.x1 && section.y0 < section.y1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trim section ", FormatFitsSection(section), " is empty or outside the ", image.width(),
        "×", image.height(), " image"));
  }
  Image<float> out = Image<float>::Allocate(section.width(), section.height(), buffers);
  for (int y = section.y0; y < section.y1; ++y) {
    std::copy(image.row(y) + section.x0, image.row(y) + section.x1, out.row(y - section.y0));
  }
  return out;
}

absl::StatusOr<Image<float>> ComputeVariance(const Image<float>& data, double gain,
                                             double read_noise, const Image<float>* gain_map,
                                             const Image<float>* read_noise_map,
                                             BufferPool* buffers) {
  if (!(std::isfinite(gain) && gain > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("gain must be finite and > 0, got ", gain));
  }
  if (!(std::isfinite(read_noise) && read_noise >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("read noise must be finite and >= 0, got ", read_noise));
  }
  if (gain_map != nullptr) CALIBD_RETURN_IF_ERROR(SameShape("the gain map", data, *gain_map));
  if (read_noise_map != nullptr) {
    CALIBD_RETURN_IF_ERROR(SameShape("the read-noise map", data, *read_noise_map));
  }
  Image<float> out = Image<float>::Allocate(data.width(), data.height(), buffers);
  for (int y = 0; y < data.height(); ++y) {
    const float* d = data.row(y);
    float* v = out.row(y);
    for (int x = 0; x < data.width(); ++x) {
      const double g = gain_map != nullptr ? gain_map->at(x, y) : gain;
      const double rn = read_noise_map != nullptr ? read_noise_map->at(x, y) : read_noise;
      v[x] = static_cast<float>((g * std::max(static_cast<double>(d[x]), 0.0) + rn * rn) /
                                (g * g));
    }
  }
  return out;
}

absl::Status SubtractBias(CalibratedFrame& frame, const CalibratedFrame& bias) {
  return SubtractDark(frame, bias, 1.0);
}

absl::Status SubtractDark(CalibratedFrame& frame, const CalibratedFrame& dark, double scale) {
  if (!std::isfinite(scale)) {
    return absl::InvalidArgumentError(absl::StrCat("dark scale must be finite, got ", scale));
  }
  CALIBD_RETURN_IF_ERROR(SameShape("the master", frame.data, dark.data));
  const float s = static_cast<float>(scale);
  const float s2 = static_cast<float>(scale * scale);
  const int64_t n = frame.data.num_pixels();
  float* d = frame.data.data();
  const float* k = dark.data.data();
  for (int64_t i = 0; i < n; ++i) d[i] -= s * k[i];
  if (frame.has_variance() && dark.has_variance()) {
    CALIBD_RETURN_IF_ERROR(SameShape("the master's variance", frame.data, dark.variance));
    float* v = frame.variance.data();
    const float* kv = dark.variance.data();
    for (int64_t i = 0; i < n; ++i) v[i] += s2 * kv[i];
  }
  if (dark.has_dq()) CALIBD_RETURN_IF_ERROR(SameShape("the master's DQ", frame.data, dark.dq));
  OrDq(frame, dark.dq);
  return absl::OkStatus();
}

absl::Status DivideFlat(CalibratedFrame& frame, const PreparedFlat& flat) {
  CALIBD_RETURN_IF_ERROR(SameShape("the flat", frame.data, flat.inverse));
  const int64_t n = frame.data.num_pixels();
  float* d = frame.data.data();
  const float* inv = flat.inverse.data();
  for (int64_t i = 0; i < n; ++i) d[i] *= inv[i];
  if (frame.has_variance()) {
    float* v = frame.variance.data();
    if (!flat.norm_variance.empty()) {
      const float* nv = flat.norm_variance.data();
      for (int64_t i = 0; i < n; ++i) v[i] = inv[i] * inv[i] * (v[i] + d[i] * d[i] * nv[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) v[i] *= inv[i] * inv[i];
    }
  }
  OrDq(frame, flat.dq);
  return absl::OkStatus();
}

absl::Status ApplyGain(CalibratedFrame& frame, double gain) {
  if (!(std::isfinite(gain) && gain > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("gain must be finite and > 0, got ", gain));
  }
  if (frame.unit == "electron") {
    return absl::InvalidArgumentError("the frame is already in electrons; gain applied twice?");
  }
  const float g = static_cast<float>(gain);
  const float g2 = static_cast<float>(gain * gain);
  const int64_t n = frame.data.num_pixels();
  float* d = frame.data.data();
  for (int64_t i = 0; i < n; ++i) d[i] *= g;
  if (frame.has_variance()) {
    float* v = frame.variance.data();
    for (int64_t i = 0; i < n; ++i) v[i] *= g2;
  }
  frame.unit = "electron";
  return absl::OkStatus();
}

}  // namespace calibd::calib
