// core/noise on synthetic stacks with known truth: read noise, photon-transfer gain, dark
// current with hot pixels, bad pixels, gain normalisation — each product recovered within its
// own standard error (the fraction of pixels within 3 SE), and bad input refused with the
// exact code and a message that says what to supply.
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/image/dq.h"
#include "core/noise/noise.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/combine/combine_testing.h"
#include "tests/noise/noise_testing.h"
#include "tests/testing/synthetic.h"

namespace calibd::noise {
namespace {

using ::calibd::testing::Gaussian;
using ::calibd::testing::StatusIs;
using ntest::FractionWithin;
using ntest::kHeight;
using ntest::kWidth;
using ntest::Stack;
using ::testing::HasSubstr;

// A smooth truth map in [lo, hi].
std::function<double(int, int)> TruthMap(double lo, double hi, double phase) {
  return [=](int x, int y) {
    return lo + (hi - lo) * 0.5 * (1 + std::sin(0.37 * x + 0.23 * y + phase));
  };
}

TEST(ReadNoise, RecoversPerPixelSigmaWithinItsStandardError) {
  const double gain = 2.0;  // e-/ADU
  auto rn = TruthMap(3, 6, 0.1);
  Stack s;
  Gaussian g(11);
  for (int k = 0; k < 60; ++k) {
    CalibratedFrame& f = s.Add([&](int x, int y) { return 100 + rn(x, y) / gain * g.Next(); });
    // Pixel (5, 7) is masked in all but one frame: too few frames.
    if (k > 0) {
      f.dq = Image<uint16_t>::Filled(kWidth, kHeight, 0);
      f.dq.at(5, 7) = kDqCosmicRay;
    }
  }
  ReadNoiseOptions options;
  options.gain = gain;
  ThreadPool pool(2);
  ASSERT_OK_AND_ASSIGN(NoiseProduct p, BuildReadNoise(s.Sources(), options, &pool));
  const Image<float>* map = p.Find("READ_NOISE");
  const Image<float>* err = p.Find("READ_NOISE_ERR");
  ASSERT_NE(map, nullptr);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(p.FindMap("READ_NOISE")->unit, "electron");
  auto skip = [](int x, int y) { return x == 5 && y == 7; };
  EXPECT_GE(FractionWithin(*map, *err, rn, 3, skip), 0.99);
  EXPECT_EQ(map->at(5, 7), 0.0f);
  EXPECT_EQ(p.dq.at(5, 7), kDqBad | kDqNoData);
  EXPECT_EQ(p.Find("NFRAMES")->at(5, 7), 1);
  // RDNOISE: the median of the map, close to the truth's median (4.5).
  ASSERT_OK_AND_ASSIGN(double median, p.header.GetDouble("RDNOISE"));
  ASSERT_OK_AND_ASSIGN(double median_err, p.header.GetDouble("RDNOISEE"));
  EXPECT_NEAR(median, 4.5, 5 * median_err + 0.05);

  // Streaming: a one-row band gives the same maps.
  options.memory_budget_bytes = 1;
  ASSERT_OK_AND_ASSIGN(NoiseProduct q, BuildReadNoise(s.Sources(), options, nullptr));
  for (int64_t i = 0; i < map->num_pixels(); ++i) {
    ASSERT_EQ(map->data()[i], q.Find("READ_NOISE")->data()[i]) << i;
  }
}

TEST(ReadNoise, BadInput) {
  Stack one;
  one.Add([](int, int) { return 0.0; });
  EXPECT_THAT(BuildReadNoise(one.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("need at least 2 bias frames for read noise, got 1")));
  Stack mixed;
  mixed.Add([](int, int) { return 0.0; });
  mixed.Add([](int, int) { return 0.0; }, {}, nullptr, kWidth, kHeight - 1);
  EXPECT_THAT(BuildReadNoise(mixed.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("frames of different shapes: frame #1 is 64x47")));
}

// A cancelled build (the client went away) stops reading at the next band: its inputs are
// CancellableSources, as server/noise_build.cc opens them.
TEST(ReadNoise, CancelledBuildStopsAtTheNextBand) {
  using combine::ctest::ScriptedSource;
  std::atomic<bool> cancel{false};
  auto Build = [&](int cancel_at, std::vector<int>* reads) {
    reads->assign(4, 0);
    Sources s;
    for (int i = 0; i < 4; ++i) {
      ScriptedSource::OnRead on_read = nullptr;
      if (i == 0) {
        on_read = [&cancel, cancel_at](int n, int) {
          if (n == cancel_at) cancel.store(true);
          return absl::OkStatus();
        };
      }
      s.push_back(combine::CancellableSource(
          std::make_unique<ScriptedSource>("bias", &(*reads)[i], on_read), &cancel));
    }
    ReadNoiseOptions o;
    o.memory_budget_bytes = 1;  // one-row bands
    return BuildReadNoise(std::move(s), o);
  };
  std::vector<int> reads;
  ASSERT_OK(Build(-1, &reads).status());
  const int bands = reads[0];
  ASSERT_GE(bands, ScriptedSource::kHeight);  // every row read at least once
  EXPECT_THAT(Build(3, &reads), StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(reads[0], 3);  // it raised the flag while reading its third band
  EXPECT_EQ(reads[1], 2);  // and the next read, frame 1's third, was refused
  EXPECT_EQ(reads[3], 2);
}

// Flats of a detector with two amplifiers (left half gain 1.5, right half 2.0 e-/ADU).
struct PtcData {
  Stack flats, biases;
  double rn = 5.0;  // e-
  double Gain(int x) const { return x < kWidth / 2 ? 1.5 : 2.0; }
};

// `compressed_level`: a level whose fluctuations the detector compresses by 20 % (outside the
// linear range: its variance falls 36 % below the curve).
PtcData MakePtc(const std::vector<double>& levels_e, int frames_per_level, double saturation,
                uint64_t seed, double compressed_level = 0) {
  PtcData d;
  Gaussian g(seed);
  auto response = TruthMap(0.9, 1.1, 0.5);
  for (int k = 0; k < 4; ++k) {
    d.biases.Add([&](int x, int) { return 100 + d.rn / d.Gain(x) * g.Next(); });
  }
  for (double level : levels_e) {
    for (int k = 0; k < frames_per_level; ++k) {
      d.flats.Add([&](int x, int y) {
        const double e = level * response(x, y);
        const double k = level == compressed_level ? 0.8 : 1.0;
        const double adu = 100 + (e + k * (std::sqrt(e) * g.Next() + d.rn * g.Next())) / d.Gain(x);
        return saturation > 0 ? std::min(adu, saturation) : adu;
      });
    }
  }
  return d;
}

TEST(Gain, PhotonTransferPerSectionAndPerPixelMap) {
  const std::vector<double> levels = {1000, 3000, 8000, 15000, 25000, 60000, 30000};
  constexpr int kFrames = 16;
  PtcData d = MakePtc(levels, kFrames, /*saturation=*/35000, 21, /*compressed_level=*/30000);
  GainOptions options;
  options.level_sizes.assign(levels.size(), kFrames);
  options.sections = {"[1:32,*]", "[33:64,*]"};
  options.saturation = 35000;
  ThreadPool pool(2);
  ASSERT_OK_AND_ASSIGN(NoiseProduct p,
                       BuildGain(d.flats.Sources(), d.biases.Sources(), options, &pool));
  ASSERT_OK_AND_ASSIGN(double g1, p.header.GetDouble("GAIN"));
  ASSERT_OK_AND_ASSIGN(double e1, p.header.GetDouble("GAINERR"));
  ASSERT_OK_AND_ASSIGN(double g2, p.header.GetDouble("GAIN2"));
  ASSERT_OK_AND_ASSIGN(double e2, p.header.GetDouble("GAINERR2"));
  EXPECT_NEAR(g1, 1.5, 3 * e1);
  EXPECT_NEAR(g2, 2.0, 3 * e2);
  EXPECT_LT(e1, 0.05);  // ~2 %: five levels of 1536-pixel variances (3.6 % each)
  ASSERT_OK_AND_ASSIGN(double rn, p.header.GetDouble("RDNOISE"));
  ASSERT_OK_AND_ASSIGN(double rn_err, p.header.GetDouble("RDNOISEE"));
  EXPECT_NEAR(rn, 5.0, 3 * rn_err + 0.05);
  ASSERT_OK_AND_ASSIGN(double rn_bias, p.header.GetDouble("RDNOISEB"));
  EXPECT_NEAR(rn_bias, 5.0, 0.5);  // one bias pair over 1536 pixels: ~2 % per sigma
  // The saturated level (60000 e- = 40000 ADU > 35000) is excluded and named.
  ASSERT_OK_AND_ASSIGN(bool use6, p.header.GetBool("LEV6_USE"));
  EXPECT_FALSE(use6);
  ASSERT_OK_AND_ASSIGN(std::string why, p.header.GetString("EXCL_1"));
  EXPECT_THAT(why, HasSubstr("level 6"));
  EXPECT_THAT(why, HasSubstr("saturat"));
  // The compressed level (30000 e-, below saturation) is excluded as non-linear.
  ASSERT_OK_AND_ASSIGN(bool use7, p.header.GetBool("LEV7_USE"));
  EXPECT_FALSE(use7);
  ASSERT_OK_AND_ASSIGN(std::string why7, p.header.GetString("EXCL_2"));
  EXPECT_THAT(why7, HasSubstr("level 7"));
  EXPECT_THAT(why7, HasSubstr("outside the linear range"));
  for (int l = 1; l <= 5; ++l) {
    ASSERT_OK_AND_ASSIGN(bool use, p.header.GetBool(absl::StrCat("LEV", l, "_USE")));
    EXPECT_TRUE(use) << l;
  }
  // Per-pixel map: the slope 1/g is linear in the data; check it within 3 SE.
  const Image<float>& gm = *p.Find("GAIN");
  const Image<float>& ge = *p.Find("GAIN_ERR");
  Image<float> slope = Image<float>::Allocate(kWidth, kHeight);
  Image<float> slope_se = Image<float>::Allocate(kWidth, kHeight);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      slope.at(x, y) = 1 / gm.at(x, y);
      slope_se.at(x, y) = ge.at(x, y) / (gm.at(x, y) * gm.at(x, y));
    }
  }
  const double coverage = FractionWithin(
      slope, slope_se, [&](int x, int) { return 1 / d.Gain(x); }, 3);
  EXPECT_GE(coverage, 0.985) << "per-pixel 1/gain within 3 SE";
}

TEST(Gain, BadInput) {
  PtcData two = MakePtc({1000, 5000}, 2, 0, 3);
  EXPECT_THAT(BuildGain(two.flats.Sources(), two.biases.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("needs flat pairs at >= 3 illumination levels, got 2")));
  PtcData sat = MakePtc({60000, 70000, 80000}, 2, 35000, 4);
  GainOptions options;
  options.saturation = 35000;
  EXPECT_THAT(BuildGain(sat.flats.Sources(), sat.biases.Sources(), options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("has 0 usable levels, needs >= 3"),
                                        HasSubstr("level 1 (frame #0): saturated"),
                                        HasSubstr("Supply flat pairs at more unsaturated"))));
  PtcData odd = MakePtc({1000, 5000, 9000}, 2, 0, 5);
  Sources flats = odd.flats.Sources();
  flats.pop_back();
  EXPECT_THAT(BuildGain(std::move(flats), odd.biases.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("left over")));
}

