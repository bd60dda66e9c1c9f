#include "server/log.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/store/time.h"

namespace calibd::server {

void LogEvent(absl::string_view event,
              std::initializer_list<std::pair<absl::string_view, std::string>> fields) {
  std::string line = absl::StrCat(store::FormatTime(store::NowMicros()), " event=", event);
  for (const auto& [k, v] : fields) {
    absl::StrAppend(&line, " ", k, "=");
    if (v.empty() || v.find_first_of(" \t\"=\n") != std::string::npos) {
      std::string q = absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
      absl::StrAppend(&line, "\"", q, "\"");
    } else {
      absl::StrAppend(&line, v);
    }
  }
  line.push_back('\n');
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

}  // namespace calibd::server
