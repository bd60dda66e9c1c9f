#include "core/fits/fits_file.h"

#include <fcntl.h>
#include <fitsio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/status/macros.h"

namespace calibd::fits {
namespace {

constexpr int kMaxStackLines = 6;

// The value text of a "KEY     = value / comment" card (empty if the card has no value).
std::string CardValue(const char* card) {
  if (card[8] != '=' || card[9] != ' ') return "";
  std::string value(card + 10, 70);
  size_t slash = value.find('/');
  if (slash != std::string::npos) value.resize(slash);
  return std::string(absl::StripAsciiWhitespace(value));
}

bool ParseInt(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  size_t i = (text[0] == '+' || text[0] == '-') ? 1 : 0;
  if (i == text.size()) return false;
  int64_t v = 0;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + (text[i] - '0');
  }
  *out = text[0] == '-' ? -v : v;
  return true;
}

}  // namespace

absl::Status ScanFitsStructure(int fd, const std::string& path, int64_t file_size) {
  constexpr int64_t kBlock = 2880;
  constexpr int64_t kMaxHdus = 10000;
  char block[kBlock];
  int64_t pos = 0;
  for (int64_t hdu = 0; hdu < kMaxHdus && pos < file_size; ++hdu) {
    auto fail = [&](const std::string& what) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' HDU ", hdu, ": ", what, "; the file is not valid FITS"));
    };
    int64_t bitpix = 0, naxis = -1, pcount = 0, gcount = 1, znaxis = 0, ztile_pixels = 1;
    std::vector<int64_t> axes;
    bool end = false;
    bool zimage = false;
    if (hdu > 0) {
      // Anything after the last HDU that is not an extension is ignored, as CFITSIO does.
      char head[9];
      if (::pread(fd, head, 9, pos) != 9 || std::memcmp(head, "XTENSION=", 9) != 0) break;
    }
    while (!end) {
      if (pos + kBlock > file_size) {
        return fail(absl::StrCat("the header has no END card before the end of the file at byte ",
                                 file_size, " (truncated file)"));
      }
      if (::pread(fd, block, kBlock, pos) != kBlock) return fail("the header cannot be read");
      for (int64_t i = 0; i < kBlock; ++i) {
        unsigned char c = static_cast<unsigned char>(block[i]);
        if (c < 0x20 || c > 0x7e) {
          return fail(absl::StrCat("header byte at file offset ", pos + i, " is 0x", absl::Hex(c),
                                   ", not printable ASCII"));
        }
      }
      for (int card = 0; card < kBlock / 80 && !end; ++card) {
        const char* c = block + card * 80;
        std::string key(absl::StripTrailingAsciiWhitespace(absl::string_view(c, 8)));
        if (key == "END") {
          end = true;
          break;
        }
        std::string value = CardValue(c);
        int64_t v = 0;
        if (key == "BITPIX" && !ParseInt(value, &bitpix)) return fail("BITPIX is not an integer");
        if (key == "NAXIS") {
          if (!ParseInt(value, &naxis)) return fail("NAXIS is not an integer");
          // CFITSIO caches at most 99 axes (fitsio.h, imgnaxis[99]); FITS allows 999.
          if (naxis < 0 || naxis > 99)
            return fail(absl::StrCat("NAXIS = ", naxis, " is not in [0, 99]"));
          axes.assign(naxis, -1);
        }
        if (key.size() > 5 && key.compare(0, 5, "NAXIS") == 0 && naxis >= 0) {
          int64_t index = 0;
          if (ParseInt(key.substr(5), &index) && index >= 1 && index <= naxis) {
            if (!ParseInt(value, &v) || v < 0)
              return fail(absl::StrCat(key, " = '", value, "' is not a size"));
            axes[index - 1] = v;
          }
        }
        if (key == "PCOUNT" && (!ParseInt(value, &pcount) || pcount < 0)) return fail("bad PCOUNT");
        if (key == "GCOUNT" && (!ParseInt(value, &gcount) || gcount < 0)) return fail("bad GCOUNT");
        if (key == "ZIMAGE" && value == "T") zimage = true;
        if (key.size() > 5 && key.compare(0, 5, "ZTILE") == 0) {
          // CFITSIO divides by the tile sizes while opening the HDU.
          if (!ParseInt(value, &v) || v < 1 || v > (int64_t{1} << 30)) {
            return fail(absl::StrCat(key, " = '", value, "' is not a tile size in [1, 2^30]"));
          }
          ztile_pixels = std::min<int64_t>(ztile_pixels * v, int64_t{1} << 40);
        }
        if (key.size() > 6 && key.compare(0, 6, "ZNAXIS") == 0 && (!ParseInt(value, &v) || v < 0)) {
          return fail(absl::StrCat(key, " = '", value, "' is not a size"));
        }
        if (key == "ZNAXIS") {
          // CFITSIO handles at most MAX_COMPRESS_DIM (6) compressed axes.
          if (!ParseInt(value, &znaxis) || znaxis < 0 || znaxis > MAX_COMPRESS_DIM) {
            return fail(
                absl::StrCat("ZNAXIS = '", value, "' is not in [0, ", MAX_COMPRESS_DIM, "]"));
          }
        }
      }
      pos += kBlock;
    }
    if (zimage && ztile_pixels > (int64_t{1} << 30)) {
      return fail("the compression tiles hold more than 2^30 pixels each");
    }
    if (naxis < 0) return fail("the header has no NAXIS");
    int64_t bytes = std::abs(bitpix) / 8;
    if (bytes == 0) return fail(absl::StrCat("BITPIX = ", bitpix, " is not a FITS pixel type"));
    // Data size = |BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1 * ... ), saturating: anything past
    // the end of the file ends the scan (the HDU's own checks report it when it is read).
    int64_t elements = 0;
    if (naxis > 0) {
      elements = 1;
      for (int64_t a : axes) {
        if (a < 0) return fail("a NAXISn keyword is missing");
        if (a != 0 && elements > file_size / a) {
          elements = file_size + 1;
          break;
        }
        elements *= a;
      }
    }
    int64_t total = elements > file_size ? file_size + 1 : elements + pcount;
    if (naxis == 0 && pcount == 0) total = 0;
    if (gcount != 0 && total > file_size / gcount) return absl::OkStatus();
    total *= gcount;
    if (total > file_size / bytes) return absl::OkStatus();
    total *= bytes;
    pos += (total + kBlock - 1) / kBlock * kBlock;
  }
  return absl::OkStatus();
}

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
  // text and other strangers away from CFITSIO's drivers. O_NONBLOCK: a FIFO swapped in after
  // the stat must not block us.
  FitsFile file;
  file.path_ = path;
  file.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (file.fd_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open FITS file '", path, "': ", std::strerror(errno)));
  }
  if (::fstat(file.fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file; give the path of a FITS file"));
  }
  file.file_size_ = st.st_size;
  char head[10] = {0};
  ssize_t n = ::pread(file.fd_, head, sizeof(head), 0);
  if (n != sizeof(head) || std::memcmp(head, "SIMPLE  =", 9) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a FITS file (it does not start with 'SIMPLE  =')"));
  }
  if (st.st_size < 2880) {
    return absl::InvalidArgumentError(
        absl::StrCat("FITS file '", path, "' is truncated: ", st.st_size,
                     " bytes, shorter than one 2880-byte header block"));
  }
  CALIBD_RETURN_IF_ERROR(ScanFitsStructure(file.fd_, path, st.st_size));
  // CFITSIO opens the very file we scanned, through our descriptor: no window for the path
  // to be replaced between the scan and the parse. It also gives each open a name of its
  // own: CFITSIO shares one internal FITSfile (buffers, current HDU) between opens of the
  // same name, and we do not rely on that sharing being safe across threads.
  std::string name = path;
  if (::access("/proc/self/fd", X_OK) == 0) name = absl::StrCat("/proc/self/fd/", file.fd_);
  int status = 0;
  fits_open_diskfile(&file.fptr_, name.c_str(), READONLY, &status);
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
      return absl::AlreadyExistsError(
          absl::StrCat("'", path, "' already exists; remove it or ask to overwrite"));
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' exists and is not a regular file; not replacing it"));
    }
    if (::unlink(path.c_str()) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot replace '", path, "': ", std::strerror(errno)));
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

absl::StatusOr<FitsFile> FitsFile::OpenForAppend(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("FITS file '", path, "' does not exist"));
  }
  FitsFile file;
  file.path_ = path;
  int status = 0;
  fits_open_diskfile(&file.fptr_, path.c_str(), READWRITE, &status);
  if (status != 0) {
    file.fptr_ = nullptr;
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open FITS file '", path, "' to append: ", CfitsioMessage(status)));
  }
  int hdus = 0;
  fits_get_num_hdus(file.fptr_, &hdus, &status);
  if (status == 0 && hdus > 0) fits_movabs_hdu(file.fptr_, hdus, nullptr, &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "moving to the last HDU"));
  return file;
}

