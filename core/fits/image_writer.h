// ImageFileWriter: writes uncompressed 2-D image HDUs straight to a file — headers as 80-byte
// cards (the structural ones formatted here, the frame's own cards rendered by CFITSIO exactly
// as header_io writes them), pixels converted to big-endian in pieces of ~1 MB, CHECKSUM/DATASUM
// computed from the bytes as they are converted (no re-read). The file is one sequential
// stream through a staging buffer written with ~8 MB pwrites; each header goes out with
// placeholder checksum cards and is patched once its data are summed (in the staging buffer
// when it is still there, else by a small pwrite at Close).
//
// direct_io opens the file O_DIRECT: the kernel DMAs the staging buffer to the device instead
// of copying it into fresh page-cache pages — on this kind of VM that copy (first touch of new
// pages) was ~80 % of calibctl's write time (~200 ms of CPU per 176 MB frame), O_DIRECT costs
// almost no CPU. Writes are then 4096-aligned (the file is padded and truncated back at Close);
// file systems that refuse O_DIRECT (tmpfs, some FUSE) are written through the page cache.
// Used inside core/fits by WriteCalibratedFrame; other modules use fits.h.
//
//   ASSIGN_OR_RETURN(ImageFileWriter w, ImageFileWriter::Create(path, /*overwrite=*/false));
//   ImageHdu hdu{.bitpix = -32, .width = 4096, .height = 4096};
//   hdu.cards = {{"EXTNAME", "UNCERT", ...}};          // or RenderCards(header)
//   RETURN_IF_ERROR(w.Append(hdu, [&](int y0, int rows, void* out) { ... big-endian ... }));
//   RETURN_IF_ERROR(w.Close());          // on any error: w.CloseAndDelete()
//
// The first HDU appended is the primary one (SIMPLE = T, EXTEND = T); the others are IMAGE
// extensions (PCOUNT = 0, GCOUNT = 1). A file without checksums differs only in those cards.
//
// Thread safety: one thread per writer.
#ifndef CALIBD_CORE_FITS_IMAGE_WRITER_H_
#define CALIBD_CORE_FITS_IMAGE_WRITER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/image/buffer_pool.h"
#include "core/image/header.h"

namespace calibd::fits {

struct ImageHdu {
  int bitpix = -32;  // 8, 16, 32, 64, -32, -64
  int width = 0;
  int height = 0;
  double bzero = 0;  // written (with BSCALE = 1) when not 0, e.g. 32768 for uint16
  // Every card after the structural ones, 80 characters each, in order (RenderCards).
  std::vector<std::string> cards;
  bool checksum = true;
};

// The cards of `header` (all but the structural keywords and those in `skip`), as CFITSIO's
// keyword writers format them (see header_io.h). INVALID_ARGUMENT for text FITS cannot hold.
absl::StatusOr<std::vector<std::string>> RenderCards(const Header& header,
                                                     const std::vector<std::string>& skip = {});

class ImageFileWriter {
 public:
  // ALREADY_EXISTS if the file exists and !overwrite; INVALID_ARGUMENT if it cannot be created.
  static absl::StatusOr<ImageFileWriter> Create(const std::string& path, bool overwrite,
                                                BufferPool* pool = nullptr,
                                                bool direct_io = false);

  ImageFileWriter(ImageFileWriter&& other) noexcept;
  ImageFileWriter& operator=(ImageFileWriter&& other) = delete;
  ImageFileWriter(const ImageFileWriter&) = delete;
  ImageFileWriter& operator=(const ImageFileWriter&) = delete;
  ~ImageFileWriter();  // closes; a writer not Close()d leaves whatever was written

  // fill(y0, rows, out) writes rows [y0, y0 + rows) of the image into `out` in FITS byte
  // order (big-endian, BZERO already subtracted): rows × width × |bitpix|/8 bytes.
  using Fill = absl::FunctionRef<void(int y0, int rows, void* out)>;
  absl::Status Append(const ImageHdu& hdu, Fill fill);

  // Flushes and closes. INVALID_ARGUMENT (with errno's text) if the kernel refuses.
  absl::Status Close();
  // Closes and removes the file.
  void CloseAndDelete();

  const std::string& path() const { return path_; }
  // Whether the file is written with O_DIRECT (asked for, and the file system took it).
  bool direct() const { return direct_; }

 private:
  ImageFileWriter(std::string path, int fd, bool direct, BufferPool* pool);
  absl::Status WriteAt(const void* data, size_t bytes, int64_t offset);
  // Room for `n` more bytes at the end of the stream (flushing staged bytes first if needed);
  // Commit(n) then appends them.
  absl::StatusOr<char*> Reserve(size_t n);
  void Commit(size_t n) { staged_ += n; }
  // Writes the staged bytes: every whole 4096-byte block (direct) or all of them.
  absl::Status Flush(bool all);
  // Replaces the stream's bytes at [offset, offset + bytes.size()) (already appended).
  void Patch(int64_t offset, std::string bytes);

  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  int64_t end_ = 0;  // bytes of the stream so far (a multiple of 2880 between HDUs)
  int hdus_ = 0;
  BufferPool* pool_ = nullptr;
  Buffer stage_memory_;
  char* stage_ = nullptr;        // 4096-aligned, inside stage_memory_
  size_t stage_capacity_ = 0;
  size_t staged_ = 0;            // bytes in stage_; stage_[0] is at offset end_ - staged_
  std::vector<std::pair<int64_t, std::string>> patches_;  // headers already flushed
};

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_IMAGE_WRITER_H_
