// End-to-end: the real calibd binary on a free 127.0.0.1 port with a temporary store, driven by
// the real calibctl as a subprocess, exactly as docs/walkthrough.md tells a newcomer:
// make-samples → detector put → build bias/dark/flat (certified) → select → calibrate → the
// output FITS read back, and compared with astropy ccdproc 2.4 doing the same reduction on the
// same raw files (tests/oracle/walkthrough_ccdproc.py) to float32 precision.
// Also the CLI's error contract: the exit code of the failure's class (client/exit_codes.h) and
// ONE stderr line naming the gRPC code.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/fits/fits.h"
#include "core/image/dq.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/calibctl_runner.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class WalkthroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, CalibdProcess::Start());
  }

  // Runs calibctl with `args` against the test server.
  CliRun Calibctl(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"--server", server_->address()};
    all.insert(all.end(), args.begin(), args.end());
    return RunCalibctl(dir_, all);
  }

  static std::vector<std::string> Glob(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string Diagnostics() const { return absl::StrCat("\ncalibd log:\n", server_->Log()); }

  TempDir dir_;
  std::unique_ptr<CalibdProcess> server_;
};

// The lines of a stderr; a CLI failure must be exactly one.
std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST_F(WalkthroughTest, RawFramesToCalibratedFramesMatchCcdproc) {
  const std::string samples = dir_.File("night");
  const std::string reduced = dir_.File("reduced");

  CliRun r = Calibctl({"health"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SERVING"));

  // Small frames, tile-compressed lights (calibrate reads compressed FITS too).
  r = Calibctl({"make-samples", "-o", samples, "--small", "--compress", "RICE_1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = Calibctl({"detector", "put", samples + "/SPEC.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << Diagnostics();
  EXPECT_THAT(r.out, HasSubstr("demo/ccd0 stored as version 1"));

  r = Calibctl({"detector", "ls"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("demo/ccd0"));
  EXPECT_THAT(r.out, HasSubstr("144x96"));

  // Masters in dependency order: darks need the certified bias, flats the bias and dark.
  for (const std::string kind : {"bias", "dark", "flat"}) {
    std::vector<std::string> args = {"build", "--detector", "demo/ccd0", "--kind", kind,
                                     "--method", "median", "--no-clip",
                                     "--certify-from", "2026-03-01T00:00:00Z"};
    for (const std::string& f : Glob(samples + "/" + kind)) args.push_back(f);
    r = Calibctl(args);
    ASSERT_EQ(r.exit_code, 0) << kind << ": " << r.err << Diagnostics();
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("built demo/ccd0 ", kind, " version 1 from 5 frames")));
    EXPECT_THAT(r.out, HasSubstr("certified for [2026-03-01T00:00:00Z, open)"));
  }

  r = Calibctl({"ls", "--detector", "demo/ccd0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* kind : {"bias", "dark", "flat"}) EXPECT_THAT(r.out, HasSubstr(kind));

  const std::vector<std::string> lights = Glob(samples + "/light");
  ASSERT_EQ(lights.size(), 3u);
  r = Calibctl({"select", "--detector", "demo/ccd0", lights[0]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("certified"));

  // The masters' sha256 must be recorded in the calibrated headers.
  r = Calibctl({"ls", "--json", "--detector", "demo/ccd0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> shas;
  for (absl::string_view piece : absl::StrSplit(r.out, "\"sha256\":\"")) {
    if (piece.size() >= 64 && piece[64] == '"') shas.emplace_back(piece.substr(0, 64));
  }
  ASSERT_EQ(shas.size(), 3u) << r.out;

  std::vector<std::string> args = {"calibrate", "--detector", "demo/ccd0", "-o", reduced,
                                   "--unit", "electron"};
  args.insert(args.end(), lights.begin(), lights.end());
  r = Calibctl(args);
  ASSERT_EQ(r.exit_code, 0) << r.err << Diagnostics();
  EXPECT_THAT(r.err, HasSubstr("calibrated 3 frames in"));

  for (const std::string& light : lights) {
    std::string name = std::filesystem::path(light).filename().string();
    if (absl::EndsWith(name, ".fz")) name.resize(name.size() - 3);
    const std::string out = reduced + "/" + name;
    ASSERT_OK_AND_ASSIGN(CalibratedFrame f, fits::ReadCalibratedFrame(out));
    EXPECT_EQ(f.width(), 128);
    EXPECT_EQ(f.height(), 96);
    EXPECT_TRUE(f.has_variance()) << out;
    EXPECT_TRUE(f.has_dq()) << out;
    EXPECT_EQ(f.unit, "electron");
    // Provenance: every master's sha256 appears among the header's cards, and HISTORY exists.
    std::string header_text;
    int history = 0;
    for (const HeaderCard& c : f.header.cards()) {
      absl::StrAppend(&header_text, c.key, "=", FormatCardValue(c.value), " ", c.comment, "\n");
      history += c.key == "HISTORY";
    }
    for (const std::string& sha : shas) EXPECT_THAT(header_text, HasSubstr(sha)) << out;
    EXPECT_GT(history, 0) << header_text;
    // The bright star saturates: its pixels carry the saturated bit.
    int saturated = 0;
    for (int y = 0; y < f.height(); ++y) {
      for (int x = 0; x < f.width(); ++x) saturated += (f.dq.at(x, y) & kDqSaturated) != 0;
    }
    EXPECT_GT(saturated, 0) << out;
  }

  // The oracle: ccdproc reduces the same raw files; data and uncertainty must agree.
  ASSERT_OK_AND_ASSIGN(CommandResult oracle,
                       RunCommand(PythonCommand("tests/oracle/walkthrough_ccdproc.py",
                                                {samples, reduced})));
  EXPECT_EQ(oracle.exit_code, 0) << oracle.output;
  EXPECT_THAT(oracle.output, HasSubstr("\"frames\": 3, \"ok\": true")) << oracle.output;

  // --compress-masks: the same frames with MASK/DQ tile-compressed read back identical.
  args = {"calibrate", "--detector", "demo/ccd0", "-o", dir_.File("reduced_z"), "--unit",
          "electron", "--compress-masks"};
  args.insert(args.end(), lights.begin(), lights.end());
  r = Calibctl(args);
  ASSERT_EQ(r.exit_code, 0) << r.err << Diagnostics();
  for (const std::string& light : lights) {
    std::string name = std::filesystem::path(light).filename().string();
    if (absl::EndsWith(name, ".fz")) name.resize(name.size() - 3);
    ASSERT_OK_AND_ASSIGN(CalibratedFrame plain, fits::ReadCalibratedFrame(reduced + "/" + name));
    ASSERT_OK_AND_ASSIGN(CalibratedFrame z,
                         fits::ReadCalibratedFrame(dir_.File("reduced_z") + "/" + name));
    ASSERT_TRUE(z.has_dq());
    const size_t n = size_t(plain.width()) * plain.height();
    EXPECT_EQ(std::memcmp(plain.dq.data(), z.dq.data(), n * sizeof(uint16_t)), 0) << name;
    EXPECT_EQ(std::memcmp(plain.data.data(), z.data.data(), n * sizeof(float)), 0) << name;
    EXPECT_LT(std::filesystem::file_size(dir_.File("reduced_z") + "/" + name),
              std::filesystem::file_size(reduced + "/" + name));
  }

  // `get` downloads a master that reads back as FITS with the stored sha256.
  r = Calibctl({"get", "--detector", "demo/ccd0", "--kind", "bias", "--at", "2026-03-01T21:00:00Z",
                "-o", dir_.File("bias_master.fits")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame bias, fits::ReadCalibratedFrame(dir_.File("bias_master.fits")));
  EXPECT_EQ(bias.width(), 128);
}

TEST_F(WalkthroughTest, FailuresExitNonZeroWithOneLineNamingTheCode) {
  const std::string samples = dir_.File("night");
  CliRun r = Calibctl({"make-samples", "-o", samples, "--small", "--frames", "1", "--lights", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string light = samples + "/light/light_000.fits";

  // Unknown detector.
  r = Calibctl({"detector", "get", "nope/none"});
  EXPECT_EQ(r.exit_code, 66);  // not found
  ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr("calibctl: detector get nope/none: NOT_FOUND: "));
  // The server's request id (its log has the detail under the same id), once.
  EXPECT_THAT(r.err, ::testing::MatchesRegex(".*\\[request id [0-9a-f]+\\]\n"));
  EXPECT_EQ(r.err.find("request id"), r.err.rfind("request id")) << r.err;

  ASSERT_EQ(Calibctl({"detector", "put", samples + "/SPEC.json"}).exit_code, 0);

  // No certified master under the strict policy: that frame fails, the command exits 65.
  r = Calibctl({"calibrate", "--detector", "demo/ccd0", "-o", dir_.File("out"), light});
  EXPECT_EQ(r.exit_code, 65);  // data: FAILED_PRECONDITION
  ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("calibctl: calibrate ", light, ": FAILED_PRECONDITION: ")))
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.File("out/light_000.fits")));

  // A version that does not exist.
  r = Calibctl({"get", "--detector", "demo/ccd0", "--kind", "bias", "--version", "7", "-o",
                dir_.File("x.fits")});
  EXPECT_EQ(r.exit_code, 66);
  ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr(": NOT_FOUND: "));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("x.fits")));

  // A bias put as a master, certified, then an overlapping certification is refused.
  r = Calibctl({"build", "--detector", "demo/ccd0", "--kind", "bias", "--no-clip",
                samples + "/bias/bias_000.fits"});
  ASSERT_EQ(r.exit_code, 0) << r.err << Diagnostics();
  r = Calibctl({"certify", "--detector", "demo/ccd0", "--kind", "bias", "--version", "1",
                "--begin", "2026-03-01", "--end", "2026-03-03"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Calibctl({"get", "--detector", "demo/ccd0", "--kind", "bias", "--version", "1", "-o",
                dir_.File("bias.fits")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Calibctl({"put", "--detector", "demo/ccd0", "--kind", "bias", "--attr", "source=test",
                dir_.File("bias.fits")});
  ASSERT_EQ(r.exit_code, 0) << r.err << Diagnostics();
  EXPECT_THAT(r.out, HasSubstr("version 1 (identical bytes were already stored)"));
  r = Calibctl({"certify", "--detector", "demo/ccd0", "--kind", "bias", "--version", "1",
                "--begin", "2026-03-02"});
  EXPECT_EQ(r.exit_code, 65);  // data: ALREADY_EXISTS
  ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_THAT(r.err, HasSubstr(": ALREADY_EXISTS: "));

  // A file that is not FITS fails locally with the file named; nothing is sent.
  std::ofstream(dir_.File("junk.fits")) << "not a FITS file";
  r = Calibctl({"calibrate", "--detector", "demo/ccd0", "-o", dir_.File("out2"),
                dir_.File("junk.fits")});
  EXPECT_EQ(r.exit_code, 65);  // data: INVALID_ARGUMENT
  EXPECT_THAT(r.err, HasSubstr(": INVALID_ARGUMENT: ")) << r.err;

  // Usage errors exit 64 and say which flag.
  r = Calibctl({"certify", "--detector", "demo/ccd0", "--kind", "bias", "--version", "1"});
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_THAT(r.err, HasSubstr("--begin is required"));
  r = Calibctl({"calibrate", "--detector", "demo/ccd0", "--policy", "loose", light});
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_THAT(r.err, HasSubstr("--policy must be one of strict, nearest"));
}

TEST(CalibctlTest, NothingListeningIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(int port, PickFreePort());
  // Only stderr is kept: RunCommand would merge it into stdout.
  const std::string cmd = absl::StrCat("(", CALIBD_BINARY_DIR,
                                       "/client/calibctl --timeout 5 --server 127.0.0.1:", port,
                                       " health 2>&1 >/dev/null)");
  ASSERT_OK_AND_ASSIGN(CommandResult r, RunCommand(cmd));
  EXPECT_EQ(r.exit_code, 69);
  EXPECT_THAT(r.output, HasSubstr("calibctl: health: UNAVAILABLE: "));
  EXPECT_EQ(Lines(r.output).size(), 1u) << r.output;
}

}  // namespace
}  // namespace calibd::testing
