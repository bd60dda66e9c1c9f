#include "client/exit_codes.h"

namespace calibd::client {

int ExitCodeFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return kExitData;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnavailable:
      return kExitUnavailable;
    case absl::StatusCode::kDataLoss:
      return kExitIo;
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
      return kExitTryAgain;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kExitPermission;
    default:  // INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED, and codes yet to come
      return kExitInternal;
  }
}

std::string ExitCodesHelp() {
  return "exit status:\n"
         "  0   ok\n"
         "  1   health: the server answered but is not SERVING\n"
         "  64  usage: bad command line (unknown flag, missing argument, malformed value)\n"
         "  65  data: the input or request was refused (INVALID_ARGUMENT, OUT_OF_RANGE,\n"
         "      FAILED_PRECONDITION, ALREADY_EXISTS)\n"
         "  66  not found (NOT_FOUND: a file, detector, master or version)\n"
         "  69  unavailable (UNAVAILABLE: no server, connection lost, draining)\n"
         "  70  internal (INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED)\n"
         "  74  I/O (DATA_LOSS: bytes that do not match their sha256)\n"
         "  75  try again (DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED)\n"
         "  77  permission (PERMISSION_DENIED, UNAUTHENTICATED)\n"
         "calibrate and build exit with the class of the first failed frame.\n";
}

}  // namespace calibd::client
