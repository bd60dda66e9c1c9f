// CatalogStore: the connection, transactions, detectors, lists, audit and the change feed.
#include "core/store/catalog_store.h"

#include <sys/select.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/catalog_codec.h"
#include "core/store/errors.h"
#include "core/store/page_token.h"
#include "core/store/pg_sql.h"
#include "core/store/schema.h"

namespace calibd::store::internal {
namespace {

absl::Status CheckActor(const std::string& actor) {
  if (actor.empty()) {
    return absl::InvalidArgumentError("the actor (who makes the change) must be given");
  }
  return absl::OkStatus();
}

bool ConfigSubset(const Configuration& want, const Configuration& have) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

void AppendFilter(const MasterFilter& f, std::string* sql, std::vector<SqlValue>* params) {
  if (!f.detector.empty()) {
    absl::StrAppend(sql, " AND s.detector = ?");
    params->push_back(f.detector);
  }
  if (!f.kind.empty()) {
    absl::StrAppend(sql, " AND s.kind = ?");
    params->push_back(f.kind);
  }
  if (f.series_id != 0) {
    absl::StrAppend(sql, " AND s.id = ?");
    params->push_back(f.series_id);
  }
}

absl::StatusOr<DetectorSpec> DecodeStoredSpec(const std::string& json_text,
                                              const std::string& name) {
  absl::StatusOr<DetectorSpec> spec = DetectorSpecFromJson(json_text);
  if (!spec.ok()) {
    return absl::DataLossError(absl::StrCat("stored spec of detector ", name,
                                            " does not decode: ", spec.status().message()));
  }
  return spec;
}

}  // namespace

CatalogStore::CatalogStore(Parts parts, const StoreOptions& options)
    : description_(std::move(parts.description)),
      options_(options),
      conn_(std::move(parts.conn)),
      blobs_(std::move(parts.blobs)),
      cache_(options.cache_bytes),
      lock_fd_(parts.lock_fd),
      listen_conn_(std::move(parts.listen)),
      has_listen_(listen_conn_ != nullptr),
      ping_conn_(std::move(parts.ping)),
      owned_spool_(std::move(parts.owned_spool)) {}

CatalogStore::~CatalogStore() {
  if (lock_fd_ >= 0) close(lock_fd_);
  if (!owned_spool_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(owned_spool_, ec);
  }
}

void CatalogStore::Backoff(int attempt) {
  thread_local std::mt19937 rng(std::random_device{}());
  const int max_ms = std::min(2 + attempt * 4, 60);
  absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(1, max_ms)(rng)));
}

absl::Status CatalogStore::GaveUp(const absl::Status& last) {
  return Context(absl::AbortedError(last.message()),
                 absl::StrCat("gave up after ", kMaxTxAttempts, " conflicting attempts; retry later"));
}

absl::Status CatalogStore::Migrate() {
  absl::MutexLock lock(&mu_);
  return WithTx<bool>(true, [&]() -> absl::StatusOr<bool> {
           CALIBD_RETURN_IF_ERROR(MigrateSchema(*conn_));
           return true;
         })
      .status();
}

absl::StatusOr<int> CatalogStore::CollectGarbage() {
  std::set<std::string> referenced;
  if (blobs_->wants_references()) {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                            conn_->Query("SELECT DISTINCT sha256 FROM versions"));
    for (const SqlRow& r : rows) referenced.insert(r.Text(0));
  }
  return blobs_->CollectGarbage(referenced);
}

MasterCacheStats CatalogStore::CacheStats() const {
  return MasterCacheStats{cache_.bytes(), cache_.budget_bytes(), cache_.entries(), cache_.hits(),
                          cache_.misses()};
}

