// Internal to core/store: statuses that are safe to show a client, with the detail for the log
// in a payload (kInternalDetailPayload, see store.h), so SQL text, connection strings and server
// paths never reach a message.
//
//   return internal::WithDetail(absl::StatusCode::kUnavailable,
//                               "catalog database unavailable",
//                               absl::StrCat("postgresql: ", PQerrorMessage(conn)));
//   return internal::Context(status, "reading the master");  // keeps payloads (retryable, detail)
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_STORE_ERRORS_H_
#define CALIBD_CORE_STORE_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace calibd::store::internal {

// A status with `message` for everyone and `detail` (may be "") for the log.
absl::Status WithDetail(absl::StatusCode code, absl::string_view message,
                        absl::string_view detail);

// "<context>: <message>", with every payload of `status` kept.
absl::Status Context(const absl::Status& status, absl::string_view context);

// `status` with every occurrence of `secret` (a server path) in its message replaced by
// `shown`, the original message appended to the detail payload.
absl::Status Redact(const absl::Status& status, absl::string_view secret, absl::string_view shown);

// errno after a failed file operation on a server path → a status naming the operation, not
// the path (the path and strerror go to the detail). ENOENT → NOT_FOUND, ENOSPC/EDQUOT →
// RESOURCE_EXHAUSTED, else UNAVAILABLE.
absl::Status FileError(int err, absl::string_view what, const std::string& path);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_ERRORS_H_
