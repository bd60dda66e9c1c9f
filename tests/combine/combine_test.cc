// Closed-form tests of core/combine on small synthetic stacks: every expected value below
// follows from how the stack was built, not from running our code. The sources (read errors,
// cancellation, FITS files) are in combine_sources_test.cc.
#include "core/combine/combine.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "core/combine/kernel.h"
#include "core/image/dq.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/combine/combine_testing.h"
#include "tests/testing/synthetic.h"

namespace calibd::combine {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;
using Method = CombineOptions::Method;
using ::calibd::combine::ctest::MakeFrame;
using ::calibd::combine::ctest::NoClip;
using ::calibd::combine::ctest::Sources;

// --- the sorting network ----------------------------------------------------------------------

TEST(SortingNetworkTest, SortsEveryZeroOneInputUpTo16) {
  // 0-1 principle: a comparator network sorts everything iff it sorts every 0/1 sequence.
  for (int n = 1; n <= 16; ++n) {
    internal::SortingNetwork net(n);
    for (uint32_t bits = 0; bits < (1u << n); ++bits) {
      std::vector<float> v(n);
      for (int i = 0; i < n; ++i) v[i] = (bits >> i) & 1;
      net.Sort(v.data());
      ASSERT_TRUE(std::is_sorted(v.begin(), v.end())) << "n=" << n << " bits=" << bits;
    }
  }
}

TEST(SortingNetworkTest, SortsRandomLanesForLargerN) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-100, 100);
  for (int n : {17, 20, 31, 33, 64, 100, 201}) {
    internal::SortingNetwork net(n);
    std::vector<float> v(n * internal::kLanes);
    for (float& x : v) x = u(rng);
    std::vector<float> copy = v;
    net.SortLanes(v.data());
    for (int l = 0; l < internal::kLanes; ++l) {
      std::vector<float> want, got;
      for (int k = 0; k < n; ++k) {
        want.push_back(copy[k * internal::kLanes + l]);
        got.push_back(v[k * internal::kLanes + l]);
      }
      std::sort(want.begin(), want.end());
      ASSERT_EQ(got, want) << "n=" << n << " lane " << l;
    }
  }
}

// --- methods ------------------------------------------------------------------------------------

TEST(CombineTest, MedianOfOddAndEvenStacks) {
  // Frame i holds base(x, y) + d[i]; the median is base + median(d).
  const int w = 13, h = 7;
  auto base = [](int x, int y) { return 100.0f + x + 10.0f * y; };
  for (const std::vector<float>& d :
       {std::vector<float>{5, -3, 40, 0, 1}, std::vector<float>{5, -3, 40, 0, 1, -7}}) {
    std::vector<std::shared_ptr<CalibratedFrame>> frames;
    for (float di : d) frames.push_back(MakeFrame(w, h, [&](int x, int y) { return base(x, y) + di; }));
    std::vector<float> s = d;
    std::sort(s.begin(), s.end());
    const float med = s.size() % 2 ? s[s.size() / 2] : 0.5f * (s[s.size() / 2 - 1] + s[s.size() / 2]);
    ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), NoClip(Method::kMedian)));
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        EXPECT_FLOAT_EQ(r.frame.data.at(x, y), base(x, y) + med) << x << "," << y;
        EXPECT_EQ(r.count.at(x, y), d.size());
        EXPECT_EQ(r.frame.dq.at(x, y), 0);
      }
    }
    EXPECT_EQ(r.rejected_fraction, 0);
    ASSERT_OK_AND_ASSIGN(int64_t ncombine, r.frame.header.GetInt("NCOMBINE"));
    EXPECT_EQ(ncombine, static_cast<int64_t>(d.size()));
  }
}

