// ImageFileWriter: writes uncompressed 2-D image HDUs straight to a file — headers as 80-byte
// cards (the structural ones formatted here, the frame's own cards rendered by CFITSIO exactly
// as header_io writes them), pixels converted to big-endian in pieces of ~1 MB and written
// with large pwrites, CHECKSUM/DATASUM computed from the bytes as they are written (no
// re-read). Used inside core/fits by WriteCalibratedFrame; other modules use fits.h.
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
                                                BufferPool* pool = nullptr);

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

 private:
  ImageFileWriter(std::string path, int fd, BufferPool* pool);
  absl::Status WriteAt(const void* data, size_t bytes, int64_t offset);

  std::string path_;
  int fd_ = -1;
  int64_t end_ = 0;  // bytes written so far (a multiple of 2880)
  int hdus_ = 0;
  BufferPool* pool_ = nullptr;
};

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_IMAGE_WRITER_H_
