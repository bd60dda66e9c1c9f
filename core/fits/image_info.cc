#include "core/fits/image_info.h"

#include <fitsio.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/fits/tile_check.h"
#include "core/status/macros.h"

namespace calibd::fits {

int CfitsioDatatype(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return TBYTE;
    case PixelType::kInt16: return TSHORT;
    case PixelType::kUint16: return TUSHORT;
    case PixelType::kInt32: return TINT;
    case PixelType::kUint32: return TUINT;
    case PixelType::kInt64: return TLONGLONG;
    case PixelType::kFloat32: return TFLOAT;
    case PixelType::kFloat64: return TDOUBLE;
  }
  return TFLOAT;
}

int CfitsioImageType(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return BYTE_IMG;
    case PixelType::kInt16: return SHORT_IMG;
    case PixelType::kUint16: return USHORT_IMG;
    case PixelType::kInt32: return LONG_IMG;
    case PixelType::kUint32: return ULONG_IMG;
    case PixelType::kInt64: return LONGLONG_IMG;
    case PixelType::kFloat32: return FLOAT_IMG;
    case PixelType::kFloat64: return DOUBLE_IMG;
  }
  return FLOAT_IMG;
}

absl::StatusOr<int64_t> ReadIntKey(const FitsFile& file, const char* key, int64_t fallback) {
  int status = 0;
  LONGLONG value = 0;
  fits_read_key(file.get(), TLONGLONG, key, &value, nullptr, &status);
  if (status == KEY_NO_EXIST) {
    fits_clear_errmsg();
    return fallback;
  }
  if (status != 0) return file.Check(status, absl::StrCat("reading keyword ", key));
  return static_cast<int64_t>(value);
}

absl::StatusOr<ImageInfo> InspectImage(const FitsFile& file, const ReadOptions& options) {
  fitsfile* f = file.get();
  int status = 0;
  int hdutype = 0;
  fits_get_hdu_type(f, &hdutype, &status);
  if (status != 0) return file.Check(status, "reading the HDU type");
  if (hdutype != IMAGE_HDU) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      "is a table, not an image; choose an image HDU");
  }
  // (Every header's bytes were checked by FitsFile::OpenForRead before CFITSIO parsed any.)
  LONGLONG headstart = 0, datastart = 0, dataend = 0;
  fits_get_hduaddrll(f, &headstart, &datastart, &dataend, &status);
  if (status != 0) return file.Check(status, "locating the HDU");

  ImageInfo info;
  info.compressed = fits_is_compressed_image(f, &status) != 0;
  if (status != 0) return file.Check(status, "checking for tile compression");
  fits_get_img_dim(f, &info.naxis, &status);
  if (status != 0) return file.Check(status, "reading NAXIS");
  if (info.naxis < 2 || info.naxis > kMaxAxes) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("has NAXIS = ", info.naxis,
                                   "; calibd reads 2-D images (further axes of length 1 are "
                                   "allowed)"));
  }
  LONGLONG naxes[kMaxAxes] = {0};
  fits_get_img_sizell(f, info.naxis, naxes, &status);
  if (status != 0) return file.Check(status, "reading NAXISn");
  for (int i = 0; i < info.naxis; ++i) {
    if (naxes[i] <= 0 || (i >= 2 && naxes[i] != 1)) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("has NAXIS", i + 1, " = ", naxes[i],
                                     "; calibd reads 2-D images with positive sizes (axes "
                                     "beyond the second must be 1)"));
    }
  }
  if (naxes[0] > std::numeric_limits<int>::max() || naxes[1] > std::numeric_limits<int>::max() ||
      naxes[0] > options.max_pixels / naxes[1]) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("declares a ", naxes[0], " x ", naxes[1],
                                   " image, more than the limit of ", options.max_pixels,
                                   " pixels (ReadOptions.max_pixels)"));
  }
  info.width = static_cast<int>(naxes[0]);
  info.height = static_cast<int>(naxes[1]);
  int64_t pixels = int64_t{info.width} * info.height;

  fits_get_img_type(f, &info.bitpix, &status);
  int equiv = 0;
  fits_get_img_equivtype(f, &equiv, &status);
  if (status != 0) return file.Check(status, "reading BITPIX");
  switch (info.bitpix) {
    case BYTE_IMG:
      info.type = equiv == BYTE_IMG ? PixelType::kUint8 : PixelType::kFloat32;
      break;
    case SHORT_IMG:
      info.type = equiv == SHORT_IMG    ? PixelType::kInt16
                  : equiv == USHORT_IMG ? PixelType::kUint16
                                        : PixelType::kFloat32;
      break;
    case LONG_IMG:
      info.type = equiv == LONG_IMG    ? PixelType::kInt32
                  : equiv == ULONG_IMG ? PixelType::kUint32
                                       : PixelType::kFloat64;
      break;
    case LONGLONG_IMG:
      info.type = equiv == LONGLONG_IMG ? PixelType::kInt64 : PixelType::kFloat64;
      break;
    case FLOAT_IMG:
      info.type = PixelType::kFloat32;
      break;
    case DOUBLE_IMG:
      info.type = PixelType::kFloat64;
      break;
    default:
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("has BITPIX = ", info.bitpix, ", not a FITS pixel type"));
  }

  if (info.compressed) {
    CALIBD_RETURN_IF_ERROR(CheckCompressedTable(file, info, naxes, datastart, options.max_pixels));
  } else {
    info.datastart = datastart;
    for (auto [key, value] : {std::pair{"BSCALE", &info.bscale}, std::pair{"BZERO", &info.bzero}}) {
      fits_read_key(f, TDOUBLE, key, value, nullptr, &status);
      if (status == KEY_NO_EXIST) {
        fits_clear_errmsg();
        status = 0;
      }
      if (status != 0) return file.Check(status, absl::StrCat("reading ", key));
    }
    char blank[FLEN_VALUE] = {0};
    fits_read_keyword(f, "BLANK", blank, nullptr, &status);
    info.has_blank = status == 0;
    if (status == KEY_NO_EXIST) {
      fits_clear_errmsg();
      status = 0;
    }
    if (status != 0) return file.Check(status, "reading BLANK");
    int64_t bytes = pixels * (std::abs(info.bitpix) / 8);
    if (datastart + bytes > file.file_size()) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("declares ", bytes, " bytes of pixels (", info.width, " x ",
                                     info.height, ", BITPIX ", info.bitpix,
                                     ") but the file holds only ",
                                     std::max<int64_t>(0, file.file_size() - datastart),
                                     " after the header (truncated file)"));
    }
  }
  if (options.verify_checksum) CALIBD_RETURN_IF_ERROR(VerifyChecksum(file));
  return info;
}

