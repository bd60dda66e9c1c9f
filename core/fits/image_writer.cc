#include "core/fits/image_writer.h"

#include <fcntl.h>  // O_DIRECT (glibc defines it under _GNU_SOURCE, as g++ does)
#include <fitsio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/fits/checksum.h"
#include "core/fits/fits_file.h"
#include "core/fits/header_io.h"
#include "core/status/macros.h"

namespace calibd::fits {
namespace {

constexpr int64_t kBlock = 2880;
constexpr size_t kCard = 80;
constexpr int64_t kChunkBytes = int64_t{1} << 20;  // per fill piece: stays in L2 while swapped
constexpr size_t kPieceBytes = size_t{1} << 20;    // header bytes per Reserve
constexpr size_t kAlign = 4096;                    // O_DIRECT: offsets, lengths, memory
// The staging buffer: pwrites of ~8 MB (it grows for a fill piece larger than that: four rows
// of a very wide image).
constexpr size_t kStageBytes = size_t{8} << 20;

// "KEY     = " + value right-justified to column 30 (fixed format) + " / comment".
std::string FixedCard(const std::string& key, const std::string& value,
                      const std::string& comment) {
  std::string card = absl::StrFormat("%-8s= %20s", key, value);
  if (!comment.empty()) absl::StrAppend(&card, " / ", comment);
  card.resize(kCard, ' ');
  return card;
}

// A string value starts in column 11: 'text' with the text padded to 8 characters.
std::string StringCard(const std::string& key, const std::string& text,
                       const std::string& comment) {
  std::string quoted = absl::StrCat("'", absl::StrFormat("%-8s", text), "'");
  std::string card = absl::StrFormat("%-8s= %-20s", key, quoted);
  if (!comment.empty()) absl::StrAppend(&card, " / ", comment);
  card.resize(kCard, ' ');
  return card;
}

std::string FormatBzero(double bzero) {
  if (bzero == static_cast<double>(static_cast<int64_t>(bzero))) {
    return absl::StrCat(static_cast<int64_t>(bzero));
  }
  return absl::StrFormat("%.17G", bzero);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RenderCards(const Header& header,
                                                     const std::vector<std::string>& skip) {
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::CreateInMemory("the header being written"));
  int status = 0;
  fits_create_img(file.get(), BYTE_IMG, 0, nullptr, &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "creating a header"));
  int before = 0;
  fits_get_hdrspace(file.get(), &before, nullptr, &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "counting header cards"));
  CALIBD_RETURN_IF_ERROR(WriteHeaderCards(file, header, skip));
  int after = 0;
  fits_get_hdrspace(file.get(), &after, nullptr, &status);
  std::vector<std::string> cards;
  cards.reserve(after - before);
  for (int i = before + 1; i <= after && status == 0; ++i) {
    char record[FLEN_CARD] = {0};
    fits_read_record(file.get(), i, record, &status);
    std::string card(record);
    card.resize(kCard, ' ');
    cards.push_back(std::move(card));
  }
  CALIBD_RETURN_IF_ERROR(file.Check(status, "reading the rendered header cards"));
  return cards;
}

absl::StatusOr<ImageFileWriter> ImageFileWriter::Create(const std::string& path, bool overwrite,
                                                        BufferPool* pool, bool direct_io) {
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
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  int fd = -1;
  bool direct = false;
  if (direct_io) {
    fd = ::open(path.c_str(), kFlags | O_DIRECT, 0644);
    direct = fd >= 0;
    // A file system without O_DIRECT refuses with EINVAL: through the page cache instead.
    if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), kFlags, 0644);
  } else {
    fd = ::open(path.c_str(), kFlags, 0644);
  }
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("'", path, "' already exists; remove it or ask to overwrite"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create FITS file '", path, "': ", std::strerror(errno),
                     "; check that the directory exists and is writable"));
  }
  return ImageFileWriter(path, fd, direct, pool);
}

ImageFileWriter::ImageFileWriter(std::string path, int fd, bool direct, BufferPool* pool)
    : path_(std::move(path)), fd_(fd), direct_(direct), pool_(pool) {}

