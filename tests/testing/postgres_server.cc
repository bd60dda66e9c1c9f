#include "tests/testing/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status/macros.h"

namespace calibd::testing {
namespace {

std::string FindBinDir() {
  for (const char* v : {"17", "16", "15", "14", "13"}) {
    std::string dir = absl::StrCat("/usr/lib/postgresql/", v, "/bin");
    if (access((dir + "/postgres").c_str(), X_OK) == 0 &&
        access((dir + "/initdb").c_str(), X_OK) == 0) {
      return dir;
    }
  }
  return "";
}

struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// An unprivileged account when we are root.
absl::StatusOr<RunAs> PickUser() {
  RunAs r;
  if (geteuid() != 0) return r;
  r.drop = true;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  struct passwd* pw = getpwnam("calibd-test");
  if (pw == nullptr) {
    // Tolerate a concurrent test binary creating it at the same time.
    int rc = system("useradd --system --no-create-home --home-dir /nonexistent "
                    "--shell /usr/sbin/nologin calibd-test >/dev/null 2>&1");
    (void)rc;
    pw = getpwnam("calibd-test");
  }
  if (pw == nullptr) pw = getpwnam("nobody");
  if (pw == nullptr) {
    return absl::UnavailableError("running as root and no unprivileged user (calibd-test or "
                                  "nobody) exists for PostgreSQL");
  }
  r.uid = pw->pw_uid;
  r.gid = pw->pw_gid;
  return r;
}

// fork + (drop privileges) + exec; stdout/stderr to `log`. Returns the child pid.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const RunAs& as,
                            const std::string& log, bool die_with_parent) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    setsid();
    if (as.drop) {
      if (setgroups(0, nullptr) != 0 || setgid(as.gid) != 0 || setuid(as.uid) != 0) _exit(126);
    }
    if (die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(125);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

absl::StatusOr<int> Wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::UnavailableError("waitpid failed");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

absl::StatusOr<int> FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return absl::UnavailableError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(s);
    return absl::UnavailableError("cannot bind a free loopback port");
  }
  const int port = ntohs(addr.sin_port);
  close(s);
  return port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  const std::string bin = FindBinDir();
  if (bin.empty()) {
    return absl::UnavailableError(
        "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; run scripts/install-deps");
  }
  auto as = PickUser();
  if (!as.ok()) return as.status();
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  server->owner_ = getpid();
  const char* tmp = getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/calibd-pg-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  server->dir_ = templ;
  server->log_path_ = templ + "/server.log";
  if (as->drop) {
    // The directory and everything PostgreSQL writes belong to the unprivileged user.
    if (chown(templ.c_str(), as->uid, as->gid) != 0) {
      return absl::UnavailableError(absl::StrCat("chown ", templ, ": ", std::strerror(errno)));
    }
    chmod(templ.c_str(), 0700);
  }
  {
    std::ofstream(server->log_path_).flush();
    if (as->drop && chown(server->log_path_.c_str(), as->uid, as->gid) != 0) {
      return absl::UnavailableError("chown log");
    }
  }
  const std::string data = templ + "/data";
  auto initdb = Spawn({bin + "/initdb", "-D", data, "-U", "calibd", "--auth=trust", "-E", "UTF8",
                       "--no-locale", "--no-sync"},
                      *as, server->log_path_, true);
  if (!initdb.ok()) return initdb.status();
  auto rc = Wait(*initdb);
  if (!rc.ok() || *rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("initdb failed (exit ", rc.ok() ? *rc : -1, "): ", server->LogTail()));
  }
  server->bin_ = bin;
  server->data_ = data;
  server->drop_ = as->drop;
  server->uid_ = as->uid;
  server->gid_ = as->gid;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = FreePort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    if (server->Launch().ok()) return server;
    if (server->pid_ > 0) break;  // running but not answering: give up
  }
  const std::string tail = server->LogTail();
  (void)server->Stop();
  return absl::UnavailableError(absl::StrCat("PostgreSQL did not start: ", tail));
}

absl::Status PostgresServer::Launch() {
  RunAs as;
  as.drop = drop_;
  as.uid = uid_;
  as.gid = gid_;
  auto pid = Spawn({bin_ + "/postgres", "-D", data_, "-p", absl::StrCat(port_), "-k", dir_, "-c",
                    "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                    "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                    "max_connections=200", "-c", "shared_buffers=32MB"},
                   as, log_path_, true);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  const std::string conninfo = Url("postgres") + "?connect_timeout=2";
  for (int i = 0; i < 300; ++i) {
    if (PQping(conninfo.c_str()) == PQPING_OK) return absl::OkStatus();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError("postgres exited");  // port taken?
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::UnavailableError(absl::StrCat("PostgreSQL does not answer: ", LogTail()));
}

absl::Status PostgresServer::Restart() {
  if (getpid() != owner_) return absl::FailedPreconditionError("not the owner of the server");
  CALIBD_RETURN_IF_ERROR(Stop());
  absl::Status s;
  for (int attempt = 0; attempt < 5; ++attempt) {
    s = Launch();
    if (s.ok()) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return s;
}

PostgresServer::~PostgresServer() {
  if (getpid() != owner_) return;
  (void)Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

absl::Status PostgresServer::Stop() {
  if (pid_ <= 0 || getpid() != owner_) return absl::OkStatus();
  kill(pid_, SIGINT);  // fast shutdown
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return absl::OkStatus();
}

std::string PostgresServer::Url(const std::string& database) const {
  return absl::StrCat("postgresql://calibd@127.0.0.1:", port_, "/", database);
}

absl::Status PostgresServer::ExecSql(const std::string& database, const std::string& sql) {
  PGconn* conn = PQconnectdb(Url(database).c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("connect: ", msg));
  }
  PGresult* res = PQexec(conn, sql.c_str());
  absl::Status s;
  if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
    s = absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(res)));
  }
  PQclear(res);
  PQfinish(conn);
  return s;
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase(const std::string& name) {
  const std::string db =
      name.empty() ? absl::StrCat("t", next_db_.fetch_add(1), "_", getpid()) : name;
  absl::Status s = ExecSql("postgres", absl::StrCat("CREATE DATABASE \"", db, "\""));
  if (!s.ok()) return s;
  return Url(db);
}

std::string PostgresServer::LogTail() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

absl::StatusOr<PostgresServer*> SharedPostgresServer() {
  static std::mutex mu;
  static PostgresServer* server = nullptr;
  static absl::Status failed;
  std::lock_guard<std::mutex> lock(mu);
  if (server != nullptr) return server;
  if (!failed.ok()) return failed;
  auto started = PostgresServer::Start();
  if (!started.ok()) {
    failed = started.status();
    return failed;
  }
  server = started->release();
  // Stopped when the test binary exits normally.
  std::atexit([] {
    delete server;
    server = nullptr;
  });
  return server;
}

}  // namespace calibd::testing
