// SqlConnection over libpq. '?' placeholders become $1, $2, …; values travel as text.
#include <libpq-fe.h>

#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/errors.h"
#include "core/store/pg_sql.h"
#include "core/store/store.h"
#include "core/store/sql.h"

namespace calibd::store::internal {
namespace {

std::string Rewrite(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool in_string = false;
  for (char c : sql) {
    if (c == '\'') in_string = !in_string;
    if (c == '?' && !in_string) {
      absl::StrAppend(&out, "$", ++n);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

absl::Status PgResultError(PGconn* conn, PGresult* res, absl::string_view what) {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string detail = absl::StrCat("postgresql: ", what, ": ",
                                    res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
  if (state) absl::StrAppend(&detail, " [SQLSTATE ", state, "]");
  // The message is a sentence for anyone; the SQL text and the server's words go to the detail.
  auto fail = [&](absl::StatusCode code, absl::string_view sentence) {
    return WithDetail(code, sentence, detail);
  };
  if (PQstatus(conn) != CONNECTION_OK) {
    return fail(absl::StatusCode::kUnavailable, "catalog database unavailable");
  }
  if (state) {
    const std::string s = state;
    if (s == "40001" || s == "40P01" || s == "23505" || s == "55P03") {
      absl::Status r = RetryableError("catalog write conflict");
      r.SetPayload(kInternalDetailPayload, absl::Cord(detail));
      return r;
    }
    if (s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" || s == "57P03") {
      return fail(absl::StatusCode::kUnavailable, "catalog database unavailable");
    }
    if (s == "57014") return fail(absl::StatusCode::kDeadlineExceeded, "catalog query timed out");
    if (s == "53100" || s == "53200") {
      return fail(absl::StatusCode::kResourceExhausted, "catalog database out of resources");
    }
    if (s.rfind("23", 0) == 0) {
      return fail(absl::StatusCode::kFailedPrecondition, "catalog constraint violated");
    }
    if (s == "XX001" || s == "XX002") {
      return fail(absl::StatusCode::kDataLoss, "catalog database reports corrupt data");
    }
  }
  return fail(absl::StatusCode::kInternal, "catalog database error");
}

class PgConnection : public SqlConnection, public PgAccess {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection() override { PQfinish(conn_); }
  bool postgres() const override { return true; }
  PGconn* raw() override { return conn_; }

  absl::Status Check(PGresult* res, absl::string_view what) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return absl::OkStatus();
    return PgResultError(conn_, res, what);
  }

  absl::Status ExecScriptOnce(absl::string_view sql) {
    PGresult* res = PQexec(conn_, std::string(sql).c_str());
    absl::Status s = Check(res, absl::StrCat("'", sql, "'"));
    PQclear(res);
    return s;
  }

  // As Run: a broken connection is replaced and, outside a transaction, the script retried once.
  absl::Status ExecScript(absl::string_view sql) override {
    const bool idle = PQtransactionStatus(conn_) == PQTRANS_IDLE ||
                      PQtransactionStatus(conn_) == PQTRANS_UNKNOWN;
    absl::Status s = EnsureConnected();
    if (s.ok()) s = ExecScriptOnce(sql);
    if (!s.ok() && idle && PQstatus(conn_) != CONNECTION_OK) {
      s = EnsureConnected();
      if (s.ok()) s = ExecScriptOnce(sql);
    }
    return s;
  }

  // A connection found broken (the server restarted, a failover) is replaced: reset before use
  // and, outside a transaction, the statement (a read or a BEGIN: idempotent) runs once more on
  // the new connection. Inside a transaction the error stands; the caller retries the whole
  // transaction (CatalogStore::WithTx).
  absl::StatusOr<std::vector<SqlRow>> Run(absl::string_view sql,
                                          const std::vector<SqlValue>& params) {
    const bool idle = PQtransactionStatus(conn_) == PQTRANS_IDLE ||
                      PQtransactionStatus(conn_) == PQTRANS_UNKNOWN;
    absl::StatusOr<std::vector<SqlRow>> r = RunOnce(sql, params);
    if (!r.ok() && idle && PQstatus(conn_) != CONNECTION_OK) r = RunOnce(sql, params);
    return r;
  }

  absl::Status EnsureConnected() {
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) {
      return WithDetail(absl::StatusCode::kUnavailable, "catalog database unavailable",
                        absl::StrCat("postgresql: reconnect failed: ", PQerrorMessage(conn_)));
    }
    ++reconnects_;
    return ExecScriptOnce("SET client_min_messages = warning");
  }

  absl::StatusOr<std::vector<SqlRow>> RunOnce(absl::string_view sql,
                                              const std::vector<SqlValue>& params) {
    CALIBD_RETURN_IF_ERROR(EnsureConnected());
    const std::string text = Rewrite(sql);
    std::vector<std::string> storage(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (size_t i = 0; i < params.size(); ++i) {
      const SqlValue& v = params[i];
      if (std::holds_alternative<std::monostate>(v)) continue;
      if (const int64_t* n = std::get_if<int64_t>(&v)) {
        storage[i] = absl::StrCat(*n);
      } else if (const double* d = std::get_if<double>(&v)) {
        storage[i] = absl::StrCat(*d);
      } else {
        storage[i] = std::get<std::string>(v);
      }
      values[i] = storage[i].c_str();
    }
    PGresult* res = PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0);
    absl::Status s = Check(res, absl::StrCat("'", sql, "'"));
    if (!s.ok()) {
      PQclear(res);
      return s;
    }
    std::vector<SqlRow> rows;
    const int n = PQntuples(res), m = PQnfields(res);
    rows.resize(n);
    for (int r = 0; r < n; ++r) {
      rows[r].cols.resize(m);
      for (int c = 0; c < m; ++c) {
        if (PQgetisnull(res, r, c)) continue;
        rows[r].cols[c] = std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c));
      }
    }
    PQclear(res);
    return rows;
  }

  absl::Status Exec(absl::string_view sql, const std::vector<SqlValue>& params) override {
    return Run(sql, params).status();
  }
  absl::StatusOr<std::vector<SqlRow>> Query(absl::string_view sql,
                                            const std::vector<SqlValue>& params) override {
    return Run(sql, params);
  }
  absl::Status Begin(bool write) override { return ExecScript("BEGIN"); }
  absl::Status Commit() override { return ExecScript("COMMIT"); }
  absl::Status Rollback() override {
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return absl::OkStatus();
    return ExecScript("ROLLBACK");
  }

 private:
  PGconn* conn_;
  int64_t reconnects_ = 0;
};

absl::StatusOr<std::unique_ptr<SqlConnection>> OpenPostgres(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return WithDetail(absl::StatusCode::kUnavailable, "catalog database unavailable",
                      absl::StrCat("cannot connect to PostgreSQL: ", msg));
  }
  auto c = std::make_unique<PgConnection>(conn);
  CALIBD_RETURN_IF_ERROR(c->ExecScript("SET client_min_messages = warning"));
  return c;
}

}  // namespace calibd::store::internal
