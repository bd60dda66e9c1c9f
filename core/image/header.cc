#include "core/image/header.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calibd {
namespace {

absl::Status Missing(absl::string_view key) {
  return absl::NotFoundError(absl::StrCat("header keyword ", key, " is missing"));
}
absl::Status WrongType(absl::string_view key, absl::string_view want, const CardValue& v) {
  return absl::InvalidArgumentError(absl::StrCat("header keyword ", key, " must be ", want,
                                                 ", not '", FormatCardValue(v), "'"));
}

}  // namespace

std::string FormatCardValue(const CardValue& value) {
  struct Visitor {
    std::string operator()(std::monostate) const { return ""; }
    std::string operator()(bool b) const { return b ? "T" : "F"; }
    std::string operator()(int64_t i) const { return absl::StrCat(i); }
    std::string operator()(double d) const {
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
        return absl::StrFormat("%.1f", d);
      }
      return absl::StrFormat("%.17g", d);
    }
    std::string operator()(const std::string& s) const { return s; }
  };
  return std::visit(Visitor{}, value);
}

const HeaderCard* Header::Find(absl::string_view key) const {
  for (const HeaderCard& card : cards_) {
    if (absl::EqualsIgnoreCase(card.key, key)) return &card;
  }
  return nullptr;
}

absl::StatusOr<double> Header::GetDouble(absl::string_view key) const {
  const HeaderCard* card = Find(key);
  if (card == nullptr) return Missing(key);
  if (const double* d = std::get_if<double>(&card->value)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&card->value)) return static_cast<double>(*i);
  return WrongType(key, "a number", card->value);
}

absl::StatusOr<int64_t> Header::GetInt(absl::string_view key) const {
  const HeaderCard* card = Find(key);
  if (card == nullptr) return Missing(key);
  if (const int64_t* i = std::get_if<int64_t>(&card->value)) return *i;
  if (const double* d = std::get_if<double>(&card->value)) {
    if (*d == std::floor(*d) && std::fabs(*d) < 9.0e18) return static_cast<int64_t>(*d);
  }
  return WrongType(key, "an integer", card->value);
}

absl::StatusOr<bool> Header::GetBool(absl::string_view key) const {
  const HeaderCard* card = Find(key);
  if (card == nullptr) return Missing(key);
  if (const bool* b = std::get_if<bool>(&card->value)) return *b;
  return WrongType(key, "a logical (T/F)", card->value);
}

absl::StatusOr<std::string> Header::GetString(absl::string_view key) const {
  const HeaderCard* card = Find(key);
  if (card == nullptr) return Missing(key);
  if (const std::string* s = std::get_if<std::string>(&card->value)) return *s;
  return WrongType(key, "a string", card->value);
}

absl::StatusOr<std::string> Header::GetText(absl::string_view key) const {
  const HeaderCard* card = Find(key);
  if (card == nullptr) return Missing(key);
  return FormatCardValue(card->value);
}

void Header::Set(absl::string_view key, CardValue value, absl::string_view comment) {
  for (HeaderCard& card : cards_) {
    if (absl::EqualsIgnoreCase(card.key, key)) {
      card.value = std::move(value);
      if (!comment.empty()) card.comment = std::string(comment);
      return;
    }
  }
  cards_.push_back(HeaderCard{std::string(key), std::move(value), std::string(comment)});
}

void Header::AddHistory(absl::string_view text) {
  cards_.push_back(HeaderCard{"HISTORY", std::monostate{}, std::string(text)});
}

void Header::AddComment(absl::string_view text) {
  cards_.push_back(HeaderCard{"COMMENT", std::monostate{}, std::string(text)});
}

int Header::Erase(absl::string_view key) {
  const size_t before = cards_.size();
  std::erase_if(cards_, [&](const HeaderCard& c) { return absl::EqualsIgnoreCase(c.key, key); });
  return static_cast<int>(before - cards_.size());
}

}  // namespace calibd