// Darks: intercept I, rate D with hot pixels, read noise 4 e-, variance planes as the recipe
// would write them (read noise² + expected signal).
struct DarkData {
  Stack darks;
  std::function<double(int, int)> rate, intercept;
  std::vector<std::pair<int, int>> hot;
};

DarkData MakeDarks(int frames_per_time, bool variance, uint64_t seed) {
  DarkData d;
  auto base = TruthMap(0.05, 0.07, 1.0);
  for (int k = 0; k < 20; ++k) d.hot.emplace_back((k * 13 + 3) % kWidth, (k * 7 + 2) % kHeight);
  d.rate = [base, hot = d.hot](int x, int y) {
    for (auto& [hx, hy] : hot) {
      if (hx == x && hy == y) return 2.0;
    }
    return base(x, y);
  };
  d.intercept = TruthMap(8, 12, 2.0);
  Gaussian g(seed);
  for (double t : {10.0, 30.0, 60.0, 120.0, 300.0}) {
    for (int k = 0; k < frames_per_time; ++k) {
      auto var = [&](int x, int y) { return 16 + d.intercept(x, y) + d.rate(x, y) * t; };
      d.darks.Add(
          [&](int x, int y) {
            return d.intercept(x, y) + d.rate(x, y) * t + std::sqrt(var(x, y)) * g.Next();
          },
          {{"EXPTIME", t}}, variance ? std::function<double(int, int)>(var) : nullptr);
    }
  }
  return d;
}

