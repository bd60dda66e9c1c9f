// Internal to core/store: the arithmetic of certification ranges [begin, end) (end unset =
// open-ended) — what is left of a range when part of it is removed, and the part two ranges
// share. Certify with replace and Decertify of a part are these two functions over the rows.
//
//   Range old{t0, std::nullopt};
//   std::vector<Range> left = SubtractRange(old, Range{t5, t7});  // [t0, t5), [t7, open)
//   Range cut = IntersectRange(old, Range{t5, t7});               // [t5, t7)
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_STORE_CERT_RANGES_H_
#define CALIBD_CORE_STORE_CERT_RANGES_H_

#include <optional>
#include <vector>

#include "core/store/time.h"

namespace calibd::store::internal {

struct Range {
  TimeMicros begin = 0;
  std::optional<TimeMicros> end;  // nullopt = open-ended
  bool operator==(const Range&) const = default;
};

bool Overlap(const Range& a, const Range& b);
// The pieces of `from` outside `cut` (0, 1 or 2, in time order).
std::vector<Range> SubtractRange(const Range& from, const Range& cut);
// The part of `a` inside `b` (only meaningful when they overlap).
Range IntersectRange(const Range& a, const Range& b);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_CERT_RANGES_H_
