#include "core/store/blobs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/hash/sha256.h"
#include "core/status/macros.h"
#include "core/store/errors.h"
#include "core/store/store.h"
#include "core/store/time.h"

namespace calibd::store {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return internal::FileError(errno, what, path);
}

}  // namespace

namespace internal {

std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(getpid(), "-", counter.fetch_add(1), "-", rng() % 1000000007);
}

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
  hash::Sha256 h;
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
    return absl::StrCat(dir_, "/tmp/put-", UniqueSuffix(), ".fits");
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
        return WithDetail(absl::StatusCode::kDataLoss,
                          absl::StrCat("stored master ", sha,
                                       " is missing from the blob directory; restore it from a "
                                       "backup"),
                          path);
      }
      return got.status();
    }
    if (*got != sha) {
      return WithDetail(absl::StatusCode::kDataLoss,
                        absl::StrCat("stored master ", sha, " is corrupt: its sha256 is ", *got,
                                     "; it is not served. Restore it from a backup or put the "
                                     "master again"),
                        path);
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

}  // namespace

std::unique_ptr<BlobBackend> NewFileBlobBackend(const std::string& dir) {
  return std::make_unique<FileBlobBackend>(dir);
}

}  // namespace internal
}  // namespace calibd::store
