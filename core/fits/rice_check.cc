#include "core/fits/rice_check.h"

#include <algorithm>

namespace calibd::fits {

bool RiceStreamIsSafe(const uint8_t* data, int64_t size, int64_t pixels, int bytepix,
                      int blocksize) {
  int fsbits = 0, fsmax = 0, bbits = 0;
  switch (bytepix) {
    case 1: fsbits = 3; fsmax = 6; bbits = 8; break;
    case 2: fsbits = 4; fsmax = 14; bbits = 16; break;
    case 4: fsbits = 5; fsmax = 25; bbits = 32; break;
    default: return false;
  }
  if (blocksize < 1 || pixels < 0 || size < 0) return false;
  // The first value, then the decoder reads the first byte of the bit stream at once.
  if (size < bytepix + 1) return false;
  const int64_t end = size * 8;
  int64_t bit = int64_t{bytepix} * 8;
  auto read_bits = [&](int n, uint32_t* value) {
    if (bit + n > end) return false;
    uint32_t v = 0;
    for (int k = 0; k < n; ++k, ++bit) {
      v = (v << 1) | ((data[bit >> 3] >> (7 - (bit & 7))) & 1u);
    }
    *value = v;
    return true;
  };
  for (int64_t i = 0; i < pixels;) {
    uint32_t code = 0;
    if (!read_bits(fsbits, &code)) return false;
    const int fs = static_cast<int>(code) - 1;
    const int64_t imax = std::min<int64_t>(i + blocksize, pixels);
    if (fs < 0) {
      i = imax;  // a block of equal pixels: no more bits
    } else if (fs == fsmax) {
      int64_t bits = (imax - i) * bbits;  // raw values
      if (bit + bits > end) return false;
      bit += bits;
      i = imax;
    } else {
      for (; i < imax; ++i) {
        // A unary run of zeros ended by a one bit; whole zero bytes are skipped at once.
        for (;;) {
          if (bit >= end) return false;
          if ((bit & 7) == 0 && data[bit >> 3] == 0) {
            bit += 8;
            continue;
          }
          bool one = (data[bit >> 3] >> (7 - (bit & 7))) & 1u;
          ++bit;
          if (one) break;
        }
        if (bit + fs > end) return false;
        bit += fs;
      }
    }
  }
  return true;
}

}  // namespace calibd::fits