TEST(DarkCurrent, RecoversRateAndInterceptAndFlagsHotPixels) {
  DarkData d = MakeDarks(8, /*variance=*/true, 31);
  ThreadPool pool(2);
  ASSERT_OK_AND_ASSIGN(NoiseProduct p, BuildDarkCurrent(d.darks.Sources(), {}, &pool));
  EXPECT_EQ(p.FindMap("DARK_CURRENT")->unit, "electron/s");
  EXPECT_GE(FractionWithin(*p.Find("DARK_CURRENT"), *p.Find("DARK_CURRENT_ERR"), d.rate, 3), 0.99);
  EXPECT_GE(
      FractionWithin(*p.Find("DARK_INTERCEPT"), *p.Find("DARK_INTERCEPT_ERR"), d.intercept, 3),
      0.99);
  // Hot pixels: completeness and false positives on the 20 planted among 3072.
  int found = 0, false_positive = 0;
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      const bool planted = d.rate(x, y) == 2.0;
      const bool flagged = (p.dq.at(x, y) & kDqHot) != 0;
      found += planted && flagged;
      false_positive += !planted && flagged;
    }
  }
  EXPECT_EQ(found, 20) << "completeness 100 %";
  EXPECT_EQ(false_positive, 0) << "false-positive rate 0 of 3052";
  ASSERT_OK_AND_ASSIGN(int64_t nhot, p.header.GetInt("NHOT"));
  EXPECT_EQ(nhot, 20);
  ASSERT_OK_AND_ASSIGN(double median, p.header.GetDouble("DARKCUR"));
  EXPECT_NEAR(median, 0.06, 0.003);
}

