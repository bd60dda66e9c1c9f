// Closed-form tests of calib::Calibrate: constant frames, known overscan gradients, exact
// variance, DQ bits, bad inputs with exact codes, and determinism across thread pools.
#include "core/calib/recipe.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <algorithm>
#include <memory>
#include <vector>

#include "core/calib/keywords.h"
#include "core/image/dq.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/calib/calib_testing.h"
#include "tests/testing/synthetic.h"

namespace calibd::calib {
namespace {

using ::calibd::testing::MakeFrame;
using ::calibd::testing::MakeImage;
using ::calibd::testing::MakeMaster;
using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A 40×30 raw frame: data columns 0..31, overscan columns 32..39 (value `oscan(y)`).
constexpr int kRawW = 40, kRawH = 30, kDataW = 32;

RawImage Frame(const std::function<double(int, int)>& data, const std::function<double(int)>& oscan,
               PixelType type = PixelType::kUint16) {
  return MakeFrame(kRawW, kRawH, type,
                   [&](int x, int y) { return x < kDataW ? data(x, y) : oscan(y); })
      .pixels;
}

RecipeOptions BasicOptions() {
  RecipeOptions o;
  o.overscan.statistic = OverscanOptions::Statistic::kMedian;
  o.overscan.region = Section{kDataW, kRawW, 0, kRawH};
  o.trim = Section{0, kDataW, 0, kRawH};
  o.gain = 2.0;
  o.read_noise = 4.0;
  o.exptime = 50;
  return o;
}

TEST(CalibrateTest, ConstantFrameEveryStepClosedForm) {
  RawImage raw = Frame([](int, int) { return 1100; }, [](int) { return 1000; });
  Masters m;
  m.bias = MakeMaster(kDataW, kRawH, [](int, int) { return 20.0; });
  m.dark = MakeMaster(kDataW, kRawH, [](int, int) { return 10.0; });
  m.dark_exptime = 100;  // scale 50/100 = 0.5 → 5 ADU
  // Flat 1 on the left half, 3 on the right: mean 2, normalised 0.5 / 1.5.
  m.flat = MakeMaster(kDataW, kRawH, [](int x, int) { return x < kDataW / 2 ? 1.0 : 3.0; });
  FrameStats stats;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out,
                       Calibrate(raw, m, BasicOptions(), nullptr, nullptr, &stats));
  ASSERT_EQ(out.width(), kDataW);
  ASSERT_EQ(out.height(), kRawH);
  EXPECT_EQ(out.unit, "electron");
  // D = 1100 − 1000 = 100 → variance (2·100 + 16)/4 = 54 ADU².
  // Data (100 − 20 − 5)/0.5·2 = 300 e⁻ left, /1.5·2 = 100 e⁻ right.
  // Variance 54/0.25·4 = 864 e⁻², 54/2.25·4 = 96 e⁻².
  for (int y = 0; y < kRawH; ++y) {
    for (int x = 0; x < kDataW; ++x) {
      const bool left = x < kDataW / 2;
      EXPECT_FLOAT_EQ(out.data.at(x, y), left ? 300.0f : 100.0f) << x << "," << y;
      EXPECT_FLOAT_EQ(out.variance.at(x, y), left ? 864.0f : 96.0f) << x << "," << y;
      EXPECT_EQ(out.dq.at(x, y), 0);
    }
  }
  EXPECT_DOUBLE_EQ(stats.overscan_level, 1000.0);
  EXPECT_DOUBLE_EQ(stats.dark_scale, 0.5);
  EXPECT_DOUBLE_EQ(stats.flat_norm, 2.0);
  EXPECT_DOUBLE_EQ(stats.mean, 200.0);
  EXPECT_EQ(stats.flagged, 0);
  EXPECT_EQ(stats.pixels, kDataW * kRawH);
  // Header: every step recorded.
  EXPECT_EQ(out.header.GetString(kKeyOverscan).value(), "median per-row");
  EXPECT_TRUE(out.header.GetBool(kKeyBias).value());
  EXPECT_TRUE(out.header.GetBool(kKeyDark).value());
  EXPECT_DOUBLE_EQ(out.header.GetDouble(kKeyDarkScale).value(), 0.5);
  EXPECT_DOUBLE_EQ(out.header.GetDouble(kKeyFlatNorm).value(), 2.0);
  EXPECT_EQ(out.header.GetString(kKeyUnit).value(), "electron");
  EXPECT_EQ(out.header.GetString(kKeyTrimSec).value(), "[1:32,1:30]");
}

TEST(CalibrateTest, AduOutputLeavesGainOut) {
  RawImage raw = Frame([](int, int) { return 1100; }, [](int) { return 1000; });
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, Masters{}, o));
  EXPECT_EQ(out.unit, "adu");
  EXPECT_FLOAT_EQ(out.data.at(3, 4), 100.0f);
  EXPECT_FLOAT_EQ(out.variance.at(3, 4), 54.0f);
  EXPECT_FALSE(out.header.GetBool(kKeyGainApplied).value());
}

