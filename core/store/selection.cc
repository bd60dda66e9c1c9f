#include "core/store/selection.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace calibd::store {

absl::string_view SelectionPolicyName(SelectionPolicy policy) {
  return policy == SelectionPolicy::kNearest ? "nearest" : "strict";
}

absl::StatusOr<SelectionPolicy> ParseSelectionPolicy(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "strict" || n.empty()) return SelectionPolicy::kStrict;
  if (n == "nearest") return SelectionPolicy::kNearest;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown selection policy '", name, "'; use strict or nearest"));
}

bool ConfigurationMatches(const DetectorSpec& spec, absl::string_view kind,
                          const Configuration& series, const Configuration& frame,
                          std::string* why, double* distance) {
  const std::map<std::string, double> tolerances = TolerancesOf(spec);
  double dist = 0;
  for (const auto& [key, want] : series) {
    auto it = frame.find(key);
    if (it == frame.end()) {
      if (why) *why = absl::StrCat("frame has no ", key, " (", spec.keys.KeywordFor(key), ")");
      return false;
    }
    const std::string& have = it->second;
    double a = 0, b = 0;
    const bool numeric = absl::SimpleAtod(want, &a) && absl::SimpleAtod(have, &b) &&
                         std::isfinite(a) && std::isfinite(b);
    if (numeric) {
      auto tol_it = tolerances.find(key);
      const double tol = tol_it == tolerances.end() ? 0.0 : tol_it->second;
      const double diff = std::fabs(a - b);
      if (diff > tol * (1 + 1e-12)) {
        if (why) {
          *why = tol > 0 ? absl::StrCat(key, " ", want, " differs from frame's ", have,
                                        " by more than ", tol)
                         : absl::StrCat(key, " ", want, " differs from frame's ", have);
        }
        return false;
      }
      if (tol > 0) dist += diff / tol;
    } else if (want != have) {
      if (why) *why = absl::StrCat(key, " '", want, "' differs from frame's '", have, "'");
      return false;
    }
  }
  if (distance) *distance = dist;
  return true;
}

}  // namespace calibd::store
