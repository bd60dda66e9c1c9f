// Section: a rectangle of a frame, parsed from the FITS/IRAF notation used by BIASSEC,
// TRIMSEC, DATASEC ("[x1:x2,y1:y2]": 1-based, inclusive, x = NAXIS1 = column).
//
//   ASSIGN_OR_RETURN(Section trim, ParseFitsSection("[1:2048,*]", width, height));
//   for (int y = trim.y0; y < trim.y1; ++y) ... columns trim.x0 .. trim.x1-1 ...
//
// Reversed ranges ("[100:1,*]") are allowed and mark the axis as flipped; `*` is the whole
// axis; a single number is one pixel. Out-of-bounds or empty ranges are INVALID_ARGUMENT.
//
// Thread safety: value type and pure functions.
#ifndef CALIBD_CORE_IMAGE_SECTION_H_
#define CALIBD_CORE_IMAGE_SECTION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd {

struct Section {
  // 0-based, half-open: columns [x0, x1), rows [y0, y1).
  int x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  bool x_reversed = false;  // the text listed the x range high to low
  bool y_reversed = false;

  int width() const { return x1 - x0; }
  int height() const { return y1 - y0; }
  bool Contains(const Section& other) const {
    return other.x0 >= x0 && other.x1 <= x1 && other.y0 >= y0 && other.y1 <= y1;
  }
  // Non-empty and inside a frame of width × height pixels.
  bool InFrame(int width, int height) const {
    return x0 >= 0 && y0 >= 0 && x1 <= width && y1 <= height && x0 < x1 && y0 < y1;
  }
  bool operator==(const Section&) const = default;
};

// The whole frame.
Section FullSection(int width, int height);

// Parses `text` against a frame of width × height pixels.
absl::StatusOr<Section> ParseFitsSection(absl::string_view text, int width, int height);

// Back to FITS notation, 1-based inclusive, keeping reversed axes reversed.
std::string FormatFitsSection(const Section& section);

}  // namespace calibd

#endif  // CALIBD_CORE_IMAGE_SECTION_H_