TEST(CombineTest, MeanAndSumWithCcdprocVariance) {
  // Values 1, 2, 3, 4, 10 at every pixel: mean 4, sum 20, population variance 10.
  const std::vector<float> v = {1, 2, 3, 4, 10};
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (float x : v) frames.push_back(MakeFrame(5, 3, [x](int, int) { return x; }));
  ASSERT_OK_AND_ASSIGN(CombineResult mean, Combine(Sources(frames), NoClip(Method::kMean)));
  EXPECT_FLOAT_EQ(mean.frame.data.at(2, 1), 4.0f);
  EXPECT_FLOAT_EQ(mean.frame.variance.at(2, 1), 10.0f / 5);  // std² / n
  ASSERT_OK_AND_ASSIGN(CombineResult sum, Combine(Sources(frames), NoClip(Method::kSum)));
  EXPECT_FLOAT_EQ(sum.frame.data.at(4, 2), 20.0f);
  EXPECT_FLOAT_EQ(sum.frame.variance.at(4, 2), 10.0f * 5);  // std² · n
  ASSERT_OK_AND_ASSIGN(CombineResult med, Combine(Sources(frames), NoClip(Method::kMedian)));
  EXPECT_FLOAT_EQ(med.frame.data.at(0, 0), 3.0f);
  // |x - 3| = 2 1 0 1 7 → MAD 1; σ = 1.482602218505602 · 1; variance σ² / n.
  EXPECT_NEAR(med.frame.variance.at(0, 0), 1.482602218505602 * 1.482602218505602 / 5, 1e-6);
}

TEST(CombineTest, PropagatedVariance) {
  // Four frames with variance 4, 8, 12, 16: mean → Σv / n² = 40 / 16; sum → Σv = 40.
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (int i = 0; i < 4; ++i) {
    frames.push_back(MakeFrame(6, 4, [i](int, int) { return 10.0f + i; },
                               [i](int, int) { return 4.0f * (i + 1); }));
  }
  CombineOptions o = NoClip(Method::kMean);
  o.variance = CombineOptions::Variance::kPropagated;
  ASSERT_OK_AND_ASSIGN(CombineResult mean, Combine(Sources(frames), o));
  EXPECT_FLOAT_EQ(mean.frame.data.at(3, 3), 11.5f);
  EXPECT_FLOAT_EQ(mean.frame.variance.at(3, 3), 40.0f / 16);
  o.method = Method::kSum;
  ASSERT_OK_AND_ASSIGN(CombineResult sum, Combine(Sources(frames), o));
  EXPECT_FLOAT_EQ(sum.frame.variance.at(0, 0), 40.0f);
  // Weighted mean: weights 1, 1, 2, 0 → (10 + 11 + 2·12) / 4, variance (4 + 8 + 4·12) / 16.
  o.method = Method::kMean;
  o.weights = {1, 1, 2, 0};
  ASSERT_OK_AND_ASSIGN(CombineResult weighted, Combine(Sources(frames), o));
  EXPECT_FLOAT_EQ(weighted.frame.data.at(1, 1), 45.0f / 4);
  EXPECT_FLOAT_EQ(weighted.frame.variance.at(1, 1), 60.0f / 16);
}

TEST(CombineTest, WeightsAndGivenScale) {
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  const std::vector<float> v = {2, 4, 8};
  for (float x : v) frames.push_back(MakeFrame(9, 2, [x](int xx, int) { return x + xx; }));
  CombineOptions o = NoClip(Method::kMean);
  o.weights = {3, 1, 0.5};
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
  for (int x = 0; x < 9; ++x) {
    const double want = (3 * (2.0 + x) + 1 * (4.0 + x) + 0.5 * (8.0 + x)) / 4.5;
    EXPECT_NEAR(r.frame.data.at(x, 1), want, 1e-5);
  }
  // Given factors multiply each frame: (2·4, 4·2, 8·1) = 8 everywhere at x = 0.
  CombineOptions s = NoClip(Method::kMedian);
  s.scale = CombineOptions::Scale::kGiven;
  s.scale_factors = {4, 2, 1};
  ASSERT_OK_AND_ASSIGN(CombineResult scaled, Combine(Sources(frames), s));
  EXPECT_FLOAT_EQ(scaled.frame.data.at(0, 0), 8.0f);
  EXPECT_EQ(scaled.scale_factors, s.scale_factors);
}