absl::Status CatalogStore::Ping() {
  absl::Status s;
  {
    absl::MutexLock ping_lock(&ping_mu_);
    if (ping_conn_ != nullptr) {
      // Its own connection: not queued behind a slow catalog call, and bounded by its
      // connect_timeout / statement_timeout (open_store.cc).
      s = ping_conn_->Exec("SELECT 1");
    }
  }
  if (ping_conn_ == nullptr) {
    absl::MutexLock lock(&mu_);
    s = conn_->Exec("SELECT 1");
  }
  if (s.ok()) return s;
  std::string detail = InternalDetail(s);
  if (detail.empty()) detail = std::string(s.message());
  return WithDetail(absl::StatusCode::kUnavailable, "catalog database unavailable", detail);
}

// ---------------------------------------------------------------- detectors
absl::StatusOr<DetectorRecord> CatalogStore::PutDetector(const DetectorSpec& spec,
                                                         const std::string& actor) {
  CALIBD_RETURN_IF_ERROR(ValidateDetectorSpec(spec));
  CALIBD_RETURN_IF_ERROR(CheckActor(actor));
  absl::MutexLock lock(&mu_);
  return WithTx<DetectorRecord>(true, [&]() -> absl::StatusOr<DetectorRecord> {
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                            conn_->Query("SELECT version, spec_json, created_at, actor FROM "
                                         "detectors WHERE name = ? ORDER BY version DESC "
                                         "LIMIT 1",
                                         {spec.name}));
    int64_t next = 1;
    if (!rows.empty()) {
      absl::StatusOr<DetectorSpec> latest = DetectorSpecFromJson(rows[0].Text(1));
      if (latest.ok() && *latest == spec) {
        return DetectorRecord{*latest, rows[0].Int(0), rows[0].Int(2), rows[0].Text(3)};
      }
      next = rows[0].Int(0) + 1;
    }
    const TimeMicros now = NowMicros();
    CALIBD_RETURN_IF_ERROR(conn_->Exec(
        "INSERT INTO detectors (name, version, spec_json, created_at, actor) "
        "VALUES (?, ?, ?, ?, ?)",
        {spec.name, next, DetectorSpecToJson(spec), now, actor}));
    CALIBD_RETURN_IF_ERROR(
        Audit(now, actor, "put_detector", absl::StrCat(spec.name, " v", next), ""));
    return DetectorRecord{spec, next, now, actor};
  });
}

absl::StatusOr<DetectorRecord> CatalogStore::GetDetector(const std::string& name,
                                                         int64_t version) {
  absl::MutexLock lock(&mu_);
  return GetDetectorLocked(name, version);
}

absl::StatusOr<Page<DetectorRecord>> CatalogStore::ListDetectors(const PageRequest& page) {
  CALIBD_ASSIGN_OR_RETURN(const int size, EffectivePageSize(page.page_size));
  std::string after;
  if (!page.page_token.empty()) {
    CALIBD_ASSIGN_OR_RETURN(std::vector<std::string> key,
                            DecodePageToken("detectors", page.page_token, 1));
    after = key[0];
  }
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query("SELECT d.name, d.version, d.spec_json, d.created_at, d.actor FROM detectors "
                   "d WHERE d.name > ? AND d.version = (SELECT MAX(version) FROM detectors e "
                   "WHERE e.name = d.name) ORDER BY d.name LIMIT ?",
                   {after, int64_t{size} + 1}));
  Page<DetectorRecord> out;
  for (const SqlRow& r : rows) {
    if (static_cast<int>(out.items.size()) == size) {
      out.next_page_token = EncodePageToken("detectors", {out.items.back().spec.name});
      break;
    }
    CALIBD_ASSIGN_OR_RETURN(DetectorSpec spec, DecodeStoredSpec(r.Text(2), r.Text(0)));
    out.items.push_back(DetectorRecord{std::move(spec), r.Int(1), r.Int(3), r.Text(4)});
  }
  return out;
}

