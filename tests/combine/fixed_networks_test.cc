// The fixed-N kernels of core/combine (fixed_networks.h) against std::sort and against the
// general kernels, bit for bit; and frames read in place against the same frames copied.
#include "core/combine/fixed_networks.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/combine/combine.h"
#include "core/combine/kernel.h"
#include "core/image/dq.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/testing/synthetic.h"

namespace calibd::combine {
namespace {

using internal::kLanes;
using internal::kMaxFixed;
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> Column(const std::vector<float>& v, int n, int l) {
  std::vector<float> c;
  for (int k = 0; k < n; ++k) c.push_back(v[k * kLanes + l]);
  return c;
}

TEST(FixedNetworksTest, SorterSortsEveryLaneForEverySize) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> u(-50, 50);  // many ties
  EXPECT_EQ(internal::FixedLaneSorter(1), nullptr);
  EXPECT_EQ(internal::FixedLaneSorter(kMaxFixed + 1), nullptr);
  for (int n = 2; n <= kMaxFixed; ++n) {
    internal::LaneSorter sort = internal::FixedLaneSorter(n);
    ASSERT_NE(sort, nullptr) << n;
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> v(n * kLanes);
      for (float& x : v) x = static_cast<float>(u(rng)) * 0.5f;
      if (trial % 3 == 0) v[(trial % n) * kLanes + trial % kLanes] = kInf;  // a masked value
      std::vector<float> copy = v;
      sort(v.data());
      for (int l = 0; l < kLanes; ++l) {
        std::vector<float> want = Column(copy, n, l);
        std::sort(want.begin(), want.end());
        ASSERT_EQ(Column(v, n, l), want) << "n=" << n << " lane " << l;
      }
    }
  }
}

TEST(FixedNetworksTest, VMergerSortsColumnsThatFallThenRise) {
  std::mt19937 rng(12);
  for (int n = 2; n <= kMaxFixed; ++n) {
    internal::LaneSorter merge = internal::FixedVMerger(n);
    ASSERT_NE(merge, nullptr) << n;
    for (int trial = 0; trial < 30; ++trial) {
      // Per lane: |x - m| over sorted x, with +inf for the clipped ends [0, lo) and [hi, n).
      std::vector<float> v(n * kLanes);
      for (int l = 0; l < kLanes; ++l) {
        std::uniform_int_distribution<int> cut(0, n);
        int lo = cut(rng), hi = cut(rng);
        if (lo > hi) std::swap(lo, hi);
        std::vector<float> x(n);
        std::uniform_int_distribution<int> u(0, 40);
        for (float& e : x) e = static_cast<float>(u(rng));
        std::sort(x.begin(), x.end());
        const float m = lo < hi ? 0.5f * (x[lo + (hi - lo - 1) / 2] + x[lo + (hi - lo) / 2]) : 0;
        for (int k = 0; k < n; ++k) {
          v[k * kLanes + l] = k >= lo && k < hi ? std::fabs(x[k] - m) : kInf;
        }
      }
      std::vector<float> copy = v;
      merge(v.data());
      for (int l = 0; l < kLanes; ++l) {
        std::vector<float> want = Column(copy, n, l);
        std::sort(want.begin(), want.end());
        ASSERT_EQ(Column(v, n, l), want) << "n=" << n << " lane " << l << " trial " << trial;
      }
    }
  }
}

// Gaussian noise of 5 about `base` (rounded to multiples of `quantum` when > 0), cosmic rays of
// +3000 and NaN at the given rates, and 1 % of DQ flags when with_dq.
std::shared_ptr<CalibratedFrame> NoisyFrame(int w, int h, uint64_t seed, bool with_dq,
                                            double base = 1000, double cosmic_rate = 0.01,
                                            double nan_rate = 0.002, double quantum = 0) {
  auto f = std::make_shared<CalibratedFrame>();
  f->data = Image<float>::Allocate(w, h);
  if (with_dq) f->dq = Image<uint16_t>::Filled(w, h, 0);
  testing::Gaussian g(seed);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      double d = base + 5 * g.Next();
      if (quantum > 0) d = std::round(d / quantum) * quantum;
      float v = static_cast<float>(d);
      if (g.Uniform() < cosmic_rate) v += 3000;  // cosmic ray
      if (g.Uniform() < nan_rate) v = std::numeric_limits<float>::quiet_NaN();
      f->data.at(x, y) = v;
      if (with_dq && g.Uniform() < 0.01) f->dq.at(x, y) = kDqBad;
    }
  }
  return f;
}