TEST(DarkCurrent, BadInput) {
  Stack two_times;
  for (double t : {10.0, 10.0, 30.0, 30.0})
    two_times.Add([](int, int) { return 1.0; }, {{"EXPTIME", t}});
  EXPECT_THAT(BuildDarkCurrent(two_times.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("needs darks at >= 3 distinct exposure times, got 2 (10, 30 s)")));
  Stack missing;
  missing.Add([](int, int) { return 1.0; }, {{"EXPTIME", 10.0}});
  missing.Add([](int, int) { return 1.0; });
  missing.Add([](int, int) { return 1.0; }, {{"EXPTIME", 30.0}});
  EXPECT_THAT(BuildDarkCurrent(missing.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("frame #1: no header keyword EXPTIME; supply the exposure time")));
  DarkData one = MakeDarks(1, /*variance=*/false, 5);
  EXPECT_THAT(BuildDarkCurrent(one.darks.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs >= 2 darks")));
}

TEST(BadPixels, CompletenessAndFalsePositivesOnPlantedPixels) {
  Gaussian g(41);
  auto response = TruthMap(0.9, 1.1, 0.3);
  CalibratedFrame flat;
  flat.data = Image<float>::Allocate(kWidth, kHeight);
  std::vector<std::pair<int, int>> dead, weak;
  for (int k = 0; k < 30; ++k) dead.emplace_back((k * 11 + 1) % kWidth, (k * 5 + 3) % kHeight);
  for (int k = 0; k < 10; ++k) weak.emplace_back((k * 17 + 40) % kWidth, (k * 3 + 30) % kHeight);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) flat.data.at(x, y) = response(x, y) * (1 + 0.01 * g.Next());
  }
  for (size_t k = 0; k < dead.size(); ++k) {
    flat.data.at(dead[k].first, dead[k].second) *= 0.1 + 0.3 * k / dead.size();  // 0.1–0.4
  }
  for (auto& [x, y] : weak) flat.data.at(x, y) *= 0.7;  // low but not dead (> 0.5)
  // A read-noise product with 10 noisy pixels (4x) and a dark product with hot pixels.
  NoiseProduct rn = NoiseProduct::Create(kKindReadNoise, kWidth, kHeight);
  Image<float>& rnm = rn.AddMap("READ_NOISE", "electron");
  std::vector<std::pair<int, int>> noisy;
  for (int k = 0; k < 10; ++k) noisy.emplace_back((k * 19 + 7) % kWidth, (k * 13 + 11) % kHeight);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) rnm.at(x, y) = 4 * (1 + 0.03 * g.Next());
  }
  for (auto& [x, y] : noisy) rnm.at(x, y) = 16;
  DarkData d = MakeDarks(8, true, 43);
  ASSERT_OK_AND_ASSIGN(NoiseProduct dark, BuildDarkCurrent(d.darks.Sources(), {}));
  BadPixelInputs in;
  in.flat = &flat;
  in.read_noise = &rn;
  in.dark_current = &dark;
  ASSERT_OK_AND_ASSIGN(NoiseProduct bp, BuildBadPixels(in, {}));
  auto count = [&](uint16_t bit, const std::vector<std::pair<int, int>>& planted, int* tp,
                   int* fp) {
    *tp = *fp = 0;
    for (int y = 0; y < kHeight; ++y) {
      for (int x = 0; x < kWidth; ++x) {
        const bool is =
            std::find(planted.begin(), planted.end(), std::make_pair(x, y)) != planted.end();
        const bool flagged = (bp.dq.at(x, y) & bit) != 0;
        *tp += is && flagged;
        *fp += !is && flagged;
      }
    }
  };
  int tp, fp;
  count(kDqDead, dead, &tp, &fp);
  EXPECT_EQ(tp, 30) << "dead completeness";
  EXPECT_EQ(fp, 0) << "dead false positives (10 weak pixels at 0.7 must not be flagged)";
  count(kDqHot, d.hot, &tp, &fp);
  EXPECT_EQ(tp, 20);
  EXPECT_EQ(fp, 0);
  count(kDqBad, noisy, &tp, &fp);
  EXPECT_EQ(tp, 10);
  EXPECT_LE(fp, 1) << "noisy: 5 robust sigma over 3072 Gaussian pixels";
  ASSERT_OK_AND_ASSIGN(int64_t ndead, bp.header.GetInt("NDEAD"));
  EXPECT_EQ(ndead, 30);

  EXPECT_THAT(BuildBadPixels({}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one input")));
  BadPixelOptions bad_box;
  bad_box.box = 4;
  EXPECT_THAT(BuildBadPixels(in, bad_box),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("box must be odd")));
}

