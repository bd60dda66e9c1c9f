// The version of this build: the project version (CMake's project(VERSION)) and the git commit
// it was configured from ("unknown" outside a git checkout).
//
//   std::printf("%s\n", VersionString().c_str());   // "calibd 0.1.0 (commit 1a2b3c4)"
//
// Thread safety: constants.
#ifndef CALIBD_SERVER_VERSION_H_
#define CALIBD_SERVER_VERSION_H_

#include <string>

namespace calibd::server {

const char* ProjectVersion();  // "0.1.0"
const char* GitCommit();       // "1a2b3c4" or "unknown"
std::string VersionString();   // "calibd 0.1.0 (commit 1a2b3c4)"

}  // namespace calibd::server

#endif  // CALIBD_SERVER_VERSION_H_
