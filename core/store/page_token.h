// Internal to core/store: opaque page tokens (AIP-158) — base64url of a list's name and the last
// key returned, so the next page continues after that key (keyset paging: stable under
// concurrent inserts, no OFFSET).
//
//   std::string t = internal::EncodePageToken("masters", {series_id, version});
//   ASSIGN_OR_RETURN(std::vector<std::string> key, internal::DecodePageToken("masters", t, 2));
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_STORE_PAGE_TOKEN_H_
#define CALIBD_CORE_STORE_PAGE_TOKEN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd::store::internal {

std::string EncodePageToken(absl::string_view list, const std::vector<std::string>& key);

// The key of a token made by EncodePageToken(list, key with `fields` parts). INVALID_ARGUMENT for
// anything else (garbage, another list's token, the wrong number of parts).
absl::StatusOr<std::vector<std::string>> DecodePageToken(absl::string_view list,
                                                         absl::string_view token, size_t fields);

// A decoded key part as an integer (INVALID_ARGUMENT when it is not one).
absl::StatusOr<int64_t> TokenInt(const std::string& part);

// The page size to use for `requested` (0 → default, capped at the maximum; < 0 →
// INVALID_ARGUMENT).
absl::StatusOr<int> EffectivePageSize(int32_t requested);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_PAGE_TOKEN_H_
