// Header: the ordered FITS header cards of a frame (keyword, typed value, comment), with
// HISTORY and COMMENT cards and HIERARCH (long or mixed-case) keywords.
//
//   Header h;
//   h.Set("EXPTIME", 30.0, "exposure time [s]");
//   h.Set("IMAGETYP", "object");
//   h.AddHistory("bias subtracted with bias v3");
//   absl::StatusOr<double> t = h.GetDouble("exptime");   // keywords match case-insensitively
//
// Typed getters: NOT_FOUND when the keyword is absent, INVALID_ARGUMENT when its value has
// another type (an integer is accepted where a double is asked for; a string is never parsed).
//
// Thread safety: a value type; const methods may be called concurrently.
#ifndef CALIBD_CORE_IMAGE_HEADER_H_
#define CALIBD_CORE_IMAGE_HEADER_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd {

// No value (a COMMENT/HISTORY/blank card, or an undefined keyword), then the FITS value types.
using CardValue = std::variant<std::monostate, bool, int64_t, double, std::string>;

struct HeaderCard {
  std::string key;  // as written, e.g. "EXPTIME", "HISTORY", "ESO DET CHIP NAME"
  CardValue value;  // for HISTORY/COMMENT the text is in `comment`
  std::string comment;
};

class Header {
 public:
  const std::vector<HeaderCard>& cards() const { return cards_; }
  bool empty() const { return cards_.empty(); }

  // The first card with this keyword (case-insensitive), or nullptr.
  const HeaderCard* Find(absl::string_view key) const;
  bool Has(absl::string_view key) const { return Find(key) != nullptr; }

  absl::StatusOr<double> GetDouble(absl::string_view key) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  // The value as text whatever its type ("30", "30.5", "T", "object"), for configuration
  // matching and display. NOT_FOUND when absent.
  absl::StatusOr<std::string> GetText(absl::string_view key) const;

  // Replaces the first card with this keyword (keeping its place), or appends one.
  // One overload per FITS type, so a double never narrows to an integer or a bool widens.
  void Set(absl::string_view key, CardValue value, absl::string_view comment = "");
  void Set(absl::string_view key, double value, absl::string_view comment = "") {
    Set(key, CardValue(value), comment);
  }
  void Set(absl::string_view key, bool value, absl::string_view comment = "") {
    Set(key, CardValue(value), comment);
  }
  void Set(absl::string_view key, int64_t value, absl::string_view comment = "") {
    Set(key, CardValue(value), comment);
  }
  void Set(absl::string_view key, int value, absl::string_view comment = "") {
    Set(key, CardValue(int64_t{value}), comment);
  }
  void Set(absl::string_view key, std::string value, absl::string_view comment = "") {
    Set(key, CardValue(std::move(value)), comment);
  }
  void Set(absl::string_view key, const char* value, absl::string_view comment = "") {
    Set(key, CardValue(std::string(value)), comment);
  }
  void AddHistory(absl::string_view text);
  void AddComment(absl::string_view text);
  // Appends a card as is (duplicates allowed, as FITS files have them).
  void Append(HeaderCard card) { cards_.push_back(std::move(card)); }
  // Removes every card with this keyword; returns how many.
  int Erase(absl::string_view key);

 private:
  std::vector<HeaderCard> cards_;
};

// The value formatted as FITS would show it: T/F, integers, doubles with full precision.
std::string FormatCardValue(const CardValue& value);

}  // namespace calibd

#endif  // CALIBD_CORE_IMAGE_HEADER_H_
