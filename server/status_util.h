// The one place where an absl::Status (what core/ and the server's implementation classes
// return) becomes a grpc::Status (what goes on the wire), and what a client may see of it.
//
// The code is carried over one to one (absl and gRPC share the canonical code numbers). The
// message a client gets is safe to show anyone:
//   - UNAVAILABLE, INTERNAL, UNKNOWN and DATA_LOSS get a fixed sentence per code: their detail
//     (SQL text, file paths, connection strings, errno strings) stays in the server's log;
//   - every other message has absolute paths and URLs with credentials replaced (`<path>`,
//     `<url>`, `password=<hidden>`) and is capped at kMaxStatusMessageBytes at a UTF-8 boundary;
//   - every error ends in "[request id <id>]"; the same id is on the server's log line and in
//     the trailing metadata `calibd-request-id` (kRequestIdMetadata).
//
//   const std::string id = NewRequestId();
//   grpc::Status wire = ToGrpcStatus(absl::UnavailableError("SELECT ... failed: /var/x"), id);
//   // wire.error_message() == "the calibration service or its store is unavailable; retry "
//   //                         "shortly [request id 3f2a...]"
//   std::string detail = LogDetail(absl::UnavailableError("SELECT ..."));  // for the log only
//
// Thread safety: pure functions (NewRequestId uses a thread-local generator).
#ifndef CALIBD_SERVER_STATUS_UTIL_H_
#define CALIBD_SERVER_STATUS_UTIL_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace calibd::server {

// Messages longer than this are cut (at a UTF-8 boundary) and end in "…".
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// Trailing metadata key carrying the call's request id.
inline constexpr char kRequestIdMetadata[] = "calibd-request-id";

// The status payload under which core/store attach detail meant for the log, not the client.
inline constexpr char kInternalDetailPayload[] = "calibd.internal_detail";

// A fresh request id: 16 lowercase hex digits.
std::string NewRequestId();

// `status` as the client may see it (see the header comment). OK stays OK with no message.
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view request_id);

// Everything about `status` for the server's log: its message and, when present, the
// kInternalDetailPayload.
std::string LogDetail(const absl::Status& status);

// `message` with absolute paths, URLs and password=… values replaced.
std::string ScrubMessage(absl::string_view message);

// `message` cut to kMaxStatusMessageBytes at a UTF-8 character boundary.
std::string CapMessage(absl::string_view message);

// The canonical name of a gRPC code ("OK", "INVALID_ARGUMENT", ...), absl's spelling.
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_STATUS_UTIL_H_
