// Conformance of core/combine with astropy ccdproc 2.4: each case writes a stack as raw
// float32 files (plus masks), tests/oracle/ccdproc_combine.py runs `ccdproc.combine` on it, and
// our Combine on the same stack must give the same data, uncertainty (sqrt of our variance) and
// mask, to float32 precision (relative 1e-5).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/combine/combine.h"
#include "core/image/dq.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::combine {
namespace {

using Method = CombineOptions::Method;

constexpr int kWidth = 37;  // not a multiple of the 8 SIMD lanes: the tail path is covered
constexpr int kHeight = 23;

struct Case {
  std::string name;
  int n = 8;
  std::string params_json;  // what the oracle gets
  CombineOptions options;   // what we run
  bool masks = false;
  std::vector<double> levels;  // per-frame level (default 1000)
};

Case NewCase(std::string name, int n) {
  Case c;
  c.name = std::move(name);
  c.n = n;
  return c;
}

struct Stack {
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
};

Stack MakeStack(const Case& c) {
  Stack s;
  testing::Gaussian g(std::hash<std::string>{}(c.name) % 100000);
  for (int i = 0; i < c.n; ++i) {
    auto f = std::make_shared<CalibratedFrame>();
    f->data = Image<float>::Allocate(kWidth, kHeight);
    if (c.masks) f->dq = Image<uint16_t>::Filled(kWidth, kHeight, 0);
    const double level = c.levels.empty() ? 1000.0 : c.levels[i];
    for (int y = 0; y < kHeight; ++y) {
      for (int x = 0; x < kWidth; ++x) {
        const double pattern = 1.0 + 0.05 * std::sin(0.3 * x + 0.2 * y);
        double v = level * pattern + 10.0 * g.Next();
        if (g.Uniform() < 0.03) v += 200 + 5000 * g.Uniform();  // cosmic rays
        f->data.at(x, y) = static_cast<float>(v);
        if (c.masks) {
          const bool all = x == 5 && y == 7;  // masked in every frame
          if (all || g.Uniform() < 0.1) f->dq.at(x, y) = kDqBad;
        }
      }
    }
    s.frames.push_back(f);
  }
  return s;
}

void WriteRaw(const std::string& path, const void* p, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(p), static_cast<std::streamsize>(bytes));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<char> ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

std::string Params(const Case& c, const std::string& extra) {
  return absl::StrCat("{\"n\": ", c.n, ", \"width\": ", kWidth, ", \"height\": ", kHeight,
                      ", \"masks\": ", c.masks ? "true" : "false", extra.empty() ? "" : ", ",
                      extra, "}");
}

CombineOptions Opts(Method m) {
  CombineOptions o;
  o.method = m;
  o.sigma_clip.enabled = false;
  o.memory_budget_bytes = 30000;  // several bands even for these small frames
  return o;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  {
    Case c = NewCase("median_odd", 7);
    c.options = Opts(Method::kMedian);
    c.params_json = Params(c, "\"method\": \"median\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("median_even", 8);
    c.options = Opts(Method::kMedian);
    c.params_json = Params(c, "\"method\": \"median\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("average_sigma_mean_std", 10);
    c.options = Opts(Method::kMean);
    c.options.sigma_clip = {true, 2.0, 2.0, CombineOptions::Center::kMean,
                            CombineOptions::Spread::kStd, 1};
    c.params_json = Params(c,
                           "\"method\": \"average\", \"sigma_clip\": true, \"low\": 2.0, "
                           "\"high\": 2.0, \"cenfunc\": \"mean\", \"devfunc\": \"std\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("average_sigma_median_madstd", 11);
    c.options = Opts(Method::kMean);
    c.options.sigma_clip = {true, 3.0, 2.5, CombineOptions::Center::kMedian,
                            CombineOptions::Spread::kMadStd, 1};
    c.params_json = Params(c,
                           "\"method\": \"average\", \"sigma_clip\": true, \"low\": 3.0, "
                           "\"high\": 2.5, \"cenfunc\": \"median\", \"devfunc\": \"mad_std\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("median_sigma_median_std", 9);
    c.options = Opts(Method::kMedian);
    c.options.sigma_clip = {true, 2.0, 2.0, CombineOptions::Center::kMedian,
                            CombineOptions::Spread::kStd, 1};
    c.params_json = Params(c,
                           "\"method\": \"median\", \"sigma_clip\": true, \"low\": 2.0, "
                           "\"high\": 2.0, \"cenfunc\": \"median\", \"devfunc\": \"std\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("average_extrema", 9);
    c.options = Opts(Method::kMean);
    c.options.nlow = 1;
    c.options.nhigh = 2;
    c.params_json =
        Params(c, "\"method\": \"average\", \"clip_extrema\": true, \"nlow\": 1, \"nhigh\": 2");
    cases.push_back(c);
  }
  {
    Case c = NewCase("average_minmax", 8);
    c.options = Opts(Method::kMean);
    c.options.min_value = 975.5;
    c.options.max_value = 1030.25;
    c.params_json = Params(c,
                           "\"method\": \"average\", \"minmax_clip\": true, \"min\": 975.5, "
                           "\"max\": 1030.25");
    cases.push_back(c);
  }
  {
    Case c = NewCase("average_scale_inv_median", 6);
    c.levels = {1000, 2000, 1500, 4000, 800, 3000};
    c.options = Opts(Method::kMean);
    c.options.scale = CombineOptions::Scale::kInverseMedian;
    c.options.memory_budget_bytes = 320000;  // the radix histogram takes 256 KiB
    c.params_json = Params(c, "\"method\": \"average\", \"scale\": \"inv_median\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("median_scale_inv_mean", 5);
    c.levels = {1000, 2000, 1500, 4000, 800};
    c.options = Opts(Method::kMedian);
    c.options.scale = CombineOptions::Scale::kInverseMean;
    c.params_json = Params(c, "\"method\": \"median\", \"scale\": \"inv_mean\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("median_scale_given", 5);
    c.options = Opts(Method::kMedian);
    c.options.scale = CombineOptions::Scale::kGiven;
    c.options.scale_factors = {1.0, 0.5, 2.0, 1.25, 0.8};
    c.params_json =
        Params(c, "\"method\": \"median\", \"scale\": [1.0, 0.5, 2.0, 1.25, 0.8]");
    cases.push_back(c);
  }
  {
    Case c = NewCase("average_weights", 8);
    c.options = Opts(Method::kMean);
    c.options.weights = {1, 2, 0.5, 3, 1, 1, 2, 0.25};
    c.params_json = Params(
        c, "\"method\": \"average\", \"weights\": [1, 2, 0.5, 3, 1, 1, 2, 0.25]");
    cases.push_back(c);
  }
  {
    Case c = NewCase("sum", 6);
    c.options = Opts(Method::kSum);
    c.params_json = Params(c, "\"method\": \"sum\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("median_masks", 9);
    c.masks = true;
    c.options = Opts(Method::kMedian);
    c.params_json = Params(c, "\"method\": \"median\"");
    cases.push_back(c);
  }
  {
    Case c = NewCase("average_masks", 7);
    c.masks = true;
    c.options = Opts(Method::kMean);
    c.params_json = Params(c, "\"method\": \"average\"");
    cases.push_back(c);
  }
  return cases;
}

// Checks our combine of case `c` against the oracle's output in `d`.
void CheckCase(const Case& c, const std::string& d) {
  SCOPED_TRACE(c.name);
  Stack s = MakeStack(c);
  std::vector<std::unique_ptr<FrameSource>> in;
  for (int i = 0; i < c.n; ++i) in.push_back(MemorySource(s.frames[i]));
  ThreadPool pool(2);
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(std::move(in), c.options, &pool));
  EXPECT_GT(r.num_bands, 1) << "the case should exercise several bands";
  if (c.options.sigma_clip.enabled || c.options.nlow > 0 || c.options.min_value) {
    EXPECT_GT(r.rejected_fraction, 0) << "the case should reject something";
  }

  const std::vector<char> data = ReadRaw(d + "/out_data.f64");
  const std::vector<char> unc = ReadRaw(d + "/out_uncert.f64");
  const std::vector<char> mask = ReadRaw(d + "/out_mask.u8");
  const size_t np = size_t(kWidth) * kHeight;
  ASSERT_EQ(data.size(), np * 8);
  ASSERT_EQ(unc.size(), np * 8);
  ASSERT_EQ(mask.size(), np);
  const double* want = reinterpret_cast<const double*>(data.data());
  const double* want_unc = reinterpret_cast<const double*>(unc.data());
  int bad = 0, masked = 0;
  for (size_t k = 0; k < np && bad < 10; ++k) {
    const int x = static_cast<int>(k % kWidth), y = static_cast<int>(k / kWidth);
    const bool our_mask = r.frame.dq.at(x, y) != 0;
    const bool their_mask = mask[k] != 0;
    masked += their_mask;
    if (our_mask != their_mask) {
      ADD_FAILURE() << c.name << " mask differs at (" << x << "," << y << "): ours "
                    << our_mask << " ccdproc " << their_mask;
      ++bad;
      continue;
    }
    if (their_mask) continue;
    const double ours = r.frame.data.at(x, y);
    const double our_unc = std::sqrt(double{r.frame.variance.at(x, y)});
    const double tol = 1e-5 * std::fabs(want[k]) + 1e-9;
    const double tol_unc = 1e-5 * std::fabs(want_unc[k]) + 1e-7 * std::fabs(want[k]);
    if (!(std::fabs(ours - want[k]) <= tol) || !(std::fabs(our_unc - want_unc[k]) <= tol_unc)) {
      ADD_FAILURE() << c.name << " at (" << x << "," << y << "): data " << ours << " vs "
                    << want[k] << ", uncertainty " << our_unc << " vs " << want_unc[k]
                    << ", count " << r.count.at(x, y);
      ++bad;
    }
  }
  if (c.masks) {
    EXPECT_GE(masked, 1) << "the all-masked pixel must be masked by ccdproc too";
  }
  if (c.options.scale == CombineOptions::Scale::kInverseMedian ||
      c.options.scale == CombineOptions::Scale::kInverseMean) {
    std::ifstream in(d + "/out_scale.json");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    // Parse "[a, b, ...]".
    std::vector<double> factors;
    const char* p = text.c_str();
    while (*p && *p != '[') ++p;
    while (*p && *p != ']') {
      ++p;
      char* end;
      const double v = std::strtod(p, &end);
      if (end == p) break;
      factors.push_back(v);
      p = end;
    }
    ASSERT_EQ(static_cast<int>(factors.size()), c.n) << text;
    for (int i = 0; i < c.n; ++i) {
      EXPECT_NEAR(r.scale_factors[i], factors[i], 1e-6 * factors[i]) << "frame " << i;
    }
  }
}

// All cases in one test: Python and astropy take seconds to start, so the oracle runs once.
TEST(CcdprocConformanceTest, EveryCaseMatchesCcdproc) {
  testing::TempDir dir;
  std::vector<std::string> args;
  const std::vector<Case> cases = Cases();
  for (const Case& c : cases) {
    const std::string d = dir.File(c.name);
    std::filesystem::create_directories(d);
    Stack s = MakeStack(c);
    for (int i = 0; i < c.n; ++i) {
      WriteRaw(absl::StrCat(d, "/frame_", i, ".f32"), s.frames[i]->data.data(),
               s.frames[i]->data.num_pixels() * sizeof(float));
      if (c.masks) {
        std::vector<uint8_t> m(s.frames[i]->dq.num_pixels());
        for (size_t k = 0; k < m.size(); ++k) m[k] = s.frames[i]->dq.data()[k] != 0;
        WriteRaw(absl::StrCat(d, "/mask_", i, ".u8"), m.data(), m.size());
      }
    }
    std::ofstream(d + "/params.json") << c.params_json;
    args.push_back(d);
  }
  ASSERT_OK_AND_ASSIGN(
      testing::CommandResult r,
      testing::RunCommand(testing::PythonCommand("tests/oracle/ccdproc_combine.py", args)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const Case& c : cases) CheckCase(c, dir.File(c.name));
}

}  // namespace
}  // namespace calibd::combine
