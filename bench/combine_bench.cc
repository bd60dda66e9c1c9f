// Benchmarks of core/combine.
//
//   build-*/bench/combine_bench                        # 20 × 2048×2048 in memory, 1 and 2 threads
//   CALIBD_BENCH_LARGE=/scratch/dir build-*/bench/combine_bench --benchmark_filter=Large
//       # 200 × 4096×4096 float32 FITS files written to that directory first (~13 GB: check
//       # `df -h` first), combined from disk within a 1.5 GB budget; reports peak RSS.
//   CALIBD_BENCH_DUMP=/dir build-*/bench/combine_bench --benchmark_filter=Dump
//       # writes the 20 in-memory frames as raw float32 for bench/compare_combine.py
//
//   build-*/bench/combine_bench --benchmark_filter='Median20|Anchor'
//       # Combine's median against a plain C sorting-network median in the same run
//
// Counters: Mpix/s of output; peak_rss_MB is the process's peak resident set so far.
#include <immintrin.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "core/combine/combine.h"
#include "core/fits/fits.h"
#include "core/image/buffer_pool.h"
#include "core/parallel/thread_pool.h"
#include "tests/testing/synthetic.h"

namespace calibd::combine {
namespace {

constexpr int kN = 20;
constexpr int kSize = 2048;

double PeakRssMb() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// A bias-like stack: 1000 ADU + 5 ADU noise, 0.1 % cosmic rays. Built once.
const std::vector<std::shared_ptr<const CalibratedFrame>>& Stack() {
  static const auto* stack = [] {
    auto* s = new std::vector<std::shared_ptr<const CalibratedFrame>>();
    for (int i = 0; i < kN; ++i) {
      auto f = std::make_shared<CalibratedFrame>();
      f->data = Image<float>::Allocate(kSize, kSize);
      testing::Gaussian g(1000 + i);
      float* p = f->data.data();
      for (int64_t k = 0; k < f->data.num_pixels(); ++k) {
        float v = static_cast<float>(1000.0 + 5.0 * g.Next());
        if ((k * 2654435761u + i * 97) % 1000 == 0) v += 3000;
        p[k] = v;
      }
      f->header.Set("EXPTIME", 0.0);
      s->push_back(std::move(f));
    }
    return s;
  }();
  return *stack;
}

std::vector<std::unique_ptr<FrameSource>> Sources() {
  std::vector<std::unique_ptr<FrameSource>> in;
  for (const auto& f : Stack()) in.push_back(MemorySource(f));
  return in;
}

void Run(benchmark::State& state, const CombineOptions& options) {
  const int threads = static_cast<int>(state.range(0));
  std::unique_ptr<ThreadPool> pool = threads > 1 ? std::make_unique<ThreadPool>(threads - 1)
                                                 : nullptr;
  BufferPool buffers(size_t{2} << 30);
  Stack();
  // One untimed run: the pool then holds the workspace and output buffers (first touch of
  // fresh memory is slow on these VMs, and a service reuses its pool the same way).
  if (!Combine(Sources(), options, pool.get(), &buffers).ok()) {
    state.SkipWithError("combine failed");
    return;
  }
  for (auto _ : state) {
    absl::StatusOr<CombineResult> r = Combine(Sources(), options, pool.get(), &buffers);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(r->frame.data.data());
  }
  state.counters["Mpix/s"] = benchmark::Counter(double(kSize) * kSize * state.iterations() / 1e6,
                                                benchmark::Counter::kIsRate);
  state.counters["peak_rss_MB"] = PeakRssMb();
}

void BM_Median20(benchmark::State& state) {
  CombineOptions o;  // ccdproc's combine(method='median'): no clipping, MAD uncertainty
  o.method = CombineOptions::Method::kMedian;
  o.sigma_clip.enabled = false;
  Run(state, o);
}
BENCHMARK(BM_Median20)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Median20NoVariance(benchmark::State& state) {
  CombineOptions o;
  o.method = CombineOptions::Method::kMedian;
  o.sigma_clip.enabled = false;
  o.variance = CombineOptions::Variance::kNone;
  Run(state, o);
}
BENCHMARK(BM_Median20NoVariance)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ClippedMean20(benchmark::State& state) {
  CombineOptions o;  // ccdproc's combine(method='average', sigma_clip=True): mean/std, 1 pass
  o.method = CombineOptions::Method::kMean;
  o.sigma_clip = {true, 3, 3, CombineOptions::Center::kMean, CombineOptions::Spread::kStd, 1};
  Run(state, o);
}
BENCHMARK(BM_ClippedMean20)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_DefaultClip20(benchmark::State& state) {
  CombineOptions o;  // our default: 3σ around the median, until stable; mean of survivors
  o.method = CombineOptions::Method::kMean;
  Run(state, o);
}
BENCHMARK(BM_DefaultClip20)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ExtremaMean20(benchmark::State& state) {
  CombineOptions o;  // drop lowest + highest, average
  o.method = CombineOptions::Method::kMean;
  o.sigma_clip.enabled = false;
  o.nlow = 1;
  o.nhigh = 1;
  Run(state, o);
}
BENCHMARK(BM_ExtremaMean20)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- the anchor: a plain C sorting-network median (PERFORMANCE.md) ------------------------
// Per eight pixels: the 20 values into vector registers, Batcher's network fully unrolled
// (compile-time indices, vminps/vmaxps), the mean of the two middle values. No DQ, no variance, no bands: the cost of the selection itself, measured in the same
// run as Combine.

constexpr int kAnchorComparators = [] {
  int c = 0;
  for (int p = 1; p < kN; p <<= 1)
    for (int k = p; k >= 1; k >>= 1)
      for (int j = k % p; j + k < kN; j += 2 * k)
        for (int i = 0; i < k && i + j + k < kN; ++i)
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) ++c;
  return c;
}();

struct AnchorPair {
  int a, b;
};
constexpr std::array<AnchorPair, kAnchorComparators> kAnchorNet = [] {
  std::array<AnchorPair, kAnchorComparators> out{};
  int c = 0;
  for (int p = 1; p < kN; p <<= 1)
    for (int k = p; k >= 1; k >>= 1)
      for (int j = k % p; j + k < kN; j += 2 * k)
        for (int i = 0; i < k && i + j + k < kN; ++i)
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) out[c++] = {i + j, i + j + k};
  return out;
}();

