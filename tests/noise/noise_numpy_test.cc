// core/noise against an independent NumPy implementation (tests/oracle/noise_numpy.py): the
// test writes a stack as FITS frames, builds the product from those files through
// combine::FitsSource (as the service will), writes it with WriteNoiseProduct, and the oracle
// reads both with astropy and recomputes with NumPy — std(ddof=1), per-pixel lstsq, polyfit —
// agreeing to float32 precision (relative 1e-5).
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/combine/combine.h"
#include "core/noise/noise.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/noise/noise_testing.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::noise {
namespace {

using ::calibd::testing::CommandResult;
using ::calibd::testing::Gaussian;
using ::calibd::testing::PythonCommand;
using ::calibd::testing::RunCommand;
using ::calibd::testing::TempDir;
using ntest::Stack;

constexpr int kW = 37;  // odd sizes: no alignment luck
constexpr int kH = 23;

Sources Open(const std::vector<std::string>& paths) {
  Sources out;
  for (const std::string& p : paths) {
    absl::StatusOr<std::unique_ptr<combine::FrameSource>> s = combine::FitsSource(p);
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) out.push_back(std::move(*s));
  }
  return out;
}

void RunOracle(const std::string& kind, const std::string& product, std::vector<std::string> args) {
  args.insert(args.begin(), {kind, product});
  absl::StatusOr<CommandResult> r = RunCommand(PythonCommand("tests/oracle/noise_numpy.py", args));
  ASSERT_TRUE(r.ok()) << r.status();
  std::cout << r->output;  // the agreement figures, in the test log
  EXPECT_EQ(r->exit_code, 0) << r->output;
  EXPECT_THAT(r->output, ::testing::HasSubstr("OK")) << r->output;
}

TEST(NoiseNumpy, ReadNoise) {
  TempDir dir;
  Stack s;
  Gaussian g(71);
  for (int k = 0; k < 12; ++k) {
    s.Add([&](int x, int y) { return 500 + (3 + 0.05 * x + 0.02 * y) * g.Next(); }, {}, nullptr, kW,
          kH);
  }
  std::vector<std::string> paths = s.Write(dir.path(), "bias");
  ASSERT_OK_AND_ASSIGN(NoiseProduct p, BuildReadNoise(Open(paths), {}));
  const std::string out = dir.File("rn.fits");
  ASSERT_OK(WriteNoiseProduct(out, p));
  RunOracle("read_noise", out, paths);
}

TEST(NoiseNumpy, DarkCurrent) {
  TempDir dir;
  Stack s;
  Gaussian g(72);
  for (double t : {5.0, 20.0, 60.0, 150.0}) {
    for (int k = 0; k < 5; ++k) {
      s.Add([&](int x, int y) { return 10 + (0.02 + 0.001 * x) * t + 4 * g.Next(); },
            {{"EXPTIME", t}}, nullptr, kW, kH);
    }
  }
  std::vector<std::string> paths = s.Write(dir.path(), "dark");
  ASSERT_OK_AND_ASSIGN(NoiseProduct p, BuildDarkCurrent(Open(paths), {}));
  const std::string out = dir.File("dc.fits");
  ASSERT_OK(WriteNoiseProduct(out, p));
  RunOracle("dark_current", out, paths);
}

TEST(NoiseNumpy, NoiseModel) {
  TempDir dir;
  Stack s;
  Gaussian g(73);
  const std::vector<std::pair<double, double>> settings = {
      {1, 10}, {10, 10}, {50, 30}, {100, 60}, {200, 30}};
  for (auto [gain, t] : settings) {
    for (int k = 0; k < 6; ++k) {
      s.Add(
          [&](int x, int y) {
            const double d = 0.01 + 0.0002 * x, c = 0.05 + 0.001 * y, f = 20 + 0.1 * x;
            return f + gain * t * d + gain * c +
                   std::sqrt(16 + 2 * gain * gain * (t * d + c)) * g.Next();
          },
          {{"EMGAIN", gain}, {"EXPTIME", t}}, nullptr, kW, kH);
    }
  }
  std::vector<std::string> paths = s.Write(dir.path(), "emccd");
  ASSERT_OK_AND_ASSIGN(NoiseProduct p, BuildNoiseModel(Open(paths), {}));
  const std::string out = dir.File("nm.fits");
  ASSERT_OK(WriteNoiseProduct(out, p));
  RunOracle("noise_model", out, paths);
}

TEST(NoiseNumpy, PhotonTransfer) {
  TempDir dir;
  Stack flats, biases;
  Gaussian g(74);
  const double gain = 1.8, rn = 6;
  for (double level : {2000.0, 6000.0, 12000.0, 24000.0}) {
    for (int k = 0; k < 2; ++k) {
      flats.Add(
          [&](int x, int y) {
            const double e = level * (1 + 0.003 * (x - y));
            return 200 + (e + std::sqrt(e) * g.Next() + rn * g.Next()) / gain;
          },
          {}, nullptr, kW, kH);
    }
  }
  for (int k = 0; k < 3; ++k) {
    biases.Add([&](int, int) { return 200 + rn / gain * g.Next(); }, {}, nullptr, kW, kH);
  }
  std::vector<std::string> fp = flats.Write(dir.path(), "flat");
  std::vector<std::string> bp = biases.Write(dir.path(), "bias");
  ASSERT_OK_AND_ASSIGN(NoiseProduct p, BuildGain(Open(fp), Open(bp), {}));
  const std::string out = dir.File("gain.fits");
  ASSERT_OK(WriteNoiseProduct(out, p));
  std::vector<std::string> args = {"4", "3"};
  args.insert(args.end(), fp.begin(), fp.end());
  args.insert(args.end(), bp.begin(), bp.end());
  RunOracle("gain", out, args);
}

}  // namespace
}  // namespace calibd::noise
