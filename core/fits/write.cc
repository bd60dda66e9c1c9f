// The public writers of fits.h, through CFITSIO: calibrated frames and raw frames (also
// tile-compressed).
#include <fitsio.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/fits/fits.h"
#include "core/fits/fits_file.h"
#include "core/fits/header_io.h"
#include "core/fits/image_info.h"
#include "core/status/macros.h"

namespace calibd::fits {
namespace {

constexpr int kBandRows = 64;  // rows per band when converting UNCERT and MASK planes

absl::Status CreateImageHdu(const FitsFile& file, PixelType type, int width, int height) {
  int status = 0;
  long naxes[2] = {width, height};
  fits_create_img(file.get(), CfitsioImageType(type), 2, naxes, &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "creating an image HDU"));
  // CFITSIO puts two COMMENT cards citing the FITS paper into every primary header; they are
  // not part of the frame's header, so they go (the file stays valid FITS without them).
  int hdu = 0;
  fits_get_hdu_num(file.get(), &hdu);
  if (hdu == 1) {
    for (const char* prefix : {"FITS (Flexible Image Transport System) format is",
                               "and Astrophysics', volume 376, page 359"}) {
      int nkeys = 0;
      fits_get_hdrspace(file.get(), &nkeys, nullptr, &status);
      for (int i = 1; i <= nkeys && status == 0; ++i) {
        char card[FLEN_CARD] = {0};
        fits_read_record(file.get(), i, card, &status);
        if (status == 0 && std::strncmp(card, "COMMENT   ", 10) == 0 &&
            std::strncmp(card + 10, prefix, std::strlen(prefix)) == 0) {
          fits_delete_record(file.get(), i, &status);
          break;
        }
      }
    }
    CALIBD_RETURN_IF_ERROR(file.Check(status, "tidying the primary header"));
  }
  return absl::OkStatus();
}

absl::Status WriteKeyString(const FitsFile& file, const char* key, const std::string& value,
                            const char* comment) {
  int status = 0;
  fits_update_key(file.get(), TSTRING, key, const_cast<char*>(value.c_str()), comment, &status);
  return file.Check(status, absl::StrCat("writing ", key));
}

absl::Status WritePixels(const FitsFile& file, PixelType type, int y0, int rows, int width,
                         const void* data) {
  if (rows <= 0) return absl::OkStatus();
  LONGLONG first[2] = {1, y0 + 1};
  int status = 0;
  fits_write_pixll(file.get(), CfitsioDatatype(type), first, LONGLONG{width} * rows,
                   const_cast<void*>(data), &status);
  return file.Check(status, absl::StrCat("writing pixel rows ", y0, "..", y0 + rows - 1));
}

absl::Status WriteChecksum(const FitsFile& file) {
  int status = 0;
  fits_write_chksum(file.get(), &status);
  return file.Check(status, "writing CHECKSUM/DATASUM");
}

absl::Status WriteCalibratedBody(const FitsFile& file, const CalibratedFrame& frame,
                                 const WriteOptions& options) {
  const int w = frame.width(), h = frame.height();
  CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kFloat32, w, h));
  CALIBD_RETURN_IF_ERROR(WriteHeaderCards(file, frame.header, {"BUNIT"}));
  CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "BUNIT", frame.unit, "physical unit of the data"));
  CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kFloat32, 0, h, w, frame.data.data()));
  if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));

  if (frame.has_variance() && options.write_uncertainty) {
    CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kFloat32, w, h));
    CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "EXTNAME", "UNCERT", "uncertainty of the data"));
    CALIBD_RETURN_IF_ERROR(
        WriteKeyString(file, "UTYPE", "StdDevUncertainty", "standard deviation = sqrt(variance)"));
    std::vector<float> band(size_t(w) * std::min(h, kBandRows));
    for (int y0 = 0; y0 < h; y0 += kBandRows) {
      int rows = std::min(kBandRows, h - y0);
      for (int r = 0; r < rows; ++r) {
        const float* in = frame.variance.row(y0 + r);
        float* out = band.data() + size_t(r) * w;
        for (int x = 0; x < w; ++x) out[x] = std::sqrt(in[x]);
      }
      CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kFloat32, y0, rows, w, band.data()));
    }
    if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));
  }

  if (frame.has_dq() && options.write_mask) {
    CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kUint8, w, h));
    CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "EXTNAME", "MASK", "1 where DQ is not 0"));
    std::vector<uint8_t> band(size_t(w) * std::min(h, kBandRows));
    for (int y0 = 0; y0 < h; y0 += kBandRows) {
      int rows = std::min(kBandRows, h - y0);
      for (int r = 0; r < rows; ++r) {
        const uint16_t* in = frame.dq.row(y0 + r);
        uint8_t* out = band.data() + size_t(r) * w;
        for (int x = 0; x < w; ++x) out[x] = in[x] != 0;
      }
      CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kUint8, y0, rows, w, band.data()));
    }
    if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));

    CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kUint16, w, h));
    CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "EXTNAME", "DQ", "data-quality bits"));
    CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kUint16, 0, h, w, frame.dq.data()));
    if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));
  }
  return absl::OkStatus();
}

