// The catalog's record types: a master version, a series, a certification, an audit entry. Shared by the CalibrationStore interface, the selection and the
// server's conversion code.
//
//   ASSIGN_OR_RETURN(MasterVersion v, store->PutMaster(request, "alice"));
//   LOG(INFO) << v.detector << " " << v.kind << " v" << v.version << " " << v.sha256
//             << (v.created ? " (new)" : " (existing)");
//
// Thread safety: value types.
#ifndef CALIBD_CORE_STORE_TYPES_H_
#define CALIBD_CORE_STORE_TYPES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/store/detector.h"
#include "core/store/time.h"

namespace calibd::store {

// Where a master came from.
struct Provenance {
  std::vector<std::string> input_sha256;       // the frames it was built from
  std::map<std::string, std::string> options;  // combine options, recipe, …
  std::string software_version;
  bool operator==(const Provenance&) const = default;
};

// One immutable stored master.
struct MasterVersion {
  int64_t series_id = 0;
  std::string detector;
  std::string kind;
  Configuration configuration;
  int64_t version = 0;      // 1, 2, 3… within the series, dense
  std::string sha256;       // lowercase hex of the blob file bytes
  int64_t size_bytes = 0;   // blob size
  int width = 0, height = 0;
  TimeMicros created_at = 0;
  // The master's own time (its header's time keyword, else created_at): what the `nearest`
  // policy measures distance from.
  TimeMicros obs_time = 0;
  int64_t detector_version = 0;  // the detector spec version it was put under
  std::string actor;
  std::map<std::string, std::string> attributes;
  Provenance provenance;
  std::map<std::string, double> statistics;
  // Set once a Decertify removed all of this version's certifications / once a replacing
  // certification cut one of its ranges.
  std::optional<TimeMicros> decertified_at;
  std::optional<TimeMicros> superseded_at;
  // Only from PutMaster: true when this call created the version, false when identical content
  // already existed in the series (idempotent put).
  bool created = false;
};

// A series: all versions of one (detector, kind, configuration).
struct SeriesInfo {
  int64_t id = 0;
  std::string detector;
  std::string kind;
  Configuration configuration;
  int64_t latest_version = 0;
  TimeMicros created_at = 0;
};

// "Version `version` of series `series_id` is valid for [begin, end)".
struct Certification {
  int64_t id = 0;
  int64_t series_id = 0;
  int64_t version = 0;
  TimeMicros begin = 0;
  std::optional<TimeMicros> end;  // nullopt = open-ended
  TimeMicros created_at = 0;
  std::string actor;
  std::string reason;

  bool Holds(TimeMicros t) const { return t >= begin && (!end || t < *end); }
};

struct AuditEntry {
  int64_t id = 0;  // increasing
  TimeMicros time = 0;
  std::string actor;
  std::string action;   // "put_detector", "put_master", "certify", "decertify", …
  std::string subject;  // "lfc/chip0 dark series 12 v3"
  std::string details;  // human-readable: ranges, reasons
  int64_t series_id = 0;  // the series and version it is about (0 = not about a version)
  int64_t version = 0;
};

}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_TYPES_H_
