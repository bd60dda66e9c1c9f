#include "core/store/blobs.h"

#include <dirent.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/status/macros.h"
#include "core/store/pg_sql.h"
#include "core/store/store.h"
#include "core/store/time.h"

namespace calibd::store {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  const int e = errno;
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == ENOSPC || e == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::UnavailableError(msg);
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void Update(const void* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    return absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(md), n));
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string RandomSuffix() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(getpid(), "-", counter.fetch_add(1), "-", rng() % 1000000007);
}

}  // namespace

std::string Sha256Bytes(absl::string_view bytes) {
  Sha256 h;
  h.Update(bytes.data(), bytes.size());
  return h.HexDigest();
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  int64_t size = 0;
  return internal::HashFile(path, "", &size);
}

namespace internal {

absl::Status FsyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open for fsync", path);
  int rc = fsync(fd);
  const int e = errno;
  close(fd);
  if (rc != 0) {
    errno = e;
    return Errno("fsync", path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> HashFile(const std::string& path, const std::string& copy_to,
                                     int64_t* size) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  int out = -1;
  if (!copy_to.empty()) {
    out = open(copy_to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
      close(fd);
      return Errno("cannot create", copy_to);
    }
  }
  Sha256 h;
  std::vector<char> buf(1 << 20);
  int64_t total = 0;
  absl::Status status;
  while (true) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = Errno("read", path);
      break;
    }
    if (n == 0) break;
    h.Update(buf.data(), n);
    total += n;
    for (ssize_t off = 0; out >= 0 && off < n;) {
      ssize_t w = write(out, buf.data() + off, n - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        status = Errno("write", copy_to);
        break;
      }
      off += w;
    }
    if (!status.ok()) break;
  }
  close(fd);
  if (out >= 0) {
    if (status.ok() && fsync(out) != 0) status = Errno("fsync", copy_to);
    close(out);
  }
  CALIBD_RETURN_IF_ERROR(status);
  *size = total;
  return h.HexDigest();
}

namespace {

// ---------------------------------------------------------------- files
class FileBlobBackend : public BlobBackend {
 public:
  explicit FileBlobBackend(std::string dir) : dir_(std::move(dir)) {}

  std::string BlobPath(const std::string& sha) const {
    return absl::StrCat(dir_, "/blobs/", sha.substr(0, 2), "/", sha, ".fits");
  }
  std::string TempPath() override {
    return absl::StrCat(dir_, "/tmp/put-", RandomSuffix(), ".fits");
  }

  absl::Status Persist(const std::string& temp, const std::string& sha, int64_t size) override {
    const std::string sub = absl::StrCat(dir_, "/blobs/", sha.substr(0, 2));
    const std::string final_path = BlobPath(sha);
    struct stat st;
    if (stat(final_path.c_str(), &st) == 0 && st.st_size == size) {
      // Already stored. If it is intact the temp copy is not needed; a damaged one is replaced
      // (putting the same master again repairs it).
      int64_t existing_size = 0;
      absl::StatusOr<std::string> existing = HashFile(final_path, "", &existing_size);
      if (existing.ok() && *existing == sha) {
        unlink(temp.c_str());
        return absl::OkStatus();
      }
    }
    if (mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) return Errno("mkdir", sub);
    CALIBD_RETURN_IF_ERROR(FsyncPath(temp));
    if (rename(temp.c_str(), final_path.c_str()) != 0) return Errno("rename to", final_path);
    CALIBD_RETURN_IF_ERROR(FsyncPath(sub));
    CALIBD_RETURN_IF_ERROR(FsyncPath(dir_ + "/blobs"));
    return absl::OkStatus();
  }

  bool wants_references() const override { return true; }

  absl::StatusOr<std::string> Materialize(const std::string& sha) override {
    const std::string path = BlobPath(sha);
    int64_t size = 0;
    absl::StatusOr<std::string> got = HashFile(path, "", &size);
    if (!got.ok()) {
      if (absl::IsNotFound(got.status())) {
        return absl::DataLossError(absl::StrCat("blob ", sha, " is missing from ", path,
                                                "; restore it from a backup"));
      }
      return got.status();
    }
    if (*got != sha) {
      return absl::DataLossError(absl::StrCat("blob ", path, " is corrupt: its sha256 is ", *got,
                                              "; it is not served. Restore it from a backup or "
                                              "put the master again"));
    }
    return path;
  }

