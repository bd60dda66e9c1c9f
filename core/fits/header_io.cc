#include "core/fits/header_io.h"

#include <fitsio.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace calibd::fits {
namespace {

// Keyword followed by digits only (e.g. NAXIS1, TTYPE12).
bool IsIndexed(absl::string_view key, absl::string_view root) {
  if (!absl::StartsWith(key, root) || key.size() == root.size()) return false;
  for (char c : key.substr(root.size())) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string Upper(absl::string_view s) { return absl::AsciiStrToUpper(s); }

// Parses a quoted FITS string starting at text[pos] == '\''. Sets *end past the closing quote.
// Trailing blanks inside the quotes are not significant (FITS 4.0 §4.2.1.1).
bool ParseQuoted(absl::string_view text, size_t pos, std::string* out, size_t* end) {
  if (pos >= text.size() || text[pos] != '\'') return false;
  out->clear();
  size_t i = pos + 1;
  while (i < text.size()) {
    if (text[i] == '\'') {
      if (i + 1 < text.size() && text[i + 1] == '\'') {
        out->push_back('\'');
        i += 2;
        continue;
      }
      *end = i + 1;
      while (!out->empty() && out->back() == ' ') out->pop_back();
      return true;
    }
    out->push_back(text[i]);
    ++i;
  }
  return false;
}

std::string ParseCommentAfter(absl::string_view text, size_t pos) {
  size_t slash = text.find('/', pos);
  if (slash == absl::string_view::npos) return "";
  return std::string(absl::StripAsciiWhitespace(text.substr(slash + 1)));
}

bool IsPrintableAscii(absl::string_view s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) return false;
  }
  return true;
}

// Shortest decimal text that reads back as the same double, in a FITS real form.
std::string FormatDouble(double v) {
  std::array<char, 64> buf;
  auto [ptr, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  std::string s(buf.data(), ptr);
  for (char& c : s) {
    if (c == 'e') c = 'E';
  }
  if (s.find_first_of(".E") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

bool IsStructuralKeyword(absl::string_view key_in, bool compressed) {
  std::string key = Upper(key_in);
  static constexpr absl::string_view kAlways[] = {
      "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "XTENSION",
      "BZERO",  "BSCALE", "CHECKSUM", "DATASUM", "END"};
  for (absl::string_view k : kAlways) {
    if (key == k) return true;
  }
  if (IsIndexed(key, "NAXIS")) return true;
  if (!compressed) return false;
  static constexpr absl::string_view kCompressed[] = {
      "ZIMAGE",   "ZSIMPLE",  "ZTENSION", "ZEXTEND",  "ZBITPIX",  "ZNAXIS",  "ZCMPTYPE",
      "ZMASKCMP", "ZQUANTIZ", "ZDITHER0", "ZPCOUNT",  "ZGCOUNT",  "ZHECKSUM", "ZDATASUM",
      "ZBLOCKED", "ZBLANK",   "ZSCALE",   "ZZERO",    "TFIELDS",  "THEAP"};
  for (absl::string_view k : kCompressed) {
    if (key == k) return true;
  }
  static constexpr absl::string_view kIndexed[] = {"ZNAXIS", "ZTILE", "ZNAME", "ZVAL",
                                                   "TTYPE",  "TFORM", "TUNIT", "TSCAL",
                                                   "TZERO",  "TDIM",  "TNULL", "TDISP"};
  for (absl::string_view k : kIndexed) {
    if (IsIndexed(key, k)) return true;
  }
  return false;
}

absl::StatusOr<Header> ReadHeaderCards(const FitsFile& file, bool compressed) {
  fitsfile* f = file.get();
  int status = 0;
  int nkeys = 0;
  fits_get_hdrspace(f, &nkeys, nullptr, &status);
  if (status != 0) return file.Check(status, "reading the header size");

  std::vector<std::string> records;
  records.reserve(nkeys);
  for (int i = 1; i <= nkeys; ++i) {
    char card[FLEN_CARD] = {0};
    fits_read_record(f, i, card, &status);
    if (status != 0) return file.Check(status, absl::StrCat("reading header card ", i));
    if (!IsPrintableAscii(card)) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("header card ", i,
                                     " has non-ASCII or control characters; FITS headers "
                                     "must be printable ASCII"));
    }
    records.emplace_back(card);
  }

  Header header;
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string& card = records[i];
    std::string key;
    bool hierarch = absl::StartsWith(card, "HIERARCH ");
    size_t eq = absl::string_view::npos;
    if (hierarch) {
      eq = card.find('=');
      if (eq == std::string::npos) {
        key = "HIERARCH";
      } else {
        key = std::string(absl::StripAsciiWhitespace(absl::string_view(card).substr(9, eq - 9)));
      }
    } else {
      key = std::string(absl::StripTrailingAsciiWhitespace(
          absl::string_view(card).substr(0, std::min<size_t>(8, card.size()))));
      if (card.size() >= 10 && card[8] == '=' && card[9] == ' ') eq = 8;
    }
    if (!hierarch && IsStructuralKeyword(key, compressed)) continue;
    if (key == "CONTINUE") {
      // A CONTINUE card whose string did not end with '&' before it: keep its text.
      header.Append(HeaderCard{key, std::monostate{},
                               std::string(absl::StripTrailingAsciiWhitespace(
                                   absl::string_view(card).substr(std::min<size_t>(8, card.size()))))});
      continue;
    }
    if (eq == absl::string_view::npos) {
      // Commentary card: HISTORY, COMMENT, blank keyword, or any keyword without "= ".
      std::string text;
      if (card.size() > 8) {
        text = std::string(absl::StripTrailingAsciiWhitespace(absl::string_view(card).substr(8)));
      }
      header.Append(HeaderCard{key, std::monostate{}, std::move(text)});
      continue;
    }
    // A value card.
    absl::string_view rest = absl::StripLeadingAsciiWhitespace(absl::string_view(card).substr(eq + 1));
    size_t rest_pos = card.size() - rest.size();
    HeaderCard out{key, std::monostate{}, ""};
    if (!rest.empty() && rest[0] == '\'') {
      std::string value;
      size_t end = 0;
      if (!ParseQuoted(card, rest_pos, &value, &end)) {
        return file.Error(absl::StatusCode::kInvalidArgument,
                          absl::StrCat("header card ", i + 1, " (", key,
                                       ") has a string value without its closing quote"));
      }
      std::string comment = ParseCommentAfter(card, end);
      // CONTINUE long strings: a value ending in '&' continues on the next CONTINUE card.
      while (!value.empty() && value.back() == '&' && i + 1 < records.size() &&
             absl::StartsWith(records[i + 1], "CONTINUE")) {
        const std::string& next = records[i + 1];
        size_t q = next.find('\'', 8);
        std::string piece;
        size_t piece_end = 0;
        if (q == std::string::npos || !ParseQuoted(next, q, &piece, &piece_end)) break;
        value.pop_back();
        value += piece;
        std::string more = ParseCommentAfter(next, piece_end);
        if (!more.empty()) comment = comment.empty() ? more : absl::StrCat(comment, " ", more);
        ++i;
      }
      out.value = std::move(value);
      out.comment = std::move(comment);
      header.Append(std::move(out));
      continue;
    }
    char value[FLEN_VALUE] = {0};
    char comment[FLEN_COMMENT] = {0};
    std::string card_copy = card;
    fits_parse_value(card_copy.data(), value, comment, &status);
    if (status != 0) {
      return file.Check(status, absl::StrCat("parsing header card ", i + 1, " (", key, ")"));
    }
    out.comment = comment;
    std::string text(absl::StripAsciiWhitespace(value));
    if (text.empty()) {
      header.Append(std::move(out));  // undefined value
      continue;
    }
    char dtype = 0;
    fits_get_keytype(text.c_str(), &dtype, &status);
    if (status != 0) {
      // Not a FITS value CFITSIO knows: keep the text rather than refusing the file.
      fits_clear_errmsg();
      status = 0;
      dtype = 'C';
    }
    switch (dtype) {
      case 'L':
        out.value = (text == "T");
        break;
      case 'I': {
        int64_t iv = 0;
        if (absl::SimpleAtoi(text, &iv)) {
          out.value = iv;
        } else {
          double dv = 0;
          if (absl::SimpleAtod(text, &dv)) {
            out.value = dv;
          } else {
            out.value = text;
          }
        }
        break;
      }
      case 'F': {
        std::string t = text;
        for (char& c : t) {
          if (c == 'D' || c == 'd') c = 'E';
        }
        double dv = 0;
        if (absl::SimpleAtod(t, &dv)) {
          out.value = dv;
        } else {
          out.value = text;
        }
        break;
      }
      default:  // complex values and anything else: the text as written
        out.value = text;
        break;
    }
    header.Append(std::move(out));
  }
  return header;
}

