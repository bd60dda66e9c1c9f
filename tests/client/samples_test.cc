// Tests of the sample-frame generator behind `calibctl make-samples`: the files exist and read
// back as FITS with the promised header cards, and their pixel statistics match the CCD model
// in closed form (bias level and read noise from the overscan, exposure-scaled dark current,
// flat level).
#include "client/samples.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/fits/fits.h"
#include "core/image/section.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace calibd::client {
namespace {

using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;
using ::testing::HasSubstr;

SampleOptions Small() {
  SampleOptions o;
  o.data_width = 96;
  o.height = 80;
  o.overscan_width = 16;
  o.n_bias = 2;
  o.n_dark = 1;
  o.n_flat = 1;
  o.n_light = 2;
  o.stars = 5;
  o.cosmic_rays = 3;
  return o;
}

struct Stats {
  double mean = 0, stddev = 0;
};

Stats RegionStats(const RawFrame& f, int x0, int x1, int y0, int y1,
                  double (*model)(int y, const SampleOptions&), const SampleOptions& o) {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  for (int y = y0; y < y1; ++y) {
    const uint16_t* row = f.pixels.row<uint16_t>(y);
    for (int x = x0; x < x1; ++x) {
      const double v = row[x] - model(y, o);
      sum += v;
      sum2 += v * v;
      ++n;
    }
  }
  Stats s;
  s.mean = sum / n;
  s.stddev = std::sqrt(sum2 / n - s.mean * s.mean);
  return s;
}

// The bias level of row y in the model: level + gradient + a slow ripple.
double BiasModel(int y, const SampleOptions& o) {
  return o.bias_level + o.bias_row_slope * y + 2.0 * std::sin(0.05 * y);
}

TEST(SamplesTest, WritesEveryFrameWithItsHeader) {
  TempDir dir;
  const SampleOptions o = Small();
  ASSERT_OK_AND_ASSIGN(SampleSet set, MakeSamples(dir.path(), o));
  EXPECT_EQ(set.bias.size(), 2u);
  EXPECT_EQ(set.dark.size(), 1u);
  EXPECT_EQ(set.flat.size(), 1u);
  EXPECT_EQ(set.light.size(), 2u);
  EXPECT_EQ(set.certify_from, "2026-03-01T00:00:00Z");
  ASSERT_TRUE(std::filesystem::exists(set.spec_path));

  for (const std::string& path : {set.bias[0], set.dark[0], set.flat[0], set.light[1]}) {
    ASSERT_OK_AND_ASSIGN(RawFrame f, fits::ReadRawFrame(path));
    EXPECT_EQ(f.pixels.type(), PixelType::kUint16) << path;
    EXPECT_EQ(f.pixels.width(), o.data_width + o.overscan_width);
    EXPECT_EQ(f.pixels.height(), o.height);
    for (const char* key : {"IMAGETYP", "EXPTIME", "DATE-OBS", "GAIN", "RDNOISE", "BIASSEC",
                            "TRIMSEC", "FILTER"}) {
      EXPECT_TRUE(f.header.Has(key)) << path << " lacks " << key;
    }
    ASSERT_OK_AND_ASSIGN(std::string biassec, f.header.GetString("BIASSEC"));
    EXPECT_EQ(biassec, "[97:112,1:80]");
    ASSERT_OK_AND_ASSIGN(std::string trimsec, f.header.GetString("TRIMSEC"));
    EXPECT_EQ(trimsec, "[1:96,1:80]");
  }
  ASSERT_OK_AND_ASSIGN(RawFrame light, fits::ReadRawFrame(set.light[1]));
  ASSERT_OK_AND_ASSIGN(std::string type, light.header.GetString("IMAGETYP"));
  EXPECT_EQ(type, "light");
  ASSERT_OK_AND_ASSIGN(double t, light.header.GetDouble("EXPTIME"));
  EXPECT_EQ(t, o.light_exptime);
  // The second light starts exptime + 60 s after the first, at 21:00 UTC.
  ASSERT_OK_AND_ASSIGN(std::string date, light.header.GetString("DATE-OBS"));
  EXPECT_EQ(date, "2026-03-01T21:03:00.000");
}

TEST(SamplesTest, SpecJsonNamesTheGeometry) {
  const SampleOptions o = Small();
  const std::string json = SampleSpecJson(o);
  EXPECT_THAT(json, HasSubstr("\"name\": \"demo/ccd0\""));
  EXPECT_THAT(json, HasSubstr("\"width\": 112"));
  EXPECT_THAT(json, HasSubstr("\"overscan_section\": \"[97:112,1:80]\""));
  EXPECT_THAT(json, HasSubstr("\"trim_section\": \"[1:96,1:80]\""));
}

TEST(SamplesTest, PixelStatisticsFollowTheModel) {
  const SampleOptions o = Small();
  // Bias: overscan and data both sit at the bias level; spread = read noise / gain.
  ASSERT_OK_AND_ASSIGN(RawFrame bias, SimulateSampleFrame(o, "bias", 0));
  const Stats over = RegionStats(bias, o.data_width, o.data_width + o.overscan_width, 0, o.height,
                                 BiasModel, o);
  const double sigma = o.read_noise / o.gain;
  const double n_over = double(o.overscan_width) * o.height;
  EXPECT_NEAR(over.mean, 0, 5 * sigma / std::sqrt(n_over));
  EXPECT_NEAR(over.stddev, std::hypot(sigma, 1 / std::sqrt(12.0)), 0.1 * sigma);

  // Dark: dark current × exptime / gain above the bias (hot pixels are rare: use the median).
  ASSERT_OK_AND_ASSIGN(RawFrame dark, SimulateSampleFrame(o, "dark", 0));
  std::vector<double> d;
  for (int y = 0; y < o.height; ++y) {
    for (int x = 0; x < o.data_width; ++x) d.push_back(dark.pixels.row<uint16_t>(y)[x] - BiasModel(y, o));
  }
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  EXPECT_NEAR(d[d.size() / 2], o.dark_current * o.dark_exptime / o.gain, 1.0);

  // Flat: level × response / gain; the response averages close to 1 (within its vignetting).
  ASSERT_OK_AND_ASSIGN(RawFrame flat, SimulateSampleFrame(o, "flat", 0));
  const Stats f = RegionStats(flat, 0, o.data_width, 0, o.height, BiasModel, o);
  EXPECT_NEAR(f.mean, o.flat_level / o.gain, 0.05 * o.flat_level / o.gain);
}

TEST(SamplesTest, DeterministicForASeed) {
  SampleOptions o = Small();
  ASSERT_OK_AND_ASSIGN(RawFrame a, SimulateSampleFrame(o, "light", 1));
  ASSERT_OK_AND_ASSIGN(RawFrame b, SimulateSampleFrame(o, "light", 1));
  ASSERT_EQ(a.pixels.size_bytes(), b.pixels.size_bytes());
  EXPECT_EQ(std::memcmp(a.pixels.data(), b.pixels.data(), a.pixels.size_bytes()), 0);
  o.seed += 1;
  ASSERT_OK_AND_ASSIGN(RawFrame c, SimulateSampleFrame(o, "light", 1));
  EXPECT_NE(std::memcmp(a.pixels.data(), c.pixels.data(), a.pixels.size_bytes()), 0);
}

TEST(SamplesTest, LightsHaveSaturatedStars) {
  const SampleOptions o = Small();
  ASSERT_OK_AND_ASSIGN(RawFrame light, SimulateSampleFrame(o, "light", 0));
  int saturated = 0;
  for (int y = 0; y < o.height; ++y) {
    for (int x = 0; x < o.data_width; ++x) saturated += light.pixels.row<uint16_t>(y)[x] >= o.saturation;
  }
  EXPECT_GT(saturated, 0);
}

TEST(SamplesTest, CompressedLightsReadBackIdentically) {
  TempDir dir;
  SampleOptions o = Small();
  o.light_compression = "RICE_1";
  ASSERT_OK_AND_ASSIGN(SampleSet set, MakeSamples(dir.path(), o));
  ASSERT_OK_AND_ASSIGN(RawFrame read, fits::ReadRawFrame(set.light[0]));
  ASSERT_OK_AND_ASSIGN(RawFrame made, SimulateSampleFrame(o, "light", 0));
  ASSERT_EQ(read.pixels.type(), PixelType::kUint16);
  ASSERT_EQ(read.pixels.size_bytes(), made.pixels.size_bytes());
  EXPECT_EQ(std::memcmp(read.pixels.data(), made.pixels.data(), made.pixels.size_bytes()), 0);
}

TEST(SamplesTest, RefusesToOverwriteAndRejectsBadInput) {
  TempDir dir;
  SampleOptions o = Small();
  ASSERT_OK(MakeSamples(dir.path(), o).status());
  EXPECT_THAT(MakeSamples(dir.path(), o), StatusIs(absl::StatusCode::kAlreadyExists));
  o.overwrite = true;
  EXPECT_OK(MakeSamples(dir.path(), o).status());
  EXPECT_THAT(SimulateSampleFrame(o, "sky", 0), StatusIs(absl::StatusCode::kInvalidArgument));
  o.night = "March 1st";
  EXPECT_THAT(SimulateSampleFrame(o, "bias", 0), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace calibd::client
