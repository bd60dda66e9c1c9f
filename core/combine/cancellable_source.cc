// CancellableSource: a FrameSource that stops reading once its build is cancelled.
#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "core/combine/combine.h"

namespace calibd::combine {
namespace {

class CancellableFrameSource : public FrameSource {
 public:
  CancellableFrameSource(std::unique_ptr<FrameSource> source, const std::atomic<bool>* cancelled)
      : source_(std::move(source)), cancelled_(cancelled) {}

  int width() const override { return source_->width(); }
  int height() const override { return source_->height(); }
  const Header& header() const override { return source_->header(); }
  bool has_variance() const override { return source_->has_variance(); }
  bool has_dq() const override { return source_->has_dq(); }
  std::string name() const override { return source_->name(); }
  const CalibratedFrame* in_memory() const override { return source_->in_memory(); }

  absl::Status ReadRows(int y0, int rows, float* data, float* variance,
                        uint16_t* dq) override {
    if (absl::Status s = CheckNotCancelled(cancelled_); !s.ok()) return s;
    return source_->ReadRows(y0, rows, data, variance, dq);
  }

 private:
  std::unique_ptr<FrameSource> source_;
  const std::atomic<bool>* cancelled_;
};

}  // namespace

absl::Status CheckNotCancelled(const std::atomic<bool>* cancelled) {
  if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) {
    return absl::CancelledError("the build was cancelled");
  }
  return absl::OkStatus();
}

std::unique_ptr<FrameSource> CancellableSource(std::unique_ptr<FrameSource> source,
                                               const std::atomic<bool>* cancelled) {
  return std::make_unique<CancellableFrameSource>(std::move(source), cancelled);
}

}  // namespace calibd::combine
