// Store times: int64 microseconds since the Unix epoch, UTC — the one representation of time in
// the catalog, the selection and the API. This header parses and formats them as ISO-8601.
//
//   ASSIGN_OR_RETURN(int64_t t, store::ParseTime("2026-03-01T02:03:04.5"));   // UTC assumed
//   std::string s = store::FormatTime(t);           // "2026-03-01T02:03:04.500000Z"
//   int64_t now = store::NowMicros();
//
// Accepted: "YYYY-MM-DD", "YYYY-MM-DDThh:mm[:ss[.ffffff]]" with an optional "Z" or "+hh:mm" /
// "-hh:mm" offset (a space may replace the 'T', as in some FITS DATE-OBS values). Fractions
// beyond microseconds are truncated. Anything else is INVALID_ARGUMENT naming the text.
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_STORE_TIME_H_
#define CALIBD_CORE_STORE_TIME_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd::store {

// Microseconds since 1970-01-01T00:00:00Z.
using TimeMicros = int64_t;

constexpr TimeMicros kMicrosPerSecond = 1'000'000;

absl::StatusOr<TimeMicros> ParseTime(absl::string_view text);

// Always UTC with six fractional digits and a trailing 'Z'.
std::string FormatTime(TimeMicros t);

TimeMicros NowMicros();

}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_TIME_H_