ImageFileWriter::ImageFileWriter(ImageFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      direct_(other.direct_),
      end_(other.end_),
      hdus_(other.hdus_),
      pool_(other.pool_),
      stage_memory_(std::move(other.stage_memory_)),
      stage_(std::exchange(other.stage_, nullptr)),
      stage_capacity_(std::exchange(other.stage_capacity_, 0)),
      staged_(std::exchange(other.staged_, 0)),
      patches_(std::move(other.patches_)) {}

ImageFileWriter::~ImageFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status ImageFileWriter::WriteAt(const void* data, size_t bytes, int64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd_, p, bytes, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && direct_) {
      // The file system took O_DIRECT at open but refuses these writes: the page cache then.
      const int flags = ::fcntl(fd_, F_GETFL);
      if (flags >= 0 && ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) == 0) {
        direct_ = false;
        continue;
      }
    }
    if (n <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "writing '", path_, "' failed: ", n < 0 ? std::strerror(errno) : "no progress",
          "; check the free space"));
    }
    p += n;
    bytes -= static_cast<size_t>(n);
    offset += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<char*> ImageFileWriter::Reserve(size_t n) {
  if (staged_ + n > stage_capacity_) {
    if (stage_ != nullptr) CALIBD_RETURN_IF_ERROR(Flush(/*all=*/false));
    if (staged_ + n > stage_capacity_) {  // the first piece, or one larger than the buffer
      const size_t capacity = std::max(kStageBytes, staged_ + n + kAlign);
      Buffer memory = pool_ != nullptr ? pool_->Acquire(capacity + 2 * kAlign)
                                       : Buffer::Allocate(capacity + 2 * kAlign);
      const uintptr_t p = reinterpret_cast<uintptr_t>(memory.data());
      // Aligned, with room after `capacity` for the zeros of the last block.
      char* stage = reinterpret_cast<char*>((p + kAlign - 1) / kAlign * kAlign);
      if (staged_ > 0) std::memcpy(stage, stage_, staged_);
      stage_memory_ = std::move(memory);
      stage_ = stage;
      stage_capacity_ = capacity;
    }
  }
  return stage_ + staged_;
}

absl::Status ImageFileWriter::Flush(bool all) {
  const int64_t start = end_ - static_cast<int64_t>(staged_);
  size_t n = staged_;
  if (direct_ && !all) n = n / kAlign * kAlign;
  if (n == 0) return absl::OkStatus();
  size_t write = n;
  if (direct_ && n % kAlign != 0) {  // the last block: zeros beyond the end, truncated at Close
    write = (n + kAlign - 1) / kAlign * kAlign;
    std::memset(stage_ + n, 0, write - n);
  }
  CALIBD_RETURN_IF_ERROR(WriteAt(stage_, write, start));
  if (write > n && ::ftruncate(fd_, end_) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("writing '", path_, "' failed: ", std::strerror(errno)));
  }
  std::memmove(stage_, stage_ + n, staged_ - n);
  staged_ -= n;
  return absl::OkStatus();
}

void ImageFileWriter::Patch(int64_t offset, std::string bytes) {
  const int64_t staged_from = end_ - static_cast<int64_t>(staged_);
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (offset + size > staged_from) {  // the part still staged
    const int64_t from = std::max(offset, staged_from);
    std::memcpy(stage_ + (from - staged_from), bytes.data() + (from - offset),
                static_cast<size_t>(offset + size - from));
  }
  if (offset < staged_from) patches_.emplace_back(offset, std::move(bytes));
}

