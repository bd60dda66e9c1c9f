// Byte order between FITS (big-endian) and the host, in loops the compiler vectorises
// (x86-64-v3: vpshufb over 32 bytes). Used by the FITS readers and writers.
//
//   uint16_t px[4] = {...};            // as read from a FITS file
//   calibd::fits::SwapInPlace(px, 4, uint16_t{0x8000});  // to host, BZERO=32768 → unsigned
//   calibd::fits::SwapCopy(dq, out, 4, uint16_t{0x8000});  // and back, into a write buffer
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_FITS_BYTE_SWAP_H_
#define CALIBD_CORE_FITS_BYTE_SWAP_H_

#include <cstdint>

namespace calibd::fits {

// Swaps the bytes of n values of `p` in place, then XORs `flip` in (0x8000 / 0x80000000: the
// sign-bit flip that maps FITS's BZERO-offset unsigned integers to host unsigned): FITS order
// to host (readers).
template <typename U>
void SwapInPlace(U* p, int64_t n, U flip) {
  for (int64_t i = 0; i < n; ++i) {
    U v = p[i];
    if constexpr (sizeof(U) == 2) v = __builtin_bswap16(v);
    if constexpr (sizeof(U) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(U) == 8) v = __builtin_bswap64(v);
    p[i] = v ^ flip;
  }
}

// out[i] = bswap(in[i] ^ flip) for n values: host to FITS order in one pass (writers).
template <typename U>
void SwapCopy(const U* in, U* out, int64_t n, U flip) {
  for (int64_t i = 0; i < n; ++i) {
    U v = in[i] ^ flip;
    if constexpr (sizeof(U) == 2) v = __builtin_bswap16(v);
    if constexpr (sizeof(U) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(U) == 8) v = __builtin_bswap64(v);
    out[i] = v;
  }
}

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_BYTE_SWAP_H_
