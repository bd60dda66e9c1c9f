// SqlConnection over SQLite (WAL, synchronous=FULL, foreign keys), with a statement cache.
#include <sqlite3.h>

#include <map>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/errors.h"
#include "core/store/sql.h"
#include "core/store/store.h"

namespace calibd::store::internal {
namespace {

constexpr char kRetryPayload[] = "calibd.store/retryable";

class SqliteConnection : public SqlConnection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  bool postgres() const override { return false; }

  // A sentence for anyone; the SQL text and SQLite's words go to the detail payload.
  absl::Status Error(int rc, absl::string_view what) {
    const std::string detail = absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db_));
    auto fail = [&](absl::StatusCode code, absl::string_view sentence) {
      return WithDetail(code, sentence, detail);
    };
    const int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED ||
        rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
      absl::Status r = RetryableError("catalog write conflict");
      r.SetPayload(kInternalDetailPayload, absl::Cord(detail));
      return r;
    }
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
      return fail(absl::StatusCode::kDataLoss, "catalog database reports corrupt data");
    }
    if (primary == SQLITE_CONSTRAINT) {
      return fail(absl::StatusCode::kFailedPrecondition, "catalog constraint violated");
    }
    if (primary == SQLITE_FULL) {
      return fail(absl::StatusCode::kResourceExhausted, "catalog database out of space");
    }
    if (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY) {
      return fail(absl::StatusCode::kUnavailable, "catalog database unavailable");
    }
    return fail(absl::StatusCode::kInternal, "catalog database error");
  }

  absl::Status ExecScript(absl::string_view sql) override {
    char* err = nullptr;
    const std::string s(sql);
    int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : "";
      sqlite3_free(err);
      return Error(rc, msg);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<sqlite3_stmt*> Prepare(absl::string_view sql, const std::vector<SqlValue>& params) {
    std::string key(sql);
    sqlite3_stmt* stmt = nullptr;
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      stmt = it->second;
      sqlite3_reset(stmt);
      sqlite3_clear_bindings(stmt);
    } else {
      int rc = sqlite3_prepare_v2(db_, key.c_str(), static_cast<int>(key.size()), &stmt, nullptr);
      if (rc != SQLITE_OK) return Error(rc, absl::StrCat("prepare '", sql, "'"));
      cache_[key] = stmt;
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const int idx = static_cast<int>(i) + 1;
      const SqlValue& v = params[i];
      int rc = SQLITE_OK;
      if (std::holds_alternative<std::monostate>(v)) {
        rc = sqlite3_bind_null(stmt, idx);
      } else if (const int64_t* n = std::get_if<int64_t>(&v)) {
        rc = sqlite3_bind_int64(stmt, idx, *n);
      } else if (const double* d = std::get_if<double>(&v)) {
        rc = sqlite3_bind_double(stmt, idx, *d);
      } else {
        const std::string& s = std::get<std::string>(v);
        rc = sqlite3_bind_text(stmt, idx, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return Error(rc, "bind");
    }
    return stmt;
  }

  absl::StatusOr<std::vector<SqlRow>> Run(absl::string_view sql,
                                          const std::vector<SqlValue>& params) {
    CALIBD_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql, params));
    std::vector<SqlRow> rows;
    const int ncols = sqlite3_column_count(stmt);
    while (true) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        absl::Status s = Error(sqlite3_extended_errcode(db_), absl::StrCat("'", sql, "'"));
        sqlite3_reset(stmt);
        return s;
      }
      SqlRow row;
      row.cols.resize(ncols);
      for (int c = 0; c < ncols; ++c) {
        if (sqlite3_column_type(stmt, c) == SQLITE_NULL) continue;
        const unsigned char* t = sqlite3_column_text(stmt, c);
        const int n = sqlite3_column_bytes(stmt, c);
        row.cols[c] = std::string(reinterpret_cast<const char*>(t), n);
      }
      rows.push_back(std::move(row));
    }
    sqlite3_reset(stmt);
    return rows;
  }

  absl::Status Exec(absl::string_view sql, const std::vector<SqlValue>& params) override {
    return Run(sql, params).status();
  }
  absl::StatusOr<std::vector<SqlRow>> Query(absl::string_view sql,
                                            const std::vector<SqlValue>& params) override {
    return Run(sql, params);
  }
  absl::Status Begin(bool write) override {
    return Exec(write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED", {});
  }
  absl::Status Commit() override { return Exec("COMMIT", {}); }
  absl::Status Rollback() override {
    if (sqlite3_get_autocommit(db_)) return absl::OkStatus();
    return Exec("ROLLBACK", {});
  }

 private:
  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace

int64_t SqlRow::Int(int i) const {
  if (!cols[i]) return 0;
  int64_t v = 0;
  if (!absl::SimpleAtoi(*cols[i], &v)) {
    double d = 0;
    if (absl::SimpleAtod(*cols[i], &d)) return static_cast<int64_t>(d);
  }
  return v;
}
double SqlRow::Double(int i) const {
  if (!cols[i]) return 0;
  double v = 0;
  (void)absl::SimpleAtod(*cols[i], &v);
  return v;
}
const std::string& SqlRow::Text(int i) const {
  static const std::string* const kEmpty = new std::string();
  return cols[i] ? *cols[i] : *kEmpty;
}
std::optional<int64_t> SqlRow::OptInt(int i) const {
  if (!cols[i]) return std::nullopt;
  return Int(i);
}

absl::Status RetryableError(absl::string_view message) {
  absl::Status s = absl::AbortedError(message);
  s.SetPayload(kRetryPayload, absl::Cord("1"));
  return s;
}
bool IsRetryable(const absl::Status& status) {
  return status.GetPayload(kRetryPayload).has_value();
}

absl::StatusOr<std::unique_ptr<SqlConnection>> OpenSqlite(const std::string& path,
                                                          int busy_timeout_ms) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return absl::UnavailableError(absl::StrCat("cannot open SQLite catalog ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  auto conn = std::make_unique<SqliteConnection>(db);
  CALIBD_RETURN_IF_ERROR(conn->ExecScript(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
      "PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"));
  return conn;
}

}  // namespace calibd::store::internal
