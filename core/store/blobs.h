// Internal to core/store: where blob bytes live. The embedded store keeps files
// `<dir>/blobs/ab/<sha256>.fits`; the shared store keeps 1 MiB bytea chunks in PostgreSQL.
// The catalog logic (catalog_masters.cc) calls Persist — which makes the blob durable and
// complete (files: fsync, rename, fsync dir; PostgreSQL: all chunks in one committed
// transaction) — before the transaction that adds the catalog row. A writer killed in between
// leaves an unreferenced blob, which CollectGarbage removes.
//
//   std::string tmp = blobs->TempPath();   // spool here, hash, then:
//   RETURN_IF_ERROR(blobs->Persist(tmp, sha, size));
//   ... BEGIN; insert the version row; COMMIT
//   ASSIGN_OR_RETURN(std::string path, blobs->Materialize(sha));   // verified local file
//
// Thread safety: every method may be called from any thread.
#ifndef CALIBD_CORE_STORE_BLOBS_H_
#define CALIBD_CORE_STORE_BLOBS_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/store/sql.h"

namespace calibd::store::internal {

class BlobBackend {
 public:
  virtual ~BlobBackend() = default;
  // A fresh, unique path for spooling a new blob, on the same filesystem as the blobs.
  virtual std::string TempPath() = 0;
  virtual absl::Status Persist(const std::string& temp, const std::string& sha256,
                               int64_t size) = 0;
  // A local file holding the blob, its sha256 verified (DATA_LOSS on mismatch or when the
  // blob is missing although the catalog names it). Files: hashed on every call (the file is
  // the blob). PostgreSQL: downloaded and verified once into the spool, then reused until
  // evicted; an open descriptor outlives eviction, so open the path promptly.
  virtual absl::StatusOr<std::string> Materialize(const std::string& sha256) = 0;
  // Files: removes temp files and blobs not in `referenced` (call only when no other process
  // uses the store). PostgreSQL: ignores `referenced` and removes blobs no version references
  // that are older than a day (a concurrent writer may be between Persist and its commit).
  // Returns how many were removed.
  virtual bool wants_references() const = 0;
  virtual absl::StatusOr<int> CollectGarbage(const std::set<std::string>& referenced) = 0;
};

std::unique_ptr<BlobBackend> NewFileBlobBackend(const std::string& dir);
// `conninfo` opens the backend's own connection; `spool_dir` receives materialised copies,
// reused by sha256 and evicted least recently used beyond `spool_bytes` (the newest copy is
// always kept). A download takes the connection one chunk at a time, so downloads and other
// blob calls interleave.
absl::StatusOr<std::unique_ptr<BlobBackend>> NewPgBlobBackend(const std::string& conninfo,
                                                              const std::string& spool_dir,
                                                              int64_t spool_bytes);

// A suffix unique in this host (pid, counter, random) for temporary file names.
std::string UniqueSuffix();

// Streaming sha256 of a file; optionally copies it to `copy_to` (fsynced) on the way.
absl::StatusOr<std::string> HashFile(const std::string& path, const std::string& copy_to,
                                     int64_t* size);
// fsync a file or directory by path.
absl::Status FsyncPath(const std::string& path);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_BLOBS_H_