TEST(CombineTest, InverseMedianAndMeanScalingNormaliseFlats) {
  // Flat i = level_i · response(x, y); 1/median scaling makes every frame response / median
  // of the response, so the combined flat equals that and every frame agrees exactly.
  const int w = 21, h = 111;  // 2331 pixels: an odd count, the median is one pixel
  auto response = [](int x, int y) { return 0.9f + 0.01f * ((x * 7 + y * 13) % 20); };
  std::vector<float> all;
  for (int y = 0; y < h; ++y) for (int x = 0; x < w; ++x) all.push_back(response(x, y));
  std::vector<float> sorted = all;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double med_response = sorted[sorted.size() / 2];
  const std::vector<float> levels = {1000, 2500, 4000, 1200};
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (float L : levels) frames.push_back(MakeFrame(w, h, [&](int x, int y) { return L * response(x, y); }));
  for (int64_t budget : {int64_t{1} << 24, int64_t{310000}}) {  // the second: many bands
    CombineOptions o = NoClip(Method::kMean);
    o.scale = CombineOptions::Scale::kInverseMedian;
    o.memory_budget_bytes = budget;
    ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
    EXPECT_EQ(r.num_bands > 1, budget < (1 << 24));
    for (size_t i = 0; i < levels.size(); ++i) {
      const double frame_median = static_cast<float>(levels[i] * med_response);
      EXPECT_NEAR(r.scale_factors[i], 1.0 / frame_median, 1e-12 / frame_median);
    }
    EXPECT_NEAR(r.frame.data.at(5, 5), response(5, 5) / med_response, 1e-5);
  }
  // The mean over a section: [1:1,1:1] is pixel (0, 0) alone.
  CombineOptions m = NoClip(Method::kMean);
  m.scale = CombineOptions::Scale::kInverseMean;
  m.scale_section = "[1:1,1:1]";
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), m));
  EXPECT_NEAR(r.frame.data.at(0, 0), 1.0, 1e-6);
  EXPECT_NEAR(r.scale_factors[1], 1.0 / (2500.0f * response(0, 0)), 1e-9);
}

TEST(CombineTest, ExposureScaling) {
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (double t : {10.0, 20.0, 40.0}) {
    auto f = MakeFrame(4, 4, [t](int, int) { return static_cast<float>(3 * t); });
    f->header.Set("EXPTIME", t);
    frames.push_back(f);
  }
  CombineOptions o = NoClip(Method::kMean);
  o.scale = CombineOptions::Scale::kExposure;
  o.exposure_reference = 5;
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
  EXPECT_FLOAT_EQ(r.frame.data.at(1, 1), 15.0f);  // 3 ADU/s · 5 s
  ASSERT_OK_AND_ASSIGN(double exptime, r.frame.header.GetDouble("EXPTIME"));
  EXPECT_DOUBLE_EQ(exptime, 5.0);
  frames[1]->header.Erase("EXPTIME");
  EXPECT_THAT(Combine(Sources(frames), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("frame1")));
}

// --- rejection ----------------------------------------------------------------------------------

TEST(CombineTest, OutlierFrameIsSigmaClipped) {
  // Ten frames at 100 ± 1 (alternating), frame 3 has a cosmic ray of 5000 in one pixel.
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (int i = 0; i < 10; ++i) {
    frames.push_back(MakeFrame(8, 8, [i](int x, int y) {
      if (i == 3 && x == 2 && y == 5) return 5000.0f;
      return 100.0f + (i % 2 ? 1.0f : -1.0f);
    }));
  }
  CombineOptions o;  // default: median-centred 3σ, until stable
  o.method = Method::kMean;
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
  // Survivors at (2, 5): nine values, five of 99 (i even) and four of 101 (i = 1, 5, 7, 9).
  EXPECT_EQ(r.count.at(2, 5), 9);
  EXPECT_FLOAT_EQ(r.frame.data.at(2, 5), (5 * 99.0f + 4 * 101.0f) / 9);
  EXPECT_EQ(r.count.at(0, 0), 10);
  EXPECT_FLOAT_EQ(r.frame.data.at(0, 0), 100.0f);
  EXPECT_DOUBLE_EQ(r.rejected_fraction, 1.0 / (10 * 64));
  EXPECT_EQ(r.frame.dq.at(2, 5), 0);
}