absl::StatusOr<DetectorRecord> CatalogStore::GetDetectorLocked(const std::string& name,
                                                               int64_t version) {
  if (name.empty()) return absl::InvalidArgumentError("no detector name given");
  std::vector<SqlRow> rows;
  if (version == 0) {
    CALIBD_ASSIGN_OR_RETURN(rows, conn_->Query("SELECT version, created_at, actor FROM "
                                               "detectors WHERE name = ? ORDER BY version "
                                               "DESC LIMIT 1",
                                               {name}));
  } else {
    CALIBD_ASSIGN_OR_RETURN(rows, conn_->Query("SELECT version, created_at, actor FROM "
                                               "detectors WHERE name = ? AND version = ?",
                                               {name, version}));
  }
  if (rows.empty()) {
    return absl::NotFoundError(
        version == 0
            ? absl::StrCat("unknown detector '", name, "'; register its spec first (PutDetector)")
            : absl::StrCat("detector '", name, "' has no version ", version));
  }
  const int64_t v = rows[0].Int(0);
  auto key = std::make_pair(name, v);
  auto it = spec_cache_.find(key);
  if (it == spec_cache_.end()) {
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> spec_rows,
        conn_->Query("SELECT spec_json FROM detectors WHERE name = ? AND version = ?", {name, v}));
    if (spec_rows.empty()) return absl::NotFoundError("detector vanished");
    CALIBD_ASSIGN_OR_RETURN(DetectorSpec spec, DecodeStoredSpec(spec_rows[0].Text(0), name));
    it = spec_cache_.emplace(key, std::move(spec)).first;
  }
  return DetectorRecord{it->second, v, rows[0].Int(1), rows[0].Text(2)};
}

// ---------------------------------------------------------------- lists
absl::StatusOr<Page<MasterVersion>> CatalogStore::ListMasters(const MasterFilter& f,
                                                              const PageRequest& page) {
  CALIBD_ASSIGN_OR_RETURN(const int size, EffectivePageSize(page.page_size));
  int64_t after_series = 0, after_version = 0;
  if (!page.page_token.empty()) {
    CALIBD_ASSIGN_OR_RETURN(std::vector<std::string> key,
                            DecodePageToken("masters", page.page_token, 2));
    CALIBD_ASSIGN_OR_RETURN(after_series, TokenInt(key[0]));
    CALIBD_ASSIGN_OR_RETURN(after_version, TokenInt(key[1]));
  }
  Page<MasterVersion> out;
  absl::MutexLock lock(&mu_);
  // Keyset batches after the last key seen; the configuration filter is applied here, so a
  // batch may yield fewer items than it has rows.
  const int64_t batch = std::max<int64_t>(size + 1, 256);
  while (true) {
    std::string sql = absl::StrCat(
        "SELECT ", kVersionCols,
        " WHERE (v.series_id > ? OR (v.series_id = ? AND v.version > ?))");
    std::vector<SqlValue> params = {after_series, after_series, after_version};
    AppendFilter(f, &sql, &params);
    absl::StrAppend(&sql, " ORDER BY v.series_id, v.version LIMIT ?");
    params.push_back(batch);
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows, conn_->Query(sql, params));
    for (const SqlRow& r : rows) {
      MasterVersion v = RowToVersion(r);
      after_series = v.series_id;
      after_version = v.version;
      if (!ConfigSubset(f.configuration, v.configuration)) continue;
      if (static_cast<int>(out.items.size()) == size) {
        const MasterVersion& last = out.items.back();
        out.next_page_token = EncodePageToken(
            "masters", {absl::StrCat(last.series_id), absl::StrCat(last.version)});
        return out;
      }
      out.items.push_back(std::move(v));
    }
    if (static_cast<int64_t>(rows.size()) < batch) return out;
  }
}

absl::StatusOr<std::vector<SeriesInfo>> CatalogStore::ListSeries(const MasterFilter& f) {
  std::string sql =
      "SELECT s.id, s.detector, s.kind, s.config_key, s.latest_version, s.created_at FROM "
      "series s WHERE s.latest_version > 0";
  std::vector<SqlValue> params;
  AppendFilter(f, &sql, &params);
  absl::StrAppend(&sql, " ORDER BY s.id");
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows, conn_->Query(sql, params));
  std::vector<SeriesInfo> out;
  for (const SqlRow& r : rows) {
    SeriesInfo s{r.Int(0), r.Text(1), r.Text(2), ParseConfig(r.Text(3)), r.Int(4), r.Int(5)};
    if (!ConfigSubset(f.configuration, s.configuration)) continue;
    out.push_back(std::move(s));
    if (f.limit > 0 && static_cast<int>(out.size()) >= f.limit) break;
  }
  return out;
}