// Eight pixels at a time in GCC vector registers (one AVX2 register per value), Batcher's
// comparators fully unrolled, vminps/vmaxps: what a C programmer writes for a vector machine.
typedef float AnchorV8 __attribute__((vector_size(32)));

template <size_t... I>
inline void AnchorSort(AnchorV8* a, std::index_sequence<I...>) {
  ((void)[&] {
     const AnchorV8 x = a[kAnchorNet[I].a], y = a[kAnchorNet[I].b];
     a[kAnchorNet[I].a] = _mm256_min_ps(x, y);
     a[kAnchorNet[I].b] = _mm256_max_ps(x, y);
   }(), ...);
}

void AnchorRows(const float* const* in, float* out, int64_t p0, int64_t p1) {
  int64_t p = p0;
  for (; p + 8 <= p1; p += 8) {
    AnchorV8 a[kN];
#pragma GCC unroll 64
    for (int i = 0; i < kN; ++i) std::memcpy(&a[i], in[i] + p, sizeof a[i]);
    AnchorSort(a, std::make_index_sequence<kAnchorComparators>());
    const AnchorV8 m = 0.5f * (a[(kN - 1) / 2] + a[kN / 2]);
    std::memcpy(out + p, &m, sizeof m);
  }
  for (; p < p1; ++p) {  // the tail, one pixel at a time
    float a[kN];
    for (int i = 0; i < kN; ++i) a[i] = in[i][p];
    std::sort(a, a + kN);
    out[p] = 0.5f * (a[(kN - 1) / 2] + a[kN / 2]);
  }
}

