// Spooling: temporary files and directories under the server's spool directory (--spool-dir,
// else $TMPDIR, else /tmp) for uploads (PutMaster) and build inputs (BuildMaster).
// A SpoolFile is written in order with Append (a write(2) loop, retried on EINTR) and hashed
// while it is written, so an upload is hashed exactly once on the server; it is removed when
// the object is destroyed. Errors never name the path (they may reach a client); they are
// INTERNAL (cannot create) or RESOURCE_EXHAUSTED (cannot write: disk full, quota).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<SpoolFile> f,
//                    SpoolFile::Create(backend.spool_dir, "calibd-put-", ".fits"));
//   RETURN_IF_ERROR(f->Append(chunk));
//   RETURN_IF_ERROR(f->Close());
//   std::string sha = f->Sha256Hex();   // of every byte appended
//   Use(f->path());                     // until f is destroyed
//
//   ASSIGN_OR_RETURN(std::string dir, MakeSpoolDirectory(backend.spool_dir, "calibd-build-"));
//
// Thread safety: a SpoolFile is used by one thread at a time (callers may hand it from thread
// to thread); the free functions are thread-safe.
#ifndef CALIBD_SERVER_SPOOL_H_
#define CALIBD_SERVER_SPOOL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/hash/sha256.h"

namespace calibd::server {

// The directory spool files go to: `spool_dir`, else $TMPDIR, else /tmp.
std::string SpoolBase(const std::string& spool_dir);

// A new private directory `<base>/<prefix>XXXXXX` (mkdtemp); the caller removes it.
absl::StatusOr<std::string> MakeSpoolDirectory(const std::string& spool_dir,
                                               absl::string_view prefix);

class SpoolFile {
 public:
  // A new file `<base>/<prefix>XXXXXX<suffix>` (mkstemps), open for writing.
  static absl::StatusOr<std::unique_ptr<SpoolFile>> Create(const std::string& spool_dir,
                                                           absl::string_view prefix,
                                                           absl::string_view suffix);
  ~SpoolFile();  // closes and unlinks
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  absl::Status Append(absl::string_view data);
  // Closes the descriptor (the file stays until destruction).
  absl::Status Close();

  const std::string& path() const { return path_; }
  int64_t bytes() const { return bytes_; }
  // The sha256 of every appended byte; call once, after the last Append.
  std::string Sha256Hex() { return sha_.HexDigest(); }

 private:
  SpoolFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
  int64_t bytes_ = 0;
  hash::Sha256 sha_;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_SPOOL_H_