absl::StatusOr<Page<MasterVersion>> CatalogStore::History(int64_t series_id,
                                                          const PageRequest& page) {
  CALIBD_ASSIGN_OR_RETURN(const int size, EffectivePageSize(page.page_size));
  int64_t after = 0;
  if (!page.page_token.empty()) {
    CALIBD_ASSIGN_OR_RETURN(std::vector<std::string> key,
                            DecodePageToken("history", page.page_token, 2));
    CALIBD_ASSIGN_OR_RETURN(const int64_t sid, TokenInt(key[0]));
    CALIBD_ASSIGN_OR_RETURN(after, TokenInt(key[1]));
    if (sid != series_id) {
      return absl::InvalidArgumentError("page_token belongs to another series' history");
    }
  }
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> s,
                          conn_->Query("SELECT latest_version FROM series WHERE id = ?",
                                       {series_id}));
  if (s.empty() || s[0].Int(0) == 0) {
    return absl::NotFoundError(absl::StrCat("no series ", series_id, "; list series to find it"));
  }
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query(absl::StrCat("SELECT ", kVersionCols,
                                " WHERE v.series_id = ? AND v.version > ? ORDER BY v.version "
                                "LIMIT ?"),
                   {series_id, after, int64_t{size} + 1}));
  Page<MasterVersion> out;
  for (const SqlRow& r : rows) {
    if (static_cast<int>(out.items.size()) == size) {
      out.next_page_token = EncodePageToken(
          "history", {absl::StrCat(series_id), absl::StrCat(out.items.back().version)});
      break;
    }
    out.items.push_back(RowToVersion(r));
  }
  return out;
}

absl::StatusOr<std::vector<VersionCount>> CatalogStore::CountVersions() {
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query("SELECT s.detector, s.kind, COUNT(*) FROM versions v JOIN series s ON s.id = "
                   "v.series_id GROUP BY s.detector, s.kind ORDER BY s.detector, s.kind"));
  std::vector<VersionCount> out;
  for (const SqlRow& r : rows) out.push_back(VersionCount{r.Text(0), r.Text(1), r.Int(2)});
  return out;
}

absl::StatusOr<MasterVersion> CatalogStore::GetVersion(int64_t series_id, int64_t version) {
  absl::MutexLock lock(&mu_);
  return GetVersionLocked(series_id, version);
}

absl::StatusOr<MasterVersion> CatalogStore::GetMaster(const std::string& detector,
                                                      const std::string& kind,
                                                      const Configuration& configuration,
                                                      int64_t version) {
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query("SELECT id, latest_version FROM series WHERE detector = ? AND kind = ? AND "
                   "config_key = ?",
                   {detector, kind, ConfigKey(configuration)}));
  if (rows.empty() || rows[0].Int(1) == 0) {
    return absl::NotFoundError(absl::StrCat("no ", kind, " of ", detector, " with configuration ",
                                            FormatConfig(configuration)));
  }
  return GetVersionLocked(rows[0].Int(0), version == 0 ? rows[0].Int(1) : version);
}

absl::StatusOr<MasterVersion> CatalogStore::GetVersionLocked(int64_t series_id, int64_t version) {
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query(absl::StrCat("SELECT ", kVersionCols, " WHERE v.series_id = ? AND v.version = ?"),
                   {series_id, version}));
  if (rows.empty()) {
    return absl::NotFoundError(absl::StrCat("series ", series_id, " has no version ", version,
                                            "; see its history for the versions it has"));
  }
  return RowToVersion(rows[0]);
}

