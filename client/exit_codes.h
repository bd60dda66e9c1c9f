// calibctl's exit status: one code per class of failure, sysexits-style, so a script can tell
// "fix your command line" from "the server is down, retry" from "you may not do that".
//
//   absl::Status s = client->GetMaster(...).status();
//   return s.ok() ? kExitOk : ExitCodeFor(s.code());   // NOT_FOUND → 66
//
//   code  name          when (absl/gRPC status codes)
//   0     ok
//   1     not serving   `calibctl health`: the server answered but is not SERVING
//   64    usage         bad command line: unknown flag, missing argument, malformed value
//   65    data          the input or the request was refused: INVALID_ARGUMENT, OUT_OF_RANGE,
//                       FAILED_PRECONDITION, ALREADY_EXISTS
//   66    not found     NOT_FOUND (an input file, a detector, a master, a version)
//   69    unavailable   UNAVAILABLE (no server, connection lost, server draining)
//   70    internal      INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED (a bug on either side)
//   74    I/O           DATA_LOSS (bytes that do not hash to their sha256, a corrupt blob)
//   75    try again     DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED (transient; retry)
//   77    permission    PERMISSION_DENIED, UNAUTHENTICATED
//
// Thread safety: pure functions.
#ifndef CALIBD_CLIENT_EXIT_CODES_H_
#define CALIBD_CLIENT_EXIT_CODES_H_

#include <string>

#include "absl/status/status.h"

namespace calibd::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitNotServing = 1;
inline constexpr int kExitUsage = 64;        // EX_USAGE
inline constexpr int kExitData = 65;         // EX_DATAERR
inline constexpr int kExitNotFound = 66;     // EX_NOINPUT
inline constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE
inline constexpr int kExitInternal = 70;     // EX_SOFTWARE
inline constexpr int kExitIo = 74;           // EX_IOERR
inline constexpr int kExitTryAgain = 75;     // EX_TEMPFAIL
inline constexpr int kExitPermission = 77;   // EX_NOPERM

// The exit code of a failure with this code; kExitOk for OK.
int ExitCodeFor(absl::StatusCode code);

// The table above as printed at the end of `calibctl --help`.
std::string ExitCodesHelp();

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_EXIT_CODES_H_