// Hides in_memory(): Combine must copy the rows through ReadRows.
class CopyingSource : public FrameSource {
 public:
  explicit CopyingSource(std::unique_ptr<FrameSource> inner) : inner_(std::move(inner)) {}
  int width() const override { return inner_->width(); }
  int height() const override { return inner_->height(); }
  const Header& header() const override { return inner_->header(); }
  absl::Status ReadRows(int y0, int rows, float* d, float* v, uint16_t* q) override {
    return inner_->ReadRows(y0, rows, d, v, q);
  }
  bool has_variance() const override { return inner_->has_variance(); }
  bool has_dq() const override { return inner_->has_dq(); }
  std::string name() const override { return inner_->name(); }

 private:
  std::unique_ptr<FrameSource> inner_;
};

void ExpectSameBits(const CombineResult& a, const CombineResult& b, const std::string& what) {
  SCOPED_TRACE(what);
  const size_t n = a.frame.data.num_pixels();
  ASSERT_EQ(b.frame.data.num_pixels(), n);
  EXPECT_EQ(std::memcmp(a.frame.data.data(), b.frame.data.data(), n * sizeof(float)), 0);
  ASSERT_EQ(a.frame.has_variance(), b.frame.has_variance());
  if (a.frame.has_variance()) {
    EXPECT_EQ(std::memcmp(a.frame.variance.data(), b.frame.variance.data(), n * sizeof(float)), 0);
  }
  EXPECT_EQ(std::memcmp(a.frame.dq.data(), b.frame.dq.data(), n * sizeof(uint16_t)), 0);
  EXPECT_EQ(std::memcmp(a.count.data(), b.count.data(), n * sizeof(uint16_t)), 0);
  EXPECT_EQ(a.rejected_fraction, b.rejected_fraction);
  EXPECT_EQ(a.masked_fraction, b.masked_fraction);
}

// The fast median (values in registers, pruned MAD merger) gives the general kernels' bits,
// for every N it covers, with masked values, NaN, thresholds, scaling, and a ragged last group;
// with clean stacks, for the float deviations of the MAD too.
TEST(FixedNetworksTest, FixedMedianGivesTheGeneralKernelsBits) {
  const int w = 37, h = 5;  // 185 pixels: 23 groups of eight and a tail of one
  ThreadPool pool(1);
  for (int n = 2; n <= kMaxFixed + 1; ++n) {
    for (int variant = 0; variant < 8; ++variant) {
      // Variant 4: values about zero, as in bias-subtracted darks (deviations and values of
      // every exponent, where rounding the MAD's doubles to float matters most).
      // Variants 5-7: every value passes, so nearly every group takes the fast path and most
      // deviations its float arithmetic (values within a factor of two of the median; the
      // cosmic rays at a stack's ends take the double path): about 1000 with cosmic rays,
      // quarter-ADU values (ties, and medians halfway between two floats), about -1000.
      std::vector<std::shared_ptr<CalibratedFrame>> frames;
      const bool clean = variant >= 5;
      const int fw = clean ? 64 : w, fh = clean ? 32 : h;
      const double base = variant == 4 ? 0.0 : variant == 7 ? -1000.0 : 1000.0;
      for (int i = 0; i < n; ++i) {
        frames.push_back(NoisyFrame(fw, fh, 500 + 31 * n + i, !clean && i % 3 == 0, base,
                                    variant == 6 ? 0.0 : 0.01, clean ? 0.0 : 0.002,
                                    variant == 6 ? 0.25 : 0.0));
      }
      CombineOptions o;
      o.method = CombineOptions::Method::kMedian;
      o.sigma_clip.enabled = false;
      if (variant == 1) o.variance = CombineOptions::Variance::kNone;
      if (variant == 2) o.max_value = 2500;  // the cosmic rays fail the threshold
      if (variant == 3) {
        o.scale = CombineOptions::Scale::kGiven;
        for (int i = 0; i < n; ++i) o.scale_factors.push_back(1.0 + 0.01 * i);
      }
      auto sources = [&](bool copy) {
        std::vector<std::unique_ptr<FrameSource>> s;
        for (const auto& f : frames) {
          std::unique_ptr<FrameSource> m = MemorySource(f);
          s.push_back(copy ? std::make_unique<CopyingSource>(std::move(m)) : std::move(m));
        }
        return s;
      };
      const std::string what = "n=" + std::to_string(n) + " variant " + std::to_string(variant);
      internal::SetFixedKernelsEnabled(false);
      absl::StatusOr<CombineResult> general = Combine(sources(true), o, &pool);
      internal::SetFixedKernelsEnabled(true);
      ASSERT_OK(general);
      ASSERT_OK_AND_ASSIGN(CombineResult fast, Combine(sources(false), o, &pool));
      ExpectSameBits(*general, fast, what);
      ASSERT_OK_AND_ASSIGN(CombineResult fast_copied, Combine(sources(true), o));
      ExpectSameBits(fast, fast_copied, what + " copied");
    }
  }
}

}  // namespace
}  // namespace calibd::combine