void BM_AnchorMedian20(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  std::unique_ptr<ThreadPool> pool = threads > 1 ? std::make_unique<ThreadPool>(threads - 1)
                                                 : nullptr;
  const float* in[kN];
  for (int i = 0; i < kN; ++i) in[i] = Stack()[i]->data.data();
  Image<float> out = Image<float>::Filled(kSize, kSize, 0.0f);  // touched before timing
  const int64_t pixels = int64_t{kSize} * kSize;
  for (auto _ : state) {
    ParallelFor(pool.get(), pixels, 1 << 14,
                [&](int64_t p0, int64_t p1) { AnchorRows(in, out.data(), p0, p1); });
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["Mpix/s"] = benchmark::Counter(double(pixels) * state.iterations() / 1e6,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AnchorMedian20)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Writes the in-memory stack as raw float32 files for bench/compare_combine.py.
void BM_Dump(benchmark::State& state) {
  const char* dir = std::getenv("CALIBD_BENCH_DUMP");
  if (dir == nullptr) {
    state.SkipWithError("set CALIBD_BENCH_DUMP to a directory");
    return;
  }
  for (auto _ : state) {
    for (int i = 0; i < kN; ++i) {
      std::ofstream out(absl::StrCat(dir, "/frame_", i, ".f32"), std::ios::binary);
      out.write(reinterpret_cast<const char*>(Stack()[i]->data.data()),
                Stack()[i]->data.num_pixels() * sizeof(float));
    }
  }
}
BENCHMARK(BM_Dump)->Iterations(1);

// 200 × 4096×4096 from FITS files on disk within a 1.5 GB budget.
void BM_Large200x4k(benchmark::State& state) {
  const char* dir = std::getenv("CALIBD_BENCH_LARGE");
  if (dir == nullptr) {
    state.SkipWithError("set CALIBD_BENCH_LARGE to a scratch directory with ~14 GB free");
    return;
  }
  constexpr int kLargeN = 200, kLarge = 4096;
  std::vector<std::string> paths;
  {
    CalibratedFrame f;
    f.data = Image<float>::Allocate(kLarge, kLarge);
    for (int i = 0; i < kLargeN; ++i) {
      const std::string path = absl::StrCat(dir, "/large_", i, ".fits");
      paths.push_back(path);
      if (std::filesystem::exists(path)) continue;
      // Cheap uniform noise (xorshift): 3.4 G Gaussian samples would take minutes.
      uint64_t rng = 0x9E3779B97F4A7C15ull * (i + 1);
      float* p = f.data.data();
      for (int64_t k = 0; k < f.data.num_pixels(); ++k) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        p[k] = 1000.0f + static_cast<float>(rng >> 40) * (20.0f / 16777216.0f);
      }
      fits::WriteOptions wo;
      wo.checksum = false;
      absl::Status s = fits::WriteCalibratedFrame(path, f, wo);
      if (!s.ok()) {
        state.SkipWithError(std::string(s.message()).c_str());
        return;
      }
    }
  }
  const double rss_before = PeakRssMb();
  ThreadPool pool(1);
  CombineOptions o;
  o.method = CombineOptions::Method::kMedian;
  o.sigma_clip.enabled = false;
  o.memory_budget_bytes = int64_t{1536} << 20;
  for (auto _ : state) {
    std::vector<std::unique_ptr<FrameSource>> in;
    for (const std::string& p : paths) {
      absl::StatusOr<std::unique_ptr<FrameSource>> s = FitsSource(p);
      if (!s.ok()) {
        state.SkipWithError(std::string(s.status().message()).c_str());
        return;
      }
      in.push_back(*std::move(s));
    }
    absl::StatusOr<CombineResult> r = Combine(std::move(in), o, &pool);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      return;
    }
    state.counters["band_rows"] = r->band_rows;
    state.counters["working_MB"] = r->working_bytes / 1048576.0;
  }
  state.counters["peak_rss_MB"] = PeakRssMb();
  state.counters["peak_rss_before_MB"] = rss_before;
}
BENCHMARK(BM_Large200x4k)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
}  // namespace calibd::combine

BENCHMARK_MAIN();