  absl::StatusOr<int> CollectGarbage(const std::set<std::string>& referenced) override {
    int removed = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/tmp", ec)) {
      std::filesystem::remove_all(e.path(), ec);
      ++removed;
    }
    for (const auto& sub : std::filesystem::directory_iterator(dir_ + "/blobs", ec)) {
      if (!sub.is_directory()) continue;
      for (const auto& f : std::filesystem::directory_iterator(sub.path(), ec)) {
        const std::string name = f.path().filename().string();
        const std::string sha = name.size() > 5 ? name.substr(0, name.size() - 5) : name;
        if (name.size() != 64 + 5 || !referenced.count(sha)) {
          std::filesystem::remove(f.path(), ec);
          ++removed;
        }
      }
    }
    return removed;
  }

 private:
  std::string dir_;
};

// ---------------------------------------------------------------- PostgreSQL chunks
constexpr int64_t kChunkBytes = 1 << 20;

class PgBlobBackend : public BlobBackend {
 public:
  PgBlobBackend(std::unique_ptr<SqlConnection> conn, std::string spool)
      : conn_(std::move(conn)), spool_(std::move(spool)) {}

  std::string TempPath() override {
    return absl::StrCat(spool_, "/put-", RandomSuffix(), ".fits");
  }
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
    if (fd < 0) return Errno("cannot open", temp);
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

  absl::StatusOr<std::string> Materialize(const std::string& sha) override {
    absl::MutexLock lock(&mu_);
    const std::string path = absl::StrCat(spool_, "/", sha, ".fits");
    PGconn* pg = dynamic_cast<PgAccess&>(*conn_).raw();
    if (PQstatus(pg) != CONNECTION_OK) PQreset(pg);
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> head,
                            conn_->Query("SELECT size_bytes, chunks FROM blobs WHERE sha256 = ?",
                                         {sha}));
    if (head.empty()) {
      return absl::DataLossError(
          absl::StrCat("blob ", sha, " is missing from the blob_chunks table"));
    }
    const int64_t size = head[0].Int(0), chunks = head[0].Int(1);
    const std::string tmp = TempPath();
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot create", tmp);
    Sha256 h;
    int64_t total = 0;
    absl::Status status;
    // One chunk at a time (bounded memory), binary results.
    for (int64_t i = 0; i < chunks && status.ok(); ++i) {
      const std::string idx = absl::StrCat(i);
      const char* values[2] = {sha.c_str(), idx.c_str()};
      PGresult* res = PQexecParams(
          pg, "SELECT data FROM blob_chunks WHERE sha256 = $1 AND idx = $2", 2, nullptr, values,
          nullptr, nullptr, 1);
      if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        status = PgResultError(pg, res, "read chunk");
      } else if (PQntuples(res) != 1) {
        status = absl::DataLossError(
            absl::StrCat("blob ", sha, " lacks chunk ", i, " of ", chunks));
      } else {
        const char* data = PQgetvalue(res, 0, 0);
        const int n = PQgetlength(res, 0, 0);
        h.Update(data, n);
        total += n;
        for (int off = 0; off < n;) {
          ssize_t w = write(fd, data + off, n - off);
          if (w < 0) {
            if (errno == EINTR) continue;
            status = Errno("write", tmp);
            break;
          }
          off += w;
        }
      }
      PQclear(res);
    }
    close(fd);
    if (status.ok()) {
      const std::string got = h.HexDigest();
      if (total != size || got != sha) {
        status = absl::DataLossError(absl::StrCat(
            "blob ", sha, " is corrupt in the database (sha256 of its chunks is ", got, ", ",
            total, " of ", size, " bytes); it is not served. Put the master again"));
      }
    }
    if (!status.ok()) {
      unlink(tmp.c_str());
      return status;
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename to", path);
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
  absl::Mutex mu_;
  std::unique_ptr<SqlConnection> conn_ ABSL_GUARDED_BY(mu_);
  std::string spool_;
};

}  // namespace

std::unique_ptr<BlobBackend> NewFileBlobBackend(const std::string& dir) {
  return std::make_unique<FileBlobBackend>(dir);
}

absl::StatusOr<std::unique_ptr<BlobBackend>> NewPgBlobBackend(const std::string& conninfo,
                                                              const std::string& spool_dir) {
  CALIBD_ASSIGN_OR_RETURN(std::unique_ptr<SqlConnection> conn, OpenPostgres(conninfo));
  return std::make_unique<PgBlobBackend>(std::move(conn), spool_dir);
}

}  // namespace internal
}  // namespace calibd::store
