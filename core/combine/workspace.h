// The working memory of one Combine call (internal to core/combine): how many rows a band may
// have under the memory budget, and the one buffer carved into every input's band planes, the
// median-scaling histogram and the per-thread scratch slots of the kernels.
//
//   const int64_t row_bytes = BandRowBytes(width, n, /*variance_planes=*/0, /*dq_planes=*/n);
//   const int rows = PlanRows(options, n, height, row_bytes);      // 0: not even one row fits
//   Workspace ws;
//   ws.Carve(rows, width, planes, /*with_histogram=*/false, /*num_slots=*/3, buffers);
//   char* slot = ws.AcquireSlot();  ...  ws.ReleaseSlot(slot);
//
// Thread safety: Carve before sharing; then AcquireSlot/ReleaseSlot may be called from any
// thread, and the planes are read and written by one band step at a time.
#ifndef CALIBD_CORE_COMBINE_WORKSPACE_H_
#define CALIBD_CORE_COMBINE_WORKSPACE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/combine/combine.h"
#include "core/image/buffer_pool.h"

namespace calibd::combine::internal {

inline constexpr size_t kAlign = 64;  // every plane starts on a cache line
inline constexpr int kMaxSlots = 16;  // scratch slots reserved for concurrent chunks
inline constexpr int64_t kHistogramBytes = int64_t{65536} * sizeof(uint32_t);

inline size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Per-slot scratch for n inputs: lane-major values and deviations for the SIMD path, and
// value/frame/variance arrays and an index permutation for the scalar path.
size_t SlotBytes(int n);

// Bytes one band row of the stack needs: n data planes, `variance_planes` variance planes and
// `dq_planes` DQ planes of `width` pixels, each padded to a cache line.
int64_t BandRowBytes(int width, int n, int variance_planes, int dq_planes);

// The band height for n inputs whose rows take `row_bytes` (BandRowBytes): within the
// budget (less the fixed scratch), capped as combine.h says; 0 if not even one row fits.
int PlanRows(const CombineOptions& options, int n, int height, int64_t row_bytes);

// The smallest memory_budget_bytes with which PlanRows gives at least one row.
int64_t MinimumBudget(const CombineOptions& options, int n, int64_t row_bytes);

struct Workspace {
  Buffer buffer;
  size_t bytes = 0;
  std::vector<float*> data;      // per input: band_rows × width, or null
  std::vector<float*> variance;  // per input, or null
  std::vector<uint16_t*> dq;     // per input, or null
  std::vector<char*> slots;
  uint32_t* histogram = nullptr;  // kHistogramBytes, when scaling by a median

  // Which band planes one input needs in the workspace (none for a frame read in place).
  struct Planes {
    bool data = true;
    bool variance = false;
    bool dq = false;
  };
  // Allocates (from `buffers`, or fresh when null) and lays out the planes; the pointers of
  // planes not asked for stay null.
  void Carve(int band_rows, int width, const std::vector<Planes>& planes, bool with_histogram,
             int num_slots, BufferPool* buffers);
  // A free slot, or null when every slot is in use.
  char* AcquireSlot();
  void ReleaseSlot(char* slot);

 private:
  absl::Mutex mu_;
  std::vector<int> free_slots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace calibd::combine::internal

#endif  // CALIBD_CORE_COMBINE_WORKSPACE_H_
