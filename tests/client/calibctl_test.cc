// calibctl through the real binary: --version, the exit-code table in --help, and the exit
// code of each class of failure that the walkthrough test does not already cover (usage,
// permission, unauthenticated), against a real calibd with bearer tokens.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/calibctl_runner.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// calibctl with `args` (no --server added).
CliRun Calibctl(TempDir& dir, const std::vector<std::string>& args) {
  return RunCalibctl(dir, args);
}

TEST(CalibctlVersionTest, PrintsTheVersionAndARealCommit) {
  TempDir dir;
  CliRun r = Calibctl(dir, {"--version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, MatchesRegex("calibctl [0-9]+\\.[0-9]+\\.[0-9]+ \\(commit "
                                  "([0-9a-f]{12}(-dirty)?|unknown)\\)\n"));
  const size_t at = r.out.find("(commit ");
  ASSERT_NE(at, std::string::npos);
  std::string commit = r.out.substr(at + 8, 12);
  // Outside a git checkout the build says "unknown"; inside one it must name a real commit.
  ASSERT_OK_AND_ASSIGN(
      CommandResult in_git,
      RunCommand(absl::StrCat("git -C ", CALIBD_SOURCE_DIR, " rev-parse --git-dir 2>&1")));
  if (in_git.exit_code != 0) {
    EXPECT_EQ(commit.substr(0, 7), "unknown") << r.out;
    return;
  }
  ASSERT_NE(commit.substr(0, 7), "unknown") << "built in a git checkout: " << r.out;
  // The commit is one of this checkout's (the build may predate the latest commit).
  ASSERT_OK_AND_ASSIGN(
      CommandResult git,
      RunCommand(absl::StrCat("git -C ", CALIBD_SOURCE_DIR, " cat-file -t ", commit, " 2>&1")));
  EXPECT_EQ(git.exit_code, 0) << git.output;
  EXPECT_THAT(git.output, HasSubstr("commit"));
}

TEST(CalibctlVersionTest, HelpDocumentsTheExitCodes) {
  TempDir dir;
  CliRun r = Calibctl(dir, {"--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("exit status:"));
  for (const char* line : {"  64  usage", "  65  data", "  66  not found", "  69  unavailable",
                           "  70  internal", "  74  I/O", "  75  try again", "  77  permission"}) {
    EXPECT_THAT(r.out, HasSubstr(line));
  }
}

TEST(CalibctlUsageTest, UsageErrorsExit64) {
  TempDir dir;
  EXPECT_EQ(Calibctl(dir, {}).exit_code, 64);
  EXPECT_EQ(Calibctl(dir, {"frobnicate"}).exit_code, 64);
  EXPECT_EQ(Calibctl(dir, {"ls", "--no-such-flag"}).exit_code, 64);
  CliRun r = Calibctl(dir, {"ls", "--limit", "0"});
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_THAT(r.err, HasSubstr("--limit must be 1 or more"));
  r = Calibctl(dir, {"--timeout", "-3", "health"});
  EXPECT_EQ(r.exit_code, 64);
  r = Calibctl(dir, {"calibrate", "--detector", "d", "--retries", "-1", "x.fits"});
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_THAT(r.err, HasSubstr("--retries must be a number of rounds from 0 to 100"));
  // A missing TLS file is the caller's to fix, before any connection.
  r = Calibctl(dir, {"--tls-ca", dir.File("missing.pem"), "health"});
  EXPECT_EQ(r.exit_code, 66) << r.err;  // NOT_FOUND: the file
}

TEST(CalibctlAuthTest, MissingTokenAndReadTokenWritingExit77) {
  TempDir dir;
  std::ofstream(dir.File("tokens")) << "admintok admin alice\nreadtok read bob\n";
  CalibdProcessOptions options;
  options.extra_args = {absl::StrCat("--tokens=", dir.File("tokens"))};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> server, CalibdProcess::Start(options));
  const std::string samples = dir.File("night");
  ASSERT_EQ(
      Calibctl(dir, {"make-samples", "-o", samples, "--small", "--frames", "1", "--lights", "0"})
          .exit_code,
      0);
  const std::string at = server->address();

  CliRun r = Calibctl(dir, {"--server", at, "detector", "ls"});
  EXPECT_EQ(r.exit_code, 77) << r.err;
  EXPECT_THAT(r.err, HasSubstr(": UNAUTHENTICATED: "));
  r = Calibctl(dir,
               {"--server", at, "--token", "readtok", "detector", "put", samples + "/SPEC.json"});
  EXPECT_EQ(r.exit_code, 77) << r.err;
  EXPECT_THAT(r.err, HasSubstr(": PERMISSION_DENIED: "));
  r = Calibctl(dir,
               {"--server", at, "--token", "admintok", "detector", "put", samples + "/SPEC.json"});
  EXPECT_EQ(r.exit_code, 0) << r.err << server->Log();
  r = Calibctl(dir, {"--server", at, "--token", "readtok", "detector", "ls"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("demo/ccd0"));
}

// The server pages ListDetectors (and ListMasters, History) by the store's keyset tokens.
TEST(CalibctlPagingTest, LimitAndPageTokenWalkTheDetectors) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> server, CalibdProcess::Start());
  const std::string at = server->address();
  for (const char* name : {"cam/a", "cam/b", "cam/c"}) {
    const std::string samples = dir.File(absl::StrCat("s_", std::string(1, name[4])));
    ASSERT_EQ(Calibctl(dir, {"make-samples", "-o", samples, "--small", "--frames", "1", "--lights",
                             "0", "--detector", name})
                  .exit_code,
              0);
    ASSERT_EQ(Calibctl(dir, {"--server", at, "detector", "put", samples + "/SPEC.json"}).exit_code,
              0);
  }
  // Three detectors, pages of two: two rows and the token on stderr, then the last row.
  CliRun r = Calibctl(dir, {"--server", at, "detector", "ls", "--limit", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cam/a"));
  EXPECT_THAT(r.out, HasSubstr("cam/b"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("cam/c")));
  const std::string prefix = "more: continue with --page-token ";
  const size_t at_token = r.err.find(prefix);
  ASSERT_NE(at_token, std::string::npos) << r.err;
  std::string token = r.err.substr(at_token + prefix.size());
  token = token.substr(0, token.find('\n'));
  ASSERT_FALSE(token.empty());
  r = Calibctl(dir, {"--server", at, "detector", "ls", "--limit", "2", "--page-token", token});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cam/c"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("cam/a")));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("more:")));
  // --json carries the token in the response itself.
  r = Calibctl(dir, {"--server", at, "--json", "detector", "ls", "--limit", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"next_page_token\":\""));
  // A token that is not the server's is the caller's mistake.
  r = Calibctl(dir, {"--server", at, "detector", "ls", "--page-token", "bogus"});
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_THAT(r.err, HasSubstr("INVALID_ARGUMENT"));
}

}  // namespace
}  // namespace calibd::testing
