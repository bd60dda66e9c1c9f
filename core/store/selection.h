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
//     else use k.chosen->sha256;   // k.chosen_by says how, k.trail what was considered and why
//   }
//
// The rules are one pure function, SelectKind(spec, candidates, request): the catalog only
// fetches the candidates (the series of (detector, kind) with the certifications and versions
// that can decide), so the rules are testable without a database:
//
//   SelectionCandidates c;                    // normally CalibrationStore::FetchCandidates
//   c.series.push_back({.series_id = 1, .configuration = {{"readout_mode", "fast"}},
//                       .fetched = true, .certifications = {cert}, .versions = {v1}});
//   KindRequest k{.detector = "lfc/chip0", .kind = "bias", .configuration = frame_config,
//                 .time = t};
//   KindSelection s = SelectKind(spec, c, k);     // s.chosen_by == SelectionMethod::kCertified
//
// Rules, per kind:
//   1. A pin for the kind wins (by sha256, or by version in the matching series). An unknown
//      pinned version → that kind's status NOT_FOUND. Method kPinned.
//   2. Series of (detector, kind) whose configuration matches the frame's (exact text, or within
//      the spec's tolerance for numeric keys such as exposure and temperature).
//   3. Among their certifications, those whose [begin, end) holds the frame's time; the winner
//      is the closest configuration, then the latest certification (largest begin), then the
//      highest version. Method kCertified.
//   4. None: strict → FAILED_PRECONDITION ("no certified <kind> for <configuration> at <time>");
//      nearest → the matching, not decertified version whose obs_time is closest to the frame's
//      time and no older/newer than max_age (0 = any); ties: closest configuration, then the
//      highest version. Method kNearest — else FAILED_PRECONDITION.
// SelectionRequest errors (unknown detector → NOT_FOUND, no time/configuration obtainable or
// empty kinds → INVALID_ARGUMENT) fail the whole call; everything else is per kind.
//
// One name per method everywhere (proto SELECTION_OUTCOME_*, metric labels, logs):
// "pinned", "certified", "nearest" (SelectionMethodName).
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

// How a kind's master was chosen.
enum class SelectionMethod : int { kPinned = 0, kCertified = 1, kNearest = 2 };

// "pinned", "certified", "nearest": the one spelling for logs, metric labels and trails.
absl::string_view SelectionMethodName(SelectionMethod method);

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
  std::optional<SelectionMethod> chosen_by;  // set exactly when `chosen` is
  // Transitional: SelectionMethodName(*chosen_by), "" on error. Use chosen_by; this field goes
  // once server/ has switched.
  std::string method;
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

// --- The rules, without a database ---

// What the catalog fetched about one series of (detector, kind).
struct SeriesCandidate {
  int64_t series_id = 0;
  Configuration configuration;
  // False: only the configuration is known (the catalog saw it cannot match, e.g. it differs in
  // an untoleranced key); the series is explained in the trail and never chosen.
  bool fetched = false;
  // At least the certifications that can hold the frame time: the latest two beginning at or
  // before it and the first beginning after it (more is allowed; the rules see all given).
  std::vector<Certification> certifications;
  // At least the versions those certifications name, and for the nearest policy the not
  // decertified versions nearest in obs_time before and after the frame time (the highest
  // version on a tie) — more is allowed.
  std::vector<MasterVersion> versions;
};

struct SelectionCandidates {
  // Every series of (detector, kind) — ordered by series id.
  std::vector<SeriesCandidate> series;
  // Series the catalog did not list at all (trail size cap), counted into candidates_omitted.
  int64_t series_omitted = 0;
  // For a pin by sha256: the stored versions of (detector, kind) with that content, any series.
  std::vector<MasterVersion> sha_matches;
  // For a pin by version: that version in the pinned (or best matching) series, if it exists.
  std::optional<MasterVersion> pinned_version;
};

// One kind's selection question, with the frame's configuration and time already resolved.
struct KindRequest {
  std::string detector;
  std::string kind;
  Configuration configuration;  // the frame's (logical key → value)
  std::optional<TimeMicros> time;  // unset only when the kind is pinned
  SelectionPolicy policy = SelectionPolicy::kStrict;
  TimeMicros max_age = 0;
  std::optional<PinnedVersion> pin;
};

// The rules above, applied to what `candidates` holds. Never touches a database; the status of
// the result is the kind's (OK, FAILED_PRECONDITION, NOT_FOUND, INVALID_ARGUMENT).
KindSelection SelectKind(const DetectorSpec& spec, const SelectionCandidates& candidates,
                         const KindRequest& request);

// The series id a version pin refers to: the pin's own, else the best-matching series among the
// candidates' configurations (0 when none matches). The catalog uses it to fetch
// `pinned_version`.
int64_t PinnedSeries(const DetectorSpec& spec, const SelectionCandidates& candidates,
                     const KindRequest& request);

// Does a series configuration match the frame's for this kind? On mismatch `why` names the
// first differing key ("exposure 60 differs from frame's 30 by more than 1"); `distance` is a
// tie-break score (sum of |differences| / tolerance for toleranced keys).
bool ConfigurationMatches(const DetectorSpec& spec, absl::string_view kind,
                          const Configuration& series, const Configuration& frame,
                          std::string* why, double* distance);

}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_SELECTION_H_
