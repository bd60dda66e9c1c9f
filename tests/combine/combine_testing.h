// Small synthetic stacks for the core/combine tests: frames from pixel functions, kept in
// memory (shared_ptr, so MemorySource needs no copy), and a scripted band source whose reads
// a test can count, fail or cancel.
//
//   auto f = ctest::MakeFrame(4, 64, [](int x, int) { return 1.0f + x; });
//   CombineResult r = *Combine(ctest::Sources({f, f, f}), ctest::NoClip(Method::kMedian));
//
// Thread safety: test-local values.
#ifndef CALIBD_TESTS_COMBINE_COMBINE_TESTING_H_
#define CALIBD_TESTS_COMBINE_COMBINE_TESTING_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/combine/combine.h"

namespace calibd::combine::ctest {

using PixelFn = std::function<float(int x, int y)>;

inline std::shared_ptr<CalibratedFrame> MakeFrame(int w, int h, const PixelFn& value,
                                                  const PixelFn& variance = nullptr,
                                                  std::function<uint16_t(int, int)> dq = nullptr) {
  auto f = std::make_shared<CalibratedFrame>();
  f->data = Image<float>::Allocate(w, h);
  if (variance) f->variance = Image<float>::Allocate(w, h);
  if (dq) f->dq = Image<uint16_t>::Allocate(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      f->data.at(x, y) = value(x, y);
      if (variance) f->variance.at(x, y) = variance(x, y);
      if (dq) f->dq.at(x, y) = dq(x, y);
    }
  }
  return f;
}

inline std::vector<std::unique_ptr<FrameSource>> Sources(
    const std::vector<std::shared_ptr<CalibratedFrame>>& frames) {
  std::vector<std::unique_ptr<FrameSource>> s;
  for (size_t i = 0; i < frames.size(); ++i) {
    s.push_back(MemorySource(frames[i], "frame" + std::to_string(i)));
  }
  return s;
}

inline CombineOptions NoClip(CombineOptions::Method m) {
  CombineOptions o;
  o.method = m;
  o.sigma_clip.enabled = false;
  return o;
}

// A kWidth × kHeight frame of ones, data only, read band by band through ReadRows (never in
// place). Each read first calls `on_read(n, y0)` (n counts reads from 1; the counter lives in
// the caller, so it outlives the source, which Combine destroys); a non-OK status from it is
// the read's result.
class ScriptedSource : public FrameSource {
 public:
  static constexpr int kWidth = 4;
  static constexpr int kHeight = 64;
  using OnRead = std::function<absl::Status(int n, int y0)>;

  ScriptedSource(std::string name, int* reads, OnRead on_read)
      : name_(std::move(name)), reads_(reads), on_read_(std::move(on_read)) {}

  int width() const override { return kWidth; }
  int height() const override { return kHeight; }
  const Header& header() const override { return header_; }
  bool has_variance() const override { return false; }
  bool has_dq() const override { return false; }
  std::string name() const override { return name_; }
  absl::Status ReadRows(int y0, int rows, float* data, float*, uint16_t*) override {
    const int n = ++*reads_;
    if (on_read_) {
      absl::Status s = on_read_(n, y0);
      if (!s.ok()) return s;
    }
    std::fill(data, data + rows * kWidth, 1.0f);
    return absl::OkStatus();
  }

 private:
  std::string name_;
  int* reads_;
  OnRead on_read_;
  Header header_;
};

}  // namespace calibd::combine::ctest

#endif  // CALIBD_TESTS_COMBINE_COMBINE_TESTING_H_
