#include "core/store/schema.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status/macros.h"

namespace calibd::store::internal {
namespace {

// "pg_advisory_xact_lock" key serialising migrations of one database ("calib").
constexpr int64_t kMigrationLockKey = 0x63616c6962;

std::vector<std::string> SchemaV1(bool pg) {
  const std::string pk = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY";
  std::vector<std::string> s = {
      absl::StrCat("CREATE TABLE detectors (id ", pk,
                   ", name TEXT NOT NULL, version BIGINT NOT NULL, spec_json TEXT NOT NULL, "
                   "created_at BIGINT NOT NULL, actor TEXT NOT NULL, UNIQUE (name, version))"),
      absl::StrCat("CREATE TABLE series (id ", pk,
                   ", detector TEXT NOT NULL, kind TEXT NOT NULL, config_key TEXT NOT NULL, "
                   "latest_version BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, "
                   "UNIQUE (detector, kind, config_key))"),
      absl::StrCat(
          "CREATE TABLE versions (id ", pk,
          ", series_id BIGINT NOT NULL REFERENCES series (id), version BIGINT NOT NULL, "
          "sha256 TEXT NOT NULL, content_sha256 TEXT NOT NULL, size_bytes BIGINT NOT NULL, "
          "width INTEGER NOT NULL, "
          "height INTEGER NOT NULL, created_at BIGINT NOT NULL, obs_time BIGINT NOT NULL, "
          "detector_version BIGINT NOT NULL, actor TEXT NOT NULL, attributes_json TEXT NOT NULL, "
          "provenance_json TEXT NOT NULL, statistics_json TEXT NOT NULL, decertified_at BIGINT, "
          "superseded_at BIGINT, UNIQUE (series_id, version), UNIQUE (series_id, sha256))"),
      "CREATE INDEX versions_sha ON versions (sha256)",
      "CREATE INDEX versions_obs ON versions (series_id, obs_time)",
      "CREATE INDEX versions_content ON versions (series_id, content_sha256)",
      absl::StrCat("CREATE TABLE certifications (id ", pk,
                   ", series_id BIGINT NOT NULL, version BIGINT NOT NULL, "
                   "begin_us BIGINT NOT NULL, end_us BIGINT, created_at BIGINT NOT NULL, "
                   "actor TEXT NOT NULL, reason TEXT NOT NULL, FOREIGN KEY (series_id, version) "
                   "REFERENCES versions (series_id, version))"),
      "CREATE INDEX certifications_series ON certifications (series_id, begin_us)",
      absl::StrCat("CREATE TABLE changes (id ", pk,
                   ", version_id BIGINT NOT NULL REFERENCES versions (id), change TEXT NOT NULL, "
                   "at BIGINT NOT NULL, range_begin BIGINT, range_end BIGINT)"),
      "CREATE INDEX changes_at ON changes (at)",
      absl::StrCat("CREATE TABLE audit (id ", pk,
                   ", time BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, "
                   "subject TEXT NOT NULL, details TEXT NOT NULL)"),
      "CREATE INDEX audit_time ON audit (time)",
  };
  if (pg) {
    s.push_back(
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size_bytes BIGINT NOT NULL, "
        "chunks BIGINT NOT NULL, created_at BIGINT NOT NULL)");
    s.push_back(
        "CREATE TABLE blob_chunks (sha256 TEXT NOT NULL REFERENCES blobs (sha256), "
        "idx BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (sha256, idx))");
  }
  return s;
}

absl::Status ApplyV1(SqlConnection& conn) {
  for (const std::string& stmt : SchemaV1(conn.postgres())) {
    CALIBD_RETURN_IF_ERROR(conn.Exec(stmt));
  }
  return absl::OkStatus();
}

// "<detector> <kind> series <id> v<version>" → (id, version); false for other subjects.
bool ParseSubject(const std::string& subject, int64_t* series_id, int64_t* version) {
  std::vector<std::string> words = absl::StrSplit(subject, ' ');
  for (size_t i = 0; i + 2 < words.size(); ++i) {
    if (words[i] != "series") continue;
    const std::string& v = words[i + 2];
    if (absl::SimpleAtoi(words[i + 1], series_id) && v.size() > 1 && v[0] == 'v' &&
        absl::SimpleAtoi(v.substr(1), version)) {
      return true;
    }
  }
  return false;
}

absl::Status ApplyV2(SqlConnection& conn) {
  CALIBD_RETURN_IF_ERROR(conn.Exec("ALTER TABLE audit ADD COLUMN series_id BIGINT"));
  CALIBD_RETURN_IF_ERROR(conn.Exec("ALTER TABLE audit ADD COLUMN version BIGINT"));
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn.Query("SELECT id, subject FROM audit WHERE action IN ('put_master', 'certify', "
                 "'decertify')"));
  for (const SqlRow& r : rows) {
    int64_t sid = 0, ver = 0;
    if (!ParseSubject(r.Text(1), &sid, &ver)) continue;
    CALIBD_RETURN_IF_ERROR(conn.Exec("UPDATE audit SET series_id = ?, version = ? WHERE id = ?",
                                     {sid, ver, r.Int(0)}));
  }
  return conn.Exec("CREATE INDEX audit_series ON audit (series_id, version, id)");
}

}  // namespace

absl::Status MigrateSchema(SqlConnection& conn) {
  if (conn.postgres()) {
    CALIBD_RETURN_IF_ERROR(conn.Exec("SELECT pg_advisory_xact_lock(?)", {kMigrationLockKey}));
  }
  CALIBD_RETURN_IF_ERROR(
      conn.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows, conn.Query("SELECT version FROM schema_version"));
  int64_t have = 0;
  if (rows.empty()) {
    CALIBD_RETURN_IF_ERROR(conn.Exec("INSERT INTO schema_version VALUES (0)"));
  } else {
    have = rows[0].Int(0);
  }
  if (have > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("the catalog has schema version ", have, ", newer than this build's ",
                     kSchemaVersion, "; upgrade calibd"));
  }
  // Index i brings the schema from version i to i + 1.
  absl::Status (*const kMigrations[])(SqlConnection&) = {ApplyV1, ApplyV2};
  static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion);
  for (int64_t v = have; v < kSchemaVersion; ++v) CALIBD_RETURN_IF_ERROR(kMigrations[v](conn));
  return conn.Exec("UPDATE schema_version SET version = ?", {int64_t{kSchemaVersion}});
}

}  // namespace calibd::store::internal