TEST(CalibrateTest, PerRowOverscanRemovesGradientWithMedianIgnoringOutliers) {
  // Overscan per row: 1000 + 0.5·y, plus one wild column; the median ignores it.
  RawImage raw = MakeFrame(kRawW, kRawH, PixelType::kFloat32, [](int x, int y) {
                   const double level = 1000 + 0.5 * y;
                   if (x < kDataW) return level + 100;
                   return x == kRawW - 1 ? level + 5000 : level + (x % 2 ? 0.25 : -0.25);
                 }).pixels;
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, Masters{}, o));
  for (int y = 0; y < kRawH; ++y) EXPECT_FLOAT_EQ(out.data.at(5, y), 100.0f) << y;
  // The mean would not: it carries (5000 − 0.25)/8 extra.
  o.overscan.statistic = OverscanOptions::Statistic::kMean;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame mean_out, Calibrate(raw, Masters{}, o));
  EXPECT_NEAR(mean_out.data.at(5, 0), 100.0 - (5000.0 - 0.25) / 8, 1e-3);
  // The clipped mean drops the wild column and keeps columns 32..38 (four at −0.25, three at
  // +0.25): level − 0.25/7.
  o.overscan.statistic = OverscanOptions::Statistic::kClippedMean;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame clipped, Calibrate(raw, Masters{}, o));
  EXPECT_NEAR(clipped.data.at(5, 0), 100.0 + 0.25 / 7, 1e-4);
}

TEST(CalibrateTest, PerColumnOverscanWhenRegionIsWide) {
  // Overscan rows 26..29 below... here at the top: rows 26..29, value 1000 + 0.25·x.
  RawImage raw = MakeFrame(kDataW, kRawH, PixelType::kFloat32, [](int x, int y) {
                   return y >= 26 ? 1000 + 0.25 * x : 1000 + 0.25 * x + 50;
                 }).pixels;
  RecipeOptions o;
  o.overscan.statistic = OverscanOptions::Statistic::kMean;
  o.overscan.region = Section{0, kDataW, 26, kRawH};  // 32 wide, 4 tall → per column
  EXPECT_FALSE(OverscanPerRow(o.overscan));
  o.trim = Section{0, kDataW, 0, 26};
  o.output_unit = RecipeOptions::Unit::kAdu;
  o.compute_variance = false;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, Masters{}, o));
  EXPECT_FALSE(out.has_variance());
  for (int x = 0; x < kDataW; ++x) EXPECT_FLOAT_EQ(out.data.at(x, 7), 50.0f) << x;
  EXPECT_EQ(out.header.GetString(kKeyOverscan).value(), "mean per-column");
}