TEST(CombineTest, SigmaClipIteratesUntilStable) {
  // Values: 0 ×8, 1 ×8 and 6, 40. One pass removes 40 only; the second pass, with a smaller σ,
  // removes 6 too; a third changes nothing.
  std::vector<float> v;
  for (int i = 0; i < 8; ++i) { v.push_back(0); v.push_back(1); }
  v.push_back(6);
  v.push_back(40);
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (float x : v) frames.push_back(MakeFrame(3, 2, [x](int, int) { return x; }));
  CombineOptions o;
  o.method = Method::kMean;
  o.sigma_clip.center = CombineOptions::Center::kMean;
  o.sigma_clip.max_iters = 1;
  // Pass 1: mean = 54/18 = 3, σ = 9.07 → upper bound 30.2: 40 goes, 6 stays.
  ASSERT_OK_AND_ASSIGN(CombineResult one, Combine(Sources(frames), o));
  EXPECT_EQ(one.count.at(0, 0), 17);
  EXPECT_FLOAT_EQ(one.frame.data.at(0, 0), 14.0f / 17);
  // Pass 2: mean 14/17 = 0.82, σ = 1.38 → bound 4.97: 6 goes. Pass 3: nothing.
  o.sigma_clip.max_iters = 0;
  ASSERT_OK_AND_ASSIGN(CombineResult stable, Combine(Sources(frames), o));
  EXPECT_EQ(stable.count.at(0, 0), 16);
  EXPECT_FLOAT_EQ(stable.frame.data.at(0, 0), 0.5f);
}

TEST(CombineTest, MadStdSpread) {
  // 1, 2, 3, 4, 100: median 3, MAD 1 → σ = 1.4826; 3σ bound 7.45 clips 100; 1 and 2 stay.
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (float x : {1.0f, 2.0f, 3.0f, 4.0f, 100.0f}) {
    frames.push_back(MakeFrame(2, 2, [x](int, int) { return x; }));
  }
  CombineOptions o;
  o.method = Method::kMean;
  o.sigma_clip.spread = CombineOptions::Spread::kMadStd;
  o.sigma_clip.max_iters = 1;
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
  EXPECT_EQ(r.count.at(1, 1), 4);
  EXPECT_FLOAT_EQ(r.frame.data.at(1, 1), 2.5f);
}

TEST(CombineTest, ExtremaClip) {
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  const std::vector<float> v = {7, -50, 3, 1000, 5, 9};
  for (float x : v) frames.push_back(MakeFrame(10, 3, [x](int xx, int) { return x * (1 + xx); }));
  CombineOptions o = NoClip(Method::kMean);
  o.nlow = 1;
  o.nhigh = 2;
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
  // Drops -50 (lowest) and 1000, 9 (highest two): mean of 3, 5, 7 = 5.
  for (int x = 0; x < 10; ++x) {
    EXPECT_FLOAT_EQ(r.frame.data.at(x, 2), 5.0f * (1 + x));
    EXPECT_EQ(r.count.at(x, 2), 3);
  }
  EXPECT_DOUBLE_EQ(r.rejected_fraction, 0.5);
}

TEST(CombineTest, AbsoluteThresholdsAndAllRejectedPixel) {
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (float x : {10.0f, 20.0f, 30.0f, 40.0f}) {
    frames.push_back(MakeFrame(4, 4, [x](int xx, int yy) { return xx == 3 && yy == 3 ? 99.0f : x; }));
  }
  CombineOptions o = NoClip(Method::kMean);
  o.min_value = 20;  // kept: 20 <= x <= 30, like ccdproc's minmax clip (x < min, x > max go)
  o.max_value = 30;
  o.empty_value = -1;
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
  EXPECT_FLOAT_EQ(r.frame.data.at(0, 0), 25.0f);
  EXPECT_EQ(r.count.at(0, 0), 2);
  // Every value of (3, 3) is 99: all rejected → count 0, kDqRejected, empty_value.
  EXPECT_EQ(r.count.at(3, 3), 0);
  EXPECT_EQ(r.frame.dq.at(3, 3), kDqRejected);
  EXPECT_FLOAT_EQ(r.frame.data.at(3, 3), -1.0f);
}