TEST(GainNormalisation, RatiosBetweenSettings) {
  Gaussian g(51);
  Stack flats;
  const std::vector<std::pair<std::string, double>> settings = {
      {"low", 1.0}, {"mid", 2.0}, {"high", 4.0}};
  for (auto& [name, factor] : settings) {
    for (int k = 0; k < 5; ++k) {
      CalibratedFrame& f = flats.Add([&](int, int) { return factor * (1000 + 30 * g.Next()); });
      f.header.Set("GAINMODE", name);
    }
  }
  ASSERT_OK_AND_ASSIGN(std::vector<GainNormalisationRow> rows,
                       BuildGainNormalisation(flats.Sources(), {}));
  ASSERT_EQ(rows.size(), 3u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].setting, settings[i].first);
    EXPECT_EQ(rows[i].frames, 5);
    if (i == 0) {
      EXPECT_EQ(rows[i].ratio, 1.0);
      continue;
    }
    EXPECT_NEAR(rows[i].ratio, settings[i].second, 3 * rows[i].ratio_err);
    EXPECT_GT(rows[i].ratio_err, 0);
  }
  NoiseProduct table = GainNormalisationProduct(rows, "GAINMODE");
  ASSERT_OK_AND_ASSIGN(std::string s3, table.header.GetString("SET3"));
  EXPECT_EQ(s3, "high");
  Stack one;
  one.Add([](int, int) { return 1.0; }).header.Set("GAINMODE", "low");
  one.Add([](int, int) { return 1.0; }).header.Set("GAINMODE", "low");
  EXPECT_THAT(BuildGainNormalisation(one.Sources(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(">= 2 gain settings (GAINMODE), got only 'low'")));
}

}  // namespace
}  // namespace calibd::noise
