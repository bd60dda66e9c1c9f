#include "core/image/image.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace calibd {

size_t PixelSize(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return 1;
    case PixelType::kInt16:
    case PixelType::kUint16: return 2;
    case PixelType::kInt32:
    case PixelType::kUint32:
    case PixelType::kFloat32: return 4;
    case PixelType::kInt64:
    case PixelType::kFloat64: return 8;
  }
  return 0;
}

absl::string_view PixelTypeName(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return "uint8";
    case PixelType::kInt16: return "int16";
    case PixelType::kUint16: return "uint16";
    case PixelType::kInt32: return "int32";
    case PixelType::kUint32: return "uint32";
    case PixelType::kInt64: return "int64";
    case PixelType::kFloat32: return "float32";
    case PixelType::kFloat64: return "float64";
  }
  return "unknown";
}

absl::StatusOr<PixelType> ParsePixelType(absl::string_view name) {
  for (PixelType t : {PixelType::kUint8, PixelType::kInt16, PixelType::kUint16, PixelType::kInt32,
                      PixelType::kUint32, PixelType::kInt64, PixelType::kFloat32,
                      PixelType::kFloat64}) {
    if (PixelTypeName(t) == name) return t;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown pixel type '", name,
      "' (expected uint8, int16, uint16, int32, uint32, int64, float32 or float64)"));
}

template <typename T>
Image<T> Image<T>::Allocate(int width, int height, BufferPool* pool) {
  assert(width >= 0 && height >= 0);
  Image<T> image;
  const size_t bytes = size_t(width) * size_t(height) * sizeof(T);
  image.buffer_ = pool != nullptr ? pool->Acquire(bytes) : Buffer::Allocate(bytes);
  image.width_ = width;
  image.height_ = height;
  return image;
}

template <typename T>
Image<T> Image<T>::Filled(int width, int height, T value, BufferPool* pool) {
  Image<T> image = Allocate(width, height, pool);
  image.Fill(value);
  return image;
}

template <typename T>
Image<T> Image<T>::Clone(BufferPool* pool) const {
  Image<T> copy = Allocate(width_, height_, pool);
  if (!empty()) std::memcpy(copy.data(), data(), size_t(num_pixels()) * sizeof(T));
  return copy;
}

template <typename T>
void Image<T>::Fill(T value) {
  std::fill_n(data(), num_pixels(), value);
}

template class Image<uint8_t>;
template class Image<int16_t>;
template class Image<uint16_t>;
template class Image<int32_t>;
template class Image<uint32_t>;
template class Image<int64_t>;
template class Image<float>;
template class Image<double>;

RawImage RawImage::Allocate(PixelType type, int width, int height, BufferPool* pool) {
  RawImage image;
  image.type_ = type;
  image.width_ = width;
  image.height_ = height;
  const size_t bytes = image.size_bytes();
  image.buffer_ = pool != nullptr ? pool->Acquire(bytes) : Buffer::Allocate(bytes);
  return image;
}

template <typename T>
RawImage RawImage::FromImage(Image<T> image) {
  RawImage raw;
  raw.type_ = PixelTypeOf<T>();
  raw.width_ = image.width_;
  raw.height_ = image.height_;
  raw.buffer_ = std::move(image.buffer_);
  return raw;
}

template <typename T>
const T* RawImage::row(int y) const {
  assert(PixelTypeOf<T>() == type_);
  return static_cast<const T*>(row_data(y));
}
template <typename T>
T* RawImage::row(int y) {
  assert(PixelTypeOf<T>() == type_);
  return static_cast<T*>(row_data(y));
}

namespace {
template <typename Src, typename Dst>
void Convert(const void* row, int x0, int n, Dst* out) {
  const Src* src = static_cast<const Src*>(row) + x0;
  for (int i = 0; i < n; ++i) out[i] = static_cast<Dst>(src[i]);
}
template <typename Dst>
void ConvertRow(PixelType type, const void* row, int x0, int n, Dst* out) {
  switch (type) {
    case PixelType::kUint8: return Convert<uint8_t>(row, x0, n, out);
    case PixelType::kInt16: return Convert<int16_t>(row, x0, n, out);
    case PixelType::kUint16: return Convert<uint16_t>(row, x0, n, out);
    case PixelType::kInt32: return Convert<int32_t>(row, x0, n, out);
    case PixelType::kUint32: return Convert<uint32_t>(row, x0, n, out);
    case PixelType::kInt64: return Convert<int64_t>(row, x0, n, out);
    case PixelType::kFloat32: return Convert<float>(row, x0, n, out);
    case PixelType::kFloat64: return Convert<double>(row, x0, n, out);
  }
}
}  // namespace

void RawImage::RowToFloat(int y, int x0, int n, float* out) const {
  ConvertRow(type_, row_data(y), x0, n, out);
}
void RawImage::RowToDouble(int y, int x0, int n, double* out) const {
  ConvertRow(type_, row_data(y), x0, n, out);
}

#define CALIBD_RAW_IMAGE_INSTANTIATE(T)                   \
  template RawImage RawImage::FromImage<T>(Image<T>);     \
  template const T* RawImage::row<T>(int) const;          \
  template T* RawImage::row<T>(int);
CALIBD_RAW_IMAGE_INSTANTIATE(uint8_t)
CALIBD_RAW_IMAGE_INSTANTIATE(int16_t)
CALIBD_RAW_IMAGE_INSTANTIATE(uint16_t)
CALIBD_RAW_IMAGE_INSTANTIATE(int32_t)
CALIBD_RAW_IMAGE_INSTANTIATE(uint32_t)
CALIBD_RAW_IMAGE_INSTANTIATE(int64_t)
CALIBD_RAW_IMAGE_INSTANTIATE(float)
CALIBD_RAW_IMAGE_INSTANTIATE(double)
#undef CALIBD_RAW_IMAGE_INSTANTIATE

}  // namespace calibd
