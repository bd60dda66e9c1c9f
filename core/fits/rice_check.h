// RiceStreamIsSafe: checks, without decoding pixels, that a Rice-compressed tile (FITS tiled
// image compression, RICE_1) can be decoded within its own bytes.
//
// CFITSIO's Rice decoders (fits_rdecomp, fits_rdecomp_short, fits_rdecomp_byte in CFITSIO
// 4.2) check for the end of the input only after each block, so a corrupt or crafted stream
// (e.g. a long run of zero bits) makes them read past the end of the tile's buffer, up to a
// crash. core/fits runs this check on every Rice tile before CFITSIO decompresses it.
//
//   if (!RiceStreamIsSafe(bytes, n_bytes, tile_pixels, /*bytepix=*/2, /*blocksize=*/32)) {
//     return absl::InvalidArgumentError("corrupt Rice tile");
//   }
//
// It follows the bit layout the decoders consume: `bytepix` bytes of first value, then per
// block of `blocksize` pixels a split code of 3/4/5 bits (bytepix 1/2/4): 0 → all pixels
// equal, the maximum → raw 8/16/32-bit values, else per pixel a unary run ended by a 1 bit
// and `code - 1` more bits. The decoders read bytes lazily, so if every bit lies inside the
// buffer, so does every byte they read. Unsupported bytepix or blocksize < 1 → false.
//
// Thread safety: a pure function.
#ifndef CALIBD_CORE_FITS_RICE_CHECK_H_
#define CALIBD_CORE_FITS_RICE_CHECK_H_

#include <cstdint>

namespace calibd::fits {

bool RiceStreamIsSafe(const uint8_t* data, int64_t size, int64_t pixels, int bytepix,
                      int blocksize);

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_RICE_CHECK_H_
