// The one place where an absl::Status (what core/ and the server's implementation classes
// return) becomes a grpc::Status (what goes on the wire). The code is carried over one to one
// (absl and gRPC share the canonical code numbers); the message is capped so a long error
// (e.g. a CFITSIO error stack) cannot blow up trailers.
//
//   grpc::Status s = ToGrpcStatus(impl.Certify(request));
//   reactor->Finish(s);
//
// Thread safety: pure functions.
#ifndef CALIBD_SERVER_STATUS_UTIL_H_
#define CALIBD_SERVER_STATUS_UTIL_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace calibd::server {

// Messages longer than this are cut (at a UTF-8 boundary) and end in "…".
inline constexpr size_t kMaxStatusMessageBytes = 1024;

grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse, for in-stream per-frame statuses and tests.
absl::Status FromGrpcStatus(const grpc::Status& status);

// `message` cut to kMaxStatusMessageBytes at a UTF-8 character boundary.
std::string CapMessage(absl::string_view message);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_STATUS_UTIL_H_
