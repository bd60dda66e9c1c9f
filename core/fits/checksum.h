// The FITS checksum (FITS Standard 4.0, appendix J; Seaman, Pence & Rots 2002): the 32-bit
// ones' complement sum of an HDU's bytes read as big-endian 32-bit words, stored as DATASUM
// (the data unit's sum, an unsigned decimal) and CHECKSUM (16 characters encoding the
// complement of the whole HDU's sum, so that the HDU with its CHECKSUM card sums to -0).
//
//   OnesComplementSum data;
//   data.AddBigEndian(bytes, n);          // the data unit as written, in pieces of 4k bytes
//   uint32_t datasum = data.value();
//   OnesComplementSum hdu = header_sum;   // header with CHECKSUM = '0000000000000000'
//   hdu.Add(datasum);
//   std::string checksum = EncodeChecksum(hdu.value());   // the CHECKSUM card's value
//
// Thread safety: OnesComplementSum is a value type; Combine sums of pieces summed on different
// threads with Add(other.value()) (the sum is associative and commutative, if every piece but
// the last is a multiple of 4 bytes long). EncodeChecksum is pure.
#ifndef CALIBD_CORE_FITS_CHECKSUM_H_
#define CALIBD_CORE_FITS_CHECKSUM_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace calibd::fits {

class OnesComplementSum {
 public:
  // Adds one 32-bit word (as the host sees the big-endian bytes).
  void Add(uint32_t word) { acc_ += word; }
  // Adds n bytes (n a multiple of 4) that are in FITS (big-endian) order.
  void AddBigEndian(const void* bytes, size_t n);
  // Adds n host-order 32-bit values that are written big-endian (float32/int32 pixels: the
  // file's words are the values' own bits).
  void AddHostWords(const uint32_t* words, size_t n);
  // The ones' complement sum so far (end-around carry folded in).
  uint32_t value() const;

 private:
  uint64_t acc_ = 0;  // 32-bit words summed with their carries; folded on read
};

// The 16-character CHECKSUM value for an HDU whose bytes (with CHECKSUM = '0000000000000000')
// sum to `sum`: the encoding of ~sum, so that the HDU then sums to -0 (0xFFFFFFFF).
std::string EncodeChecksum(uint32_t sum);

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_CHECKSUM_H_