TEST(CombineTest, DqMaskedAndNonFiniteInputsAreNeverCounted) {
  // Frame 2 has a huge value where its DQ says saturated; frame 0 has NaN at (1, 0). Pixel
  // (4, 2) is masked in every frame → kDqNoData.
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (int i = 0; i < 4; ++i) {
    frames.push_back(MakeFrame(
        6, 3,
        [i](int x, int y) {
          if (i == 2 && x == 0 && y == 0) return 60000.0f;
          if (i == 0 && x == 1 && y == 0) return std::nanf("");
          return 10.0f * (i + 1);
        },
        nullptr,
        [i](int x, int y) -> uint16_t {
          if (i == 2 && x == 0 && y == 0) return kDqSaturated;
          if (x == 4 && y == 2) return kDqBad;
          return 0;
        }));
  }
  CombineOptions o = NoClip(Method::kMean);
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(Sources(frames), o));
  EXPECT_FLOAT_EQ(r.frame.data.at(0, 0), (10 + 20 + 40) / 3.0f);
  EXPECT_EQ(r.count.at(0, 0), 3);
  EXPECT_FLOAT_EQ(r.frame.data.at(1, 0), (20 + 30 + 40) / 3.0f);
  EXPECT_EQ(r.count.at(1, 0), 3);
  EXPECT_EQ(r.count.at(4, 2), 0);
  EXPECT_EQ(r.frame.dq.at(4, 2), kDqNoData);
  EXPECT_EQ(r.frame.dq.at(5, 2), 0);
  EXPECT_DOUBLE_EQ(r.masked_fraction, 6.0 / (4 * 18));
  EXPECT_DOUBLE_EQ(r.rejected_fraction, 0);
  // A dq_mask without the saturated bit lets the saturated value in.
  o.dq_mask = kDqBad;
  ASSERT_OK_AND_ASSIGN(CombineResult lax, Combine(Sources(frames), o));
  EXPECT_EQ(lax.count.at(0, 0), 4);
}

// --- memory, threads, errors ---------------------------------------------------------------

TEST(CombineTest, BandsFollowTheBudgetAndResultsDoNotDependOnIt) {
  const int n = 30, w = 40, h = 50;
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (int i = 0; i < n; ++i) {
    testing::Gaussian g(100 + i);
    frames.push_back(MakeFrame(w, h, [&](int, int) { return static_cast<float>(500 + 10 * g.Next()); }));
  }
  CombineOptions big;
  big.memory_budget_bytes = int64_t{1} << 28;
  ASSERT_OK_AND_ASSIGN(CombineResult whole, Combine(Sources(frames), big));
  EXPECT_EQ(whole.band_rows, h);
  EXPECT_EQ(whole.num_bands, 1);

  CombineOptions small = big;
  small.memory_budget_bytes = 200000;
  // One row of 30 frames is 30 · 40 · 4 bytes (+ a cache line each); scratch is fixed.
  const int rows = PlanBandRows(small, n, w, h, false, false);
  ASSERT_GT(rows, 0);
  ASSERT_LT(rows, h);
  BufferPool pool(int64_t{1} << 30);
  ThreadPool threads(2);
  ASSERT_OK_AND_ASSIGN(CombineResult banded, Combine(Sources(frames), small, &threads, &pool));
  EXPECT_EQ(banded.band_rows, rows);
  EXPECT_EQ(banded.num_bands, (h + rows - 1) / rows);
  EXPECT_LE(banded.working_bytes, small.memory_budget_bytes);
  // Everything Combine acquired for its work came back to the pool: that is its peak.
  EXPECT_GT(pool.cached_bytes(), 0u);
  EXPECT_LE(static_cast<int64_t>(pool.cached_bytes()), small.memory_budget_bytes);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      ASSERT_EQ(banded.frame.data.at(x, y), whole.frame.data.at(x, y)) << x << "," << y;
      ASSERT_EQ(banded.frame.variance.at(x, y), whole.frame.variance.at(x, y));
      ASSERT_EQ(banded.count.at(x, y), whole.count.at(x, y));
    }
  }
}

