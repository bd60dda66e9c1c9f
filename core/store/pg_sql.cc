// SqlConnection over libpq. '?' placeholders become $1, $2, …; values travel as text.
#include <libpq-fe.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/pg_sql.h"
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
  std::string msg = absl::StrCat("postgresql: ", what, ": ",
                                 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (PQstatus(conn) != CONNECTION_OK) return absl::UnavailableError(msg);
  if (state) {
    const std::string s = state;
    if (s == "40001" || s == "40P01" || s == "23505" || s == "55P03") return RetryableError(msg);
    if (s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" || s == "57P03") {
      return absl::UnavailableError(msg);
    }
    if (s == "53100" || s == "53200") return absl::ResourceExhaustedError(msg);
    if (s.rfind("23", 0) == 0) return absl::FailedPreconditionError(msg);
    if (s == "XX001" || s == "XX002") return absl::DataLossError(msg);
  }
  return absl::InternalError(msg);
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

  absl::Status ExecScript(absl::string_view sql) override {
    PGresult* res = PQexec(conn_, std::string(sql).c_str());
    absl::Status s = Check(res, "script");
    PQclear(res);
    return s;
  }

  absl::StatusOr<std::vector<SqlRow>> Run(absl::string_view sql,
                                          const std::vector<SqlValue>& params) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      PQreset(conn_);
      if (PQstatus(conn_) != CONNECTION_OK) {
        return absl::UnavailableError(
            absl::StrCat("postgresql: connection lost: ", PQerrorMessage(conn_)));
      }
    }
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
};

absl::StatusOr<std::unique_ptr<SqlConnection>> OpenPostgres(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", msg));
  }
  auto c = std::make_unique<PgConnection>(conn);
  CALIBD_RETURN_IF_ERROR(c->ExecScript("SET client_min_messages = warning"));
  return c;
}

}  // namespace calibd::store::internal
