// RunCalibctl: the build tree's calibctl as a user runs it, for end-to-end tests — its exit
// code, stdout and stderr kept apart. CALIBD_TOKEN and CALIBD_SERVER are unset, so the
// environment of whoever runs the tests cannot change the call; pass --server (and --token)
// in `args`.
//
//   TempDir dir;
//   CliRun r = RunCalibctl(dir, {"--server", server->address(), "ls"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//   EXPECT_THAT(ReadFile(dir.File("x.json")), HasSubstr("demo/ccd0"));
//
// Thread safety: calls may run concurrently (each keeps its output in its own files).
#ifndef CALIBD_TESTS_TESTING_CALIBCTL_RUNNER_H_
#define CALIBD_TESTS_TESTING_CALIBCTL_RUNNER_H_

#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace calibd::testing {

struct CliRun {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// `s` as one /bin/sh word.
std::string ShellQuote(const std::string& s);

// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);

// calibctl `args`; its output files go under `dir`. A command that could not be started is a
// test failure (and exit_code stays -1).
CliRun RunCalibctl(const TempDir& dir, const std::vector<std::string>& args);

}  // namespace calibd::testing

#endif  // CALIBD_TESTS_TESTING_CALIBCTL_RUNNER_H_