TEST(CalibrateTest, PolynomialOverscanFitsQuadraticExactly) {
  auto level = [](int y) { return 1000 + 0.7 * y + 0.02 * y * y; };
  RawImage raw = MakeFrame(kRawW, kRawH, PixelType::kFloat64, [&](int x, int y) {
                   return x < kDataW ? level(y) + 100 : level(y);
                 }).pixels;
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  o.overscan.fit = OverscanOptions::Fit::kPolynomial;
  o.overscan.poly_order = 2;
  ASSERT_OK_AND_ASSIGN(OverscanModel model, MeasureOverscan(raw, o.overscan));
  ASSERT_EQ(model.values.size(), static_cast<size_t>(kRawH));
  for (int y = 0; y < kRawH; ++y) EXPECT_NEAR(model.values[y], level(y), 1e-9) << y;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, Masters{}, o));
  for (int y = 0; y < kRawH; ++y) EXPECT_NEAR(out.data.at(9, y), 100.0, 1e-3) << y;
  // Order 1 on a quadratic: the residual is the quadratic's deviation from its LSQ line, whose
  // mean over the rows is zero.
  o.overscan.poly_order = 1;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame lin, Calibrate(raw, Masters{}, o));
  double sum = 0;
  for (int y = 0; y < kRawH; ++y) sum += lin.data.at(0, y) - 100.0;
  EXPECT_NEAR(sum / kRawH, 0.0, 1e-3);
  EXPECT_GT(std::fabs(lin.data.at(0, 0) - 100.0), 0.5);
}

TEST(CalibrateTest, WholeRegionOverscanSubtractsOneValue) {
  RawImage raw = Frame([](int, int y) { return 1100 + y; }, [](int y) { return 1000 + y; });
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  o.overscan.statistic = OverscanOptions::Statistic::kMean;
  o.overscan.fit = OverscanOptions::Fit::kWhole;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, Masters{}, o));
  // Region mean = 1000 + 14.5.
  for (int y = 0; y < kRawH; ++y) EXPECT_FLOAT_EQ(out.data.at(2, y), 100.0f + y - 14.5f);
}

TEST(CalibrateTest, VarianceCountsNegativeSignalAsZeroAndUsesMaps) {
  // D = −30 in the left half, +50 in the right.
  RawImage raw = Frame([](int x, int) { return x < 16 ? 970 : 1050; }, [](int) { return 1000; });
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, Masters{}, o));
  EXPECT_FLOAT_EQ(out.variance.at(3, 3), 16.0f / 4.0f);           // RN²/g²
  EXPECT_FLOAT_EQ(out.variance.at(20, 3), (2 * 50 + 16) / 4.0f);  // (gD + RN²)/g²
  // Per-pixel maps: gain 1 + x/32, read noise 3 + y.
  Masters m;
  m.gain_map = std::make_shared<Image<float>>(
      MakeImage(kDataW, kRawH, [](int x, int) { return 1.0 + x / 32.0; }));
  m.read_noise_map =
      std::make_shared<Image<float>>(MakeImage(kDataW, kRawH, [](int, int y) { return 3.0 + y; }));
  o.output_unit = RecipeOptions::Unit::kElectron;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame mapped, Calibrate(raw, m, o));
  for (int x : {3, 20, 31}) {
    for (int y : {0, 7, 29}) {
      const double g = 1.0 + x / 32.0, rn = 3.0 + y, d = x < 16 ? -30 : 50;
      const double var_adu = (g * std::max(d, 0.0) + rn * rn) / (g * g);
      EXPECT_NEAR(mapped.data.at(x, y), d * g, 1e-4);
      EXPECT_NEAR(mapped.variance.at(x, y), var_adu * g * g, 1e-4 * var_adu * g * g);
    }
  }
  EXPECT_EQ(mapped.header.GetString(kKeyReadNoise).value(), "map");
}

