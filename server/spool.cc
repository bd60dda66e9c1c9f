#include "server/spool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace calibd::server {

std::string SpoolBase(const std::string& spool_dir) {
  if (!spool_dir.empty()) return spool_dir;
  const char* tmp = getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

absl::StatusOr<std::string> MakeSpoolDirectory(const std::string& spool_dir,
                                               absl::string_view prefix) {
  const std::string base = SpoolBase(spool_dir);
  std::string templ = absl::StrCat(base, "/", prefix, "XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) {
    const int err = errno;
    LogEvent("spool_error", {{"op", "mkdtemp"}, {"dir", base}, {"error", std::strerror(err)}});
    return absl::InternalError(absl::StrCat("cannot create a spool directory: ",
                                            std::strerror(err)));
  }
  return templ;
}

absl::StatusOr<std::unique_ptr<SpoolFile>> SpoolFile::Create(const std::string& spool_dir,
                                                             absl::string_view prefix,
                                                             absl::string_view suffix) {
  const std::string base = SpoolBase(spool_dir);
  std::string templ = absl::StrCat(base, "/", prefix, "XXXXXX", suffix);
  const int fd = ::mkstemps(templ.data(), static_cast<int>(suffix.size()));
  if (fd < 0) {
    const int err = errno;
    LogEvent("spool_error", {{"op", "mkstemps"}, {"dir", base}, {"error", std::strerror(err)}});
    return absl::InternalError(absl::StrCat("cannot create a spool file: ", std::strerror(err)));
  }
  return std::unique_ptr<SpoolFile>(new SpoolFile(fd, std::move(templ)));
}

SpoolFile::~SpoolFile() {
  if (fd_ >= 0) ::close(fd_);
  ::unlink(path_.c_str());
}

absl::Status SpoolFile::Append(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("the spool file is closed");
  sha_.Update(data);
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot spool the upload: ", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  bytes_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::Status SpoolFile::Close() {
  if (fd_ < 0) return absl::OkStatus();
  const int r = ::close(fd_);
  fd_ = -1;
  if (r != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot finish the spool file: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace calibd::server
