// Internal to core/store: the catalog schema and its migrations (both backends). The catalog
// records its version in `schema_version`; opening a store brings an older schema up to
// kSchemaVersion inside one transaction, and refuses a newer one (FAILED_PRECONDITION).
//
//   v1  detectors, series, versions, certifications, changes (unused since v2), audit;
//       PostgreSQL also blobs + blob_chunks.
//   v2  audit.series_id / audit.version (+ index): History reads a series' entries by key;
//       rows written before v2 are back-filled from their subject text.
//
//   RETURN_IF_ERROR(conn.Begin(true));
//   RETURN_IF_ERROR(internal::MigrateSchema(conn));   // then Commit
//
// Thread safety: as the connection (one thread at a time).
#ifndef CALIBD_CORE_STORE_SCHEMA_H_
#define CALIBD_CORE_STORE_SCHEMA_H_

#include "absl/status/status.h"
#include "core/store/sql.h"

namespace calibd::store::internal {

inline constexpr int kSchemaVersion = 2;

// Inside a write transaction on `conn`: creates or migrates the schema to kSchemaVersion.
absl::Status MigrateSchema(SqlConnection& conn);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_SCHEMA_H_