TEST(CalibrateTest, MastersVariancePropagates) {
  RawImage raw = Frame([](int, int) { return 1400; }, [](int) { return 1000; });
  Masters m;
  m.bias = MakeMaster(
      kDataW, kRawH, [](int, int) { return 0.0; }, [](int, int) { return 3.0; });
  m.dark = MakeMaster(
      kDataW, kRawH, [](int, int) { return 100.0; }, [](int, int) { return 8.0; });
  m.dark_exptime = 25;  // scale 2 → 200 ADU, variance 4·8 = 32
  m.flat = MakeMaster(
      kDataW, kRawH, [](int, int) { return 4.0; }, [](int, int) { return 0.16; });
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, m, o));
  // a = 400 − 200 = 200, σ_a² = (2·400+16)/4 + 3 + 32 = 239; b = 1, σ_b² = 0.16/16 = 0.01.
  EXPECT_FLOAT_EQ(out.data.at(1, 1), 200.0f);
  EXPECT_FLOAT_EQ(out.variance.at(1, 1), 239.0f + 200.0f * 200.0f * 0.01f);
}

TEST(CalibrateTest, DarkUnscaledWhenScalingOff) {
  RawImage raw = Frame([](int, int) { return 1100; }, [](int) { return 1000; });
  Masters m;
  m.dark = MakeMaster(kDataW, kRawH, [](int, int) { return 10.0; });
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  o.scale_dark = false;
  o.exptime = kNaN;  // not needed without scaling
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, m, o));
  EXPECT_FLOAT_EQ(out.data.at(0, 0), 90.0f);
  o.subtract_dark = false;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame none, Calibrate(raw, m, o));
  EXPECT_FLOAT_EQ(none.data.at(0, 0), 100.0f);
  EXPECT_FALSE(none.header.Has(kKeyDark));
}

TEST(CalibrateTest, DqBitsFromSaturationNonFiniteBadPixelsMastersAndLowFlat) {
  RawImage raw = MakeFrame(kRawW, kRawH, PixelType::kFloat32, [](int x, int y) {
                   if (x >= kDataW) return 1000.0;
                   if (x == 1 && y == 1) return 70000.0;  // saturated
                   if (x == 2 && y == 1) return std::numeric_limits<double>::infinity();
                   if (x == 3 && y == 1) return kNaN;
                   return 1100.0;
                 }).pixels;
  Masters m;
  m.bias = MakeMaster(
      kDataW, kRawH, [](int, int) { return 0.0; }, nullptr,
      [](int x, int y) -> uint16_t { return x == 4 && y == 2 ? kDqHot : 0; });
  m.flat = MakeMaster(kDataW, kRawH, [](int x, int y) { return x == 5 && y == 2 ? 0.0 : 2.0; });
  auto bpm = std::make_shared<Image<uint16_t>>(Image<uint16_t>::Filled(kDataW, kRawH, 0));
  bpm->at(6, 2) = 7;
  m.bad_pixels = bpm;
  RecipeOptions o = BasicOptions();
  o.output_unit = RecipeOptions::Unit::kAdu;
  o.saturation = 65000;
  FrameStats stats;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, m, o, nullptr, nullptr, &stats));
  EXPECT_EQ(out.dq.at(1, 1), kDqSaturated);
  EXPECT_EQ(out.dq.at(2, 1), kDqSaturated | kDqNoData);  // +inf ≥ saturation too
  EXPECT_EQ(out.dq.at(3, 1), kDqNoData);
  EXPECT_EQ(out.dq.at(4, 2), kDqHot);
  EXPECT_EQ(out.dq.at(5, 2), kDqLowFlat);
  EXPECT_EQ(out.dq.at(6, 2), kDqBad);
  EXPECT_EQ(out.dq.at(7, 2), 0);
  // The flat's mean includes the zero pixel (ccdproc's plain mean).
  const double n = kDataW * kRawH;
  const double norm = 2.0 * (n - 1) / n;
  EXPECT_NEAR(stats.flat_norm, norm, 1e-12);
  // Low-flat pixel: not divided. Others: divided by 2/norm.
  EXPECT_FLOAT_EQ(out.data.at(5, 2), 100.0f);
  EXPECT_NEAR(out.data.at(7, 2), 100.0 * norm / 2.0, 1e-4);
  EXPECT_EQ(stats.saturated, 2);
  EXPECT_EQ(stats.no_data, 2);
  EXPECT_EQ(stats.low_flat, 1);
  EXPECT_EQ(stats.bad, 1);
  EXPECT_EQ(stats.flagged, 6);
}

