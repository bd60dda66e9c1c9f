// FitsFile: the RAII owner of one CFITSIO handle (`fitsfile*`) on a file on disk, closed when
// destroyed, and the one place where CFITSIO status codes become absl::Status (with the file,
// the current HDU and CFITSIO's own error-message stack). Used inside core/fits; other modules
// use fits.h.
//
//   ASSIGN_OR_RETURN(FitsFile file, FitsFile::OpenForRead("/data/raw/x.fits"));
//   int status = 0;
//   fits_movabs_hdu(file.get(), 2, nullptr, &status);
//   RETURN_IF_ERROR(file.Check(status, "moving to HDU 1"));
//
// Files are opened with fits_open_diskfile / fits_create_diskfile: no extended-filename syntax
// (a path with '[' or '!' means just that file), never the memory or compression drivers.
//
// Thread safety: a FitsFile is used by one thread at a time. Distinct FitsFiles may be used
// concurrently: Debian's CFITSIO is built reentrant (fits_is_reentrant() == 1). CFITSIO's
// error-message stack is process-wide, so under concurrency a message may carry a line from
// another thread's failure; the status code is always this call's own.
#ifndef CALIBD_CORE_FITS_FITS_FILE_H_
#define CALIBD_CORE_FITS_FITS_FILE_H_

#include <fitsio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd::fits {

class FitsFile {
 public:
  // Opens an existing file read-only. NOT_FOUND if it does not exist; INVALID_ARGUMENT if it
  // is not a regular file, is empty, does not start with a FITS primary header ("SIMPLE  ="
  // in the first card), or fails ScanFitsStructure — all checked before CFITSIO sees a byte.
  static absl::StatusOr<FitsFile> OpenForRead(const std::string& path);
  // Creates a new file. ALREADY_EXISTS if it exists and !overwrite (with overwrite it is
  // removed first).
  static absl::StatusOr<FitsFile> Create(const std::string& path, bool overwrite);
  // An existing FITS file we wrote ourselves, opened read-write to append HDUs after its last
  // one (not scanned as hostile input). NOT_FOUND if it does not exist.
  static absl::StatusOr<FitsFile> OpenForAppend(const std::string& path);
  // A new FITS file in memory (CFITSIO's memory driver), freed when closed: for rendering
  // header cards exactly as CFITSIO writes them. `name` appears in error messages.
  static absl::StatusOr<FitsFile> CreateInMemory(const std::string& name);

  FitsFile() = default;
  FitsFile(FitsFile&& other) noexcept;
  FitsFile& operator=(FitsFile&& other) noexcept;
  FitsFile(const FitsFile&) = delete;
  FitsFile& operator=(const FitsFile&) = delete;
  ~FitsFile();

  fitsfile* get() const { return fptr_; }
  // The descriptor of a file opened for reading (CFITSIO reads through it too); -1 otherwise.
  // For direct reads of uncompressed pixels with pread.
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Size of the file when it was opened for reading (bytes).
  int64_t file_size() const { return file_size_; }

  // Closes (flushing what was written). Returns CFITSIO's error if the flush failed.
  absl::Status Close();
  // Closes and removes the file: what a writer does on any failure.
  void CloseAndDelete();

  // OK for status 0; else an error with `code`, saying `what` failed, the file, the current
  // HDU (0-based index and EXTNAME) and CFITSIO's messages. Clears CFITSIO's message stack.
  absl::Status Check(int status, absl::string_view what,
                     absl::StatusCode code = absl::StatusCode::kInvalidArgument) const;
  // An error of `code` with the same context but our own message (no CFITSIO status).
  absl::Status Error(absl::StatusCode code, absl::string_view message) const;
  // "HDU 1 'UNCERT'" for the current HDU.
  std::string HduDescription() const;

 private:
  // Closes the handle and the descriptor; CFITSIO's status of closing.
  int Release();

  // The buffer of an in-memory file: CFITSIO keeps pointers to both fields and reallocates
  // the data, so they live on the heap, at addresses that moves do not change.
  struct Memory {
    void* data = nullptr;
    size_t size = 0;
  };

  fitsfile* fptr_ = nullptr;
  std::unique_ptr<Memory> memory_;
  int fd_ = -1;  // our descriptor of a file opened for reading (CFITSIO reads through it)
  std::string path_;
  int64_t file_size_ = 0;
};

// Walks every HDU header of an open file (`fd`, `file_size` bytes) before CFITSIO parses any:
// INVALID_ARGUMENT for a header without END, non-printable or non-ASCII header bytes, or
// values CFITSIO cannot survive (NAXIS > 99 overflows its axis cache, ZNAXIS > 6). Stops at
// an HDU whose data run past the end of the file (that HDU's own checks report it).
absl::Status ScanFitsStructure(int fd, const std::string& path, int64_t file_size);

// CFITSIO's text for `status` plus its error-message stack, joined with "; "; clears the stack.
std::string CfitsioMessage(int status);

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_FITS_FILE_H_
