// The public writers of fits.h: calibrated frames straight to the file (image_writer.h; the
// tile-compressed MASK/DQ option and the reference writer through CFITSIO) and raw frames
// through CFITSIO (also tile-compressed).
#include <fitsio.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/fits/byte_swap.h"
#include "core/fits/fits.h"
#include "core/fits/fits_file.h"
#include "core/fits/header_io.h"
#include "core/fits/image_info.h"
#include "core/fits/image_writer.h"
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

// MASK (uint8, 1 where DQ != 0) and DQ (uint16) appended through CFITSIO, tile-compressed
// with RICE_1 (CFITSIO's default tiles: one row each) when `compress`.
absl::Status AppendMaskHdus(const FitsFile& file, const CalibratedFrame& frame, bool compress,
                            bool checksum) {
  const int w = frame.width(), h = frame.height();
  int status = 0;
  if (compress) fits_set_compression_type(file.get(), RICE_1, &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "setting the compression"));
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
  if (checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));

  CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kUint16, w, h));
  CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "EXTNAME", "DQ", "data-quality bits"));
  CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kUint16, 0, h, w, frame.dq.data()));
  if (checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));
  return absl::OkStatus();
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
    CALIBD_RETURN_IF_ERROR(AppendMaskHdus(file, frame, options.compress_masks, options.checksum));
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
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown compression '", name, "'; use \"\", RICE_1, GZIP_1, GZIP_2, HCOMPRESS_1 or PLIO_1"));
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

// The cards of one extension: EXTNAME and, for UNCERT, UTYPE.
absl::StatusOr<std::vector<std::string>> ExtensionCards(const char* extname,
                                                        const char* extname_comment,
                                                        const char* utype = nullptr) {
  Header h;
  h.Set("EXTNAME", std::string(extname), extname_comment);
  if (utype != nullptr) h.Set("UTYPE", std::string(utype), "standard deviation = sqrt(variance)");
  return RenderCards(h);
}

// The calibrated layout written straight to the file: the same HDUs, cards and pixel bytes
// as the CFITSIO writer (WriteCalibratedBody above), the checksums computed while writing.
absl::Status WriteCalibratedDirect(ImageFileWriter& writer, const CalibratedFrame& frame,
                                   const WriteOptions& options) {
  const int w = frame.width(), h = frame.height();
  const int64_t row = w;
  auto hdu = [&](int bitpix, double bzero = 0) {
    ImageHdu out;
    out.bitpix = bitpix;
    out.width = w;
    out.height = h;
    out.bzero = bzero;
    out.checksum = options.checksum;
    return out;
  };
  ImageHdu data = hdu(-32);
  {
    Header header = frame.header;
    header.Erase("BUNIT");
    header.Set("BUNIT", frame.unit, "physical unit of the data");
    CALIBD_ASSIGN_OR_RETURN(data.cards, RenderCards(header));
  }
  CALIBD_RETURN_IF_ERROR(writer.Append(data, [&](int y0, int rows, void* out) {
    SwapCopy(reinterpret_cast<const uint32_t*>(frame.data.row(y0)), static_cast<uint32_t*>(out),
             row * rows, uint32_t{0});
  }));
  if (frame.has_variance() && options.write_uncertainty) {
    ImageHdu uncert = hdu(-32);
    CALIBD_ASSIGN_OR_RETURN(
        uncert.cards, ExtensionCards("UNCERT", "uncertainty of the data", "StdDevUncertainty"));
    CALIBD_RETURN_IF_ERROR(writer.Append(uncert, [&](int y0, int rows, void* out) {
      // sqrt and swap in one vectorised pass (this file is built with -fno-math-errno, so
      // std::sqrt is vsqrtps; a negative variance still gives NaN, as before).
      const float* v = frame.variance.row(y0);
      uint32_t* sd = static_cast<uint32_t*>(out);
      const int64_t n = row * rows;
      for (int64_t i = 0; i < n; ++i) {
        sd[i] = __builtin_bswap32(std::bit_cast<uint32_t>(std::sqrt(v[i])));
      }
    }));
  }
  if (frame.has_dq() && options.write_mask && !options.compress_masks) {
    ImageHdu mask = hdu(8);
    CALIBD_ASSIGN_OR_RETURN(mask.cards, ExtensionCards("MASK", "1 where DQ is not 0"));
    CALIBD_RETURN_IF_ERROR(writer.Append(mask, [&](int y0, int rows, void* out) {
      const uint16_t* q = frame.dq.row(y0);
      uint8_t* m = static_cast<uint8_t*>(out);
      const int64_t n = row * rows;
      for (int64_t i = 0; i < n; ++i) m[i] = q[i] != 0;
    }));
    ImageHdu dq = hdu(16, 32768);
    CALIBD_ASSIGN_OR_RETURN(dq.cards, ExtensionCards("DQ", "data-quality bits"));
    CALIBD_RETURN_IF_ERROR(writer.Append(dq, [&](int y0, int rows, void* out) {
      SwapCopy(frame.dq.row(y0), static_cast<uint16_t*>(out), row * rows, uint16_t{0x8000});
    }));
  }
  return absl::OkStatus();
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
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': variance is ", frame.variance.width(), " x ",
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
  if (options.use_cfitsio) {
    CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::Create(path, options.overwrite));
    absl::Status status = WriteCalibratedBody(file, frame, options);
    if (status.ok()) status = file.Close();
    if (!status.ok()) file.CloseAndDelete();
    return status;
  }
  CALIBD_ASSIGN_OR_RETURN(ImageFileWriter writer,
                          ImageFileWriter::Create(path, options.overwrite, options.pool,
                                                          options.direct_io));
  absl::Status status = WriteCalibratedDirect(writer, frame, options);
  if (status.ok()) status = writer.Close();
  if (!status.ok()) {
    writer.CloseAndDelete();
    return status;
  }
  if (frame.has_dq() && options.write_mask && options.compress_masks) {
    absl::StatusOr<FitsFile> file = FitsFile::OpenForAppend(path);
    status = file.ok() ? AppendMaskHdus(*file, frame, /*compress=*/true, options.checksum)
                       : file.status();
    if (status.ok()) status = file->Close();
    if (!status.ok()) {
      if (file.ok()) file->CloseAndDelete();
      ::unlink(path.c_str());
    }
  }
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
      return absl::InvalidArgumentError(
          absl::StrCat("cannot write '", path, "' with ", compression,
                       ": floating-point pixels are "
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
