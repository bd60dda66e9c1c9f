// bandwidth_bench: the memory-bandwidth floor for calibrating a 4096×4096 frame — one streaming
// pass that reads and writes exactly the bytes calibrate_bench's recipe must touch (reads: uint16
// raw, three float32 masters, uint16 bad-pixel map; writes: float32 data and variance, uint16
// DQ = 26 bytes/pixel) with trivial arithmetic, on 1 and 2 threads. Also a plain float32 copy.
//
//   build/bench/bandwidth_bench --benchmark_repetitions=3
//
// Compare calibrate_bench's time with BM_CalibrateTraffic's at the same thread count: the
// ratio is how far the calibration is from the machine's bandwidth bound.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>

#include "core/image/image.h"
#include "core/parallel/thread_pool.h"

namespace calibd {
namespace {

constexpr int kSide = 4096;
constexpr int kRawWidth = kSide + 32;  // the raw rows carry overscan, as in calibrate_bench

struct Planes {
  Image<uint16_t> raw = Image<uint16_t>::Filled(kRawWidth, kSide, 1000);
  Image<float> a = Image<float>::Filled(kSide, kSide, 1.0f);
  Image<float> b = Image<float>::Filled(kSide, kSide, 2.0f);
  Image<float> c = Image<float>::Filled(kSide, kSide, 0.5f);
  Image<uint16_t> bpm = Image<uint16_t>::Filled(kSide, kSide, 0);
  Image<float> out_d = Image<float>::Filled(kSide, kSide, 0.0f);
  Image<float> out_v = Image<float>::Filled(kSide, kSide, 0.0f);
  Image<uint16_t> out_q = Image<uint16_t>::Filled(kSide, kSide, 0);
};

Planes& GetPlanes() {
  static Planes* planes = new Planes;
  return *planes;
}

constexpr int kBytesPerPixel = 2 + 4 + 4 + 4 + 2 + 4 + 4 + 2;

// A function with restrict parameters, so the compiler vectorises it without alias checks.
__attribute__((noinline)) void TrafficRow(const uint16_t* __restrict r,
                                          const float* __restrict a,
                                          const float* __restrict b,
                                          const float* __restrict c,
                                          const uint16_t* __restrict m, float* __restrict d,
                                          float* __restrict v, uint16_t* __restrict q, int n) {
  for (int x = 0; x < n; ++x) {
    const float t = static_cast<float>(r[x]) - a[x] - b[x];
    d[x] = t * c[x];
    v[x] = t;
    q[x] = m[x];
  }
}

void BM_CalibrateTraffic(benchmark::State& state) {
  Planes& p = GetPlanes();
  const int threads = static_cast<int>(state.range(0));
  std::unique_ptr<ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<ThreadPool>(threads - 1);
  for (auto _ : state) {
    ParallelFor(pool.get(), kSide, 64, [&](int64_t y0, int64_t y1) {
      for (int64_t yy = y0; yy < y1; ++yy) {
        const int y = static_cast<int>(yy);
        TrafficRow(p.raw.row(y), p.a.row(y), p.b.row(y), p.c.row(y), p.bpm.row(y),
                   p.out_d.row(y), p.out_v.row(y), p.out_q.row(y), kSide);
      }
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * int64_t{kSide} * kSide * kBytesPerPixel);
  state.counters["bytes_per_pixel"] = kBytesPerPixel;
  state.counters["threads"] = threads;
}

void BM_CopyFloat(benchmark::State& state) {
  Planes& p = GetPlanes();
  const int threads = static_cast<int>(state.range(0));
  std::unique_ptr<ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<ThreadPool>(threads - 1);
  for (auto _ : state) {
    ParallelFor(pool.get(), kSide, 64, [&](int64_t y0, int64_t y1) {
      for (int64_t y = y0; y < y1; ++y) {
        const float* __restrict a = p.a.row(static_cast<int>(y));
        float* __restrict d = p.out_d.row(static_cast<int>(y));
        for (int x = 0; x < kSide; ++x) d[x] = a[x];
      }
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * int64_t{kSide} * kSide * 8);
}

BENCHMARK(BM_CalibrateTraffic)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CopyFloat)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace calibd

BENCHMARK_MAIN();
