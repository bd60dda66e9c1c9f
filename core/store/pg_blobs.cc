// The PostgreSQL blob backend: blobs as 1 MiB bytea chunks (blobs + blob_chunks tables), with a
// bounded local spool of verified copies reused by sha256.
#include <fcntl.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/hash/sha256.h"
#include "core/status/macros.h"
#include "core/store/blobs.h"
#include "core/store/errors.h"
#include "core/store/pg_sql.h"
#include "core/store/time.h"

namespace calibd::store::internal {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;

absl::Status WriteAll(int fd, const char* data, int64_t n, const std::string& path) {
  for (int64_t off = 0; off < n;) {
    ssize_t w = write(fd, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "writing the spool", path);
    }
    off += w;
  }
  return absl::OkStatus();
}

class PgBlobBackend : public BlobBackend {
 public:
  PgBlobBackend(std::unique_ptr<SqlConnection> conn, std::string spool, int64_t spool_bytes)
      : conn_(std::move(conn)), spool_(std::move(spool)), budget_(spool_bytes) {}

  std::string TempPath() override { return absl::StrCat(spool_, "/put-", UniqueSuffix(), ".fits"); }
  bool wants_references() const override { return false; }

  absl::Status Persist(const std::string& temp, const std::string& sha, int64_t size) override {
    absl::MutexLock lock(&mu_);
    absl::Status s;
    for (int attempt = 0; attempt < 5; ++attempt) {
      s = conn_->Begin(true);
      if (s.ok()) s = Upload(temp, sha, size);
      if (s.ok()) s = conn_->Commit();
      if (s.ok()) return s;
      (void)conn_->Rollback();
      if (!IsRetryable(s)) return s;
      absl::SleepFor(absl::Milliseconds(5 * (attempt + 1)));
    }
    return s;
  }

  absl::StatusOr<std::string> Materialize(const std::string& sha) override {
    const std::string path = absl::StrCat(spool_, "/", sha, ".fits");
    {
      absl::MutexLock l(&files_mu_);
      while (true) {
        auto it = files_.find(sha);
        if (it == files_.end()) break;
        if (!it->second.ready) {  // another thread is downloading it
          files_cv_.Wait(&files_mu_);
          continue;
        }
        if (access(path.c_str(), R_OK) == 0) {
          it->second.last_use = ++tick_;
          return path;
        }
        total_ -= it->second.size;  // removed behind our back: fetch again
        files_.erase(it);
        break;
      }
      files_[sha] = Entry{};
    }
    int64_t size = 0;
    absl::Status s = Download(sha, path, &size);
    absl::MutexLock l(&files_mu_);
    files_cv_.SignalAll();
    if (!s.ok()) {
      files_.erase(sha);
      return s;
    }
    Entry& e = files_[sha];
    e.ready = true;
    e.size = size;
    e.last_use = ++tick_;
    total_ += size;
    Evict(sha);
    return path;
  }

  absl::StatusOr<int> CollectGarbage(const std::set<std::string>&) override {
    absl::MutexLock lock(&mu_);
    const int64_t cutoff = NowMicros() - int64_t{86400} * kMicrosPerSecond;
    CALIBD_RETURN_IF_ERROR(conn_->Begin(true));
    absl::Status s = conn_->Exec(
        "DELETE FROM blob_chunks WHERE sha256 IN (SELECT b.sha256 FROM blobs b WHERE "
        "b.created_at < ? AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.sha256 = b.sha256))",
        {cutoff});
    absl::StatusOr<std::vector<SqlRow>> gone;
    if (s.ok()) {
      gone = conn_->Query(
          "DELETE FROM blobs b WHERE b.created_at < ? AND NOT EXISTS (SELECT 1 FROM versions v "
          "WHERE v.sha256 = b.sha256) RETURNING sha256",
          {cutoff});
      s = gone.status();
    }
    if (s.ok()) s = conn_->Commit();
    if (!s.ok()) {
      (void)conn_->Rollback();
      return s;
    }
    return static_cast<int>(gone->size());
  }

 private:
  struct Entry {
    bool ready = false;
    int64_t size = 0;
    uint64_t last_use = 0;
  };

