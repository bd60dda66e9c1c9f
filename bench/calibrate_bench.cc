// calibrate_bench: calib::Calibrate on one 4096×4096 uint16 frame (+32 overscan columns) with
// the full recipe — per-row median overscan, trim, bias, exposure-scaled dark, mean-normalised
// flat, gain, variance and DQ (saturation, bad-pixel map) — on 1 and 2 threads.
//
//   build/bench/calibrate_bench --benchmark_repetitions=3
//
// Reported: time per frame and bytes/s over the bytes the calibration must touch
// (bytes_per_pixel counter; bandwidth_bench streams the same number of bytes for the floor).
// Variants: the flat prepared once and cached (as the server does) or normalised per call.
// Output planes come from a BufferPool, as in the server (first touch of fresh memory is slow).
// BM_WriteCalibrated4k: writing the result as FITS (CFITSIO / direct / direct + compressed
// masks), e.g. --benchmark_filter=Write.
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/calib/recipe.h"
#include "core/fits/fits.h"
#include "core/image/buffer_pool.h"
#include "core/parallel/thread_pool.h"

namespace calibd::calib {
namespace {

constexpr int kData = 4096;
constexpr int kOverscan = 32;

struct Inputs {
  RawImage raw;
  Masters masters;        // flat prepared
  Masters masters_raw_flat;  // flat normalised per call
  RecipeOptions options;
};

std::shared_ptr<CalibratedFrame> Plane(double (*fn)(int, int)) {
  auto m = std::make_shared<CalibratedFrame>();
  m->data = Image<float>::Allocate(kData, kData);
  for (int y = 0; y < kData; ++y) {
    float* row = m->data.row(y);
    for (int x = 0; x < kData; ++x) row[x] = static_cast<float>(fn(x, y));
  }
  return m;
}

const Inputs& GetInputs() {
  static Inputs* inputs = [] {
    auto* in = new Inputs;
    in->raw = RawImage::Allocate(PixelType::kUint16, kData + kOverscan, kData);
    uint32_t state = 12345;
    for (int y = 0; y < kData; ++y) {
      uint16_t* row = in->raw.row<uint16_t>(y);
      for (int x = 0; x < kData + kOverscan; ++x) {
        state = state * 1664525u + 1013904223u;
        const int noise = static_cast<int>(state >> 28) - 8;
        row[x] = static_cast<uint16_t>((x < kData ? 3000 : 1000) + noise + y / 64);
      }
    }
    auto bias = Plane([](int x, int y) { return 2.0 + 1e-4 * x; });
    auto dark = Plane([](int x, int y) { return 5.0 + ((x ^ y) & 7); });
    auto flat = Plane([](int x, int y) { return 2e4 * (1 + 0.1 * std::sin(x * 1e-3 + y * 2e-3)); });
    auto bpm = std::make_shared<Image<uint16_t>>(Image<uint16_t>::Filled(kData, kData, 0));
    for (int i = 0; i < 1000; ++i) bpm->at((i * 7919) % kData, (i * 104729) % kData) = 1;
    RecipeOptions& o = in->options;
    o.overscan.statistic = OverscanOptions::Statistic::kMedian;
    o.overscan.region = Section{kData, kData + kOverscan, 0, kData};
    o.trim = Section{0, kData, 0, kData};
    o.gain = 1.5;
    o.read_noise = 4.0;
    o.exptime = 30;
    o.saturation = 60000;
    Masters& m = in->masters_raw_flat;
    m.bias = bias;
    m.dark = dark;
    m.dark_exptime = 300;
    m.flat = flat;
    m.bad_pixels = bpm;
    in->masters = m;
    in->masters.flat = nullptr;
    in->masters.prepared_flat =
        std::make_shared<PreparedFlat>(NormalizeFlat(*flat, o.flat).value());
    return in;
  }();
  return *inputs;
}

// raw (2) + bias, dark, flat inverse (4 each) + bad pixels (2) + out data, variance (4 each)
// + out dq (2).
constexpr int kBytesPerPixel = 2 + 4 + 4 + 4 + 2 + 4 + 4 + 2;

void Run(benchmark::State& state, bool prepared) {
  const Inputs& in = GetInputs();
  const int threads = static_cast<int>(state.range(0));
  std::unique_ptr<ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<ThreadPool>(threads - 1);  // + the calling thread
  BufferPool buffers;
  const Masters& masters = prepared ? in.masters : in.masters_raw_flat;
  {  // warm the pool's buffers
    auto warm = Calibrate(in.raw, masters, in.options, pool.get(), &buffers);
    if (!warm.ok()) state.SkipWithError(std::string(warm.status().message()).c_str());
  }
  for (auto _ : state) {
    FrameStats stats;
    auto out = Calibrate(in.raw, masters, in.options, pool.get(), &buffers, &stats);
    benchmark::DoNotOptimize(out);
  }
  const int64_t pixels = int64_t{kData} * kData;
  state.SetBytesProcessed(state.iterations() * pixels * kBytesPerPixel);
  state.counters["bytes_per_pixel"] = kBytesPerPixel;
  state.counters["threads"] = threads;
  state.counters["pool_misses"] = static_cast<double>(buffers.misses());
}

void BM_Calibrate4k(benchmark::State& state) { Run(state, /*prepared=*/true); }
void BM_Calibrate4kFlatPerCall(benchmark::State& state) { Run(state, /*prepared=*/false); }

BENCHMARK(BM_Calibrate4k)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Calibrate4kFlatPerCall)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Writing the calibrated 4k frame (data, UNCERT, MASK, DQ, checksums: 176 MB) to a file in
// $TMPDIR, replaced each iteration: 0 = through CFITSIO (the previous writer), 1 = direct,
// 2 = direct with tile-compressed MASK/DQ.
void BM_WriteCalibrated4k(benchmark::State& state) {
  const Inputs& in = GetInputs();
  static const CalibratedFrame* frame = [&] {
    auto out = Calibrate(in.raw, in.masters, in.options);
    return new CalibratedFrame(std::move(out).value());
  }();
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/calibd_write_XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  const std::string path = dir + "/frame.fits";
  BufferPool buffers;
  fits::WriteOptions o;
  o.overwrite = true;
  o.pool = &buffers;
  o.use_cfitsio = state.range(0) == 0;
  o.compress_masks = state.range(0) == 2;
  if (!fits::WriteCalibratedFrame(path, *frame, o).ok()) state.SkipWithError("write failed");
  for (auto _ : state) {
    const absl::Status s = fits::WriteCalibratedFrame(path, *frame, o);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) state.counters["file_MB"] = st.st_size / 1e6;
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
  state.SetBytesProcessed(state.iterations() * int64_t{kData} * kData * (4 + 4 + 1 + 2));
}
BENCHMARK(BM_WriteCalibrated4k)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace calibd::calib

BENCHMARK_MAIN();