TEST(CombineTest, ScalarAndLanePathsAgree) {
  // Weights of 1 force the scalar path with frame identity; it must give the lane path's result.
  const int n = 9;
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  for (int i = 0; i < n; ++i) {
    testing::Gaussian g(7 + i);
    frames.push_back(MakeFrame(17, 9, [&](int, int) { return static_cast<float>(50 + 3 * g.Next()); }));
  }
  // Sorted lanes (extrema + median-centred clip) and unsorted lanes (mean/std clip, 2σ so
  // that values are clipped).
  for (bool sorted : {true, false}) {
    CombineOptions o;
    o.method = Method::kMean;
    if (sorted) {
      o.nlow = 1;
    } else {
      o.sigma_clip = {true, 1.5, 1.5, CombineOptions::Center::kMean,
                      CombineOptions::Spread::kStd, 0};
    }
    ASSERT_OK_AND_ASSIGN(CombineResult lanes, Combine(Sources(frames), o));
    EXPECT_GT(lanes.rejected_fraction, 0);
    o.weights.assign(n, 1.0);
    ASSERT_OK_AND_ASSIGN(CombineResult scalar, Combine(Sources(frames), o));
    EXPECT_DOUBLE_EQ(scalar.rejected_fraction, lanes.rejected_fraction);
    for (int y = 0; y < 9; ++y) {
      for (int x = 0; x < 17; ++x) {
        EXPECT_NEAR(scalar.frame.data.at(x, y), lanes.frame.data.at(x, y), 1e-4);
        EXPECT_EQ(scalar.count.at(x, y), lanes.count.at(x, y));
        EXPECT_NEAR(scalar.frame.variance.at(x, y), lanes.frame.variance.at(x, y), 1e-4);
      }
    }
  }
}

TEST(CombineTest, BadInputs) {
  auto f = [](int w, int h) { return MakeFrame(w, h, [](int, int) { return 1.0f; }); };
  // Shape mismatch names the frame.
  EXPECT_THAT(Combine(Sources({f(8, 8), f(8, 8), f(8, 7)}), CombineOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("frame 2 (frame2)")));
  EXPECT_THAT(Combine({}, CombineOptions{}), StatusIs(absl::StatusCode::kInvalidArgument));
  CombineOptions o;
  o.nlow = 2;
  o.nhigh = 1;
  EXPECT_THAT(Combine(Sources({f(4, 4), f(4, 4), f(4, 4)}), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nlow + nhigh")));
  o = CombineOptions{};
  o.method = static_cast<Method>(9);
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = CombineOptions{};
  o.scale = static_cast<CombineOptions::Scale>(9);
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = CombineOptions{};
  o.weights = {1, 2};
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight")));
  o = CombineOptions{};
  o.sigma_clip.low = 0;
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = CombineOptions{};
  o.scale = CombineOptions::Scale::kGiven;
  o.scale_factors = {-1};
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = CombineOptions{};
  o.scale = CombineOptions::Scale::kInverseMean;
  o.scale_section = "[1:9,1:1]";
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = CombineOptions{};
  o.variance = CombineOptions::Variance::kPropagated;
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("variance")));
  o = CombineOptions{};
  o.memory_budget_bytes = 1000;
  EXPECT_THAT(Combine(Sources({f(4, 4)}), o),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("memory_budget_bytes")));
  EXPECT_THAT(ParseMethod("mode"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseScale("mode"), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(Method m, ParseMethod("Average"));
  EXPECT_EQ(m, Method::kMean);
}

}  // namespace
}  // namespace calibd::combine
