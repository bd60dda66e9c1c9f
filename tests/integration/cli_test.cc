// The calibd binary's own command line: --help lists every flag with its CALIBD_* variable,
// --version prints the version and the build's commit, a bad CALIBD_* value exits 2.
#include <stdio.h>
#include <sys/wait.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::integration {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Binary() {
  const char* env = std::getenv("CALIBD_BINARY");
  return env != nullptr ? env : CALIBD_BINARY_DIR "/server/calibd";
}

// Runs `command` through the shell; its stdout+stderr and exit code.
std::pair<std::string, int> RunShell(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST(CliTest, HelpListsEveryFlagWithItsVariable) {
  auto [out, code] = RunShell(Binary() + " --help");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, Not(HasSubstr("No flags matched")));
  for (const char* flag :
       {"listen", "metrics-listen", "store", "tokens", "tls-cert", "tls-key", "tls-ca", "workers",
        "max-frame-pixels", "max-stream-bytes", "max-concurrent-streams", "max-master-bytes",
        "max-build-inputs", "combine-memory-bytes", "cache-bytes", "buffer-pool-bytes",
        "spool-dir", "grace-seconds"}) {
    std::string env = absl::StrCat("CALIBD_", flag);
    for (char& c : env) c = c == '-' ? '_' : static_cast<char>(std::toupper(c));
    EXPECT_THAT(out, HasSubstr(absl::StrCat("--", flag, "  [", env, "]"))) << flag;
  }
}

TEST(CliTest, VersionPrintsTheVersionAndCommit) {
  auto [out, code] = RunShell(Binary() + " --version");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, ContainsRegex("^calibd [0-9]+\\.[0-9]+\\.[0-9]+ \\(commit ([0-9a-f]{7,}|unknown)\\)\n$"));
}

TEST(CliTest, BadEnvironmentValueExitsTwo) {
  auto [out, code] = RunShell("CALIBD_WORKERS=many " + Binary() + " --listen=127.0.0.1:0");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("CALIBD_WORKERS"));
}

}  // namespace
}  // namespace calibd::integration
