// Synthetic stacks for the core/noise tests: frames drawn from known truth maps, kept in
// memory (shared_ptr, so MemorySource needs no copy) or written to FITS for the NumPy oracle.
//
//   Stack s;
//   s.Add(MakeFrame(64, 48, [&](int x, int y) { return truth(x, y) + sigma * g.Next(); }),
//         {{"EXPTIME", 30.0}});
//   noise::Sources sources = s.Sources();
//
// Thread safety: test-local values.
#ifndef CALIBD_TESTS_NOISE_NOISE_TESTING_H_
#define CALIBD_TESTS_NOISE_NOISE_TESTING_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/combine/combine.h"
#include "core/fits/fits.h"
#include "core/noise/noise.h"

namespace calibd::noise::ntest {

inline constexpr int kWidth = 64;
inline constexpr int kHeight = 48;

struct Stack {
  std::vector<std::shared_ptr<CalibratedFrame>> frames;

  // value(x, y) for the data; variance(x, y) when given.
  CalibratedFrame& Add(const std::function<double(int, int)>& value,
                       std::vector<std::pair<std::string, double>> cards = {},
                       const std::function<double(int, int)>& variance = nullptr,
                       int width = kWidth, int height = kHeight) {
    auto f = std::make_shared<CalibratedFrame>();
    f->data = Image<float>::Allocate(width, height);
    if (variance) f->variance = Image<float>::Allocate(width, height);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        f->data.at(x, y) = static_cast<float>(value(x, y));
        if (variance) f->variance.at(x, y) = static_cast<float>(variance(x, y));
      }
    }
    for (auto& [k, v] : cards) f->header.Set(k, v);
    frames.push_back(f);
    return *f;
  }

  noise::Sources Sources() const {
    noise::Sources out;
    for (size_t i = 0; i < frames.size(); ++i) {
      out.push_back(combine::MemorySource(frames[i], absl::StrCat("frame #", i)));
    }
    return out;
  }

  // Writes frame i to dir/prefix_i.fits; returns the paths.
  std::vector<std::string> Write(const std::string& dir, const std::string& prefix) const {
    std::vector<std::string> paths;
    for (size_t i = 0; i < frames.size(); ++i) {
      std::string path = absl::StrCat(dir, "/", prefix, "_", i, ".fits");
      absl::Status s = fits::WriteCalibratedFrame(path, *frames[i]);
      if (!s.ok()) return {};
      paths.push_back(path);
    }
    return paths;
  }
};

// The fraction of pixels where |estimate − truth| <= k·se (pixels where the estimate is not
// finite count as misses unless `skip(x, y)`).
inline double FractionWithin(const Image<float>& estimate, const Image<float>& se,
                             const std::function<double(int, int)>& truth, double k,
                             const std::function<bool(int, int)>& skip = nullptr) {
  int64_t n = 0, in = 0;
  for (int y = 0; y < estimate.height(); ++y) {
    for (int x = 0; x < estimate.width(); ++x) {
      if (skip && skip(x, y)) continue;
      ++n;
      const double d = std::abs(estimate.at(x, y) - truth(x, y));
      if (std::isfinite(d) && d <= k * se.at(x, y)) ++in;
    }
  }
  return n == 0 ? 0 : double(in) / n;
}

}  // namespace calibd::noise::ntest

#endif  // CALIBD_TESTS_NOISE_NOISE_TESTING_H_