absl::StatusOr<FitsFile> FitsFile::CreateInMemory(const std::string& name) {
  FitsFile file;
  file.path_ = name;
  file.memory_ = std::make_unique<Memory>();
  file.memory_->size = 2880 * 4;
  file.memory_->data = std::malloc(file.memory_->size);
  if (file.memory_->data == nullptr) return absl::ResourceExhaustedError("out of memory");
  int status = 0;
  fits_create_memfile(&file.fptr_, &file.memory_->data, &file.memory_->size, 2880 * 4, ::realloc,
                      &status);
  if (status != 0) {
    file.fptr_ = nullptr;
    return absl::InternalError(
        absl::StrCat("cannot create an in-memory FITS file: ", CfitsioMessage(status)));
  }
  return file;
}

FitsFile::FitsFile(FitsFile&& other) noexcept
    : fptr_(std::exchange(other.fptr_, nullptr)),
      memory_(std::move(other.memory_)),
      fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      file_size_(other.file_size_) {}

FitsFile& FitsFile::operator=(FitsFile&& other) noexcept {
  if (this != &other) {
    (void)Release();
    fptr_ = std::exchange(other.fptr_, nullptr);
    memory_ = std::move(other.memory_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    file_size_ = other.file_size_;
  }
  return *this;
}

FitsFile::~FitsFile() { (void)Release(); }

int FitsFile::Release() {
  int status = 0;
  if (fptr_ != nullptr) {
    fits_close_file(fptr_, &status);
    fptr_ = nullptr;
  }
  if (memory_ != nullptr) {
    std::free(memory_->data);
    memory_.reset();
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  return status;
}

absl::Status FitsFile::Close() {
  int status = Release();
  if (status != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("closing FITS file '", path_, "' failed: ", CfitsioMessage(status)));
  }
  return absl::OkStatus();
}

void FitsFile::CloseAndDelete() {
  const bool on_disk = memory_ == nullptr;
  if (Release() != 0) fits_clear_errmsg();
  if (on_disk && !path_.empty()) ::unlink(path_.c_str());
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
  return absl::Status(
      code, absl::StrCat(what, " failed in '", path_, "' ", HduDescription(), ": ", message));
}

absl::Status FitsFile::Error(absl::StatusCode code, absl::string_view message) const {
  return absl::Status(code, absl::StrCat("'", path_, "' ", HduDescription(), ": ", message));
}

}  // namespace calibd::fits
