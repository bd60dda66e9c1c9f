// Test helpers for core/calib: synthetic masters with known values, and raw little-endian
// binary files for the ccdproc oracle (tests/oracle/ccdproc_process.py).
//
//   auto bias = MakeMaster(64, 48, [](int x, int y) { return 2.0 + 0.01 * x; });
//   ASSERT_OK(WriteBinary(dir.File("bias.f32"), bias->data.data(), bias->data.num_pixels()));
//
// Thread safety: pure functions; a file belongs to one test.
#ifndef CALIBD_TESTS_CALIB_CALIB_TESTING_H_
#define CALIBD_TESTS_CALIB_CALIB_TESTING_H_

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/image/frame.h"
#include "core/image/image.h"

namespace calibd::testing {

using PixelFn = std::function<double(int, int)>;

inline Image<float> MakeImage(int w, int h, const PixelFn& fn) {
  Image<float> image = Image<float>::Allocate(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) image.at(x, y) = static_cast<float>(fn(x, y));
  }
  return image;
}

// A master with data fn; variance and DQ planes when their functions are given.
inline std::shared_ptr<CalibratedFrame> MakeMaster(
    int w, int h, const PixelFn& data, const PixelFn& variance = nullptr,
    const std::function<uint16_t(int, int)>& dq = nullptr) {
  auto m = std::make_shared<CalibratedFrame>();
  m->data = MakeImage(w, h, data);
  if (variance) m->variance = MakeImage(w, h, variance);
  if (dq) {
    m->dq = Image<uint16_t>::Allocate(w, h);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) m->dq.at(x, y) = dq(x, y);
    }
  }
  return m;
}

// Writes n values of T as raw bytes (the host is little-endian x86-64).
template <typename T>
absl::Status WriteBinary(const std::string& path, const T* values, int64_t n) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values), static_cast<std::streamsize>(n * sizeof(T)));
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadBinary(const std::string& path, int64_t n, std::vector<T>* values) {
  std::ifstream in(path, std::ios::binary);
  values->resize(n);
  in.read(reinterpret_cast<char*>(values->data()), static_cast<std::streamsize>(n * sizeof(T)));
  if (!in || in.gcount() != static_cast<std::streamsize>(n * sizeof(T))) {
    return absl::InternalError(absl::StrCat("cannot read ", n, " values from ", path));
  }
  return absl::OkStatus();
}

}  // namespace calibd::testing

#endif  // CALIBD_TESTS_CALIB_CALIB_TESTING_H_
