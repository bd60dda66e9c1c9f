// noise_bench: time and peak RSS of one core/noise product built from FITS frames on disk, one
// product per process (so the peak RSS is the product's own). bench/compare_noise.py writes the
// frames, runs this next to NumPy doing the same math, and prints the ratios.
//
//   build/bench/noise_bench read_noise --threads 2 --out rn.fits bias_*.fits
//   build/bench/noise_bench noise_model --threads 2 emccd_*.fits
//   build/bench/noise_bench dark_current dark_*.fits
//   build/bench/noise_bench gain --levels 5 flat_*.fits bias_0.fits bias_1.fits
//   build/bench/noise_bench bad_pixels --dark dc.fits --flat flat_0.fits
//   build/bench/noise_bench synth_dark --model nm.fits --exptime 45 --em-gain 300
//
// Prints one JSON line: {"product", "frames", "width", "height", "threads", "seconds",
// "peak_rss_mb", and a summary figure of the product}. Frames are opened as
// combine::FitsSource (a path may repeat: each occurrence is its own source).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/combine/combine.h"
#include "core/fits/fits.h"
#include "core/noise/noise.h"
#include "core/noise/noise_product.h"
#include "core/parallel/thread_pool.h"

namespace calibd::noise {
namespace {

// VmHWM of this process image (ru_maxrss would carry the forking parent's peak across exec).
double PeakRssMb() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  double kb = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) kb = std::atof(line + 6);
  }
  std::fclose(f);
  return kb / 1024.0;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "noise_bench: %s\n", s.ToString().c_str());
  return 1;
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: noise_bench PRODUCT [options] FILES...\n");
    return 2;
  }
  const std::string product = argv[1];
  int threads = 2, levels = 0;
  std::string out, model_path, dark_path, flat_path;
  double exptime = 45, em_gain = 300;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--threads")
      threads = std::atoi(next().c_str());
    else if (a == "--levels")
      levels = std::atoi(next().c_str());
    else if (a == "--out")
      out = next();
    else if (a == "--model")
      model_path = next();
    else if (a == "--dark")
      dark_path = next();
    else if (a == "--flat")
      flat_path = next();
    else if (a == "--exptime")
      exptime = std::atof(next().c_str());
    else if (a == "--em-gain")
      em_gain = std::atof(next().c_str());
    else
      files.push_back(a);
  }
  ThreadPool pool(threads);
  auto open = [&](size_t begin, size_t end) -> absl::StatusOr<Sources> {
    Sources s;
    for (size_t i = begin; i < end; ++i) {
      absl::StatusOr<std::unique_ptr<combine::FrameSource>> f = combine::FitsSource(files[i]);
      if (!f.ok()) return f.status();
      s.push_back(std::move(*f));
    }
    return s;
  };
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<NoiseProduct> result = absl::UnknownError("no product");
  std::string summary;
  if (product == "read_noise" || product == "noise_model" || product == "dark_current") {
    absl::StatusOr<Sources> s = open(0, files.size());
    if (!s.ok()) return Fail(s.status());
    if (product == "read_noise") {
      result = BuildReadNoise(std::move(*s), {}, &pool);
      if (result.ok())
        summary = absl::StrCat("\"rdnoise\": ", *result->header.GetDouble("RDNOISE"));
    } else if (product == "noise_model") {
      result = BuildNoiseModel(std::move(*s), {}, &pool);
      if (result.ok()) {
        summary = absl::StrCat("\"fpn_mean\": ", *result->header.GetDouble("FPNMEAN"),
                               ", \"dc_mean\": ", *result->header.GetDouble("DCMEAN"),
                               ", \"cic_mean\": ", *result->header.GetDouble("CICMEAN"));
      }
    } else {
      result = BuildDarkCurrent(std::move(*s), {}, &pool);
      if (result.ok())
        summary = absl::StrCat("\"darkcur\": ", *result->header.GetDouble("DARKCUR"));
    }
  } else if (product == "gain") {
    const size_t nflat = size_t(levels) * 2;
    if (levels < 3 || files.size() < nflat + 2) {
      std::fprintf(stderr, "gain: --levels N (>= 3), 2N flats then >= 2 biases\n");
      return 2;
    }
    absl::StatusOr<Sources> flats = open(0, nflat);
    absl::StatusOr<Sources> biases = open(nflat, files.size());
    if (!flats.ok()) return Fail(flats.status());
    if (!biases.ok()) return Fail(biases.status());
    result = BuildGain(std::move(*flats), std::move(*biases), {}, &pool);
    if (result.ok()) summary = absl::StrCat("\"gain\": ", *result->header.GetDouble("GAIN"));
  } else if (product == "bad_pixels") {
    absl::StatusOr<NoiseProduct> dark = ReadNoiseProduct(dark_path);
    if (!dark.ok()) return Fail(dark.status());
    absl::StatusOr<CalibratedFrame> flat = fits::ReadCalibratedFrame(flat_path);
    if (!flat.ok()) return Fail(flat.status());
    // Normalise the flat to ~1 (the master-flat form bad_pixels expects).
    double s = 0;
    for (int64_t i = 0; i < flat->data.num_pixels(); ++i) s += flat->data.data()[i];
    const float inv = static_cast<float>(flat->data.num_pixels() / s);
    for (int64_t i = 0; i < flat->data.num_pixels(); ++i) flat->data.data()[i] *= inv;
    BadPixelInputs in;
    in.dark_current = &*dark;
    in.flat = &*flat;
    result = BuildBadPixels(in, {}, &pool);
    if (result.ok()) summary = absl::StrCat("\"ndead\": ", *result->header.GetInt("NDEAD"));
  } else if (product == "synth_dark") {
    absl::StatusOr<NoiseProduct> model = ReadNoiseProduct(model_path);
    if (!model.ok()) return Fail(model.status());
    const auto t1 = std::chrono::steady_clock::now();
    SynthDarkRequest r;
    r.exptime = exptime;
    r.em_gain = em_gain;
    absl::StatusOr<CalibratedFrame> dark = SynthesizeDark(*model, r, &pool);
    if (!dark.ok()) return Fail(dark.status());
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    std::printf(
        "{\"product\": \"synth_dark\", \"frames\": 0, \"width\": %d, \"height\": %d, "
        "\"threads\": %d, \"seconds\": %.4f, \"peak_rss_mb\": %.1f, \"center\": %.6g}\n",
        dark->width(), dark->height(), threads, secs, PeakRssMb(),
        dark->data.at(dark->width() / 2, dark->height() / 2));
    if (!out.empty()) {
      fits::WriteOptions o;
      o.overwrite = true;
      absl::Status w = fits::WriteCalibratedFrame(out, *dark, o);
      if (!w.ok()) return Fail(w);
    }
    return 0;
  } else {
    std::fprintf(stderr, "unknown product %s\n", product.c_str());
    return 2;
  }
  if (!result.ok()) return Fail(result.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"product\": \"%s\", \"frames\": %zu, \"width\": %d, \"height\": %d, \"threads\": %d, "
      "\"seconds\": %.4f, \"peak_rss_mb\": %.1f, %s}\n",
      product.c_str(), files.size(), result->width, result->height, threads, secs, PeakRssMb(),
      summary.c_str());
  std::fflush(stdout);
  if (!out.empty()) {
    absl::Status w = WriteNoiseProduct(out, *result, /*overwrite=*/true);
    if (!w.ok()) return Fail(w);
  }
  return 0;
}

}  // namespace
}  // namespace calibd::noise

int main(int argc, char** argv) { return calibd::noise::Main(argc, argv); }
