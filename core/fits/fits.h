// FITS input and output for calibd: raw frames of any BITPIX (also tile-compressed), calibrated
// frames and masters in the layout astropy's CCDData reads, and a band reader for combining.
//
//   ASSIGN_OR_RETURN(RawFrame raw, fits::ReadRawFrame("/data/raw/lfc_0042.fits"));
//   ASSIGN_OR_RETURN(double t, raw.header.GetDouble("EXPTIME"));
//   ...
//   RETURN_IF_ERROR(fits::WriteCalibratedFrame("/data/red/lfc_0042.fits", frame));
//
// Every file is treated as hostile: it is opened from disk (never from a memory buffer or
// CFITSIO's extended-filename syntax), and before CFITSIO parses it every header is walked
// (END present, printable ASCII only, NAXIS <= 99 and sane tile keywords — values that crash
// CFITSIO 4.2). Declared sizes are checked against the file size and `max_pixels` before
// anything is allocated; for tile-compressed images also ZNAXISn, the tile sizes, the tile
// count and every tile's place in the heap. CFITSIO 4.2's tile decoders are not safe on
// corrupt tiles (found by fuzzing), so before it decodes: every RICE_1 bit stream must end
// inside its bytes, every GZIP tile must inflate (zlib, bounded) to at most 8 bytes/pixel,
// every HCOMPRESS stream must declare the tile's size, every PLIO line list (current IRAF
// format only) must fit its words. tests/fits fuzzes 340 mutants per run under ASan;
// CALIBD_FITS_FUZZ_SCALE=15 (~5000) also passes. The checks cost about a quarter of a
// Rice read and one extra inflate for GZIP images.
// Errors carry the file, the HDU and CFITSIO's own message:
//   INVALID_ARGUMENT  not FITS, truncated, bad BITPIX/NAXIS, no image, too large, bad section
//   NOT_FOUND         the file or the named HDU does not exist
//   DATA_LOSS         CHECKSUM/DATASUM present and wrong (when verification is asked for)
//
// Calibrated layout (what CCDData.read(path, unit=...) loads unchanged):
//   HDU 0  float32 data, the header with BUNIT ("adu"/"electron") and provenance
//   UNCERT float32 standard deviation, UTYPE = 'StdDevUncertainty'   (if variance present)
//   MASK   uint8, 1 where dq != 0                                      (if dq present)
//   DQ     uint16 data-quality bits (core/image/dq.h)                  (if dq present)
// each with CHECKSUM and DATASUM.
//
// Images are 2-D: NAXIS = 2, or NAXIS > 2 when every axis beyond the second has length 1 (as
// some cameras write); anything else is INVALID_ARGUMENT. Non-ASCII header bytes are refused.
// NaN and ±Inf pixels are legal FITS and are read as they are (calibration flags them).
//
// Variance is stored as UNCERT = sqrt(variance) (what CCDData expects) and read back by
// squaring: two float32 variances map to each float32 sigma, so the round trip is exact to
// 2 float32 ulps (relative 2.4e-7), not bit for bit. Data and DQ round-trip exactly.
//
// Speed: uncompressed pixels are read with pread straight into the destination rows and
// byte-swapped there (about 2x CFITSIO's buffered read for a 4k uint16 frame); compressed
// images, BLANK-valued integers and unusual scalings go through CFITSIO. Calibrated frames are
// written directly (core/fits/image_writer.h): header cards rendered by CFITSIO, pixels
// swapped into ~1 MB pieces and pwritten, CHECKSUM/DATASUM summed from those pieces (CFITSIO
// re-reads the file for them); tile-compressed MASK/DQ and raw frames go through CFITSIO.
//
// Thread safety: the functions are reentrant and may run concurrently on different files:
// Debian's CFITSIO 4.2 is built reentrant (fits_is_reentrant() == 1, checked by a test), and
// each call opens its own fitsfile. CFITSIO's error-message stack is process-wide, so an
// error message may, rarely, carry a line from another thread's failure (the code is right).
// A BandReader is used by one thread at a time.
#ifndef CALIBD_CORE_FITS_FITS_H_
#define CALIBD_CORE_FITS_FITS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/image/frame.h"
#include "core/image/header.h"
#include "core/image/image.h"

