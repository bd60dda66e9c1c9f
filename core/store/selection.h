// Selection: for one frame, which stored master of each needed kind applies — and why.
//
//   SelectionRequest req;
//   req.detector = "lfc/chip0";
//   req.header = raw.header;                 // or: req.configuration + req.time
//   req.kinds = {"bias", "dark", "flat"};
//   req.policy = SelectionPolicy::kNearest;
//   req.max_age = 30 * 86400 * kMicrosPerSecond;
//   ASSIGN_OR_RETURN(SelectionResult r, store->Select(req));
//   for (const KindSelection& k : r.kinds) {
//     if (!k.status.ok()) { ... k.status is FAILED_PRECONDITION / NOT_FOUND ... }
//     else use k.chosen->sha256;   // k.trail says what was considered and why
//   }
//
// Rules, per kind:
//   1. A pin for the kind wins (by sha256, or by version in the matching series). An unknown
//      pinned version → that kind's status NOT_FOUND.
//   2. Series of (detector, kind) whose configuration matches the frame's (exact text, or within
//      the spec's tolerance for numeric keys such as exposure and temperature).
//   3. Among their certifications, those whose [begin, end) holds the frame's time; the winner
//      is the closest configuration, then the latest certification, then the highest version.
//   4. None: strict → FAILED_PRECONDITION ("no certified <kind> for <configuration> at <time>");
//      nearest → the matching, not decertified version whose obs_time is closest to the frame's
//      time and no older/newer than max_age (0 = any) — else FAILED_PRECONDITION.
// SelectionRequest errors (unknown detector → NOT_FOUND, no time/configuration obtainable or
// empty kinds → INVALID_ARGUMENT) fail the whole call; everything else is per kind.
//
// Thread safety: value types and pure functions.
#ifndef CALIBD_CORE_STORE_SELECTION_H_
#define CALIBD_CORE_STORE_SELECTION_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/image/header.h"
#include "core/store/detector.h"
#include "core/store/time.h"
#include "core/store/types.h"

namespace calibd::store {

enum class SelectionPolicy : int { kStrict = 0, kNearest = 1 };

absl::string_view SelectionPolicyName(SelectionPolicy policy);  // "strict", "nearest"
absl::StatusOr<SelectionPolicy> ParseSelectionPolicy(absl::string_view name);

// A version fixed by the caller for one kind.
struct PinnedVersion {
  std::string sha256;     // when set, wins over the rest
  int64_t series_id = 0;  // 0 = the series matching the frame's configuration
  int64_t version = 0;
};

struct SelectionRequest {
  std::string detector;
  int64_t detector_version = 0;  // 0 = the latest spec
  // Where configuration and time come from: the header, unless given explicitly below.
  Header header;
  std::optional<Configuration> configuration;  // logical key → value (all kinds' keys)
  std::optional<TimeMicros> time;
  std::vector<std::string> kinds;
  SelectionPolicy policy = SelectionPolicy::kStrict;
  TimeMicros max_age = 0;  // for kNearest; 0 = unlimited
  std::map<std::string, PinnedVersion> pinned;  // kind → pin
};

// One candidate looked at while selecting a kind.
struct TrailEntry {
  int64_t series_id = 0;
  int64_t version = 0;  // 0 when a whole series was rejected (configuration mismatch)
  std::string sha256;
  Configuration configuration;
  std::optional<Certification> certification;  // the range looked at, if any
  bool chosen = false;
  // Why rejected or why it won, for people: e.g.
  //   "rejected: exposure 60 differs from frame's 30 by more than 1"
  //   "rejected: certified [2026-03-01T00:00:00Z, 2026-03-02T00:00:00Z) does not hold frame time"
  //   "chosen: certified [2026-03-01T00:00:00Z, open) holds frame time"
  std::string reason;
};

struct KindSelection {
  std::string kind;
  absl::Status status;                 // OK when `chosen` is set
  std::optional<MasterVersion> chosen;
  std::string method;                  // "pinned", "certified", "nearest" ("" on error)
  std::vector<TrailEntry> trail;
  int64_t candidates_omitted = 0;      // trail entries left out to keep it short
};

struct SelectionResult {
  std::string detector;
  int64_t detector_version = 0;
  TimeMicros time = 0;                 // the frame time used
  Configuration configuration;         // the frame configuration used
  SelectionPolicy policy = SelectionPolicy::kStrict;
  std::vector<KindSelection> kinds;    // in request order

  bool all_ok() const {
    for (const KindSelection& k : kinds) {
      if (!k.status.ok()) return false;
    }
    return true;
  }
};

// --- The backend-independent rules (used by both stores; exposed for tests) ---

// Does a series configuration match the frame's for this kind? On mismatch `why` names the
// first differing key ("exposure 60 differs from frame's 30 by more than 1"); `distance` is a
// tie-break score (sum of |differences| / tolerance for toleranced keys).
bool ConfigurationMatches(const DetectorSpec& spec, absl::string_view kind,
                          const Configuration& series, const Configuration& frame,
                          std::string* why, double* distance);

}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_SELECTION_H_
