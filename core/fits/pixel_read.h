// Reading pixels of a validated image HDU (see image_info.h): through CFITSIO, or — for
// uncompressed images whose size InspectImage checked against the file — with pread straight
// into the destination rows and a byte swap there (about 2x CFITSIO's buffered read for a 4k
// uint16 frame). Used inside core/fits; other modules use fits.h.
//
//   ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage(path, options));
//   Image<float> plane = Image<float>::Allocate(hdu.info.width, hdu.info.height);
//   std::vector<uint8_t> scratch;
//   RETURN_IF_ERROR(ReadPlaneAsFloat(hdu.file, hdu.info, &plane, &scratch));
//
// Thread safety: as FitsFile (one thread per file).
#ifndef CALIBD_CORE_FITS_PIXEL_READ_H_
#define CALIBD_CORE_FITS_PIXEL_READ_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/fits/fits_file.h"
#include "core/fits/image_info.h"
#include "core/image/image.h"

namespace calibd::fits {

// Rows [y0, y0 + rows) through CFITSIO as `datatype` (TFLOAT, TUSHORT, ...) into `out`.
// With null_to_nan, integer pixels equal to BLANK become NaN (float/double datatypes).
absl::Status ReadPixels(const FitsFile& file, const ImageInfo& info, int datatype, int y0, int rows,
                        void* out, bool null_to_nan);

// ReadRawFrame's pixels (stored type, BZERO-unsigned integers unsigned) into `out`, which has
// the image's type and shape: direct when the HDU allows, else through CFITSIO.
absl::Status ReadRawPixels(const FitsFile& file, const ImageInfo& info, RawImage* out);

// A whole plane as uint16 (a DQ plane) into out[width * height]: direct when the HDU stores
// BZERO-unsigned 16-bit integers uncompressed, else CFITSIO's TUSHORT conversion.
absl::Status ReadUint16Plane(const FitsFile& file, const ImageInfo& info, uint16_t* out);

// Rows [y0, y0 + rows) as float32 with BSCALE/BZERO applied, as CFITSIO's TFLOAT reads give
// them (integer BLANK → NaN; float NaN/Inf kept). `scratch` holds one band of raw bytes.
absl::Status ReadRowsAsFloat(const FitsFile& file, const ImageInfo& info, int y0, int rows,
                             float* out, std::vector<uint8_t>* scratch);

// A whole plane as float32, band by band (the scratch stays one band long).
absl::Status ReadPlaneAsFloat(const FitsFile& file, const ImageInfo& info, Image<float>* out,
                              std::vector<uint8_t>* scratch);

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_PIXEL_READ_H_