absl::Status ImageFileWriter::Append(const ImageHdu& hdu, Fill fill) {
  if (fd_ < 0) return absl::FailedPreconditionError("the FITS writer is closed");
  const int bytes_per_pixel = std::abs(hdu.bitpix) / 8;
  if (!(hdu.bitpix == 8 || hdu.bitpix == 16 || hdu.bitpix == 32 || hdu.bitpix == 64 ||
        hdu.bitpix == -32 || hdu.bitpix == -64) ||
      hdu.width <= 0 || hdu.height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write an image of BITPIX ", hdu.bitpix,
                                                   ", ", hdu.width, " x ", hdu.height, " to '",
                                                   path_, "'"));
  }
  for (const std::string& card : hdu.cards) {
    if (card.size() != kCard) {
      return absl::InvalidArgumentError("a header card is not 80 characters long");
    }
  }
  // The header: structural cards, the frame's cards, the checksum cards, END.
  std::vector<std::string> cards;
  if (hdus_ == 0) {
    cards.push_back(FixedCard("SIMPLE", "T", "conforms to FITS standard"));
  } else {
    cards.push_back(StringCard("XTENSION", "IMAGE", "IMAGE extension"));
  }
  cards.push_back(FixedCard("BITPIX", absl::StrCat(hdu.bitpix), "array data type"));
  cards.push_back(FixedCard("NAXIS", "2", "number of array dimensions"));
  cards.push_back(FixedCard("NAXIS1", absl::StrCat(hdu.width), ""));
  cards.push_back(FixedCard("NAXIS2", absl::StrCat(hdu.height), ""));
  if (hdus_ == 0) {
    cards.push_back(FixedCard("EXTEND", "T", ""));
  } else {
    cards.push_back(FixedCard("PCOUNT", "0", "number of group parameters"));
    cards.push_back(FixedCard("GCOUNT", "1", "number of groups"));
  }
  if (hdu.bzero != 0) {
    cards.push_back(FixedCard("BZERO", FormatBzero(hdu.bzero), "offset data range"));
    cards.push_back(FixedCard("BSCALE", "1", "default scaling factor"));
  }
  cards.insert(cards.end(), hdu.cards.begin(), hdu.cards.end());
  int checksum_card = -1, datasum_card = -1;
  if (hdu.checksum) {
    checksum_card = static_cast<int>(cards.size());
    cards.push_back(StringCard("CHECKSUM", "0000000000000000", "HDU checksum"));
    datasum_card = static_cast<int>(cards.size());
    cards.push_back(StringCard("DATASUM", "0", "data unit checksum"));
  }
  cards.push_back(std::string("END").append(kCard - 3, ' '));
  const int64_t header_bytes =
      (static_cast<int64_t>(cards.size()) * int64_t{kCard} + kBlock - 1) / kBlock * kBlock;
  auto render = [&] {
    std::string header;
    header.reserve(static_cast<size_t>(header_bytes));
    for (const std::string& card : cards) header += card;
    header.resize(static_cast<size_t>(header_bytes), ' ');
    return header;
  };

  // The header as it is now (placeholder checksums), in pieces if it is long.
  const int64_t header_offset = end_;
  {
    const std::string header = render();
    for (size_t off = 0; off < header.size(); off += kPieceBytes) {
      const size_t n = std::min(kPieceBytes, header.size() - off);
      CALIBD_ASSIGN_OR_RETURN(char* out, Reserve(n));
      std::memcpy(out, header.data() + off, n);
      Commit(n);
      end_ += static_cast<int64_t>(n);
    }
  }

  // The data, in pieces of whole rows (a multiple of 4 rows, so every piece but the last is
  // whole 32-bit words for the checksum); the last piece carries the zero padding.
  const int64_t row_bytes = int64_t{hdu.width} * bytes_per_pixel;
  const int64_t data_bytes = row_bytes * hdu.height;
  const int64_t padded = (data_bytes + kBlock - 1) / kBlock * kBlock;
  int chunk_rows = static_cast<int>(std::max<int64_t>(1, kChunkBytes / row_bytes));
  chunk_rows = std::max(4, chunk_rows / 4 * 4);
  chunk_rows = std::min(chunk_rows, hdu.height);
  const int64_t data_start = end_;
  OnesComplementSum datasum;
  for (int y0 = 0; y0 < hdu.height; y0 += chunk_rows) {
    const int rows = std::min(chunk_rows, hdu.height - y0);
    int64_t n = row_bytes * rows;
    const bool last = y0 + rows == hdu.height;
    const int64_t pad = last ? padded - (end_ - data_start + n) : 0;
    CALIBD_ASSIGN_OR_RETURN(char* buf, Reserve(static_cast<size_t>(n + pad + 4)));
    fill(y0, rows, buf);
    if (pad > 0) std::memset(buf + n, 0, static_cast<size_t>(pad));
    n += pad;
    if (hdu.checksum) datasum.AddBigEndian(buf, static_cast<size_t>((n + 3) / 4 * 4));
    Commit(static_cast<size_t>(n));
    end_ += n;
  }

  if (hdu.checksum) {
    cards[datasum_card] =
        StringCard("DATASUM", absl::StrCat(datasum.value()), "data unit checksum");
    std::string header = render();
    OnesComplementSum sum;
    sum.AddBigEndian(header.data(), header.size());
    sum.Add(datasum.value());
    const std::string encoded = EncodeChecksum(sum.value());
    // The value's 16 characters sit between the quotes at column 11.
    std::memcpy(header.data() + size_t(checksum_card) * kCard + 11, encoded.data(), 16);
    Patch(header_offset, std::move(header));
  }
  ++hdus_;
  return absl::OkStatus();
}

absl::Status ImageFileWriter::Close() {
  if (fd_ < 0) return absl::OkStatus();
  if (stage_ != nullptr) {
    CALIBD_RETURN_IF_ERROR(Flush(/*all=*/true));
    stage_memory_ = Buffer();
    stage_ = nullptr;
    stage_capacity_ = staged_ = 0;
  }
  if (!patches_.empty()) {
    // A few kB each, through the page cache: O_DIRECT would need whole blocks.
    if (direct_) {
      const int flags = ::fcntl(fd_, F_GETFL);
      if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("writing '", path_, "' failed: ", std::strerror(errno)));
      }
      direct_ = false;
    }
    for (const auto& [offset, bytes] : patches_) {
      CALIBD_RETURN_IF_ERROR(WriteAt(bytes.data(), bytes.size(), offset));
    }
    patches_.clear();
  }
  const int rc = ::close(std::exchange(fd_, -1));
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("closing '", path_, "' failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void ImageFileWriter::CloseAndDelete() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  stage_memory_ = Buffer();
  stage_ = nullptr;
  stage_capacity_ = staged_ = 0;
  patches_.clear();
  ::unlink(path_.c_str());
}

}  // namespace calibd::fits
