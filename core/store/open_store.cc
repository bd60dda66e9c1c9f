// OpenStore: the embedded opener (a directory: SQLite catalog + blob files) and the shared one
// (PostgreSQL: catalog, chunked blobs, a LISTEN connection and a local spool).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/blobs.h"
#include "core/store/catalog_store.h"
#include "core/store/sql.h"
#include "core/store/store.h"

namespace calibd::store {
namespace {

using internal::CatalogStore;
using internal::SqlConnection;

std::string RandomName() {
  std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(getpid(), "-", rng());
}

absl::StatusOr<std::unique_ptr<CalibrationStore>> OpenEmbedded(std::string dir,
                                                               const StoreOptions& options) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    if (!options.create) {
      return absl::NotFoundError(absl::StrCat("store directory ", dir, " does not exist"));
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot create store directory ", dir, ": ", ec.message()));
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("store path ", dir, " is not a directory"));
  }
  for (const char* sub : {"/blobs", "/tmp"}) {
    const std::string p = dir + sub;
    if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::UnavailableError(absl::StrCat("cannot create ", p, ": ", std::strerror(errno)));
    }
  }
  const std::string lock_path = dir + "/LOCK";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  // Alone with the store → collect what a killed writer left; then share it.
  const bool alone = flock(lock_fd, LOCK_EX | LOCK_NB) == 0;
  absl::StatusOr<std::unique_ptr<SqlConnection>> conn =
      internal::OpenSqlite(dir + "/catalog.db", options.busy_timeout_ms);
  if (!conn.ok()) {
    close(lock_fd);
    return conn.status();
  }
  CatalogStore::Parts parts;
  parts.description = absl::StrCat("embedded:", dir);
  parts.conn = *std::move(conn);
  parts.blobs = internal::NewFileBlobBackend(dir);
  parts.lock_fd = lock_fd;
  auto store = std::make_unique<CatalogStore>(std::move(parts), options);
  CALIBD_RETURN_IF_ERROR(store->Migrate());
  if (alone) CALIBD_RETURN_IF_ERROR(store->CollectGarbage().status());
  flock(lock_fd, LOCK_SH);
  return store;
}

// `url` with `key=value` added unless it sets `key` already.
std::string WithParam(const std::string& url, absl::string_view key, absl::string_view value) {
  if (url.find(absl::StrCat(key, "=")) != std::string::npos) return url;
  return absl::StrCat(url, url.find('?') == std::string::npos ? "?" : "&", key, "=", value);
}

// Every shared-store connection fails within bounded time when the database is gone: connects
// give up after 5 s (Ping's after 2 s) and a peer that vanished without a reset is noticed by
// TCP keepalives / tcp_user_timeout instead of hanging a call forever.
std::string Bounded(const std::string& url, absl::string_view connect_seconds) {
  std::string u = WithParam(url, "connect_timeout", connect_seconds);
  u = WithParam(u, "keepalives_idle", "10");
  u = WithParam(u, "keepalives_interval", "5");
  u = WithParam(u, "keepalives_count", "3");
  return WithParam(u, "tcp_user_timeout", "15000");
}

// The URL without its password.
std::string ElidePassword(std::string url) {
  if (size_t at = url.find('@'); at != std::string::npos) {
    size_t scheme = url.find("://");
    size_t colon = url.find(':', scheme == std::string::npos ? 0 : scheme + 3);
    if (colon != std::string::npos && colon < at) url.replace(colon + 1, at - colon - 1, "***");
  }
  return url;
}

absl::StatusOr<std::unique_ptr<CalibrationStore>> OpenShared(const std::string& url,
                                                             const StoreOptions& options) {
  std::string spool = options.spool_dir;
  std::string owned;
  if (spool.empty()) {
    const char* tmp = getenv("TMPDIR");
    const std::string base = tmp && *tmp ? tmp : "/tmp";
    // Private spools of processes that died without closing their store.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
      const std::string name = e.path().filename().string();
      if (!absl::StartsWith(name, "calibd-spool-")) continue;
      const pid_t pid = static_cast<pid_t>(std::atoi(name.c_str() + 13));
      if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) std::filesystem::remove_all(e.path(), ec);
    }
    spool = absl::StrCat(base, "/calibd-spool-", RandomName());
    owned = spool;
  }
  std::error_code ec;
  std::filesystem::create_directories(spool, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot create spool ", spool, ": ", ec.message()));
  }
  auto cleanup = [&]() {
    if (!owned.empty()) std::filesystem::remove_all(owned, ec);
  };
  const std::string bounded = Bounded(url, "5");
  absl::StatusOr<std::unique_ptr<SqlConnection>> conn = internal::OpenPostgres(bounded);
  if (!conn.ok()) {
    cleanup();
    return conn.status();
  }
  absl::StatusOr<std::unique_ptr<internal::BlobBackend>> blobs =
      internal::NewPgBlobBackend(bounded, spool, options.spool_bytes);
  if (!blobs.ok()) {
    cleanup();
    return blobs.status();
  }
  absl::StatusOr<std::unique_ptr<SqlConnection>> listen = internal::OpenPostgres(bounded);
  if (!listen.ok()) {
    cleanup();
    return listen.status();
  }
  CALIBD_RETURN_IF_ERROR((*listen)->ExecScript("LISTEN calibd_changes"));
  absl::StatusOr<std::unique_ptr<SqlConnection>> ping =
      internal::OpenPostgres(WithParam(Bounded(url, "2"), "options", "-c%20statement_timeout%3D2000"));
  if (!ping.ok()) {
    cleanup();
    return ping.status();
  }
  CatalogStore::Parts parts;
  parts.description = ElidePassword(url);
  parts.conn = *std::move(conn);
  parts.blobs = *std::move(blobs);
  parts.listen = *std::move(listen);
  parts.ping = *std::move(ping);
  parts.owned_spool = owned;
  auto store = std::make_unique<CatalogStore>(std::move(parts), options);
  CALIBD_RETURN_IF_ERROR(store->Migrate());
  CALIBD_RETURN_IF_ERROR(store->CollectGarbage().status());
  return store;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CalibrationStore>> OpenStore(const std::string& url,
                                                            const StoreOptions& options) {
  if (url.empty()) {
    return absl::InvalidArgumentError("empty store URL: give a directory or postgresql://…");
  }
  if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
    return OpenShared(url, options);
  }
  if (absl::StartsWith(url, "file:")) return OpenEmbedded(url.substr(5), options);
  if (url.find("://") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store URL '", url, "': unknown scheme; use a directory path or postgresql://"));
  }
  return OpenEmbedded(url, options);
}

}  // namespace calibd::store
