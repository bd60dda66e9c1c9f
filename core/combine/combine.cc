#include "core/combine/combine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/combine/fixed_networks.h"
#include "core/combine/kernel.h"
#include "core/combine/scaling.h"
#include "core/combine/workspace.h"
#include "core/image/dq.h"
#include "core/status/macros.h"

namespace calibd::combine {
namespace {

using internal::AlignUp;
using internal::FixedKernelsEnabled;
using internal::FixedMedianGroup;
using internal::BandContext;
using internal::BandRowBytes;
using internal::kAlign;
using internal::kLanes;
using internal::kMaxSlots;
using internal::LaneGroup;
using internal::LaneGroupUnsorted;
using internal::MinimumBudget;
using internal::PlanRows;
using internal::ScalarPixel;
using internal::ScaleFactors;
using internal::SlotBytes;
using internal::Tally;
using internal::Workspace;
using Method = CombineOptions::Method;
using Scale = CombineOptions::Scale;
using Variance = CombineOptions::Variance;

// True when a value needs its frame identity (weights, propagated variance): those pixels take
// the scalar path that sorts (value, frame) pairs; all others sort bare values in SIMD lanes.
bool NeedsFrameIdentity(const CombineOptions& o) {
  return (!o.weights.empty() && o.method != Method::kMedian) ||
         o.variance == Variance::kPropagated;
}

}  // namespace

absl::StatusOr<CombineResult> Combine(std::vector<std::unique_ptr<FrameSource>> inputs,
                                      const CombineOptions& o, ThreadPool* pool,
                                      BufferPool* buffers, const std::atomic<bool>* cancelled) {
  const int n = static_cast<int>(inputs.size());
  CALIBD_RETURN_IF_ERROR(ValidateOptions(o, n));
  for (int i = 0; i < n; ++i) {
    if (inputs[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("input frame ", i, " is null"));
    }
  }
  const int width = inputs[0]->width(), height = inputs[0]->height();
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("input frame 0 (", inputs[0]->name(),
                                                   ") is empty: ", width, "x", height));
  }
  for (int i = 1; i < n; ++i) {
    if (inputs[i]->width() != width || inputs[i]->height() != height) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "input frame %d (%s) is %dx%d but frame 0 (%s) is %dx%d; all frames must have one "
          "shape",
          i, inputs[i]->name(), inputs[i]->width(), inputs[i]->height(), inputs[0]->name(),
          width, height));
    }
  }
  const bool propagate = o.variance == Variance::kPropagated;
  if (propagate) {
    for (int i = 0; i < n; ++i) {
      if (!inputs[i]->has_variance()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "propagated variance asked for, but input frame ", i, " (", inputs[i]->name(),
            ") has no variance plane; use the ccdproc estimator or give variance"));
      }
    }
  }

  // Plan the bands (as if every input were copied, so the band height does not depend on
  // where the inputs live) and carve the workspace for the inputs that are not in memory.
  std::vector<Workspace::Planes> planes(n);
  std::vector<const CalibratedFrame*> in_memory(n);
  int dq_planes = 0;
  for (int i = 0; i < n; ++i) {
    in_memory[i] = inputs[i]->in_memory();
    const bool dq = inputs[i]->has_dq();
    dq_planes += dq;
    planes[i] = in_memory[i] != nullptr ? Workspace::Planes{false, false, false}
                                        : Workspace::Planes{true, propagate, dq};
  }
  const int64_t row_bytes = BandRowBytes(width, n, propagate ? n : 0, dq_planes);
  const int band_rows = PlanRows(o, n, height, row_bytes);
  if (band_rows < 1) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "memory_budget_bytes = ", o.memory_budget_bytes, " is too small to hold one row of ", n,
        " frames of width ", width, "; give at least ", MinimumBudget(o, n, row_bytes)));
  }
  const int threads = pool != nullptr ? pool->num_threads() + 1 : 1;
  Workspace ws;
  ws.Carve(band_rows, width, planes, o.scale == Scale::kInverseMedian,
           std::min(kMaxSlots, threads), buffers);

  CombineResult result;
  CALIBD_RETURN_IF_ERROR(CheckNotCancelled(cancelled));
  CALIBD_ASSIGN_OR_RETURN(result.scale_factors, ScaleFactors(inputs, o, ws));

  // Outputs.
  CalibratedFrame& out = result.frame;
  out.data = Image<float>::Allocate(width, height, buffers);
  if (o.variance != Variance::kNone) out.variance = Image<float>::Allocate(width, height, buffers);
  out.dq = Image<uint16_t>::Allocate(width, height, buffers);
  result.count = Image<uint16_t>::Allocate(width, height, buffers);

  BandContext c;
  c.n = n;
  std::vector<const float*> band_data(n), band_variance(n);
  std::vector<const uint16_t*> band_dq(n);
  c.data = &band_data;
  c.variance = &band_variance;
  c.dq = &band_dq;
  c.scale = &result.scale_factors;
  c.scale_f.assign(result.scale_factors.begin(), result.scale_factors.end());
  c.unit_scale = std::all_of(c.scale_f.begin(), c.scale_f.end(), [](float f) { return f == 1; });
  c.thresholds = o.min_value.has_value() || o.max_value.has_value();
  if (o.min_value) {
    c.min_d = *o.min_value;
    // Smallest float >= min: x >= min_f  <=>  double(x) >= min.
    float f = static_cast<float>(*o.min_value);
    if (double{f} < *o.min_value) f = std::nextafter(f, HUGE_VALF);
    c.min_value = f;
  }
  if (o.max_value) {
    c.max_d = *o.max_value;
    float f = static_cast<float>(*o.max_value);
    if (double{f} > *o.max_value) f = std::nextafter(f, -HUGE_VALF);
    c.max_value = f;
  }
  c.dq_mask = o.dq_mask;
  c.params.method = o.method;
  c.params.nlow = o.nlow;
  c.params.nhigh = o.nhigh;
  c.params.sigma_clip = o.sigma_clip;
  c.params.variance = o.variance;
  c.params.weights = o.weights.empty() ? nullptr : o.weights.data();
  c.params.scale = result.scale_factors.data();
  c.params.empty_value = o.empty_value;
  const internal::SortingNetwork network(n);
  c.network = &network;
  c.identity = NeedsFrameIdentity(o);
  c.unsorted = o.method != Method::kMedian && o.nlow == 0 && o.nhigh == 0 &&
               (!o.sigma_clip.enabled ||
                (o.sigma_clip.center == CombineOptions::Center::kMean &&
                 o.sigma_clip.spread == CombineOptions::Spread::kStd));
  if (o.method == Method::kMedian && !o.sigma_clip.enabled && o.nlow == 0 && o.nhigh == 0 &&
      !c.identity && FixedKernelsEnabled()) {
    c.fixed_median = FixedMedianGroup(n);
  }

  std::atomic<int64_t> valid_total{0}, used_total{0};
  std::vector<absl::Status> read_status(n);
  int num_bands = 0;
  for (int y0 = 0; y0 < height; y0 += band_rows) {
    CALIBD_RETURN_IF_ERROR(CheckNotCancelled(cancelled));
    const int rows = std::min(band_rows, height - y0);
    ++num_bands;
    ParallelFor(pool, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (const CalibratedFrame* f = in_memory[i]; f != nullptr) {
          band_data[i] = f->data.row(y0);
          band_variance[i] = propagate ? f->variance.row(y0) : nullptr;
          band_dq[i] = f->has_dq() ? f->dq.row(y0) : nullptr;
          continue;
        }
        read_status[i] = inputs[i]->ReadRows(y0, rows, ws.data[i], ws.variance[i], ws.dq[i]);
        band_data[i] = ws.data[i];
        band_variance[i] = ws.variance[i];
        band_dq[i] = ws.dq[i];
      }
    });
    for (int i = 0; i < n; ++i) {
      if (!read_status[i].ok()) {
        return Annotate(read_status[i], absl::StrCat("reading input frame ", i, " (",
                                                     inputs[i]->name(), ") rows ", y0, "..",
                                                     y0 + rows - 1));
      }
    }
    const int64_t pixels = int64_t{rows} * width;
    const int64_t offset = int64_t{y0} * width;
    c.pixels = pixels;
    c.out_data = out.data.data() + offset;
    c.out_var = o.variance != Variance::kNone ? out.variance.data() + offset : nullptr;
    c.out_dq = out.dq.data() + offset;
    c.out_count = result.count.data() + offset;
    const int64_t groups = (pixels + kLanes - 1) / kLanes;
    ParallelFor(pool, groups, 64, [&](int64_t g0, int64_t g1) {
      char* slot = ws.AcquireSlot();
      std::vector<char> own;
      if (slot == nullptr) {  // more concurrent chunks than slots (a pool of > 15 threads)
        own.resize(SlotBytes(n) + kAlign);
        slot = reinterpret_cast<char*>(AlignUp(reinterpret_cast<uintptr_t>(own.data())));
      }
      Tally tally;
      float* lanes = reinterpret_cast<float*>(slot);
      float* dev = reinterpret_cast<float*>(slot + AlignUp(size_t(n) * kLanes * sizeof(float)));
      char* scalar = slot + 2 * AlignUp(size_t(n) * kLanes * sizeof(float));
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t p = g * kLanes;
        const int lanes_here = static_cast<int>(std::min<int64_t>(kLanes, pixels - p));
        if (c.identity) {
          for (int l = 0; l < lanes_here; ++l) ScalarPixel(c, p + l, scalar, tally);
        } else if (c.unsorted) {
          LaneGroupUnsorted(c, p, lanes_here, lanes, tally);
        } else if (c.fixed_median == nullptr || !c.fixed_median(c, p, lanes_here, tally)) {
          LaneGroup(c, p, lanes_here, lanes, dev, tally);
        }
      }
      valid_total.fetch_add(tally.valid, std::memory_order_relaxed);
      used_total.fetch_add(tally.used, std::memory_order_relaxed);
      if (own.empty()) ws.ReleaseSlot(slot);
    });
  }

  const int64_t all = int64_t{n} * width * height;
  const int64_t valid = valid_total.load();
  result.masked_fraction = double(all - valid) / double(all);
  result.rejected_fraction = valid > 0 ? double(valid - used_total.load()) / double(valid) : 0.0;
  result.band_rows = band_rows;
  result.num_bands = num_bands;
  result.working_bytes = static_cast<int64_t>(ws.bytes);

  out.header = inputs[0]->header();
  // The unit follows the first input's BUNIT (calibrated frames say "adu" or "electron").
  absl::StatusOr<std::string> bunit = out.header.GetString("BUNIT");
  out.unit = bunit.ok() && absl::StartsWithIgnoreCase(*bunit, "electron") ? "electron" : "adu";
  out.header.Set("NCOMBINE", n, "number of frames combined");
  out.header.Set("COMBMETH", std::string(MethodName(o.method)), "combine method");
  out.header.Set("COMBREJ", result.rejected_fraction, "fraction of valid values rejected");
  if (o.scale == Scale::kExposure) {
    out.header.Set(o.exposure_key, result.scale_factors[0] *
                                       inputs[0]->header().GetDouble(o.exposure_key).value_or(0),
                   "exposure all frames were scaled to");
  }
  out.header.AddHistory(absl::StrCat("calibd combine of ", n, " frames: ",
                                     OptionsSummary(o)));
  return result;
}

}  // namespace calibd::combine
