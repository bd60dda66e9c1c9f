// ImageInfo: what core/fits knows about the image in the current HDU after validating it, and
// the steps that get there — choosing the HDU (ReadOptions' rules), checking every declared
// size against the file and the pixel limit before anything is allocated, and (when asked)
// verifying CHECKSUM/DATASUM. Used inside core/fits; other modules use fits.h.
//
//   ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage("/data/raw/x.fits", ReadOptions{}));
//   // hdu.info.width, hdu.info.height, hdu.info.type; hdu.file is positioned on the image.
//   ASSIGN_OR_RETURN(bool has_dq, MoveToOptional(hdu.file, "DQ"));
//
// Thread safety: as FitsFile (one thread per file).
#ifndef CALIBD_CORE_FITS_IMAGE_INFO_H_
#define CALIBD_CORE_FITS_IMAGE_INFO_H_

#include <fitsio.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/fits/fits.h"
#include "core/fits/fits_file.h"
#include "core/image/image.h"

namespace calibd::fits {

inline constexpr int kMaxAxes = 8;

struct ImageInfo {
  int width = 0;
  int height = 0;
  int naxis = 0;
  int bitpix = 0;
  PixelType type = PixelType::kFloat32;  // the type ReadRawFrame gives
  bool compressed = false;
  // Uncompressed HDUs: where the pixels start, and what CFITSIO would apply to them.
  int64_t datastart = 0;
  double bscale = 1.0;
  double bzero = 0.0;
  bool has_blank = false;
};

// CFITSIO's datatype code (TUSHORT, TFLOAT, ...) and image type (USHORT_IMG, ...) for `type`.
int CfitsioDatatype(PixelType type);
int CfitsioImageType(PixelType type);

// Reads an integer keyword of the current HDU; `fallback` if absent.
absl::StatusOr<int64_t> ReadIntKey(const FitsFile& file, const char* key, int64_t fallback);

// Moves to the HDU `options` names (see ReadOptions): NOT_FOUND for a missing name or index,
// INVALID_ARGUMENT when no HDU holds an image.
absl::Status SelectHdu(const FitsFile& file, const ReadOptions& options);

// Validates the image in the current HDU before anything is allocated for it (a compressed
// image's tile table too, see tile_check.h); verifies its checksums if options ask.
absl::StatusOr<ImageInfo> InspectImage(const FitsFile& file, const ReadOptions& options);

// CHECKSUM/DATASUM of the current HDU, when present: DATA_LOSS naming the one that is wrong.
absl::Status VerifyChecksum(const FitsFile& file);

struct OpenHdu {
  FitsFile file;
  ImageInfo info;
};

// OpenForRead + SelectHdu + InspectImage.
absl::StatusOr<OpenHdu> OpenImage(const std::string& path, const ReadOptions& options);

// Moves to the extension named `name` if there is one. false if absent.
absl::StatusOr<bool> MoveToOptional(const FitsFile& file, const char* name);

// INVALID_ARGUMENT unless the image is width x height.
absl::Status CheckSameShape(const FitsFile& file, const ImageInfo& info, int width, int height);

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_IMAGE_INFO_H_