// The CFITSIO compression code (RICE_1, ...) for the name WriteRawFrame takes.
absl::StatusOr<int> CfitsioCompressionCode(const std::string& name) {
  if (name == "RICE_1") return RICE_1;
  if (name == "GZIP_1") return GZIP_1;
  if (name == "GZIP_2") return GZIP_2;
  if (name == "HCOMPRESS_1") return HCOMPRESS_1;
  if (name == "PLIO_1") return PLIO_1;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compression '", name,
                   "'; use \"\", RICE_1, GZIP_1, GZIP_2, HCOMPRESS_1 or PLIO_1"));
}

absl::Status WriteRawBody(const FitsFile& file, const RawFrame& frame, int compression) {
  const RawImage& px = frame.pixels;
  int status = 0;
  if (compression != 0) {
    fits_set_compression_type(file.get(), compression, &status);
    if (px.type() == PixelType::kFloat32 || px.type() == PixelType::kFloat64) {
      // No quantisation: floating-point pixels are compressed losslessly.
      fits_set_quantize_level(file.get(), 0.0f, &status);
    }
    CALIBD_RETURN_IF_ERROR(file.Check(status, "setting the compression"));
  }
  CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, px.type(), px.width(), px.height()));
  CALIBD_RETURN_IF_ERROR(WriteHeaderCards(file, frame.header));
  CALIBD_RETURN_IF_ERROR(WritePixels(file, px.type(), 0, px.height(), px.width(), px.data()));
  return WriteChecksum(file);
}

}  // namespace

absl::Status WriteCalibratedFrame(const std::string& path, const CalibratedFrame& frame,
                                  const WriteOptions& options) {
  const int w = frame.width(), h = frame.height();
  if (frame.data.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the frame has no data (0 x 0)"));
  }
  if (frame.has_variance() && (frame.variance.width() != w || frame.variance.height() != h)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot write '", path, "': variance is ", frame.variance.width(), " x ",
        frame.variance.height(), " but data are ", w, " x ", h));
  }
  if (frame.has_dq() && (frame.dq.width() != w || frame.dq.height() != h)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write '", path, "': dq is ",
                                                   frame.dq.width(), " x ", frame.dq.height(),
                                                   " but data are ", w, " x ", h));
  }
  if (frame.unit.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the frame has no unit (\"adu\" or \"electron\")"));
  }
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::Create(path, options.overwrite));
  absl::Status status = WriteCalibratedBody(file, frame, options);
  if (status.ok()) status = file.Close();
  if (!status.ok()) file.CloseAndDelete();
  return status;
}

absl::Status WriteRawFrame(const std::string& path, const RawFrame& frame,
                           const std::string& compression, bool overwrite) {
  if (frame.pixels.num_pixels() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the frame has no pixels (0 x 0)"));
  }
  int ctype = 0;
  if (!compression.empty()) {
    CALIBD_ASSIGN_OR_RETURN(ctype, CfitsioCompressionCode(compression));
    const PixelType type = frame.pixels.type();
    if ((type == PixelType::kFloat32 || type == PixelType::kFloat64) && ctype != GZIP_1 &&
        ctype != GZIP_2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot write '", path, "' with ", compression, ": floating-point pixels are "
          "compressed losslessly only with GZIP_1 or GZIP_2; use one of those"));
    }
  }
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::Create(path, overwrite));
  absl::Status status = WriteRawBody(file, frame, ctype);
  if (status.ok()) status = file.Close();
  if (!status.ok()) file.CloseAndDelete();
  return status;
}

}  // namespace calibd::fits
