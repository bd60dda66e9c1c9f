#include "core/fits/fits_file.h"

#include <fcntl.h>
#include <fitsio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace calibd::fits {
namespace {

constexpr int kMaxStackLines = 6;

}  // namespace

std::string CfitsioMessage(int status) {
  char text[FLEN_STATUS] = {0};
  fits_get_errstatus(status, text);
  std::string message = absl::StrCat(text, " (CFITSIO status ", status, ")");
  std::vector<std::string> stack;
  char line[FLEN_ERRMSG] = {0};
  while (fits_read_errmsg(line)) {
    std::string entry(absl::StripAsciiWhitespace(line));
    if (!entry.empty() && stack.size() < kMaxStackLines) stack.push_back(std::move(entry));
  }
  fits_clear_errmsg();
  if (!stack.empty()) absl::StrAppend(&message, ": ", absl::StrJoin(stack, "; "));
  return message;
}

absl::StatusOr<FitsFile> FitsFile::OpenForRead(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(
          absl::StrCat("FITS file '", path, "' does not exist; check the path"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cannot stat FITS file '", path, "': ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file; give the path of a FITS file"));
  }
  if (st.st_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("FITS file '", path, "' is empty"));
  }
  // The first card of every FITS file is SIMPLE = T. Checking it ourselves keeps gzip files,
  // text and other strangers away from CFITSIO's drivers.
  {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot open FITS file '", path, "': ", std::strerror(errno)));
    }
    char head[10] = {0};
    ssize_t n = ::pread(fd, head, sizeof(head), 0);
    ::close(fd);
    if (n != sizeof(head) || std::memcmp(head, "SIMPLE  =", 9) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' is not a FITS file (it does not start with 'SIMPLE  =')"));
    }
  }
  if (st.st_size < 2880) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FITS file '", path, "' is truncated: ", st.st_size,
        " bytes, shorter than one 2880-byte header block"));
  }
  FitsFile file;
  file.path_ = path;
  file.file_size_ = st.st_size;
  int status = 0;
  fits_open_diskfile(&file.fptr_, path.c_str(), READONLY, &status);
  if (status != 0) {
    file.fptr_ = nullptr;  // CFITSIO leaves it null on failure; make sure
    std::string message = CfitsioMessage(status);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open FITS file '", path, "': ", message));
  }
  return file;
}

absl::StatusOr<FitsFile> FitsFile::Create(const std::string& path, bool overwrite) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!overwrite) {
      return absl::AlreadyExistsError(absl::StrCat(
          "'", path, "' already exists; remove it or ask to overwrite"));
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' exists and is not a regular file; not replacing it"));
    }
    if (::unlink(path.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot replace '", path,
                                                     "': ", std::strerror(errno)));
    }
  }
  FitsFile file;
  file.path_ = path;
  int status = 0;
  fits_create_diskfile(&file.fptr_, path.c_str(), &status);
  if (status != 0) {
    file.fptr_ = nullptr;
    std::string message = CfitsioMessage(status);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create FITS file '", path, "': ", message,
                     "; check that the directory exists and is writable"));
  }
  return file;
}

FitsFile::FitsFile(FitsFile&& other) noexcept
    : fptr_(std::exchange(other.fptr_, nullptr)),
      path_(std::move(other.path_)),
      file_size_(other.file_size_) {}

FitsFile& FitsFile::operator=(FitsFile&& other) noexcept {
  if (this != &other) {
    if (fptr_ != nullptr) {
      int status = 0;
      fits_close_file(fptr_, &status);
      if (status != 0) fits_clear_errmsg();
    }
    fptr_ = std::exchange(other.fptr_, nullptr);
    path_ = std::move(other.path_);
    file_size_ = other.file_size_;
  }
  return *this;
}

FitsFile::~FitsFile() {
  if (fptr_ != nullptr) {
    int status = 0;
    fits_close_file(fptr_, &status);
    if (status != 0) fits_clear_errmsg();
  }
}

absl::Status FitsFile::Close() {
  if (fptr_ == nullptr) return absl::OkStatus();
  int status = 0;
  fits_close_file(fptr_, &status);
  fptr_ = nullptr;
  if (status != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("closing FITS file '", path_, "' failed: ", CfitsioMessage(status)));
  }
  return absl::OkStatus();
}

void FitsFile::CloseAndDelete() {
  if (fptr_ != nullptr) {
    int status = 0;
    fits_close_file(fptr_, &status);
    if (status != 0) fits_clear_errmsg();
    fptr_ = nullptr;
  }
  if (!path_.empty()) ::unlink(path_.c_str());
}

std::string FitsFile::HduDescription() const {
  if (fptr_ == nullptr) return "no HDU";
  int hdu = 0;
  fits_get_hdu_num(fptr_, &hdu);
  std::string description = absl::StrCat("HDU ", hdu - 1);
  int status = 0;
  char extname[FLEN_VALUE] = {0};
  fits_read_key(fptr_, TSTRING, "EXTNAME", extname, nullptr, &status);
  if (status == 0) {
    absl::StrAppend(&description, " '", extname, "'");
  } else {
    fits_clear_errmsg();
  }
  return description;
}

absl::Status FitsFile::Check(int status, absl::string_view what, absl::StatusCode code) const {
  if (status == 0) return absl::OkStatus();
  std::string message = CfitsioMessage(status);  // before anything else touches the stack
  return absl::Status(code, absl::StrCat(what, " failed in '", path_, "' ", HduDescription(),
                                         ": ", message));
}

absl::Status FitsFile::Error(absl::StatusCode code, absl::string_view message) const {
  return absl::Status(code, absl::StrCat("'", path_, "' ", HduDescription(), ": ", message));
}

}  // namespace calibd::fits