TEST(CalibrateTest, PreparedFlatGivesTheSameBits) {
  ::calibd::testing::CcdModel ccd;
  RawFrame light = ::calibd::testing::SimulateFrame(ccd, ::calibd::testing::FrameKind::kLight, 3);
  Masters m;
  m.flat = MakeMaster(
      ccd.data_width, ccd.height,
      [&](int x, int y) { return 1e4 * ::calibd::testing::FlatResponse(ccd, x, y); },
      [](int x, int) { return 100.0 + x; });
  RecipeOptions o;
  o.overscan.statistic = OverscanOptions::Statistic::kMedian;
  o.overscan.region = Section{ccd.data_width, ccd.width(), 0, ccd.height};
  o.trim = Section{0, ccd.data_width, 0, ccd.height};
  ASSERT_OK_AND_ASSIGN(CalibratedFrame a, Calibrate(light.pixels, m, o));
  ASSERT_OK_AND_ASSIGN(PreparedFlat prepared, NormalizeFlat(*m.flat, o.flat));
  Masters m2;
  m2.prepared_flat = std::make_shared<PreparedFlat>(std::move(prepared));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame b, Calibrate(light.pixels, m2, o));
  ASSERT_EQ(a.data.num_pixels(), b.data.num_pixels());
  EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.num_pixels() * 4), 0);
  EXPECT_EQ(std::memcmp(a.variance.data(), b.variance.data(), a.data.num_pixels() * 4), 0);
}

TEST(CalibrateTest, ThreadPoolAndBandSizeGiveBitIdenticalResults) {
  ::calibd::testing::CcdModel ccd;
  ccd.data_width = 301;
  ccd.height = 257;
  ccd.overscan_width = 9;
  RawFrame light = ::calibd::testing::SimulateFrame(ccd, ::calibd::testing::FrameKind::kLight, 11);
  const int w = ccd.data_width - 4, h = ccd.height - 2;
  Masters m;
  m.bias = MakeMaster(
      w, h, [](int x, int y) { return 0.5 + 0.001 * x * y; }, [](int, int) { return 0.1; });
  m.dark = MakeMaster(w, h, [](int x, int) { return 3.0 + 0.01 * x; });
  m.dark_exptime = 300;
  m.flat = MakeMaster(
      w, h, [&](int x, int y) { return 5e3 * ::calibd::testing::FlatResponse(ccd, x, y); });
  RecipeOptions o;
  o.overscan.statistic = OverscanOptions::Statistic::kMedian;
  o.overscan.fit = OverscanOptions::Fit::kPolynomial;
  o.overscan.poly_order = 3;
  o.overscan.region = Section{ccd.data_width, ccd.width(), 0, ccd.height};
  o.trim = Section{2, ccd.data_width - 2, 1, ccd.height - 1};
  o.gain = ccd.gain;
  o.read_noise = ccd.read_noise;
  o.exptime = ccd.exptime;
  o.saturation = 3000;
  FrameStats s0;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame ref, Calibrate(light.pixels, m, o, nullptr, nullptr, &s0));
  ThreadPool pool(2);
  BufferPool buffers;
  for (int band : {1, 5, 64, 1000}) {
    SCOPED_TRACE(band);
    o.band_rows = band;
    FrameStats s1;
    ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(light.pixels, m, o, &pool, &buffers, &s1));
    const size_t n = ref.data.num_pixels();
    EXPECT_EQ(std::memcmp(ref.data.data(), out.data.data(), n * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(ref.variance.data(), out.variance.data(), n * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(ref.dq.data(), out.dq.data(), n * sizeof(uint16_t)), 0);
    EXPECT_EQ(s0.mean, s1.mean);
    EXPECT_EQ(s0.median, s1.median);
    EXPECT_EQ(s0.flagged, s1.flagged);
  }
}