absl::Status VerifyChecksum(const FitsFile& file) {
  int status = 0, dataok = 0, hduok = 0;
  fits_verify_chksum(file.get(), &dataok, &hduok, &status);
  if (status != 0) return file.Check(status, "verifying CHECKSUM/DATASUM");
  if (dataok < 0 || hduok < 0) {
    return file.Error(absl::StatusCode::kDataLoss,
                      absl::StrCat(dataok < 0 ? "DATASUM" : "CHECKSUM",
                                   " does not match the contents: the file is corrupt"));
  }
  return absl::OkStatus();
}

namespace {

bool HasImage(fitsfile* f) {
  int status = 0;
  int hdutype = 0, naxis = 0;
  fits_get_hdu_type(f, &hdutype, &status);
  fits_get_img_dim(f, &naxis, &status);
  if (status != 0) {
    fits_clear_errmsg();
    return false;
  }
  return hdutype == IMAGE_HDU && naxis > 0;
}

}  // namespace

absl::Status SelectHdu(const FitsFile& file, const ReadOptions& options) {
  fitsfile* f = file.get();
  int status = 0;
  if (!options.hdu_name.empty()) {
    fits_movnam_hdu(f, ANY_HDU, const_cast<char*>(options.hdu_name.c_str()), 0, &status);
    if (status == BAD_HDU_NUM) {
      fits_clear_errmsg();
      return absl::NotFoundError(absl::StrCat("'", file.path(), "' has no HDU named '",
                                              options.hdu_name, "'"));
    }
    return file.Check(status, absl::StrCat("moving to HDU '", options.hdu_name, "'"));
  }
  if (options.hdu_index >= 0) {
    int hdutype = 0;
    fits_movabs_hdu(f, options.hdu_index + 1, &hdutype, &status);
    if (status == END_OF_FILE || status == BAD_HDU_NUM) {
      fits_clear_errmsg();
      return absl::NotFoundError(absl::StrCat("'", file.path(), "' has no HDU ",
                                              options.hdu_index, " (HDUs count from 0)"));
    }
    return file.Check(status, absl::StrCat("moving to HDU ", options.hdu_index));
  }
  if (HasImage(f)) return absl::OkStatus();
  for (;;) {
    int hdutype = 0;
    fits_movrel_hdu(f, 1, &hdutype, &status);
    if (status == END_OF_FILE) {
      fits_clear_errmsg();
      return absl::InvalidArgumentError(
          absl::StrCat("'", file.path(), "' holds no image (neither the primary HDU nor an "
                       "image extension has pixels)"));
    }
    if (status != 0) return file.Check(status, "looking for an image HDU");
    if (HasImage(f)) return absl::OkStatus();
  }
}

absl::StatusOr<OpenHdu> OpenImage(const std::string& path, const ReadOptions& options) {
  OpenHdu hdu;
  CALIBD_ASSIGN_OR_RETURN(hdu.file, FitsFile::OpenForRead(path));
  CALIBD_RETURN_IF_ERROR(SelectHdu(hdu.file, options));
  CALIBD_ASSIGN_OR_RETURN(hdu.info, InspectImage(hdu.file, options));
  return hdu;
}

absl::StatusOr<bool> MoveToOptional(const FitsFile& file, const char* name) {
  int status = 0;
  fits_movnam_hdu(file.get(), ANY_HDU, const_cast<char*>(name), 0, &status);
  if (status == BAD_HDU_NUM) {
    fits_clear_errmsg();
    return false;
  }
  CALIBD_RETURN_IF_ERROR(file.Check(status, absl::StrCat("looking for extension ", name)));
  return true;
}

absl::Status CheckSameShape(const FitsFile& file, const ImageInfo& info, int width, int height) {
  if (info.width != width || info.height != height) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("is ", info.width, " x ", info.height,
                                   " but the data are ", width, " x ", height));
  }
  return absl::OkStatus();
}

}  // namespace calibd::fits
