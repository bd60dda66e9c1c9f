#include "tests/testing/temp_dir.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

#ifndef CALIBD_SOURCE_DIR
#define CALIBD_SOURCE_DIR "."
#endif
#ifndef CALIBD_PYTHON
#define CALIBD_PYTHON "/usr/bin/python3"
#endif

namespace calibd::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/calibd-test-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

absl::StatusOr<CommandResult> RunCommand(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run: ", command));
  CommandResult result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

static std::string Quote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

std::string SourcePath(const std::string& relative) {
  return absl::StrCat(CALIBD_SOURCE_DIR, "/", relative);
}

std::string PythonCommand(const std::string& script, const std::vector<std::string>& args) {
  std::string cmd = absl::StrCat(CALIBD_PYTHON, " ", Quote(SourcePath(script)));
  for (const std::string& a : args) absl::StrAppend(&cmd, " ", Quote(a));
  return cmd;
}

}  // namespace calibd::testing
