// Conformance of calib::Calibrate with astropy ccdproc 2.4's ccd_process: the same synthetic
// inputs go through both (ccdproc via tests/oracle/ccdproc_process.py, run once for all cases)
// and data, uncertainty and mask are compared to float32 precision.
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/calib/recipe.h"
#include "core/image/dq.h"
#include "core/status/macros.h"
#include "core/status/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/calib/calib_testing.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::calib {
namespace {

using ::calibd::testing::CcdModel;
using ::calibd::testing::FrameKind;
using ::calibd::testing::Gaussian;
using ::calibd::testing::MakeMaster;
using ::calibd::testing::ReadBinary;
using ::calibd::testing::SimulateFrame;
using ::calibd::testing::TempDir;
using ::calibd::testing::WriteBinary;

struct Case {
  std::string name;
  FrameKind raw_kind = FrameKind::kLight;
  bool float_raw = false;
  bool column_overscan = false;  // overscan rows above the data: one value per column
  bool median = true;
  std::optional<int> poly = std::nullopt;
  bool bias = true, dark = true, flat = true, bpm = true;
  bool master_var = false, master_dq = false;
  bool electrons = true;
};

std::string Json(bool b) { return b ? "true" : "false"; }

// Everything both sides need for one case.
struct Prepared {
  Case c;
  std::string dir;
  RawImage raw;
  Masters masters;
  RecipeOptions options;
  Section oscan, trim;
  int w = 0, h = 0;
};

Prepared Prepare(const Case& c, const std::string& dir, uint64_t seed) {
  Prepared p;
  p.c = c;
  p.dir = dir;
  CcdModel ccd;
  ccd.data_width = 96;
  ccd.height = 80;
  ccd.overscan_width = 12;
  ccd.bias_row_slope = 0.3;
  ccd.exptime = 30;
  RawFrame frame = SimulateFrame(ccd, c.raw_kind, seed);
  if (c.column_overscan) {
    // Data rows 0..79, overscan rows 80..91 above them; the bias level varies per column.
    Gaussian noise(seed);
    frame = ::calibd::testing::MakeFrame(
        ccd.data_width, ccd.height + 12, PixelType::kUint16, [&](int x, int y) {
          const double bias = 1000 + 0.3 * x + (x % 7);
          if (y >= ccd.height) return std::round(bias + 3 * noise.Next());
          const double e = ccd.sky * ::calibd::testing::FlatResponse(ccd, x, y);
          return std::round(bias + (e + std::sqrt(e) * noise.Next()) / ccd.gain);
        });
  }
  if (c.float_raw) {
    // The same values as float32 plus a fractional part, to exercise the float path.
    RawImage f =
        RawImage::Allocate(PixelType::kFloat32, frame.pixels.width(), frame.pixels.height());
    for (int y = 0; y < f.height(); ++y) {
      frame.pixels.RowToFloat(y, 0, f.width(), f.row<float>(y));
      for (int x = 0; x < f.width(); ++x) f.row<float>(y)[x] += 0.25f * ((x + y) % 4);
    }
    p.raw = std::move(f);
  } else {
    p.raw = std::move(frame.pixels);
  }
  p.oscan = c.column_overscan ? Section{0, ccd.data_width, ccd.height, ccd.height + 12}
                              : Section{ccd.data_width, ccd.width(), 0, ccd.height};
  p.trim = Section{2, ccd.data_width - 2, 1, ccd.height - 1};
  p.w = p.trim.width();
  p.h = p.trim.height();
  Gaussian rng(seed * 31 + 7);
  const double dark_exptime = 100;
  auto var = [&](double v) -> ::calibd::testing::PixelFn {
    if (!c.master_var) return nullptr;
    return [v](int x, int y) { return v * (1.0 + 0.5 * ((x * 3 + y) % 5)); };
  };
  auto dq = [&](int mod, uint16_t bit) -> std::function<uint16_t(int, int)> {
    if (!c.master_dq) return nullptr;
    return [mod, bit](int x, int y) -> uint16_t { return (x * 7 + y * 13) % mod == 0 ? bit : 0; };
  };
  if (c.bias) {
    std::vector<double> noise(p.w * p.h);
    for (double& n : noise) n = 0.4 * rng.Next();
    const int w = p.w;
    p.masters.bias = MakeMaster(
        p.w, p.h, [&](int x, int y) { return 1.5 + 0.02 * x + noise[y * w + x]; }, var(0.02),
        dq(97, kDqBad));
  }
  if (c.dark) {
    std::vector<double> noise(p.w * p.h);
    for (double& n : noise) n = 0.3 * rng.Next();
    const int w = p.w;
    p.masters.dark = MakeMaster(
        p.w, p.h,
        [&](int x, int y) {
          return ccd.dark_current * dark_exptime / ccd.gain + ((x * y) % 53 == 0 ? 40.0 : 0.0) +
                 noise[y * w + x];
        },
        var(0.05), dq(89, kDqHot));
    p.masters.dark_exptime = dark_exptime;
  }
  if (c.flat) {
    std::vector<double> noise(p.w * p.h);
    for (double& n : noise) n = 100 * rng.Next();
    const int w = p.w;
    p.masters.flat = MakeMaster(
        p.w, p.h,
        [&](int x, int y) {
          return ccd.flat_level * ::calibd::testing::FlatResponse(ccd, x + 2, y + 1) +
                 noise[y * w + x];
        },
        var(1.0e4), dq(83, kDqDead));
  }
  if (c.bpm) {
    auto bpm = std::make_shared<Image<uint16_t>>(Image<uint16_t>::Filled(p.w, p.h, 0));
    for (int i = 0; i < 12; ++i) bpm->at((i * 37) % p.w, (i * 11) % p.h) = 1;
    p.masters.bad_pixels = bpm;
  }
  RecipeOptions& o = p.options;
  o.overscan.statistic =
      c.median ? OverscanOptions::Statistic::kMedian : OverscanOptions::Statistic::kMean;
  o.overscan.region = p.oscan;
  if (c.poly.has_value()) {
    o.overscan.fit = OverscanOptions::Fit::kPolynomial;
    o.overscan.poly_order = *c.poly;
  }
  o.trim = p.trim;
  o.gain = ccd.gain;
  o.read_noise = ccd.read_noise;
  o.exptime = c.raw_kind == FrameKind::kBias ? 0.0 : ccd.exptime;
  o.output_unit = c.electrons ? RecipeOptions::Unit::kElectron : RecipeOptions::Unit::kAdu;
  o.band_rows = 7;
  return p;
}

absl::Status WriteCase(const Prepared& p) {
  const Case& c = p.c;
  const RawImage& raw = p.raw;
  std::string json = absl::StrCat(
      "{\"raw_width\": ", raw.width(), ", \"raw_height\": ", raw.height(), ", \"width\": ", p.w,
      ", \"height\": ", p.h, ", \"raw_dtype\": \"", c.float_raw ? "<f4" : "<u2", "\"",
      ", \"oscan\": \"", FormatFitsSection(p.oscan), "\", \"oscan_median\": ", Json(c.median),
      ", \"oscan_axis\": ", c.column_overscan ? 0 : 1,
      ", \"poly_order\": ", c.poly.has_value() ? absl::StrCat(*c.poly) : "null", ", \"trim\": \"",
      FormatFitsSection(p.trim), "\", \"gain\": ", p.options.gain,
      ", \"readnoise\": ", p.options.read_noise, ", \"exptime\": ", p.options.exptime,
      ", \"dark_exptime\": ", c.dark ? p.masters.dark_exptime : 1.0,
      ", \"electrons\": ", Json(c.electrons), ", \"bias\": ", Json(c.bias),
      ", \"dark\": ", Json(c.dark), ", \"flat\": ", Json(c.flat), ", \"bpm\": ", Json(c.bpm));
  for (const char* m : {"bias", "dark", "flat"}) {
    absl::StrAppend(&json, ", \"", m, "_var\": ", Json(c.master_var), ", \"", m,
                    "_dq\": ", Json(c.master_dq));
  }
  absl::StrAppend(&json, "}\n");
  {
    std::ofstream out(p.dir + "/params.json");
    out << json;
  }
  CALIBD_RETURN_IF_ERROR(WriteBinary(p.dir + "/raw.bin", static_cast<const char*>(raw.data()),
                                     static_cast<int64_t>(raw.size_bytes())));
  auto write_master = [&](const std::string& name,
                          const std::shared_ptr<const CalibratedFrame>& m) -> absl::Status {
    if (!m) return absl::OkStatus();
    CALIBD_RETURN_IF_ERROR(
        WriteBinary(p.dir + "/" + name + ".f32", m->data.data(), m->data.num_pixels()));
    if (m->has_variance()) {
      CALIBD_RETURN_IF_ERROR(WriteBinary(p.dir + "/" + name + "_var.f32", m->variance.data(),
                                         m->variance.num_pixels()));
    }
    if (m->has_dq()) {
      CALIBD_RETURN_IF_ERROR(
          WriteBinary(p.dir + "/" + name + "_dq.u16", m->dq.data(), m->dq.num_pixels()));
    }
    return absl::OkStatus();
  };
  CALIBD_RETURN_IF_ERROR(write_master("bias", p.masters.bias));
  CALIBD_RETURN_IF_ERROR(write_master("dark", p.masters.dark));
  CALIBD_RETURN_IF_ERROR(write_master("flat", p.masters.flat));
  if (p.masters.bad_pixels) {
    std::vector<uint8_t> bpm(p.w * p.h);
    for (int i = 0; i < p.w * p.h; ++i) bpm[i] = p.masters.bad_pixels->data()[i] != 0;
    CALIBD_RETURN_IF_ERROR(WriteBinary(p.dir + "/bpm.u8", bpm.data(), p.w * p.h));
  }
  return absl::OkStatus();
}

// Float32 precision: relative 1e-5, plus an absolute floor of a few float32 ulps of the raw
// level (≈1e-4 ADU at 2000 ADU) for values that end near zero after the subtractions.
constexpr double kRtol = 1e-5;
constexpr double kDataAtol = 1e-3;
constexpr double kSigmaAtol = 1e-5;

void Compare(const Prepared& p) {
  SCOPED_TRACE(p.c.name);
  FrameStats stats;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out,
                       Calibrate(p.raw, p.masters, p.options, nullptr, nullptr, &stats));
  const int64_t n = int64_t{p.w} * p.h;
  ASSERT_EQ(out.width(), p.w);
  ASSERT_EQ(out.height(), p.h);
  ASSERT_TRUE(out.has_variance());
  EXPECT_EQ(out.unit, p.c.electrons ? "electron" : "adu");
  std::vector<double> data, unc;
  std::vector<uint8_t> mask;
  ASSERT_OK(ReadBinary(p.dir + "/out_data.f64", n, &data));
  ASSERT_OK(ReadBinary(p.dir + "/out_unc.f64", n, &unc));
  ASSERT_OK(ReadBinary(p.dir + "/out_mask.u8", n, &mask));
  int data_bad = 0, sigma_bad = 0, mask_bad = 0, masked = 0;
  double worst_rel = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = out.data.data()[i];
    const double s = std::sqrt(static_cast<double>(out.variance.data()[i]));
    const bool m = out.dq.data()[i] != 0;
    masked += m;
    if (!(std::fabs(d - data[i]) <= kRtol * std::fabs(data[i]) + kDataAtol)) {
      if (++data_bad <= 5) {
        ADD_FAILURE() << "data at (" << i % p.w << "," << i / p.w << "): ours " << d << ", ccdproc "
                      << data[i];
      }
    }
    if (!(std::fabs(s - unc[i]) <= kRtol * std::fabs(unc[i]) + kSigmaAtol)) {
      if (++sigma_bad <= 5) {
        ADD_FAILURE() << "uncertainty at (" << i % p.w << "," << i / p.w << "): ours " << s
                      << ", ccdproc " << unc[i];
      }
    }
    if (m != (mask[i] != 0)) {
      if (++mask_bad <= 5) {
        ADD_FAILURE() << "mask at (" << i % p.w << "," << i / p.w << "): ours dq "
                      << out.dq.data()[i] << ", ccdproc " << int(mask[i]);
      }
    }
    if (std::fabs(data[i]) > 1)
      worst_rel = std::max(worst_rel, std::fabs(d - data[i]) / std::fabs(data[i]));
  }
  EXPECT_EQ(data_bad, 0);
  EXPECT_EQ(sigma_bad, 0);
  EXPECT_EQ(mask_bad, 0);
  // The inputs must actually exercise the masks they claim to.
  if (p.c.bpm || p.c.master_dq) {
    EXPECT_GT(masked, 0);
  }
  std::cout << p.c.name << ": worst relative data error " << worst_rel << ", masked " << masked
            << "\n";
}

