// Image<T>: a row-major 2-D pixel plane that owns its (optionally pooled) memory;
// RawImage: the same for a pixel type known only at run time (what a camera or a FITS file
// delivers: uint16, int32, float32, ...).
//
//   Image<float> data = Image<float>::Allocate(width, height, &pool);   // uninitialised
//   for (int y = 0; y < data.height(); ++y) {
//     absl::Span<float> row = data.Row(y);
//     ...
//   }
//   Image<float> copy = data.Clone();   // the only way to copy: no hidden copies
//
// Rows are contiguous: row y starts at data() + y * width(). Pixel (x, y) is column x of row y,
// 0-based; FITS pixel (i, j) is (x = i-1, y = j-1).
//
// Thread safety: an Image is a value with one owner (move-only). Distinct rows may be written
// from different threads at once.
#ifndef CALIBD_CORE_IMAGE_IMAGE_H_
#define CALIBD_CORE_IMAGE_IMAGE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/image/buffer_pool.h"

namespace calibd {

// The pixel types a raw frame may carry. Values are stable (they appear in the API).
enum class PixelType : int {
  kUint8 = 1,
  kInt16 = 2,
  kUint16 = 3,
  kInt32 = 4,
  kUint32 = 5,
  kInt64 = 6,
  kFloat32 = 7,
  kFloat64 = 8,
};

size_t PixelSize(PixelType type);
absl::string_view PixelTypeName(PixelType type);  // "uint16", "float32", ...
absl::StatusOr<PixelType> ParsePixelType(absl::string_view name);

template <typename T>
constexpr PixelType PixelTypeOf();
template <> constexpr PixelType PixelTypeOf<uint8_t>() { return PixelType::kUint8; }
template <> constexpr PixelType PixelTypeOf<int16_t>() { return PixelType::kInt16; }
template <> constexpr PixelType PixelTypeOf<uint16_t>() { return PixelType::kUint16; }
template <> constexpr PixelType PixelTypeOf<int32_t>() { return PixelType::kInt32; }
template <> constexpr PixelType PixelTypeOf<uint32_t>() { return PixelType::kUint32; }
template <> constexpr PixelType PixelTypeOf<int64_t>() { return PixelType::kInt64; }
template <> constexpr PixelType PixelTypeOf<float>() { return PixelType::kFloat32; }
template <> constexpr PixelType PixelTypeOf<double>() { return PixelType::kFloat64; }

class RawImage;

template <typename T>
class Image {
 public:
  Image() = default;
  // Uninitialised pixels. With a pool the memory is recycled. Dimensions must be >= 0.
  static Image Allocate(int width, int height, BufferPool* pool = nullptr);
  static Image Filled(int width, int height, T value, BufferPool* pool = nullptr);

  Image(Image&&) noexcept = default;
  Image& operator=(Image&&) noexcept = default;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  Image Clone(BufferPool* pool = nullptr) const;
  void Fill(T value);

  int width() const { return width_; }
  int height() const { return height_; }
  int64_t num_pixels() const { return int64_t{width_} * height_; }
  bool empty() const { return num_pixels() == 0; }

  T* data() { return buffer_.as<T>(); }
  const T* data() const { return buffer_.as<T>(); }
  T* row(int y) { return data() + int64_t{y} * width_; }
  const T* row(int y) const { return data() + int64_t{y} * width_; }
  absl::Span<T> Row(int y) { return absl::Span<T>(row(y), width_); }
  absl::Span<const T> Row(int y) const { return absl::Span<const T>(row(y), width_); }
  T& at(int x, int y) { return row(y)[x]; }
  const T& at(int x, int y) const { return row(y)[x]; }

 private:
  friend class RawImage;
  Buffer buffer_;
  int width_ = 0;
  int height_ = 0;
};

extern template class Image<uint8_t>;
extern template class Image<int16_t>;
extern template class Image<uint16_t>;
extern template class Image<int32_t>;
extern template class Image<uint32_t>;
extern template class Image<int64_t>;
extern template class Image<float>;
extern template class Image<double>;

// A plane whose pixel type is a run-time value. Rows are contiguous, like Image<T>.
class RawImage {
 public:
  RawImage() = default;
  static RawImage Allocate(PixelType type, int width, int height, BufferPool* pool = nullptr);
  template <typename T>
  static RawImage FromImage(Image<T> image);  // takes ownership, no copy

  RawImage(RawImage&&) noexcept = default;
  RawImage& operator=(RawImage&&) noexcept = default;

  PixelType type() const { return type_; }
  int width() const { return width_; }
  int height() const { return height_; }
  int64_t num_pixels() const { return int64_t{width_} * height_; }
  size_t row_bytes() const { return size_t(width_) * PixelSize(type_); }
  size_t size_bytes() const { return row_bytes() * height_; }

  void* data() { return buffer_.data(); }
  const void* data() const { return buffer_.data(); }
  void* row_data(int y) { return static_cast<char*>(data()) + row_bytes() * y; }
  const void* row_data(int y) const { return static_cast<const char*>(data()) + row_bytes() * y; }
  // Typed access; T must match type() (checked in debug builds).
  template <typename T>
  const T* row(int y) const;
  template <typename T>
  T* row(int y);

  // Converts pixels [x0, x0 + n) of row y to float: the hot path of every calibration.
  void RowToFloat(int y, int x0, int n, float* out) const;
  // The same, to double (for statistics that need it).
  void RowToDouble(int y, int x0, int n, double* out) const;

 private:
  Buffer buffer_;
  PixelType type_ = PixelType::kFloat32;
  int width_ = 0;
  int height_ = 0;
};

}  // namespace calibd

#endif  // CALIBD_CORE_IMAGE_IMAGE_H_
