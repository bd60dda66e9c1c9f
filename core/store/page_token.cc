#include "core/store/page_token.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/store/store.h"

namespace calibd::store::internal {
namespace {

constexpr char kSep = '\x1f';

absl::Status BadToken() {
  return absl::InvalidArgumentError(
      "page_token is not a token of this list: pass the next_page_token of the previous call");
}

}  // namespace

std::string EncodePageToken(absl::string_view list, const std::vector<std::string>& key) {
  std::string raw = absl::StrCat("v1", std::string(1, kSep), list);
  for (const std::string& k : key) absl::StrAppend(&raw, std::string(1, kSep), k);
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<std::vector<std::string>> DecodePageToken(absl::string_view list,
                                                         absl::string_view token, size_t fields) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return BadToken();
  std::vector<std::string> parts = absl::StrSplit(raw, kSep);
  if (parts.size() != fields + 2 || parts[0] != "v1" || parts[1] != list) return BadToken();
  return std::vector<std::string>(parts.begin() + 2, parts.end());
}

absl::StatusOr<int64_t> TokenInt(const std::string& part) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(part, &v)) return BadToken();
  return v;
}

absl::StatusOr<int> EffectivePageSize(int32_t requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size must be >= 0, not ", requested));
  }
  if (requested == 0) return kDefaultPageSize;
  return requested > kMaxPageSize ? kMaxPageSize : requested;
}

}  // namespace calibd::store::internal
