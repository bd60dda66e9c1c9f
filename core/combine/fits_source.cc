// FitsSource: a calibrated FITS file read band by band through fits::BandReader.
#include <cmath>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/combine/combine.h"
#include "core/image/dq.h"
#include "core/status/macros.h"

namespace calibd::combine {
namespace {

class FitsFrameSource : public FrameSource {
 public:
  FitsFrameSource(std::string path, std::unique_ptr<fits::BandReader> data,
                  std::unique_ptr<fits::BandReader> uncert, std::unique_ptr<fits::BandReader> dq,
                  bool dq_is_mask)
      : path_(std::move(path)),
        data_(std::move(data)),
        uncert_(std::move(uncert)),
        dq_(std::move(dq)),
        dq_is_mask_(dq_is_mask) {}

  int width() const override { return data_->width(); }
  int height() const override { return data_->height(); }
  const Header& header() const override { return data_->header(); }
  bool has_variance() const override { return uncert_ != nullptr; }
  bool has_dq() const override { return dq_ != nullptr; }
  std::string name() const override { return path_; }

  absl::Status ReadRows(int y0, int rows, float* data, float* variance,
                        uint16_t* dq) override {
    if (variance != nullptr && uncert_ == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, " has no UNCERT HDU; do not ask for variance"));
    }
    if (dq != nullptr && dq_ == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, " has no DQ or MASK HDU; do not ask for DQ"));
    }
    const size_t n = size_t(rows) * size_t(width());
    if (dq != nullptr) {
      // The data buffer is free until the data are read: DQ goes through it as float.
      CALIBD_RETURN_IF_ERROR(dq_->ReadRows(y0, rows, data));
      for (size_t i = 0; i < n; ++i) {
        const float f = data[i];
        if (dq_is_mask_) {
          dq[i] = f != 0.0f ? uint16_t{kDqBad} : uint16_t{0};
        } else {
          dq[i] = f >= 0.0f && f <= 65535.0f ? static_cast<uint16_t>(f) : uint16_t{kDqBad};
        }
      }
    }
    if (variance != nullptr) {
      CALIBD_RETURN_IF_ERROR(uncert_->ReadRows(y0, rows, variance));
      for (size_t i = 0; i < n; ++i) variance[i] *= variance[i];
    }
    return data_->ReadRows(y0, rows, data);
  }

 private:
  std::string path_;
  std::unique_ptr<fits::BandReader> data_;
  std::unique_ptr<fits::BandReader> uncert_;
  std::unique_ptr<fits::BandReader> dq_;
  bool dq_is_mask_;
};

// The named HDU of `path`, or null when the file has none.
absl::StatusOr<std::unique_ptr<fits::BandReader>> OpenOptional(const std::string& path,
                                                                fits::ReadOptions options,
                                                                const std::string& hdu,
                                                                int width, int height) {
  options.hdu_name = hdu;
  options.hdu_index = -1;
  absl::StatusOr<std::unique_ptr<fits::BandReader>> r = fits::BandReader::Open(path, options);
  if (absl::IsNotFound(r.status())) return std::unique_ptr<fits::BandReader>();
  if (!r.ok()) return r.status();
  if ((*r)->width() != width || (*r)->height() != height) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": HDU ", hdu, " is ", (*r)->width(), "x", (*r)->height(), " but the data are ",
        width, "x", height));
  }
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrameSource>> FitsSource(const std::string& path,
                                                        const fits::ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(std::unique_ptr<fits::BandReader> data,
                          fits::BandReader::Open(path, options));
  const int w = data->width(), h = data->height();
  CALIBD_ASSIGN_OR_RETURN(std::unique_ptr<fits::BandReader> uncert,
                          OpenOptional(path, options, "UNCERT", w, h));
  CALIBD_ASSIGN_OR_RETURN(std::unique_ptr<fits::BandReader> dq,
                          OpenOptional(path, options, "DQ", w, h));
  bool dq_is_mask = false;
  if (dq == nullptr) {
    CALIBD_ASSIGN_OR_RETURN(dq, OpenOptional(path, options, "MASK", w, h));
    dq_is_mask = dq != nullptr;
  }
  return std::unique_ptr<FrameSource>(std::make_unique<FitsFrameSource>(
      path, std::move(data), std::move(uncert), std::move(dq), dq_is_mask));
}

}  // namespace calibd::combine