TEST(CalibrateTest, RawFrameOverloadKeepsTheRawHeader) {
  RawFrame raw;
  raw.pixels = Frame([](int, int) { return 1100; }, [](int) { return 1000; });
  raw.header.Set("OBJECT", "M31");
  raw.header.Set("BUNIT", "adu");
  ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(raw, Masters{}, BasicOptions()));
  EXPECT_EQ(out.header.GetString("OBJECT").value(), "M31");
  EXPECT_EQ(out.header.GetString("BUNIT").value(), "electron");
  bool history = false;
  for (const HeaderCard& c : out.header.cards()) history |= c.key == "HISTORY";
  EXPECT_TRUE(history);
}

TEST(CalibrateTest, EveryRawPixelTypeGivesTheSameResult) {
  // Values exactly representable in every type (uint8 aside: 0..255).
  auto data = [](int x, int y) { return 100 + (x * 3 + y * 5) % 97; };
  auto oscan = [](int y) { return 50 + y % 3; };
  RecipeOptions o = BasicOptions();
  o.saturation = 180;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame ref,
                       Calibrate(Frame(data, oscan, PixelType::kUint16), Masters{}, o));
  for (PixelType type : {PixelType::kUint8, PixelType::kInt16, PixelType::kInt32,
                         PixelType::kUint32, PixelType::kInt64, PixelType::kFloat32,
                         PixelType::kFloat64}) {
    SCOPED_TRACE(PixelTypeName(type));
    ASSERT_OK_AND_ASSIGN(CalibratedFrame out, Calibrate(Frame(data, oscan, type), Masters{}, o));
    const size_t n = ref.data.num_pixels();
    EXPECT_EQ(std::memcmp(ref.data.data(), out.data.data(), n * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(ref.variance.data(), out.variance.data(), n * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(ref.dq.data(), out.dq.data(), n * sizeof(uint16_t)), 0);
  }
  // Saturation was exercised: (x·3 + y·5) % 97 ≥ 80 somewhere.
  EXPECT_EQ(ref.dq.at(27, 0), kDqSaturated);
}

// The fused kernel against the recipe's formulas applied one step at a time, in double, on a
// realistic frame (noise, an overscan gradient, masters with variance and DQ, a partial trim):
// overscan (MeasureOverscan's model) → trim → variance → bias → dark × s → flat → gain.
TEST(CalibrateTest, FusedEqualsTheStepByStepFormulas) {
  testing::CcdModel ccd;
  RawFrame light = testing::SimulateFrame(ccd, testing::FrameKind::kLight, 21);
  const Section trim{1, ccd.data_width - 1, 2, ccd.height};
  const int w = trim.width(), h = trim.height();
  Masters m;
  m.bias = MakeMaster(
      w, h, [](int x, int) { return 1.0 + 0.1 * x; }, [](int, int) { return 0.3; },
      [](int x, int y) -> uint16_t { return x == y ? kDqBad : 0; });
  m.dark = MakeMaster(
      w, h, [](int, int y) { return 2.0 + 0.05 * y; }, [](int, int) { return 0.2; });
  m.dark_exptime = 40;
  m.flat = MakeMaster(
      w, h, [&](int x, int y) { return 9e3 * testing::FlatResponse(ccd, x, y); },
      [](int, int) { return 90.0; });
  RecipeOptions o;
  o.overscan.statistic = OverscanOptions::Statistic::kMedian;
  o.overscan.region = Section{ccd.data_width, ccd.width(), 0, ccd.height};
  o.trim = trim;
  o.gain = ccd.gain;
  o.read_noise = ccd.read_noise;
  o.exptime = ccd.exptime;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame fused, Calibrate(light.pixels, m, o));
  EXPECT_EQ(fused.unit, "electron");  // the gain is applied once, at the end
  ASSERT_EQ(fused.width(), w);
  ASSERT_EQ(fused.height(), h);

  ASSERT_OK_AND_ASSIGN(OverscanModel oscan, MeasureOverscan(light.pixels, o.overscan));
  ASSERT_OK_AND_ASSIGN(PreparedFlat flat, NormalizeFlat(*m.flat, o.flat));
  const double g = o.gain, rn = o.read_noise, s = o.exptime / m.dark_exptime;
  std::vector<float> raw_row(light.pixels.width());
  for (int y = 0; y < h; ++y) {
    const int yr = y + trim.y0;
    light.pixels.RowToFloat(yr, 0, light.pixels.width(), raw_row.data());
    for (int x = 0; x < w; ++x) {
      const int xr = x + trim.x0;
      double d = raw_row[xr] - oscan.At(xr, yr);                       // overscan, trim
      double v = (g * std::max(d, 0.0) + rn * rn) / (g * g);           // create_deviation
      d -= m.bias->data.at(x, y);                                      // bias
      v += m.bias->variance.at(x, y);
      d -= s * m.dark->data.at(x, y);                                  // dark × s
      v += s * s * m.dark->variance.at(x, y);
      const double inv = flat.inverse.at(x, y);                        // flat: × n/F
      d *= inv;
      v = inv * inv * (v + d * d * flat.norm_variance.at(x, y));
      d *= g;                                                          // gain
      v *= g * g;
      const uint16_t q = m.bias->dq.at(x, y) | (flat.dq.empty() ? 0 : flat.dq.at(x, y));
      ASSERT_NEAR(fused.data.at(x, y), d, 1e-5 * std::fabs(d) + 1e-4) << x << "," << y;
      ASSERT_NEAR(fused.variance.at(x, y), v, 1e-5 * v) << x << "," << y;
      ASSERT_EQ(fused.dq.at(x, y), q) << x << "," << y;
    }
  }
}

