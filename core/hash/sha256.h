// SHA-256, the project's one content hash: blobs are named by it, uploads are checked with it
// in transit, and provenance lists inputs by it. A streaming hasher for bytes that arrive in
// pieces, plus one-shot helpers for a buffer and a file. Lowercase hex throughout.
//
//   calibd::hash::Sha256 h;
//   h.Update(chunk1);
//   h.Update(chunk2.data(), chunk2.size());
//   std::string hex = h.HexDigest();          // 64 lowercase hex digits; h is then reset
//
//   std::string a = calibd::hash::Sha256Hex("abc");
//   absl::StatusOr<std::string> b = calibd::hash::Sha256File("/tmp/master.fits");
//
// Thread safety: a Sha256 object is not thread-safe (one thread at a time); it is movable and
// not copyable (it owns an OpenSSL context). The free functions are thread-safe.
#ifndef CALIBD_CORE_HASH_SHA256_H_
#define CALIBD_CORE_HASH_SHA256_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace calibd::hash {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t n);
  void Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // The digest of everything passed to Update since construction or the last HexDigest;
  // the hasher starts over afterwards.
  std::string HexDigest();

 private:
  EVP_MD_CTX* ctx_;
};

// Digest of one buffer.
std::string Sha256Hex(absl::string_view bytes);

// Digest of a file's bytes, read in large blocks. NOT_FOUND when missing, UNAVAILABLE for
// other I/O errors (the message names the path: callers that face clients must not pass it on).
absl::StatusOr<std::string> Sha256File(const std::string& path);

// True when `hex` is 64 lowercase hex digits.
bool IsSha256Hex(absl::string_view hex);

}  // namespace calibd::hash

#endif  // CALIBD_CORE_HASH_SHA256_H_
