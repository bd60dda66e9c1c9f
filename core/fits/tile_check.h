// Checks of a tile-compressed image's binary table before CFITSIO decodes any tile: the
// declared table and heap fit in the file, the tile sizes and count are sane, every
// descriptor points inside the heap, and the tiles of the image's codec are safe for
// CFITSIO 4.2's decoders (RICE_1 bit streams end inside their bytes, GZIP tiles inflate to at
// most 8 bytes/pixel, HCOMPRESS streams declare the tile's size, PLIO line lists fit their
// words). Nothing is decompressed into pixels. Used by InspectImage; see fits.h for why.
//
//   // Positioned on a compressed image HDU, with info's width/height/naxis/bitpix filled:
//   RETURN_IF_ERROR(CheckCompressedTable(file, info, naxes, datastart, options.max_pixels));
//
// Every failure is INVALID_ARGUMENT naming the file, HDU and tile.
//
// Thread safety: as FitsFile (one thread per file).
#ifndef CALIBD_CORE_FITS_TILE_CHECK_H_
#define CALIBD_CORE_FITS_TILE_CHECK_H_

#include <fitsio.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/fits/fits_file.h"
#include "core/fits/image_info.h"

namespace calibd::fits {

// `naxes` holds info.naxis sizes (ZNAXISn); `datastart` is the table's first byte.
absl::Status CheckCompressedTable(const FitsFile& file, const ImageInfo& info,
                                  const LONGLONG* naxes, int64_t datastart, int64_t max_pixels);

// The ZCMPTYPE keyword of the current (compressed) HDU, e.g. "RICE_1".
absl::StatusOr<std::string> ReadZcmptype(const FitsFile& file);

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_TILE_CHECK_H_