absl::Status WriteHeaderCards(const FitsFile& file, const Header& header,
                              const std::vector<std::string>& skip) {
  fitsfile* f = file.get();
  int status = 0;
  for (const HeaderCard& card : header.cards()) {
    if (IsStructuralKeyword(card.key, /*compressed=*/true)) continue;
    bool skipped = false;
    for (const std::string& s : skip) {
      if (absl::EqualsIgnoreCase(s, card.key)) skipped = true;
    }
    if (skipped) continue;
    const std::string* text = std::get_if<std::string>(&card.value);
    if (!IsPrintableAscii(card.key) || !IsPrintableAscii(card.comment) ||
        (text != nullptr && !IsPrintableAscii(*text))) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("header card '", card.key,
                                     "' has non-ASCII or control characters, which FITS "
                                     "cannot store; use printable ASCII"));
    }
    if (card.key.empty() && std::holds_alternative<std::monostate>(card.value)) {
      std::string record = absl::StrCat("        ", card.comment);
      fits_write_record(f, record.c_str(), &status);
    } else if (card.key == "HISTORY" && std::holds_alternative<std::monostate>(card.value)) {
      fits_write_history(f, card.comment.c_str(), &status);
    } else if (card.key == "COMMENT" && std::holds_alternative<std::monostate>(card.value)) {
      fits_write_comment(f, card.comment.c_str(), &status);
    } else {
      const char* comment = card.comment.empty() ? nullptr : card.comment.c_str();
      std::visit(
          [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
              fits_write_key_null(f, card.key.c_str(), comment, &status);
            } else if constexpr (std::is_same_v<T, bool>) {
              fits_write_key_log(f, card.key.c_str(), v ? 1 : 0, comment, &status);
            } else if constexpr (std::is_same_v<T, int64_t>) {
              LONGLONG value = v;
              fits_write_key_lng(f, card.key.c_str(), value, comment, &status);
            } else if constexpr (std::is_same_v<T, double>) {
              if (!std::isfinite(v)) {
                fits_write_key_null(f, card.key.c_str(), comment, &status);
              } else {
                std::string value = FormatDouble(v);
                char record[FLEN_CARD] = {0};
                fits_make_key(card.key.c_str(), value.data(), comment, record, &status);
                if (status == 0) fits_write_record(f, record, &status);
              }
            } else {
              fits_write_key_longstr(f, card.key.c_str(), v.c_str(), comment, &status);
            }
          },
          card.value);
    }
    if (status != 0) {
      return file.Check(status, absl::StrCat("writing header card '", card.key, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace calibd::fits
