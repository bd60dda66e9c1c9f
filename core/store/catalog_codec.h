// Internal to core/store: the catalog's rows and JSON columns ↔ the record types — how a
// configuration, attributes, statistics and provenance are stored as text, how rows become
// MasterVersion / Certification / AuditEntry, and the small formatters used in messages.
//
//   ASSIGN_OR_RETURN(std::vector<SqlRow> rows, conn.Query(absl::StrCat("SELECT ", kVersionCols,
//                                                    " WHERE v.series_id = ?"), {id}));
//   MasterVersion v = RowToVersion(rows[0]);
//
// Thread safety: pure functions.
#ifndef CALIBD_CORE_STORE_CATALOG_CODEC_H_
#define CALIBD_CORE_STORE_CATALOG_CODEC_H_

#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "core/store/detector.h"
#include "core/store/sql.h"
#include "core/store/time.h"
#include "core/store/types.h"

namespace calibd::store::internal {

// The canonical text of a configuration (the series key: JSON with sorted keys).
std::string ConfigKey(const Configuration& c);
Configuration ParseConfig(const std::string& text);  // {} for anything unparsable
std::string StringMapJson(const std::map<std::string, std::string>& m);
std::string StatsJson(const std::map<std::string, double>& m);  // non-finite → null
std::map<std::string, double> ParseStats(const std::string& text);  // null → NaN
std::string ProvenanceJson(const Provenance& p);
Provenance ParseProvenance(const std::string& text);

// "[2026-03-01T00:00:00.000000Z, open)".
std::string FormatRange(TimeMicros begin, std::optional<TimeMicros> end);
// "{binning=1x1, readout_mode=fast}".
std::string FormatConfig(const Configuration& c);

bool ValidKind(absl::string_view kind);  // [a-z0-9_]{1,64}

// Columns of a version row joined with its series: "v.id, v.series_id, s.detector, …".
#define CALIBD_VERSION_SELECT                                                                  \
  "v.id, v.series_id, s.detector, s.kind, s.config_key, v.version, v.sha256, v.size_bytes, "   \
  "v.width, v.height, v.created_at, v.obs_time, v.detector_version, v.actor, "                 \
  "v.attributes_json, v.provenance_json, v.statistics_json, v.decertified_at, v.superseded_at"
#define CALIBD_VERSION_FROM " FROM versions v JOIN series s ON s.id = v.series_id"
inline constexpr char kVersionCols[] = CALIBD_VERSION_SELECT CALIBD_VERSION_FROM;
MasterVersion RowToVersion(const SqlRow& r);

inline constexpr char kCertCols[] =
    "id, series_id, version, begin_us, end_us, created_at, actor, reason FROM certifications";
Certification RowToCert(const SqlRow& r);

inline constexpr char kAuditCols[] =
    "id, time, actor, action, subject, details, series_id, version FROM audit";
AuditEntry RowToAudit(const SqlRow& r);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_CATALOG_CODEC_H_
