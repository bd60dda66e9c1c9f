// Internal to core/store: the tiny SQL layer both catalogs run on, so the store's rules
// (versions, certification, selection) are written once. SQLite and PostgreSQL each
// implement SqlConnection; statements use '?' placeholders (rewritten to $n for PostgreSQL).
//
//   ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
//                    conn.Query("SELECT id, version FROM versions WHERE series_id = ?", {sid}));
//   int64_t id = rows[0].Int(0);
//
// Errors: a lost race the caller should retry (SQLite BUSY, PostgreSQL serialization failure,
// deadlock, unique violation) is ABORTED carrying IsRetryable(); a dead connection is UNAVAILABLE.
//
// Thread safety: a SqlConnection is used by one thread at a time (the store holds a mutex).
#ifndef CALIBD_CORE_STORE_SQL_H_
#define CALIBD_CORE_STORE_SQL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd::store::internal {

using SqlValue = std::variant<std::monostate, int64_t, double, std::string>;

inline SqlValue SqlNullable(const std::optional<int64_t>& v) {
  return v ? SqlValue(*v) : SqlValue(std::monostate{});
}

struct SqlRow {
  std::vector<std::optional<std::string>> cols;

  bool IsNull(int i) const { return !cols[i].has_value(); }
  int64_t Int(int i) const;     // 0 when NULL
  double Double(int i) const;   // 0 when NULL
  const std::string& Text(int i) const;  // "" when NULL
  std::optional<int64_t> OptInt(int i) const;
};

class SqlConnection {
 public:
  virtual ~SqlConnection() = default;
  virtual bool postgres() const = 0;
  // Several statements, no parameters (schema scripts).
  virtual absl::Status ExecScript(absl::string_view sql) = 0;
  virtual absl::Status Exec(absl::string_view sql, const std::vector<SqlValue>& params = {}) = 0;
  virtual absl::StatusOr<std::vector<SqlRow>> Query(absl::string_view sql,
                                                    const std::vector<SqlValue>& params = {}) = 0;
  // `write`: SQLite takes the write lock at once (BEGIN IMMEDIATE).
  virtual absl::Status Begin(bool write) = 0;
  virtual absl::Status Commit() = 0;
  virtual absl::Status Rollback() = 0;
};

absl::Status RetryableError(absl::string_view message);
bool IsRetryable(const absl::Status& status);

absl::StatusOr<std::unique_ptr<SqlConnection>> OpenSqlite(const std::string& path,
                                                          int busy_timeout_ms);
absl::StatusOr<std::unique_ptr<SqlConnection>> OpenPostgres(const std::string& conninfo);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_SQL_H_