// One test so the oracle (≈2 s of Python start-up) runs once for every case.
TEST(CcdprocConformanceTest, CcdProcessMatchesOnEveryCase) {
  std::vector<Case> cases;
  cases.push_back({.name = "median per row, bias, scaled dark, flat, electrons"});
  cases.push_back({.name = "median + polynomial order 2", .poly = 2});
  cases.push_back({.name = "mean + polynomial order 1, masters' uncertainty and masks",
                   .median = false,
                   .poly = 1,
                   .master_var = true,
                   .master_dq = true});
  cases.push_back(
      {.name = "ADU output, masters' uncertainty", .master_var = true, .electrons = false});
  cases.push_back({.name = "bias frame (negative signal), no masters, ADU",
                   .raw_kind = FrameKind::kBias,
                   .bias = false,
                   .dark = false,
                   .flat = false,
                   .bpm = false,
                   .electrons = false});
  cases.push_back({.name = "float32 raw, mean per row, flat only",
                   .float_raw = true,
                   .median = false,
                   .bias = false,
                   .dark = false});
  cases.push_back({.name = "overscan rows above the data: median per column, electrons",
                   .column_overscan = true});
  cases.push_back({.name = "per-column polynomial order 3, ADU",
                   .column_overscan = true,
                   .poly = 3,
                   .electrons = false});
  TempDir tmp;
  std::vector<Prepared> prepared;
  std::vector<std::string> dirs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string dir = tmp.File(absl::StrCat("case", i));
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    prepared.push_back(Prepare(cases[i], dir, 100 + i));
    ASSERT_OK(WriteCase(prepared.back()));
    dirs.push_back(dir);
  }
  ASSERT_OK_AND_ASSIGN(::calibd::testing::CommandResult r,
                       ::calibd::testing::RunCommand(::calibd::testing::PythonCommand(
                           "tests/oracle/ccdproc_process.py", dirs)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const Prepared& p : prepared) Compare(p);
}

}  // namespace
}  // namespace calibd::calib
