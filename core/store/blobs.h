// Internal to core/store: where blob bytes live. The embedded store keeps files
// `<dir>/blobs/ab/<sha256>.fits`; the shared store keeps 1 MiB bytea chunks in PostgreSQL.
// The catalog logic (catalog_store.cc) calls Persist before its transaction and PersistInTx
// inside it; one of the two does the work, the other nothing.
//
//   std::string tmp = blobs->TempPath();   // spool here, hash, then:
//   RETURN_IF_ERROR(blobs->Persist(tmp, sha, size));
//   ... BEGIN; RETURN_IF_ERROR(blobs->PersistInTx(conn, tmp, sha, size)); insert row; COMMIT
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
  virtual absl::Status PersistInTx(SqlConnection& conn, const std::string& temp,
                                   const std::string& sha256, int64_t size) = 0;
  // A local file holding the blob, its sha256 verified now (DATA_LOSS on mismatch or when the
  // blob is missing although the catalog names it).
  virtual absl::StatusOr<std::string> Materialize(const std::string& sha256) = 0;
  // Removes temp files and blobs not in `referenced` (only when no other process uses the
  // store). Returns how many were removed.
  virtual absl::StatusOr<int> CollectGarbage(const std::set<std::string>& referenced) = 0;
};

std::unique_ptr<BlobBackend> NewFileBlobBackend(const std::string& dir);
// `conninfo` opens the backend's own connection for reads; `spool_dir` receives materialised
// copies.
absl::StatusOr<std::unique_ptr<BlobBackend>> NewPgBlobBackend(const std::string& conninfo,
                                                              const std::string& spool_dir);

// Streaming sha256 of a file; optionally copies it to `copy_to` (fsynced) on the way.
absl::StatusOr<std::string> HashFile(const std::string& path, const std::string& copy_to,
                                     int64_t* size);
// fsync a file or directory by path.
absl::Status FsyncPath(const std::string& path);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_BLOBS_H_
