// The version of this build of calibd's tools and the git commit it was built from, for
// `--version`. The commit is read at build time (a rebuild after a commit picks it up); a build
// outside a git checkout says "unknown", one with uncommitted changes ends in "-dirty".
//
//   std::printf("calibctl %s (commit %s)\n", build_info::Version(), build_info::GitCommit());
//
// Thread safety: constant strings.
#ifndef CALIBD_CLIENT_BUILD_INFO_H_
#define CALIBD_CLIENT_BUILD_INFO_H_

namespace calibd::build_info {

const char* Version();    // the CMake project version, e.g. "0.1.0"
const char* GitCommit();  // e.g. "18de0d3a4b5c" or "18de0d3a4b5c-dirty" or "unknown"

}  // namespace calibd::build_info

#endif  // CALIBD_CLIENT_BUILD_INFO_H_
