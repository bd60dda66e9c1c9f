// Sorting and merging networks for a fixed, small number of values per pixel (2..kMaxFixed),
// generated at compile time and fully unrolled over eight pixels at once, so every value of
// every comparator stays in a vector register (internal to core/combine; SortingNetwork uses
// them when n is small enough, and falls back to its run-time comparator list otherwise).
//
//   float v[20 * kLanes];                       // lane-major: value k of pixel l at v[k*8 + l]
//   if (LaneSorter sort = FixedLaneSorter(20)) sort(v);               // each column ascending
//   if (LaneSorter merge = FixedVMerger(20)) merge(dev);  // dev columns were "V"-shaped
//   MedianGroupFn median = FixedMedianGroup(20);
//   if (median == nullptr || !median(context, p, 8, tally)) LaneGroup(...);
//
// The sorter is Batcher's odd-even merge sort (the same comparators as SortingNetwork); the
// merger is a bitonic merger, which sorts any sequence that first falls then rises (as
// |x − median| does over sorted x, with +inf on either side). Any sorting network gives the
// same sorted output, so results are identical to the run-time network's.
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_COMBINE_FIXED_NETWORKS_H_
#define CALIBD_CORE_COMBINE_FIXED_NETWORKS_H_

#include <cstdint>

namespace calibd::combine::internal {

inline constexpr int kMaxFixed = 32;

// Sorts (or merges) the kLanes columns of v[n * kLanes] in place.
using LaneSorter = void (*)(float* v);

struct BandContext;
struct Tally;
// A plain median (no clipping, no extrema) of eight pixels [p, p + 8) of the band, with the
// MAD-std variance when c.out_var is set: what LaneGroup computes, bit for bit, when every
// one of the n values of every pixel passes (DQ, finite, thresholds); false otherwise (and
// nothing written), and the caller runs LaneGroup. The n values stay in registers from the
// gather to the output; the MAD's middle ranks come from windows of the sorted values (the
// r+1 values nearest the median are consecutive), not from a second sort.
using MedianGroupFn = bool (*)(const BandContext& c, int64_t p, int lanes, Tally& tally);

// nullptr when n < 2 or n > kMaxFixed.
LaneSorter FixedLaneSorter(int n);
LaneSorter FixedVMerger(int n);
MedianGroupFn FixedMedianGroup(int n);

}  // namespace calibd::combine::internal

#endif  // CALIBD_CORE_COMBINE_FIXED_NETWORKS_H_
