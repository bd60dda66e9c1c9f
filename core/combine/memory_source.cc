// FrameSource's out-of-line destructor and MemorySource: a frame already in memory.
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/combine/combine.h"

namespace calibd::combine {

FrameSource::~FrameSource() = default;

namespace {

class MemoryFrameSource : public FrameSource {
 public:
  MemoryFrameSource(std::shared_ptr<const CalibratedFrame> frame, std::string name)
      : frame_(std::move(frame)), name_(std::move(name)) {}

  int width() const override { return frame_->width(); }
  int height() const override { return frame_->height(); }
  const Header& header() const override { return frame_->header; }
  bool has_variance() const override { return frame_->has_variance(); }
  bool has_dq() const override { return frame_->has_dq(); }
  std::string name() const override { return name_; }
  const CalibratedFrame* in_memory() const override { return frame_.get(); }

  absl::Status ReadRows(int y0, int rows, float* data, float* variance,
                        uint16_t* dq) override {
    if (y0 < 0 || rows < 0 || y0 + rows > height()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name_, ": rows [", y0, ", ", int64_t{y0} + rows, ") are outside the frame's ",
          height(), " rows"));
    }
    if (variance != nullptr && !has_variance()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name_, " has no variance plane; do not ask for one"));
    }
    if (dq != nullptr && !has_dq()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name_, " has no DQ plane; do not ask for one"));
    }
    const size_t n = size_t(rows) * size_t(width());
    if (n == 0) return absl::OkStatus();
    std::memcpy(data, frame_->data.row(y0), n * sizeof(float));
    if (variance != nullptr) std::memcpy(variance, frame_->variance.row(y0), n * sizeof(float));
    if (dq != nullptr) std::memcpy(dq, frame_->dq.row(y0), n * sizeof(uint16_t));
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<const CalibratedFrame> frame_;
  std::string name_;
};

}  // namespace

std::unique_ptr<FrameSource> MemorySource(std::shared_ptr<const CalibratedFrame> frame,
                                          std::string name) {
  return std::make_unique<MemoryFrameSource>(std::move(frame), std::move(name));
}

}  // namespace calibd::combine