namespace calibd::fits {

struct ReadOptions {
  // Which HDU: by EXTNAME, or by 0-based index; neither → the primary HDU if it holds an image,
  // else the first image extension (a tile-compressed image counts as an image).
  std::string hdu_name;
  int hdu_index = -1;
  // Refuse images with more pixels than this (before allocating): INVALID_ARGUMENT.
  int64_t max_pixels = int64_t{1} << 28;
  // Check CHECKSUM/DATASUM of every HDU read when present; a mismatch is DATA_LOSS.
  bool verify_checksum = false;
  // Where pixel buffers come from (nullptr: plain allocation).
  BufferPool* pool = nullptr;
};

// Pixels keep their stored type: BITPIX 8 → uint8, 16 → int16 (uint16 with BZERO=32768),
// 32 → int32 (uint32 with BZERO=2^31), 64 → int64, -32 → float32, -64 → float64. Any other
// BSCALE/BZERO scaling is applied and gives float32 (float64 for BITPIX 32/64/-64).
absl::StatusOr<RawFrame> ReadRawFrame(const std::string& path, const ReadOptions& options = {});

// Just the header of the chosen HDU (the primary header's cards are not merged in).
absl::StatusOr<Header> ReadHeader(const std::string& path, const ReadOptions& options = {});

// Reads the layout above. A file with only a primary image also works (no variance, no DQ);
// with MASK but no DQ, masked pixels get kDqBad. BUNIT becomes `unit` (default "adu") and
// is removed from `header`. UNCERT with UTYPE VarianceUncertainty or InverseVariance is
// converted too. The data HDU is chosen as ReadOptions says; checksums (when asked for)
// are verified on every HDU read.
absl::StatusOr<CalibratedFrame> ReadCalibratedFrame(const std::string& path,
                                                    const ReadOptions& options = {});

struct WriteOptions {
  bool write_uncertainty = true;  // UNCERT, when the frame has variance
  bool write_mask = true;         // MASK and DQ, when the frame has dq
  bool checksum = true;           // CHECKSUM/DATASUM on every HDU
  bool overwrite = false;         // refuse (ALREADY_EXISTS) to replace an existing file
  // MASK and DQ tile-compressed (RICE_1, through CFITSIO): mostly zeros, they shrink ~50-100×;
  // astropy (CCDData.read) and CFITSIO read them as the uncompressed planes.
  bool compress_masks = false;
  // Where the write buffer comes from (nullptr: plain allocation).
  BufferPool* pool = nullptr;
  // Write through CFITSIO instead of directly (the previous writer: the same HDUs and pixel
  // bytes, about 3× slower for a 4k frame; kept as the reference the tests compare against).
  bool use_cfitsio = false;
  // Write the uncompressed HDUs with O_DIRECT, bypassing the page cache (image_writer.h): almost
  // no CPU instead of the kernel's copy into fresh page-cache pages (the slow part of writing a
  // 4k frame here), at the cost of the file not being cached for a reader right after. For
  // outputs nobody reads at once (calibctl calibrate); file systems without O_DIRECT are
  // written normally. The bytes in the file are the same either way.
  bool direct_io = false;
};

absl::Status WriteCalibratedFrame(const std::string& path, const CalibratedFrame& frame,
                                  const WriteOptions& options = {});

// For raw files (tests, sample data, calibctl): the pixels keep their type (uint16/uint32 with
// BZERO). `compression` is "", "RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1" or "PLIO_1"; it is
// always lossless: floating-point pixels are not quantised and need GZIP_1/GZIP_2 (others:
// INVALID_ARGUMENT), PLIO_1 holds integers in [0, 2^24). A compressed image is written as an
// extension after an empty primary HDU. Every HDU gets CHECKSUM/DATASUM.
absl::Status WriteRawFrame(const std::string& path, const RawFrame& frame,
                           const std::string& compression = "", bool overwrite = false);

// Reads row bands of one image HDU, converted to float32, with the file opened once: what
// combine uses to read every input byte exactly once.
class BandReader {
 public:
  static absl::StatusOr<std::unique_ptr<BandReader>> Open(const std::string& path,
                                                          const ReadOptions& options = {});
  virtual ~BandReader() = default;

  virtual int width() const = 0;
  virtual int height() const = 0;
  virtual PixelType stored_type() const = 0;
  virtual const Header& header() const = 0;
  // Rows [y0, y0 + rows) into out[rows * width()], row-major; BZERO/BSCALE applied, integer
  // pixels equal to BLANK become NaN, float NaN/Inf stay as they are. Rows outside the
  // image: INVALID_ARGUMENT.
  virtual absl::Status ReadRows(int y0, int rows, float* out) = 0;
};

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_FITS_H_
