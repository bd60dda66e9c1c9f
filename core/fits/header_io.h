// Header cards between CFITSIO and calibd's Header: reading the cards of the current HDU
// (typed values, HISTORY/COMMENT, HIERARCH keywords, CONTINUE long strings; structural
// keywords left out) and writing a Header's cards into the current HDU. Used inside
// core/fits; other modules use fits.h.
//
//   ASSIGN_OR_RETURN(Header header, ReadHeaderCards(file, /*compressed=*/false));
//   RETURN_IF_ERROR(WriteHeaderCards(file, header, /*skip=*/{"BUNIT"}));
//
// Structural keywords (SIMPLE, BITPIX, NAXISn, EXTEND, PCOUNT, GCOUNT, XTENSION, BZERO,
// BSCALE, CHECKSUM, DATASUM; and for tile-compressed images the Z* and table keywords) are
// CFITSIO's business: skipped when reading, never written from a Header.
//
// Writing: doubles use the shortest text that reads back to the same double (always with a
// '.' or 'E', so they read back as doubles); non-finite doubles, which FITS cannot hold, are
// written as undefined values. Strings longer than one card use the CONTINUE convention;
// keywords longer than 8 characters or with spaces use HIERARCH. HISTORY/COMMENT text longer
// than 72 characters is split over several cards (and reads back as several cards).
//
// Thread safety: as FitsFile (one thread per file).
#ifndef CALIBD_CORE_FITS_HEADER_IO_H_
#define CALIBD_CORE_FITS_HEADER_IO_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/fits/fits_file.h"
#include "core/image/header.h"

namespace calibd::fits {

// True for keywords CFITSIO writes itself (see above). `compressed` adds the tile-compression
// and binary-table keywords.
bool IsStructuralKeyword(absl::string_view key, bool compressed);

absl::StatusOr<Header> ReadHeaderCards(const FitsFile& file, bool compressed);

// Writes every non-structural card except those whose keyword is in `skip` (case-insensitive).
// INVALID_ARGUMENT for text FITS cannot hold (non-printable or non-ASCII characters).
absl::Status WriteHeaderCards(const FitsFile& file, const Header& header,
                              const std::vector<std::string>& skip = {});

}  // namespace calibd::fits

#endif  // CALIBD_CORE_FITS_HEADER_IO_H_