// ---- Bad inputs, exact codes. ----

class BadInputTest : public ::testing::Test {
 protected:
  RawImage raw_ = Frame([](int, int) { return 1100; }, [](int) { return 1000; });
  RecipeOptions o_ = BasicOptions();
};

TEST_F(BadInputTest, MasterShapeMismatchNamesBothShapes) {
  Masters m;
  m.bias = MakeMaster(kDataW - 1, kRawH, [](int, int) { return 0.0; });
  EXPECT_THAT(Calibrate(raw_, m, o_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("31×30"), HasSubstr("32×30"))));
  Masters m2;
  m2.flat = MakeMaster(
      kDataW, kRawH, [](int, int) { return 1.0; }, [](int, int) { return 1.0; });
  const_cast<CalibratedFrame&>(*m2.flat).variance = MakeImage(3, 3, [](int, int) { return 1.0; });
  EXPECT_THAT(Calibrate(raw_, m2, o_), StatusIs(absl::StatusCode::kInvalidArgument));
  Masters m3;
  m3.bad_pixels = std::make_shared<Image<uint16_t>>(Image<uint16_t>::Filled(5, 5, 0));
  EXPECT_THAT(Calibrate(raw_, m3, o_), StatusIs(absl::StatusCode::kInvalidArgument));
  Masters m4;
  m4.dark = MakeMaster(kDataW + 1, kRawH, [](int, int) { return 1.0; });
  m4.dark_exptime = 10;
  EXPECT_THAT(Calibrate(raw_, m4, o_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("33×30"), HasSubstr("32×30"))));
}

