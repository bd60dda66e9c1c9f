#include "tests/testing/calibctl_runner.h"

#include <atomic>
#include <fstream>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace calibd::testing {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CliRun RunCalibctl(const TempDir& dir, const std::vector<std::string>& args) {
  static std::atomic<int> runs{0};
  const int run = ++runs;
  const std::string out = dir.File(absl::StrCat("calibctl_out_", run));
  const std::string err = dir.File(absl::StrCat("calibctl_err_", run));
  // A subshell, because RunCommand merges the command's stderr into its stdout.
  std::string cmd =
      absl::StrCat("(env -u CALIBD_TOKEN -u CALIBD_SERVER ", CALIBD_BINARY_DIR, "/client/calibctl");
  for (const std::string& a : args) absl::StrAppend(&cmd, " ", ShellQuote(a));
  absl::StrAppend(&cmd, " >", out, " 2>", err, ")");
  CliRun r;
  absl::StatusOr<CommandResult> res = RunCommand(cmd);
  EXPECT_TRUE(res.ok()) << res.status();
  if (res.ok()) r.exit_code = res->exit_code;
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

}  // namespace calibd::testing
