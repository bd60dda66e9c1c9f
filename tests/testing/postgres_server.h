// PostgresServer: a real, throw-away PostgreSQL server (Debian's /usr/lib/postgresql/<N>/bin)
// for tests: initdb into a temporary directory, `postgres` on a free 127.0.0.1 port with its
// socket in that directory, trust authentication for the superuser "calibd". When the test runs
// as root the server runs as an unprivileged user (`calibd-test`, created with useradd if
// absent; `nobody` if that fails), since PostgreSQL refuses to run as root.
//
//   ASSERT_OK_AND_ASSIGN(PostgresServer* pg, SharedPostgresServer());   // once per binary
//   ASSERT_OK_AND_ASSIGN(std::string url, pg->CreateDatabase());        // fresh db per test
//   ASSERT_OK_AND_ASSIGN(auto store, store::OpenStore(url));            // "postgresql://…"
//
// SharedPostgresServer() starts the server on first use and stops it at process exit; the
// server also dies with the test process (PR_SET_PDEATHSIG). Start() may be used for a private
// server (stopped by the destructor: SIGINT = fast shutdown, SIGKILL after 10 s). Restart()
// stops and starts it on the same port (connections of clients break, as in a failover).
// Errors: UNAVAILABLE when the binaries are missing or the server does not come up (the
// message includes the tail of the server log).
//
// Thread safety: SharedPostgresServer() and CreateDatabase() may be called from any thread.
#ifndef CALIBD_TESTS_TESTING_POSTGRES_SERVER_H_
#define CALIBD_TESTS_TESTING_POSTGRES_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace calibd::testing {

class PostgresServer {
 public:
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  // "postgresql://calibd@127.0.0.1:<port>/<database>".
  std::string Url(const std::string& database = "postgres") const;
  // A new, empty database ("t<counter>_<pid>" unless named); returns its URL.
  absl::StatusOr<std::string> CreateDatabase(const std::string& name = "");
  // Runs one SQL statement in `database` as the superuser (tests that tamper with data).
  absl::Status ExecSql(const std::string& database, const std::string& sql);
  // Stops the server (idempotent).
  absl::Status Stop();
  // Stops the server (fast shutdown: clients' connections break) and starts it again on the
  // same port and data directory — what a failover or a restart looks like to clients.
  absl::Status Restart();
  const std::string& log_path() const { return log_path_; }
  std::string LogTail() const;

 private:
  PostgresServer() = default;
  // Spawns `postgres` on port_ and waits until it answers; UNAVAILABLE if it died.
  absl::Status Launch();

  std::string dir_;
  std::string log_path_;
  int port_ = 0;
  pid_t pid_ = -1;
  pid_t owner_ = -1;  // the process that started it (forked children never stop it)
  std::atomic<int> next_db_{0};
  std::string bin_, data_;
  bool drop_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

// The per-binary server, started on first call.
absl::StatusOr<PostgresServer*> SharedPostgresServer();

}  // namespace calibd::testing

#endif  // CALIBD_TESTS_TESTING_POSTGRES_SERVER_H_
