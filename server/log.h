// Structured log lines on stderr: one line per event, `key=value` pairs (values with spaces or
// quotes are quoted), starting with an ISO-8601 UTC time and the event name.
//
//   LogEvent("rpc", {{"method", "Certify"}, {"code", "OK"}, {"ms", "3.2"}});
//   // 2026-03-01T02:03:04.123456Z event=rpc method=Certify code=OK ms=3.2
//
// Thread safety: may be called from any thread; each line is written with one write(2).
#ifndef CALIBD_SERVER_LOG_H_
#define CALIBD_SERVER_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace calibd::server {

void LogEvent(absl::string_view event,
              std::initializer_list<std::pair<absl::string_view, std::string>> fields);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_LOG_H_
