// Internal to core/store: access to the libpq connection under a PostgreSQL SqlConnection,
// for what the generic layer cannot express (binary bytea chunks, LISTEN/NOTIFY).
//
//   if (auto* pg = dynamic_cast<PgAccess*>(conn)) PQexecParams(pg->raw(), ...);
//
// Thread safety: as SqlConnection (one thread at a time).
#ifndef CALIBD_CORE_STORE_PG_SQL_H_
#define CALIBD_CORE_STORE_PG_SQL_H_

#include <libpq-fe.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace calibd::store::internal {

class PgAccess {
 public:
  virtual ~PgAccess() = default;
  virtual PGconn* raw() = 0;
};

// The status for a failed result (retryable/unavailable/… by SQLSTATE).
absl::Status PgResultError(PGconn* conn, PGresult* res, absl::string_view what);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_PG_SQL_H_
