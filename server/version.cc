#include "server/version.h"

#include "absl/strings/str_cat.h"

#ifndef CALIBD_VERSION
#define CALIBD_VERSION "unknown"
#endif
#ifndef CALIBD_GIT_COMMIT
#define CALIBD_GIT_COMMIT "unknown"
#endif

namespace calibd::server {

const char* ProjectVersion() { return CALIBD_VERSION; }
const char* GitCommit() { return CALIBD_GIT_COMMIT; }
std::string VersionString() {
  return absl::StrCat("calibd ", ProjectVersion(), " (commit ", GitCommit(), ")");
}

}  // namespace calibd::server
