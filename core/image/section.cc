#include "core/image/section.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace calibd {
namespace {

absl::Status Bad(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad FITS section '", text, "': ", why,
                   " (expected [x1:x2,y1:y2], 1-based and inclusive, e.g. [1:2048,1:4096])"));
}

// One axis: "*", "n", or "a:b" (1-based inclusive, either order) → [lo, hi) 0-based.
absl::Status ParseAxis(absl::string_view text, absl::string_view axis, int size, int* lo, int* hi,
                       bool* reversed) {
  axis = absl::StripAsciiWhitespace(axis);
  *reversed = false;
  if (axis == "*") {
    *lo = 0;
    *hi = size;
    return absl::OkStatus();
  }
  std::vector<absl::string_view> parts = absl::StrSplit(axis, ':');
  if (parts.size() > 2) return Bad(text, "an axis has more than one ':'");
  int64_t a = 0, b = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(parts[0]), &a)) {
    return Bad(text, absl::StrCat("'", parts[0], "' is not an integer"));
  }
  b = a;
  if (parts.size() == 2 && !absl::SimpleAtoi(absl::StripAsciiWhitespace(parts[1]), &b)) {
    return Bad(text, absl::StrCat("'", parts[1], "' is not an integer"));
  }
  if (b < a) {
    std::swap(a, b);
    *reversed = true;
  }
  if (a < 1 || b > size) {
    return Bad(text, absl::StrCat("range ", a, ":", b, " is outside 1:", size));
  }
  *lo = static_cast<int>(a - 1);
  *hi = static_cast<int>(b);
  return absl::OkStatus();
}

}  // namespace

Section FullSection(int width, int height) { return Section{0, width, 0, height}; }

absl::StatusOr<Section> ParseFitsSection(absl::string_view text, int width, int height) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&s, "[") || !absl::ConsumeSuffix(&s, "]")) {
    return Bad(text, "it must be enclosed in [ ]");
  }
  std::vector<absl::string_view> axes = absl::StrSplit(s, ',');
  if (axes.size() != 2) return Bad(text, "it must name two axes");
  Section section;
  absl::Status st = ParseAxis(text, axes[0], width, &section.x0, &section.x1, &section.x_reversed);
  if (!st.ok()) return st;
  st = ParseAxis(text, axes[1], height, &section.y0, &section.y1, &section.y_reversed);
  if (!st.ok()) return st;
  return section;
}

std::string FormatFitsSection(const Section& s) {
  auto axis = [](int lo, int hi, bool reversed) {
    return reversed ? absl::StrCat(hi, ":", lo + 1) : absl::StrCat(lo + 1, ":", hi);
  };
  return absl::StrCat("[", axis(s.x0, s.x1, s.x_reversed), ",", axis(s.y0, s.y1, s.y_reversed),
                      "]");
}

}  // namespace calibd