TEST_F(BadInputTest, NanFlat) {
  Masters m;
  m.flat = MakeMaster(kDataW, kRawH, [](int x, int) { return x == 3 ? kNaN : 1.0; });
  EXPECT_THAT(Calibrate(raw_, m, o_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN flat")));
  m.flat = MakeMaster(kDataW, kRawH, [](int, int) { return 0.0; });
  EXPECT_THAT(Calibrate(raw_, m, o_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN flat")));
  m.flat = MakeMaster(kDataW, kRawH, [](int, int) { return 1.0; });
  o_.flat.norm = FlatOptions::Norm::kValue;
  o_.flat.value = -1;
  EXPECT_THAT(Calibrate(raw_, m, o_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN flat")));
  o_.flat.value = 0.5;
  EXPECT_OK(Calibrate(raw_, m, o_));
}

TEST_F(BadInputTest, DarkExposureMustBePositiveWhenScaling) {
  Masters m;
  m.dark = MakeMaster(kDataW, kRawH, [](int, int) { return 1.0; });
  for (double t : {0.0, -5.0, kNaN}) {
    m.dark_exptime = t;
    EXPECT_THAT(Calibrate(raw_, m, o_),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dark")))
        << t;
  }
  m.dark_exptime = 10;
  o_.exptime = kNaN;  // the frame's exposure is missing
  EXPECT_THAT(Calibrate(raw_, m, o_), StatusIs(absl::StatusCode::kInvalidArgument));
  o_.exptime = 10;
  EXPECT_OK(Calibrate(raw_, m, o_));
}

TEST_F(BadInputTest, GainAndReadNoise) {
  o_.gain = 0;
  EXPECT_THAT(Calibrate(raw_, Masters{}, o_), StatusIs(absl::StatusCode::kInvalidArgument));
  o_.gain = -1.5;
  EXPECT_THAT(Calibrate(raw_, Masters{}, o_), StatusIs(absl::StatusCode::kInvalidArgument));
  o_.gain = 1.5;
  o_.read_noise = -1;
  EXPECT_THAT(Calibrate(raw_, Masters{}, o_), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BadInputTest, Sections) {
  RecipeOptions o = o_;
  o.trim = Section{0, kRawW + 1, 0, kRawH};  // past the right edge
  EXPECT_THAT(Calibrate(raw_, Masters{}, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("TRIMSEC")));
  o = o_;
  o.trim = Section{5, 5, 0, kRawH};  // empty
  EXPECT_THAT(Calibrate(raw_, Masters{}, o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = o_;
  o.overscan.region = Section{kDataW, kRawW + 3, 0, kRawH};
  EXPECT_THAT(Calibrate(raw_, Masters{}, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("BIASSEC")));
  o = o_;
  o.overscan.region = Section{kDataW, kRawW, 0, 10};  // does not cover the trimmed rows
  EXPECT_THAT(Calibrate(raw_, Masters{}, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cover")));
  o.overscan.fit = OverscanOptions::Fit::kWhole;  // a whole-region value needs no cover
  EXPECT_OK(Calibrate(raw_, Masters{}, o));
  o = o_;
  o.overscan.fit = OverscanOptions::Fit::kPolynomial;
  o.overscan.poly_order = 10;
  EXPECT_THAT(Calibrate(raw_, Masters{}, o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = o_;
  o.trim->x_reversed = true;
  EXPECT_THAT(Calibrate(raw_, Masters{}, o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = o_;
  o.flat.stats_region = Section{0, 100, 0, 5};
  Masters m;
  m.flat = MakeMaster(kDataW, kRawH, [](int, int) { return 1.0; });
  EXPECT_THAT(Calibrate(raw_, m, o), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BadInputTest, NonFiniteOverscan) {
  RawImage raw = Frame([](int, int) { return 1100; }, [](int y) { return y == 3 ? kNaN : 1000; },
                       PixelType::kFloat32);
  o_.overscan.statistic = OverscanOptions::Statistic::kMean;
  EXPECT_THAT(Calibrate(raw, Masters{}, o_), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace calibd::calib