  // Inside a transaction: the blob row and all its chunks, unless the blob is there already.
  absl::Status Upload(const std::string& temp, const std::string& sha, int64_t size)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    PGconn* pg = dynamic_cast<PgAccess&>(*conn_).raw();
    const int64_t chunks = (size + kChunkBytes - 1) / kChunkBytes;
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query("INSERT INTO blobs (sha256, size_bytes, chunks, created_at) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
                     {sha, size, chunks, NowMicros()}));
    if (rows.empty()) return absl::OkStatus();  // stored already
    int fd = open(temp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FileError(errno, "reading the upload", temp);
    std::vector<char> buf(kChunkBytes);
    absl::Status status;
    for (int64_t i = 0; i < chunks && status.ok(); ++i) {
      int64_t got = 0;
      while (got < kChunkBytes) {
        ssize_t n = read(fd, buf.data() + got, kChunkBytes - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += n;
      }
      const std::string idx = absl::StrCat(i);
      const char* values[3] = {sha.c_str(), idx.c_str(), buf.data()};
      const int lengths[3] = {0, 0, static_cast<int>(got)};
      const int formats[3] = {0, 0, 1};
      PGresult* res = PQexecParams(
          pg, "INSERT INTO blob_chunks (sha256, idx, data) VALUES ($1, $2, $3)", 3, nullptr,
          values, lengths, formats, 0);
      if (PQresultStatus(res) != PGRES_COMMAND_OK) status = PgResultError(pg, res, "store chunk");
      PQclear(res);
    }
    close(fd);
    return status;
  }

  // One chunk, appended to `out` (cleared first). Takes the connection for this chunk only; a
  // connection found broken is reset and the (idempotent) read tried once more.
  absl::Status ReadChunk(const std::string& sha, int64_t i, std::string* out) {
    absl::MutexLock lock(&mu_);
    PGconn* pg = dynamic_cast<PgAccess&>(*conn_).raw();
    const std::string idx = absl::StrCat(i);
    const char* values[2] = {sha.c_str(), idx.c_str()};
    absl::Status status;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (PQstatus(pg) != CONNECTION_OK) PQreset(pg);
      PGresult* res =
          PQexecParams(pg, "SELECT data FROM blob_chunks WHERE sha256 = $1 AND idx = $2", 2,
                       nullptr, values, nullptr, nullptr, 1);
      if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (PQntuples(res) != 1) {
          status = absl::DataLossError(absl::StrCat("stored master ", sha, " lacks chunk ", i));
        } else {
          out->assign(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
          status = absl::OkStatus();
        }
        PQclear(res);
        return status;
      }
      status = PgResultError(pg, res, "read chunk");
      PQclear(res);
      if (PQstatus(pg) == CONNECTION_OK) return status;  // a real error, not a lost connection
    }
    return status;
  }

  absl::Status Download(const std::string& sha, const std::string& path, int64_t* size_out) {
    int64_t size = 0, chunks = 0;
    {
      absl::MutexLock lock(&mu_);
      CALIBD_ASSIGN_OR_RETURN(
          std::vector<SqlRow> head,
          conn_->Query("SELECT size_bytes, chunks FROM blobs WHERE sha256 = ?", {sha}));
      if (head.empty()) {
        return absl::DataLossError(
            absl::StrCat("stored master ", sha, " is missing from the blob table"));
      }
      size = head[0].Int(0);
      chunks = head[0].Int(1);
    }
    const std::string tmp = TempPath();
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return FileError(errno, "creating a spool file", tmp);
    hash::Sha256 h;
    int64_t total = 0;
    absl::Status status;
    std::string chunk;
    for (int64_t i = 0; i < chunks && status.ok(); ++i) {
      status = ReadChunk(sha, i, &chunk);
      if (!status.ok()) break;
      h.Update(chunk);
      total += static_cast<int64_t>(chunk.size());
      status = WriteAll(fd, chunk.data(), static_cast<int64_t>(chunk.size()), tmp);
    }
    close(fd);
    if (status.ok()) {
      const std::string got = h.HexDigest();
      if (total != size || got != sha) {
        status = absl::DataLossError(absl::StrCat(
            "stored master ", sha, " is corrupt in the database (sha256 of its chunks is ", got,
            ", ", total, " of ", size, " bytes); it is not served. Put the master again"));
      }
    }
    if (status.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
      status = FileError(errno, "renaming a spool file", path);
    }
    if (!status.ok()) {
      unlink(tmp.c_str());
      return status;
    }
    *size_out = size;
    return absl::OkStatus();
  }

  // Least recently used copies out until the spool fits its budget (never `keep`).
  void Evict(const std::string& keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(files_mu_) {
    while (total_ > budget_) {
      auto victim = files_.end();
      for (auto it = files_.begin(); it != files_.end(); ++it) {
        if (!it->second.ready || it->first == keep) continue;
        if (victim == files_.end() || it->second.last_use < victim->second.last_use) victim = it;
      }
      if (victim == files_.end()) return;
      unlink(absl::StrCat(spool_, "/", victim->first, ".fits").c_str());
      total_ -= victim->second.size;
      files_.erase(victim);
    }
  }

  absl::Mutex mu_;
  std::unique_ptr<SqlConnection> conn_ ABSL_GUARDED_BY(mu_);
  const std::string spool_;
  const int64_t budget_;
  absl::Mutex files_mu_;
  absl::CondVar files_cv_;
  std::map<std::string, Entry> files_ ABSL_GUARDED_BY(files_mu_);
  int64_t total_ ABSL_GUARDED_BY(files_mu_) = 0;
  uint64_t tick_ ABSL_GUARDED_BY(files_mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlobBackend>> NewPgBlobBackend(const std::string& conninfo,
                                                              const std::string& spool_dir,
                                                              int64_t spool_bytes) {
  CALIBD_ASSIGN_OR_RETURN(std::unique_ptr<SqlConnection> conn, OpenPostgres(conninfo));
  return std::make_unique<PgBlobBackend>(std::move(conn), spool_dir, spool_bytes);
}

}  // namespace calibd::store::internal