absl::StatusOr<std::vector<MasterVersion>> CatalogStore::FindByShaLocked(const std::string& sha) {
  if (!hash::IsSha256Hex(sha)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", sha, "' is not a sha256 (64 lowercase hex digits)"));
  }
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query(absl::StrCat("SELECT ", kVersionCols,
                                " WHERE v.sha256 = ? ORDER BY v.series_id, v.version"),
                   {sha}));
  std::vector<MasterVersion> out;
  for (const SqlRow& r : rows) out.push_back(RowToVersion(r));
  return out;
}

// ---------------------------------------------------------------- audit
absl::Status CatalogStore::Audit(TimeMicros now, const std::string& actor,
                                 absl::string_view action, const std::string& subject,
                                 const std::string& details, int64_t series_id, int64_t version) {
  CALIBD_RETURN_IF_ERROR(conn_->Exec(
      "INSERT INTO audit (time, actor, action, subject, details, series_id, version) VALUES "
      "(?, ?, ?, ?, ?, ?, ?)",
      {now, actor, std::string(action), subject, details,
       series_id ? SqlValue(series_id) : SqlValue(std::monostate{}),
       series_id ? SqlValue(version) : SqlValue(std::monostate{})}));
  if (conn_->postgres()) {
    CALIBD_RETURN_IF_ERROR(
        conn_->Exec("SELECT pg_notify('calibd_changes', ?)", {std::string(action)}));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AuditEntry>> CatalogStore::AuditLog(TimeMicros since, int limit) {
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query(absl::StrCat("SELECT ", kAuditCols, " WHERE time >= ? ORDER BY id LIMIT ?"),
                   {since, int64_t{limit > 0 ? limit : 1000000}}));
  std::vector<AuditEntry> out;
  for (const SqlRow& r : rows) out.push_back(RowToAudit(r));
  return out;
}

absl::StatusOr<std::vector<AuditEntry>> CatalogStore::SeriesAudit(int64_t series_id,
                                                                  int64_t min_version,
                                                                  int64_t max_version) {
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query(absl::StrCat("SELECT ", kAuditCols,
                                " WHERE series_id = ? AND version >= ? AND version <= ? ORDER "
                                "BY id"),
                   {series_id, min_version, max_version}));
  std::vector<AuditEntry> out;
  for (const SqlRow& r : rows) out.push_back(RowToAudit(r));
  return out;
}

// ---------------------------------------------------------------- change feed
absl::StatusOr<int64_t> CatalogStore::ChangeCounter() {
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                          conn_->Query("SELECT COALESCE(MAX(id), 0) FROM audit"));
  return rows[0].Int(0);
}

absl::StatusOr<int64_t> CatalogStore::WaitForChange(int64_t known, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    CALIBD_ASSIGN_OR_RETURN(int64_t now, ChangeCounter());
    if (now > known) return now;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return now;
    const absl::Duration slice = std::min(left, absl::Milliseconds(has_listen_ ? 1000 : 50));
    if (has_listen_) {
      absl::MutexLock lock(&listen_mu_);
      WaitForNotify(slice);
    } else {
      absl::SleepFor(slice);
    }
  }
}

// A NOTIFY (or the timeout) on the LISTEN connection; then the caller re-reads.
void CatalogStore::WaitForNotify(absl::Duration slice) {
  PGconn* pg = dynamic_cast<PgAccess&>(*listen_conn_).raw();
  if (PQstatus(pg) != CONNECTION_OK) {
    PQreset(pg);
    if (PQstatus(pg) != CONNECTION_OK) {
      absl::SleepFor(slice);
      return;
    }
    PQclear(PQexec(pg, "LISTEN calibd_changes"));
  }
  const int sock = PQsocket(pg);
  fd_set fds;
  FD_ZERO(&fds);
  FD_SET(sock, &fds);
  struct timeval tv;
  tv.tv_sec = absl::ToInt64Seconds(slice);
  tv.tv_usec = absl::ToInt64Microseconds(slice) % 1000000;
  if (select(sock + 1, &fds, nullptr, nullptr, &tv) > 0) {
    PQconsumeInput(pg);
    while (PGnotify* n = PQnotifies(pg)) PQfreemem(n);
  }
}

}  // namespace calibd::store::internal
