#include "core/combine/workspace.h"

#include <algorithm>

#include "core/combine/kernel.h"

namespace calibd::combine::internal {
namespace {

// What the pool's size classes may add on top of a request (at most 1/8): plan within 8/9.
int64_t PlanningBudget(int64_t budget) { return budget / 9 * 8; }

int64_t FixedBytes(const CombineOptions& o, int n) {
  int64_t fixed = int64_t{kMaxSlots} * static_cast<int64_t>(SlotBytes(n));
  if (o.scale == CombineOptions::Scale::kInverseMedian) fixed += kHistogramBytes;
  return fixed;
}

// Bands larger than this gain nothing (the per-band overhead is already negligible) and fall
// out of the last-level cache between the read and the combine, so the band is capped here
// even when the budget allows more — but never below kMinPreferredRows rows, so that files on
// disk are still read in large sequential pieces when N is large.
constexpr int64_t kPreferredBandBytes = int64_t{24} << 20;
constexpr int64_t kMinPreferredRows = 32;

}  // namespace

size_t SlotBytes(int n) {
  return 2 * AlignUp(size_t(n) * kLanes * sizeof(float)) + AlignUp(size_t(n) * sizeof(float)) * 4 +
         AlignUp(size_t(n) * sizeof(int)) * 2;
}

int64_t BandRowBytes(int width, int n, int variance_planes, int dq_planes) {
  const int64_t plane = int64_t{width} * sizeof(float) + kAlign;
  const int64_t dq_plane = int64_t{width} * sizeof(uint16_t) + kAlign;
  return plane * (int64_t{n} + variance_planes) + dq_plane * dq_planes;
}

int PlanRows(const CombineOptions& o, int n, int height, int64_t row_bytes) {
  const int64_t avail = std::min(PlanningBudget(o.memory_budget_bytes) - FixedBytes(o, n),
                                 std::max(kPreferredBandBytes, kMinPreferredRows * row_bytes));
  if (avail <= 0 || row_bytes <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(height, avail / row_bytes));
}

int64_t MinimumBudget(const CombineOptions& o, int n, int64_t row_bytes) {
  return (FixedBytes(o, n) + row_bytes) / 8 * 9 + 9;
}

void Workspace::Carve(int band_rows, int width, const std::vector<Planes>& planes,
                      bool with_histogram, int num_slots, BufferPool* buffers) {
  const int n = static_cast<int>(planes.size());
  const size_t plane = AlignUp(size_t(band_rows) * width * sizeof(float));
  const size_t dq_plane = AlignUp(size_t(band_rows) * width * sizeof(uint16_t));
  size_t total = with_histogram ? kHistogramBytes : 0;
  for (const Planes& p : planes) {
    total += (p.data ? plane : 0) + (p.variance ? plane : 0) + (p.dq ? dq_plane : 0);
  }
  total += size_t(num_slots) * SlotBytes(n);
  bytes = total;
  buffer = buffers != nullptr ? buffers->Acquire(total) : Buffer::Allocate(total);
  char* p = buffer.as<char>();
  if (with_histogram) {
    histogram = reinterpret_cast<uint32_t*>(p);
    p += kHistogramBytes;
  }
  data.assign(n, nullptr);
  variance.assign(n, nullptr);
  dq.assign(n, nullptr);
  for (int i = 0; i < n; ++i) {
    if (planes[i].data) {
      data[i] = reinterpret_cast<float*>(p);
      p += plane;
    }
    if (planes[i].variance) {
      variance[i] = reinterpret_cast<float*>(p);
      p += plane;
    }
    if (planes[i].dq) {
      dq[i] = reinterpret_cast<uint16_t*>(p);
      p += dq_plane;
    }
  }
  absl::MutexLock lock(&mu_);
  slots.clear();
  free_slots_.clear();
  for (int s = 0; s < num_slots; ++s) {
    slots.push_back(p);
    free_slots_.push_back(s);
    p += SlotBytes(n);
  }
}

char* Workspace::AcquireSlot() {
  absl::MutexLock lock(&mu_);
  if (free_slots_.empty()) return nullptr;
  const int s = free_slots_.back();
  free_slots_.pop_back();
  return slots[s];
}

void Workspace::ReleaseSlot(char* slot) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i] == slot) free_slots_.push_back(static_cast<int>(i));
  }
}

}  // namespace calibd::combine::internal

namespace calibd::combine {

int PlanBandRows(const CombineOptions& o, int n, int width, int height, bool read_variance,
                 bool read_dq) {
  return internal::PlanRows(
      o, n, height, internal::BandRowBytes(width, n, read_variance ? n : 0, read_dq ? n : 0));
}

}  // namespace calibd::combine
