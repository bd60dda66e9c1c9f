// The public readers of fits.h: raw frames, headers, calibrated frames, row bands.
#include <fitsio.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/fits/fits.h"
#include "core/fits/fits_file.h"
#include "core/fits/header_io.h"
#include "core/fits/image_info.h"
#include "core/fits/pixel_read.h"
#include "core/image/dq.h"
#include "core/status/macros.h"

namespace calibd::fits {
namespace {

constexpr int kBandRows = 64;  // rows per band when converting a MASK plane

class BandReaderImpl : public BandReader {
 public:
  BandReaderImpl(OpenHdu hdu, Header header) : hdu_(std::move(hdu)), header_(std::move(header)) {}

  int width() const override { return hdu_.info.width; }
  int height() const override { return hdu_.info.height; }
  PixelType stored_type() const override { return hdu_.info.type; }
  const Header& header() const override { return header_; }

  absl::Status ReadRows(int y0, int rows, float* out) override {
    if (y0 < 0 || rows < 0 || y0 > height() - rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("rows [", y0, ", ", int64_t{y0} + rows, ") are outside the image of ",
                       height(), " rows in '", hdu_.file.path(), "'"));
    }
    if (rows == 0) return absl::OkStatus();
    return ReadRowsAsFloat(hdu_.file, hdu_.info, y0, rows, out, &scratch_);
  }

 private:
  OpenHdu hdu_;
  Header header_;
  std::vector<uint8_t> scratch_;  // raw bytes of one band (direct reads of integer images)
};

}  // namespace

absl::StatusOr<RawFrame> ReadRawFrame(const std::string& path, const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage(path, options));
  RawFrame frame;
  CALIBD_ASSIGN_OR_RETURN(frame.header, ReadHeaderCards(hdu.file, hdu.info.compressed));
  frame.pixels = RawImage::Allocate(hdu.info.type, hdu.info.width, hdu.info.height, options.pool);
  CALIBD_RETURN_IF_ERROR(ReadRawPixels(hdu.file, hdu.info, &frame.pixels));
  return frame;
}

absl::StatusOr<Header> ReadHeader(const std::string& path, const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::OpenForRead(path));
  CALIBD_RETURN_IF_ERROR(SelectHdu(file, options));
  int status = 0;
  bool compressed = fits_is_compressed_image(file.get(), &status) != 0;
  if (status != 0) return file.Check(status, "checking for tile compression");
  if (options.verify_checksum) CALIBD_RETURN_IF_ERROR(VerifyChecksum(file));
  return ReadHeaderCards(file, compressed);
}

absl::StatusOr<CalibratedFrame> ReadCalibratedFrame(const std::string& path,
                                                    const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage(path, options));
  CalibratedFrame frame;
  CALIBD_ASSIGN_OR_RETURN(frame.header, ReadHeaderCards(hdu.file, hdu.info.compressed));
  if (const HeaderCard* bunit = frame.header.Find("BUNIT"); bunit != nullptr) {
    if (const std::string* unit = std::get_if<std::string>(&bunit->value);
        unit != nullptr && !unit->empty()) {
      frame.unit = *unit;
    }
    frame.header.Erase("BUNIT");
  }
  const int w = hdu.info.width, h = hdu.info.height;
  frame.data = Image<float>::Allocate(w, h, options.pool);
  std::vector<uint8_t> scratch;
  CALIBD_RETURN_IF_ERROR(ReadPlaneAsFloat(hdu.file, hdu.info, &frame.data, &scratch));

  ReadOptions plane_options = options;
  plane_options.hdu_name.clear();
  plane_options.hdu_index = -1;

  CALIBD_ASSIGN_OR_RETURN(bool has_uncert, MoveToOptional(hdu.file, "UNCERT"));
  if (has_uncert) {
    CALIBD_ASSIGN_OR_RETURN(ImageInfo info, InspectImage(hdu.file, plane_options));
    CALIBD_RETURN_IF_ERROR(CheckSameShape(hdu.file, info, w, h));
    std::string utype = "StdDevUncertainty";
    {
      int status = 0;
      char value[FLEN_VALUE] = {0};
      fits_read_key(hdu.file.get(), TSTRING, "UTYPE", value, nullptr, &status);
      if (status == 0) {
        utype = value;
      } else if (status == KEY_NO_EXIST) {
        fits_clear_errmsg();
      } else {
        return hdu.file.Check(status, "reading UTYPE");
      }
    }
    enum { kStdDev, kVariance, kInverseVariance } kind;
    if (utype == "StdDevUncertainty") {
      kind = kStdDev;
    } else if (utype == "VarianceUncertainty") {
      kind = kVariance;
    } else if (utype == "InverseVariance") {
      kind = kInverseVariance;
    } else {
      return hdu.file.Error(absl::StatusCode::kInvalidArgument,
                            absl::StrCat("UTYPE = '", utype,
                                         "' is not StdDevUncertainty, VarianceUncertainty or "
                                         "InverseVariance"));
    }
    frame.variance = Image<float>::Allocate(w, h, options.pool);
    CALIBD_RETURN_IF_ERROR(ReadPlaneAsFloat(hdu.file, info, &frame.variance, &scratch));
    float* v = frame.variance.data();
    const int64_t n = frame.variance.num_pixels();
    if (kind == kStdDev) {
      for (int64_t i = 0; i < n; ++i) v[i] = v[i] * v[i];
    } else if (kind == kInverseVariance) {
      for (int64_t i = 0; i < n; ++i) v[i] = 1.0f / v[i];
    }
  }

  CALIBD_ASSIGN_OR_RETURN(bool has_dq, MoveToOptional(hdu.file, "DQ"));
  if (has_dq) {
    CALIBD_ASSIGN_OR_RETURN(ImageInfo info, InspectImage(hdu.file, plane_options));
    CALIBD_RETURN_IF_ERROR(CheckSameShape(hdu.file, info, w, h));
    frame.dq = Image<uint16_t>::Allocate(w, h, options.pool);
    CALIBD_RETURN_IF_ERROR(ReadUint16Plane(hdu.file, info, frame.dq.data()));
  } else {
    CALIBD_ASSIGN_OR_RETURN(bool has_mask, MoveToOptional(hdu.file, "MASK"));
    if (has_mask) {
      CALIBD_ASSIGN_OR_RETURN(ImageInfo info, InspectImage(hdu.file, plane_options));
      CALIBD_RETURN_IF_ERROR(CheckSameShape(hdu.file, info, w, h));
      frame.dq = Image<uint16_t>::Allocate(w, h, options.pool);
      std::vector<uint8_t> band(size_t(w) * std::min(h, kBandRows));
      for (int y0 = 0; y0 < h; y0 += kBandRows) {
        int rows = std::min(kBandRows, h - y0);
        CALIBD_RETURN_IF_ERROR(
            ReadPixels(hdu.file, info, TBYTE, y0, rows, band.data(), /*null_to_nan=*/false));
        for (int r = 0; r < rows; ++r) {
          uint16_t* out = frame.dq.row(y0 + r);
          const uint8_t* in = band.data() + size_t(r) * w;
          for (int x = 0; x < w; ++x) out[x] = in[x] != 0 ? kDqBad : 0;
        }
      }
    }
  }
  return frame;
}

absl::StatusOr<std::unique_ptr<BandReader>> BandReader::Open(const std::string& path,
                                                             const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage(path, options));
  CALIBD_ASSIGN_OR_RETURN(Header header, ReadHeaderCards(hdu.file, hdu.info.compressed));
  return std::unique_ptr<BandReader>(new BandReaderImpl(std::move(hdu), std::move(header)));
}

}  // namespace calibd::fits
