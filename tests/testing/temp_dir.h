// TempDir: a fresh directory under $TEST_TMPDIR (or /tmp), removed with everything in it when
// the object goes away. RunCommand: runs a shell command, returning its exit code and output.
//
//   TempDir dir;
//   std::string path = dir.File("bias.fits");
//   ASSERT_OK_AND_ASSIGN(CommandResult r, RunCommand(PythonCommand("tests/oracle/x.py", {path})));
//
// Thread safety: a TempDir belongs to one test.
#ifndef CALIBD_TESTS_TESTING_TEMP_DIR_H_
#define CALIBD_TESTS_TESTING_TEMP_DIR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace calibd::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

// Runs `command` with /bin/sh; fails only if it could not be started.
absl::StatusOr<CommandResult> RunCommand(const std::string& command);

// "/usr/bin/python3 <source dir>/<script> 'arg' ..." with arguments shell-quoted.
std::string PythonCommand(const std::string& script_relative_to_source,
                          const std::vector<std::string>& args);

// Absolute path of a file in the source tree.
std::string SourcePath(const std::string& relative);

}  // namespace calibd::testing

#endif  // CALIBD_TESTS_TESTING_TEMP_DIR_H_
