#include "core/store/cert_ranges.h"

#include <algorithm>

namespace calibd::store::internal {

bool Overlap(const Range& a, const Range& b) {
  return (!a.end || *a.end > b.begin) && (!b.end || *b.end > a.begin);
}

std::vector<Range> SubtractRange(const Range& from, const Range& cut) {
  std::vector<Range> out;
  if (from.begin < cut.begin) {
    out.push_back({from.begin, std::min<TimeMicros>(cut.begin, from.end.value_or(cut.begin))});
  }
  if (cut.end && (!from.end || *from.end > *cut.end)) {
    out.push_back({std::max(from.begin, *cut.end), from.end});
  }
  return out;
}

Range IntersectRange(const Range& a, const Range& b) {
  Range r{std::max(a.begin, b.begin), a.end};
  if (b.end && (!r.end || *b.end < *r.end)) r.end = b.end;
  return r;
}

}  // namespace calibd::store::internal
