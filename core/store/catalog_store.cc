// The CalibrationStore over a SQL catalog (SQLite or PostgreSQL) and a BlobBackend: every
// rule — dense versions, idempotent puts, certification conflicts, selection — lives here once.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "core/fits/fits.h"
#include "core/image/section.h"
#include "core/status/macros.h"
#include "core/store/blobs.h"
#include "core/store/master_cache.h"
#include "core/store/pg_sql.h"
#include "core/store/sql.h"
#include "core/store/store.h"

namespace calibd::store {
namespace {

using internal::BlobBackend;
using internal::IsRetryable;
using internal::SqlConnection;
using internal::SqlNullable;
using internal::SqlRow;
using internal::SqlValue;
using nlohmann::json;

constexpr int kSchemaVersion = 1;
constexpr int64_t kNotifyLockKey = 0x63616c6962;  // "calib"
constexpr int kMaxTrailRejections = 10;

// ---------------------------------------------------------------- JSON helpers
std::string ConfigKey(const Configuration& c) { return json(c).dump(); }

Configuration ParseConfig(const std::string& text) {
  Configuration out;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

std::string StringMapJson(const std::map<std::string, std::string>& m) { return json(m).dump(); }

std::string StatsJson(const std::map<std::string, double>& m) {
  json j = json::object();
  for (const auto& [k, v] : m) {
    if (std::isfinite(v)) j[k] = v;
    else j[k] = nullptr;
  }
  return j.dump();
}

std::map<std::string, double> ParseStats(const std::string& text) {
  std::map<std::string, double> out;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    out[it.key()] = it.value().is_number() ? it.value().get<double>()
                                           : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

std::string ProvenanceJson(const Provenance& p) {
  json j;
  j["inputs"] = p.input_sha256;
  j["options"] = p.options;
  j["software_version"] = p.software_version;
  return j.dump();
}

Provenance ParseProvenance(const std::string& text) {
  Provenance p;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return p;
  if (j.contains("inputs") && j["inputs"].is_array()) {
    for (const json& s : j["inputs"]) {
      if (s.is_string()) p.input_sha256.push_back(s.get<std::string>());
    }
  }
  if (j.contains("options") && j["options"].is_object()) p.options = ParseConfig(j["options"].dump());
  if (j.contains("software_version") && j["software_version"].is_string()) {
    p.software_version = j["software_version"].get<std::string>();
  }
  return p;
}

std::string FormatRange(TimeMicros begin, std::optional<TimeMicros> end) {
  return absl::StrCat("[", FormatTime(begin), ", ", end ? FormatTime(*end) : "open", ")");
}

std::string FormatConfig(const Configuration& c) {
  if (c.empty()) return "{}";
  return absl::StrCat(
      "{", absl::StrJoin(c, ", ", [](std::string* out, const auto& kv) {
        absl::StrAppend(out, kv.first, "=", kv.second);
      }),
      "}");
}

bool ValidKind(absl::string_view kind) {
  if (kind.empty() || kind.size() > 64) return false;
  for (char c : kind) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_')) return false;
  }
  return true;
}

bool ValidSha(absl::string_view sha) {
  if (sha.size() != 64) return false;
  for (char c : sha) {
    if (!(absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// sha256 of the pixels (shape, unit, data, variance, dq): "identical content" for idempotent
// puts, independent of header cards such as CHECKSUM's timestamped comment.
std::string PixelDigest(const CalibratedFrame& f) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  const std::string head = absl::StrCat(f.width(), "x", f.height(), ":", f.unit, ":",
                                        f.has_variance(), f.has_dq(), ":");
  EVP_DigestUpdate(ctx, head.data(), head.size());
  EVP_DigestUpdate(ctx, f.data.data(), f.data.num_pixels() * sizeof(float));
  if (f.has_variance()) {
    EVP_DigestUpdate(ctx, f.variance.data(), f.variance.num_pixels() * sizeof(float));
  }
  if (f.has_dq()) EVP_DigestUpdate(ctx, f.dq.data(), f.dq.num_pixels() * sizeof(uint16_t));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), n));
}

// ---------------------------------------------------------------- schema
std::vector<std::string> SchemaV1(bool pg) {
  const std::string pk = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY";
  std::vector<std::string> s = {
      absl::StrCat("CREATE TABLE detectors (id ", pk,
                   ", name TEXT NOT NULL, version BIGINT NOT NULL, spec_json TEXT NOT NULL, "
                   "created_at BIGINT NOT NULL, actor TEXT NOT NULL, UNIQUE (name, version))"),
      absl::StrCat("CREATE TABLE series (id ", pk,
                   ", detector TEXT NOT NULL, kind TEXT NOT NULL, config_key TEXT NOT NULL, "
                   "latest_version BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, "
                   "UNIQUE (detector, kind, config_key))"),
      absl::StrCat(
          "CREATE TABLE versions (id ", pk,
          ", series_id BIGINT NOT NULL REFERENCES series (id), version BIGINT NOT NULL, "
          "sha256 TEXT NOT NULL, content_sha256 TEXT NOT NULL, size_bytes BIGINT NOT NULL, "
          "width INTEGER NOT NULL, "
          "height INTEGER NOT NULL, created_at BIGINT NOT NULL, obs_time BIGINT NOT NULL, "
          "detector_version BIGINT NOT NULL, actor TEXT NOT NULL, attributes_json TEXT NOT NULL, "
          "provenance_json TEXT NOT NULL, statistics_json TEXT NOT NULL, decertified_at BIGINT, "
          "superseded_at BIGINT, UNIQUE (series_id, version), UNIQUE (series_id, sha256))"),
      "CREATE INDEX versions_sha ON versions (sha256)",
      "CREATE INDEX versions_obs ON versions (series_id, obs_time)",
      "CREATE INDEX versions_content ON versions (series_id, content_sha256)",
      absl::StrCat("CREATE TABLE certifications (id ", pk,
                   ", series_id BIGINT NOT NULL, version BIGINT NOT NULL, "
                   "begin_us BIGINT NOT NULL, end_us BIGINT, created_at BIGINT NOT NULL, "
                   "actor TEXT NOT NULL, reason TEXT NOT NULL, FOREIGN KEY (series_id, version) "
                   "REFERENCES versions (series_id, version))"),
      "CREATE INDEX certifications_series ON certifications (series_id, begin_us)",
      absl::StrCat("CREATE TABLE changes (id ", pk,
                   ", version_id BIGINT NOT NULL REFERENCES versions (id), change TEXT NOT NULL, "
                   "at BIGINT NOT NULL, range_begin BIGINT, range_end BIGINT)"),
      "CREATE INDEX changes_at ON changes (at)",
      absl::StrCat("CREATE TABLE audit (id ", pk,
                   ", time BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, "
                   "subject TEXT NOT NULL, details TEXT NOT NULL)"),
      "CREATE INDEX audit_time ON audit (time)",
  };
  if (pg) {
    s.push_back(
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size_bytes BIGINT NOT NULL, "
        "chunks BIGINT NOT NULL, created_at BIGINT NOT NULL)");
    s.push_back(
        "CREATE TABLE blob_chunks (sha256 TEXT NOT NULL REFERENCES blobs (sha256), "
        "idx BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (sha256, idx))");
  }
  return s;
}

// Migrations: index i brings the schema from version i to i + 1.
std::vector<std::vector<std::string>> Migrations(bool pg) { return {SchemaV1(pg)}; }

#define CALIBD_VERSION_SELECT                                                                  \
  "v.id, v.series_id, s.detector, s.kind, s.config_key, v.version, v.sha256, v.size_bytes, "   \
  "v.width, v.height, v.created_at, v.obs_time, v.detector_version, v.actor, "                 \
  "v.attributes_json, v.provenance_json, v.statistics_json, v.decertified_at, v.superseded_at"
#define CALIBD_VERSION_FROM " FROM versions v JOIN series s ON s.id = v.series_id"
constexpr char kVersionCols[] = CALIBD_VERSION_SELECT CALIBD_VERSION_FROM;

MasterVersion RowToVersion(const SqlRow& r) {
  MasterVersion v;
  v.series_id = r.Int(1);
  v.detector = r.Text(2);
  v.kind = r.Text(3);
  v.configuration = ParseConfig(r.Text(4));
  v.version = r.Int(5);
  v.sha256 = r.Text(6);
  v.size_bytes = r.Int(7);
  v.width = static_cast<int>(r.Int(8));
  v.height = static_cast<int>(r.Int(9));
  v.created_at = r.Int(10);
  v.obs_time = r.Int(11);
  v.detector_version = r.Int(12);
  v.actor = r.Text(13);
  v.attributes = ParseConfig(r.Text(14));
  v.provenance = ParseProvenance(r.Text(15));
  v.statistics = ParseStats(r.Text(16));
  v.decertified_at = r.OptInt(17);
  v.superseded_at = r.OptInt(18);
  return v;
}

constexpr char kCertCols[] =
    "id, series_id, version, begin_us, end_us, created_at, actor, reason FROM certifications";

Certification RowToCert(const SqlRow& r) {
  Certification c;
  c.id = r.Int(0);
  c.series_id = r.Int(1);
  c.version = r.Int(2);
  c.begin = r.Int(3);
  c.end = r.OptInt(4);
  c.created_at = r.Int(5);
  c.actor = r.Text(6);
  c.reason = r.Text(7);
  return c;
}

// Pieces of [old.begin, old.end) left after removing [b, e).
std::vector<std::pair<TimeMicros, std::optional<TimeMicros>>> Subtract(
    const Certification& old, TimeMicros b, std::optional<TimeMicros> e) {
  std::vector<std::pair<TimeMicros, std::optional<TimeMicros>>> out;
  if (old.begin < b) out.push_back({old.begin, std::min<TimeMicros>(b, old.end.value_or(b))});
  if (e && (!old.end || *old.end > *e)) out.push_back({std::max(old.begin, *e), old.end});
  return out;
}

struct CachedSeries {
  int64_t id;
  Configuration configuration;
};

// The series of one (detector, kind), indexed by the values of their keys that have no
// tolerance, so a selection compares only the few series that can match instead of all.
// Series rows never change, so the index only grows; it is rebuilt when the spec's set of
// toleranced keys changes.
struct KindIndex {
  std::vector<CachedSeries> all;
  std::string tolerance_signature;  // which keys the index treated as toleranced
  bool built = false;
  std::map<std::string, std::vector<std::string>> signatures;  // exact-key set → its keys
  absl::flat_hash_map<std::string, std::vector<size_t>> buckets;

  static std::string Sig(const std::vector<std::string>& keys) { return absl::StrJoin(keys, "\x1f"); }

  void Add(size_t i, const std::map<std::string, double>& tolerances) {
    std::vector<std::string> keys, values;
    for (const auto& [k, v] : all[i].configuration) {
      if (tolerances.count(k)) continue;
      keys.push_back(k);
      values.push_back(v);
    }
    const std::string sig = Sig(keys);
    signatures.emplace(sig, keys);
    buckets[absl::StrCat(sig, "\x1e", absl::StrJoin(values, "\x1f"))].push_back(i);
  }

  void Ensure(const std::map<std::string, double>& tolerances) {
    std::string tsig;
    for (const auto& [k, v] : tolerances) absl::StrAppend(&tsig, k, "\x1f");
    if (built && tsig == tolerance_signature) return;
    signatures.clear();
    buckets.clear();
    for (size_t i = 0; i < all.size(); ++i) Add(i, tolerances);
    tolerance_signature = tsig;
    built = true;
  }

  // Indices of the series whose exact-key values equal the frame's (text equality).
  std::vector<size_t> Candidates(const Configuration& frame) const {
    std::vector<size_t> out;
    for (const auto& [sig, keys] : signatures) {
      std::vector<std::string> values;
      bool complete = true;
      for (const std::string& k : keys) {
        auto it = frame.find(k);
        if (it == frame.end()) {
          complete = false;
          break;
        }
        values.push_back(it->second);
      }
      if (!complete) continue;
      auto b = buckets.find(absl::StrCat(sig, "\x1e", absl::StrJoin(values, "\x1f")));
      if (b != buckets.end()) out.insert(out.end(), b->second.begin(), b->second.end());
    }
    return out;
  }
};

// ---------------------------------------------------------------- the store
class CatalogStore : public CalibrationStore {
 public:
  CatalogStore(std::string description, std::unique_ptr<SqlConnection> conn,
               std::unique_ptr<BlobBackend> blobs, const StoreOptions& options, int lock_fd,
               std::unique_ptr<SqlConnection> listen_conn, std::string owned_spool)
      : description_(std::move(description)),
        options_(options),
        conn_(std::move(conn)),
        blobs_(std::move(blobs)),
        cache_(options.cache_bytes),
        lock_fd_(lock_fd),
        listen_conn_(std::move(listen_conn)),
        owned_spool_(std::move(owned_spool)) {}

  ~CatalogStore() override {
    if (lock_fd_ >= 0) close(lock_fd_);
    if (!owned_spool_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(owned_spool_, ec);
    }
  }

  absl::Status Migrate() {
    absl::MutexLock lock(&mu_);
    const bool pg = conn_->postgres();
    return WithTx<bool>(true, [&]() -> absl::StatusOr<bool> {
             if (pg) {
               CALIBD_RETURN_IF_ERROR(
                   conn_->Exec("SELECT pg_advisory_xact_lock(?)", {kNotifyLockKey}));
             }
             CALIBD_RETURN_IF_ERROR(conn_->Exec(
                 "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
             CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                                     conn_->Query("SELECT version FROM schema_version"));
             int64_t have = 0;
             if (rows.empty()) {
               CALIBD_RETURN_IF_ERROR(conn_->Exec("INSERT INTO schema_version VALUES (0)"));
             } else {
               have = rows[0].Int(0);
             }
             if (have > kSchemaVersion) {
               return absl::FailedPreconditionError(absl::StrCat(
                   "the catalog has schema version ", have, ", newer than this build's ",
                   kSchemaVersion, "; upgrade calibd"));
             }
             const auto migrations = Migrations(pg);
             for (int64_t v = have; v < kSchemaVersion; ++v) {
               for (const std::string& stmt : migrations[v]) {
                 CALIBD_RETURN_IF_ERROR(conn_->Exec(stmt));
               }
             }
             CALIBD_RETURN_IF_ERROR(
                 conn_->Exec("UPDATE schema_version SET version = ?", {int64_t{kSchemaVersion}}));
             return true;
           })
        .status();
  }

  absl::StatusOr<int> CollectGarbage() {
    std::set<std::string> referenced;
    if (blobs_->wants_references()) {
      absl::MutexLock lock(&mu_);
      CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                              conn_->Query("SELECT DISTINCT sha256 FROM versions"));
      for (const SqlRow& r : rows) referenced.insert(r.Text(0));
    }
    return blobs_->CollectGarbage(referenced);
  }

  std::string Describe() const override { return description_; }

  MasterCacheStats CacheStats() const override {
    return MasterCacheStats{cache_.bytes(), cache_.budget_bytes(), cache_.entries(),
                            cache_.hits(), cache_.misses()};
  }

  absl::Status Ping() override {
    absl::MutexLock lock(&mu_);
    absl::Status s = conn_->Exec("SELECT 1");
    if (!s.ok()) return absl::UnavailableError(absl::StrCat(description_, ": ", s.message()));
    return s;
  }

  // ------------------------------------------------------------ detectors
  absl::StatusOr<DetectorRecord> PutDetector(const DetectorSpec& spec,
                                             const std::string& actor) override {
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
      CALIBD_RETURN_IF_ERROR(Audit(now, actor, "put_detector",
                                   absl::StrCat(spec.name, " v", next), ""));
      return DetectorRecord{spec, next, now, actor};
    });
  }

  absl::StatusOr<DetectorRecord> GetDetector(const std::string& name, int64_t version) override {
    absl::MutexLock lock(&mu_);
    return GetDetectorLocked(name, version);
  }

  absl::StatusOr<std::vector<DetectorRecord>> ListDetectors() override {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query("SELECT d.name, d.version, d.spec_json, d.created_at, d.actor FROM detectors "
                     "d WHERE d.version = (SELECT MAX(version) FROM detectors e WHERE e.name = "
                     "d.name) ORDER BY d.name"));
    std::vector<DetectorRecord> out;
    for (const SqlRow& r : rows) {
      CALIBD_ASSIGN_OR_RETURN(DetectorSpec spec, DecodeStoredSpec(r.Text(2), r.Text(0)));
      out.push_back(DetectorRecord{std::move(spec), r.Int(1), r.Int(3), r.Text(4)});
    }
    return out;
  }

  // ------------------------------------------------------------ masters
  absl::StatusOr<MasterVersion> PutMaster(const PutMasterRequest& req,
                                          const std::string& actor) override {
    CALIBD_RETURN_IF_ERROR(CheckActor(actor));
    if (!ValidKind(req.kind)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kind '", req.kind, "' must be lowercase letters, digits and '_' (e.g. bias, dark)"));
    }
    if (req.fits_path.empty() == (req.frame == nullptr)) {
      return absl::InvalidArgumentError(
          "PutMaster needs exactly one of fits_path (a spooled FITS file) or frame");
    }
    if (!req.client_sha256.empty() && !ValidSha(req.client_sha256)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client sha256 '", req.client_sha256, "' is not 64 lowercase hex digits"));
    }
    if (req.expected_version < 0) {
      return absl::InvalidArgumentError("expected_version must be >= 0");
    }
    DetectorRecord det;
    {
      absl::MutexLock lock(&mu_);
      CALIBD_ASSIGN_OR_RETURN(det, GetDetectorLocked(req.detector, 0));
    }
    // The content: read and check it (shape, finite values), spool the blob bytes, hash them.
    const std::string temp = blobs_->TempPath();
    struct TempGuard {
      std::string path;
      ~TempGuard() { unlink(path.c_str()); }
    } guard{temp};
    Header header;
    int width = 0, height = 0;
    std::string content_sha;
    if (req.frame != nullptr) {
      CALIBD_RETURN_IF_ERROR(CheckContent(det.spec, *req.frame, "frame"));
      content_sha = PixelDigest(*req.frame);
      header = req.frame->header;
      width = req.frame->width();
      height = req.frame->height();
      fits::WriteOptions wo;
      wo.overwrite = true;
      CALIBD_RETURN_IF_ERROR(Annotate(fits::WriteCalibratedFrame(temp, *req.frame, wo),
                                      "writing the master's FITS blob"));
    } else {
      struct stat st;
      if (stat(req.fits_path.c_str(), &st) != 0) {
        return absl::NotFoundError(absl::StrCat("master file ", req.fits_path, " does not exist"));
      }
      if (st.st_size > options_.max_blob_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "master file is ", st.st_size, " bytes; the store accepts at most ",
            options_.max_blob_bytes));
      }
      fits::ReadOptions ro;
      ro.verify_checksum = true;
      ro.pool = options_.pool;
      absl::StatusOr<CalibratedFrame> frame = fits::ReadCalibratedFrame(req.fits_path, ro);
      if (!frame.ok()) {
        absl::Status s = frame.status();
        if (absl::IsDataLoss(s) || absl::IsNotFound(s)) {
          s = absl::InvalidArgumentError(s.message());
        }
        return Annotate(s, "the master is not a valid calibrated FITS file");
      }
      CALIBD_RETURN_IF_ERROR(CheckContent(det.spec, *frame, req.fits_path));
      content_sha = PixelDigest(*frame);
      header = std::move(frame->header);
      width = frame->width();
      height = frame->height();
    }
    int64_t size = 0;
    CALIBD_ASSIGN_OR_RETURN(
        std::string sha,
        internal::HashFile(req.frame != nullptr ? temp : req.fits_path,
                           req.frame != nullptr ? "" : temp, &size));
    if (size > options_.max_blob_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "master blob is ", size, " bytes; the store accepts at most ", options_.max_blob_bytes));
    }
    if (!req.client_sha256.empty() && req.client_sha256 != sha) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sha256 mismatch: the client said ", req.client_sha256, " but the received bytes hash to ",
          sha, "; the upload was damaged, send it again"));
    }
    // Request header cards win over the file's: look them up first.
    Header lookup = req.header;
    for (const HeaderCard& card : header.cards()) lookup.Append(card);
    Configuration config = req.configuration;
    if (config.empty()) {
      CALIBD_ASSIGN_OR_RETURN(config, ExtractConfiguration(det.spec, req.kind, lookup));
    }
    const TimeMicros now = NowMicros();
    TimeMicros obs_time = now;
    if (req.obs_time) {
      obs_time = *req.obs_time;
    } else if (absl::StatusOr<TimeMicros> t = ExtractTime(det.spec, lookup); t.ok()) {
      obs_time = *t;
    }
    CALIBD_RETURN_IF_ERROR(blobs_->Persist(temp, sha, size));

    absl::MutexLock lock(&mu_);
    return WithTx<MasterVersion>(true, [&]() -> absl::StatusOr<MasterVersion> {
      const std::string key = ConfigKey(config);
      CALIBD_RETURN_IF_ERROR(conn_->Exec(
          "INSERT INTO series (detector, kind, config_key, latest_version, created_at) "
          "VALUES (?, ?, ?, 0, ?) ON CONFLICT (detector, kind, config_key) DO NOTHING",
          {req.detector, req.kind, key, now}));
      CALIBD_ASSIGN_OR_RETURN(
          std::vector<SqlRow> srows,
          conn_->Query(absl::StrCat("SELECT id, latest_version FROM series WHERE detector = ? "
                                    "AND kind = ? AND config_key = ?",
                                    conn_->postgres() ? " FOR UPDATE" : ""),
                       {req.detector, req.kind, key}));
      if (srows.empty()) return internal::RetryableError("series vanished");
      const int64_t series_id = srows[0].Int(0);
      const int64_t latest = srows[0].Int(1);
      CALIBD_ASSIGN_OR_RETURN(
          std::vector<SqlRow> same,
          conn_->Query(absl::StrCat("SELECT ", kVersionCols,
                                    " WHERE v.series_id = ? AND (v.sha256 = ? OR "
                                    "v.content_sha256 = ?) ORDER BY v.version LIMIT 1"),
                       {series_id, sha, content_sha}));
      if (!same.empty()) {
        MasterVersion v = RowToVersion(same[0]);
        v.created = false;
        return v;
      }
      const int64_t version = latest + 1;
      if (req.expected_version != 0 && req.expected_version != version) {
        if (req.expected_version <= latest) {
          return absl::AlreadyExistsError(absl::StrCat(
              "version ", req.expected_version, " of ", req.detector, " ", req.kind, " ",
              FormatConfig(config), " exists with other content; versions are immutable — put "
              "without expected_version to add version ", version));
        }
        return absl::AbortedError(absl::StrCat("expected to create version ", req.expected_version,
                                               " but the series is at version ", latest,
                                               "; re-read the series and retry"));
      }
      CALIBD_RETURN_IF_ERROR(conn_->Exec(
          "INSERT INTO versions (series_id, version, sha256, content_sha256, size_bytes, width, "
          "height, "
          "created_at, obs_time, detector_version, actor, attributes_json, provenance_json, "
          "statistics_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          {series_id, version, sha, content_sha, size, int64_t{width}, int64_t{height}, now, obs_time,
           det.version, actor, StringMapJson(req.attributes), ProvenanceJson(req.provenance),
           StatsJson(req.statistics)}));
      CALIBD_RETURN_IF_ERROR(conn_->Exec("UPDATE series SET latest_version = ? WHERE id = ?",
                                         {version, series_id}));
      CALIBD_RETURN_IF_ERROR(
          Audit(now, actor, "put_master",
                absl::StrCat(req.detector, " ", req.kind, " series ", series_id, " v", version),
                absl::StrCat("sha256 ", sha, ", ", size, " bytes, configuration ",
                             FormatConfig(config))));
      MasterVersion v;
      v.series_id = series_id;
      v.detector = req.detector;
      v.kind = req.kind;
      v.configuration = config;
      v.version = version;
      v.sha256 = sha;
      v.size_bytes = size;
      v.width = width;
      v.height = height;
      v.created_at = now;
      v.obs_time = obs_time;
      v.detector_version = det.version;
      v.actor = actor;
      v.attributes = req.attributes;
      v.provenance = req.provenance;
      v.statistics = req.statistics;
      v.created = true;
      return v;
    });
  }

  absl::StatusOr<std::vector<MasterVersion>> ListMasters(const MasterFilter& f) override {
    std::string sql = absl::StrCat("SELECT ", kVersionCols, " WHERE 1 = 1");
    std::vector<SqlValue> params;
    AppendFilter(f, &sql, &params);
    absl::StrAppend(&sql, " ORDER BY v.series_id, v.version");
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows, conn_->Query(sql, params));
    std::vector<MasterVersion> out;
    for (const SqlRow& r : rows) {
      MasterVersion v = RowToVersion(r);
      if (!ConfigSubset(f.configuration, v.configuration)) continue;
      out.push_back(std::move(v));
      if (f.limit > 0 && static_cast<int>(out.size()) >= f.limit) break;
    }
    return out;
  }

  absl::StatusOr<std::vector<SeriesInfo>> ListSeries(const MasterFilter& f) override {
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

  absl::StatusOr<std::vector<MasterVersion>> History(int64_t series_id) override {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query(absl::StrCat("SELECT ", kVersionCols,
                                  " WHERE v.series_id = ? ORDER BY v.version"),
                     {series_id}));
    if (rows.empty()) {
      return absl::NotFoundError(absl::StrCat("no series ", series_id, "; list series to find it"));
    }
    std::vector<MasterVersion> out;
    for (const SqlRow& r : rows) out.push_back(RowToVersion(r));
    return out;
  }

  absl::StatusOr<MasterVersion> GetVersion(int64_t series_id, int64_t version) override {
    absl::MutexLock lock(&mu_);
    return GetVersionLocked(series_id, version);
  }

  absl::StatusOr<MasterVersion> GetMaster(const std::string& detector, const std::string& kind,
                                          const Configuration& configuration,
                                          int64_t version) override {
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

  absl::StatusOr<std::vector<MasterVersion>> FindBySha256(const std::string& sha256) override {
    absl::MutexLock lock(&mu_);
    return FindByShaLocked(sha256);
  }

  absl::StatusOr<std::shared_ptr<const CalibratedFrame>> LoadMaster(
      const std::string& sha256) override {
    if (auto hit = cache_.Lookup(sha256)) return hit;
    {
      absl::MutexLock lock(&mu_);
      CALIBD_ASSIGN_OR_RETURN(std::vector<MasterVersion> found, FindByShaLocked(sha256));
      if (found.empty()) {
        return absl::NotFoundError(absl::StrCat("no stored master has sha256 ", sha256));
      }
    }
    return cache_.GetOrLoad(sha256, [&]() -> absl::StatusOr<CalibratedFrame> {
      CALIBD_ASSIGN_OR_RETURN(std::string path, blobs_->Materialize(sha256));
      fits::ReadOptions ro;
      ro.verify_checksum = true;
      ro.pool = options_.pool;
      absl::StatusOr<CalibratedFrame> frame = fits::ReadCalibratedFrame(path, ro);
      if (!frame.ok()) {
        return absl::DataLossError(absl::StrCat("stored master ", sha256,
                                                " cannot be decoded: ", frame.status().message()));
      }
      return frame;
    });
  }

  absl::StatusOr<std::string> MaterializeBlob(const std::string& sha256) override {
    {
      absl::MutexLock lock(&mu_);
      CALIBD_ASSIGN_OR_RETURN(std::vector<MasterVersion> found, FindByShaLocked(sha256));
      if (found.empty()) {
        return absl::NotFoundError(absl::StrCat("no stored master has sha256 ", sha256));
      }
    }
    return blobs_->Materialize(sha256);
  }

  absl::Status ReadBlob(const std::string& sha256, size_t chunk_bytes,
                        const std::function<absl::Status(absl::string_view)>& sink) override {
    if (chunk_bytes == 0) return absl::InvalidArgumentError("chunk_bytes must be > 0");
    CALIBD_ASSIGN_OR_RETURN(std::string path, MaterializeBlob(sha256));
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::DataLossError(absl::StrCat("blob ", path, " vanished"));
    std::vector<char> buf(chunk_bytes);
    absl::Status status;
    while (status.ok()) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) status = absl::UnavailableError(absl::StrCat("read ", path));
      if (n <= 0) break;
      status = sink(absl::string_view(buf.data(), n));
    }
    close(fd);
    return status;
  }

  // ------------------------------------------------------------ certification
  absl::StatusOr<Certification> Certify(const CertifyRequest& req) override {
    CALIBD_RETURN_IF_ERROR(CheckActor(req.actor));
    if (req.end && *req.end <= req.begin) {
      return absl::InvalidArgumentError(absl::StrCat("certification range ",
                                                     FormatRange(req.begin, req.end),
                                                     " is empty: end must be after begin"));
    }
    absl::MutexLock lock(&mu_);
    return WithTx<Certification>(true, [&]() -> absl::StatusOr<Certification> {
      CALIBD_RETURN_IF_ERROR(LockSeries(req.series_id));
      CALIBD_ASSIGN_OR_RETURN(MasterVersion target, GetVersionLocked(req.series_id, req.version));
      CALIBD_ASSIGN_OR_RETURN(std::vector<Certification> overlapping,
                              Overlapping(req.series_id, std::nullopt, req.begin, req.end));
      const TimeMicros now = NowMicros();
      if (!overlapping.empty() && !req.replace) {
        const Certification& c = overlapping.front();
        return absl::AlreadyExistsError(absl::StrCat(
            "series ", req.series_id, ": ", FormatRange(req.begin, req.end),
            " overlaps the certification of version ", c.version, " for ",
            FormatRange(c.begin, c.end),
            "; decertify it first or certify with replace to supersede it"));
      }
      for (const Certification& c : overlapping) {
        CALIBD_RETURN_IF_ERROR(CutCertification(c, req.begin, req.end));
        if (c.version != req.version) {
          const TimeMicros cut_begin = std::max(c.begin, req.begin);
          std::optional<TimeMicros> cut_end = c.end;
          if (req.end && (!cut_end || *req.end < *cut_end)) cut_end = req.end;
          CALIBD_RETURN_IF_ERROR(RecordChange(c.series_id, c.version, "superseded", now,
                                              cut_begin, cut_end));
          CALIBD_RETURN_IF_ERROR(
              conn_->Exec("UPDATE versions SET superseded_at = COALESCE(superseded_at, ?) WHERE "
                          "series_id = ? AND version = ?",
                          {now, c.series_id, c.version}));
        }
      }
      CALIBD_ASSIGN_OR_RETURN(
          std::vector<SqlRow> ids,
          conn_->Query("INSERT INTO certifications (series_id, version, begin_us, end_us, "
                       "created_at, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                       {req.series_id, req.version, req.begin, SqlNullable(req.end), now,
                        req.actor, req.reason}));
      CALIBD_RETURN_IF_ERROR(conn_->Exec(
          "UPDATE versions SET decertified_at = NULL WHERE series_id = ? AND version = ?",
          {req.series_id, req.version}));
      CALIBD_RETURN_IF_ERROR(Audit(
          now, req.actor, "certify",
          absl::StrCat(target.detector, " ", target.kind, " series ", req.series_id, " v",
                       req.version),
          absl::StrCat(FormatRange(req.begin, req.end),
                       req.replace && !overlapping.empty()
                           ? absl::StrCat(", replacing ", overlapping.size(), " range(s)")
                           : "",
                       req.reason.empty() ? "" : absl::StrCat("; reason: ", req.reason))));
      Certification c;
      c.id = ids.empty() ? 0 : ids[0].Int(0);
      c.series_id = req.series_id;
      c.version = req.version;
      c.begin = req.begin;
      c.end = req.end;
      c.created_at = now;
      c.actor = req.actor;
      c.reason = req.reason;
      return c;
    });
  }

  absl::Status Decertify(const DecertifyRequest& req) override {
    CALIBD_RETURN_IF_ERROR(CheckActor(req.actor));
    if (req.end && !req.begin) {
      return absl::InvalidArgumentError("decertify: a range end needs a begin");
    }
    if (req.begin && req.end && *req.end <= *req.begin) {
      return absl::InvalidArgumentError(absl::StrCat(
          "decertify range ", FormatRange(*req.begin, req.end), " is empty"));
    }
    absl::MutexLock lock(&mu_);
    return WithTx<bool>(true, [&]() -> absl::StatusOr<bool> {
             CALIBD_RETURN_IF_ERROR(LockSeries(req.series_id));
             CALIBD_ASSIGN_OR_RETURN(MasterVersion target,
                                     GetVersionLocked(req.series_id, req.version));
             const TimeMicros b = req.begin.value_or(std::numeric_limits<TimeMicros>::min());
             CALIBD_ASSIGN_OR_RETURN(
                 std::vector<Certification> hit,
                 Overlapping(req.series_id, req.version, b, req.begin ? req.end : std::nullopt));
             if (hit.empty()) {
               return absl::NotFoundError(absl::StrCat(
                   "version ", req.version, " of series ", req.series_id,
                   " has no certification",
                   req.begin ? absl::StrCat(" overlapping ", FormatRange(*req.begin, req.end))
                             : "",
                   "; list its certifications"));
             }
             const TimeMicros now = NowMicros();
             for (const Certification& c : hit) {
               CALIBD_RETURN_IF_ERROR(CutCertification(c, b, req.begin ? req.end : std::nullopt));
               CALIBD_RETURN_IF_ERROR(RecordChange(
                   c.series_id, c.version, "decertified", now, std::max(c.begin, b),
                   req.end && (!c.end || *req.end < *c.end) ? req.end : c.end));
             }
             CALIBD_ASSIGN_OR_RETURN(
                 std::vector<SqlRow> left,
                 conn_->Query("SELECT COUNT(*) FROM certifications WHERE series_id = ? AND "
                              "version = ?",
                              {req.series_id, req.version}));
             if (left[0].Int(0) == 0) {
               CALIBD_RETURN_IF_ERROR(
                   conn_->Exec("UPDATE versions SET decertified_at = ? WHERE series_id = ? AND "
                               "version = ?",
                               {now, req.series_id, req.version}));
             }
             CALIBD_RETURN_IF_ERROR(Audit(
                 now, req.actor, "decertify",
                 absl::StrCat(target.detector, " ", target.kind, " series ", req.series_id, " v",
                              req.version),
                 absl::StrCat(req.begin ? FormatRange(*req.begin, req.end) : "all ranges",
                              req.reason.empty() ? "" : absl::StrCat("; reason: ", req.reason))));
             return true;
           })
        .status();
  }

  absl::StatusOr<std::vector<Certification>> ListCertifications(int64_t series_id) override {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> s,
                            conn_->Query("SELECT id FROM series WHERE id = ?", {series_id}));
    if (s.empty()) return absl::NotFoundError(absl::StrCat("no series ", series_id));
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query(absl::StrCat("SELECT ", kCertCols, " WHERE series_id = ? ORDER BY begin_us"),
                     {series_id}));
    std::vector<Certification> out;
    for (const SqlRow& r : rows) out.push_back(RowToCert(r));
    return out;
  }

  // ------------------------------------------------------------ selection
  absl::StatusOr<SelectionResult> Select(const SelectionRequest& req) override;

  // ------------------------------------------------------------ audit
  absl::StatusOr<std::vector<AuditEntry>> AuditLog(TimeMicros since, int limit) override {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query("SELECT id, time, actor, action, subject, details FROM audit WHERE time >= ? "
                     "ORDER BY id LIMIT ?",
                     {since, int64_t{limit > 0 ? limit : 1000000}}));
    std::vector<AuditEntry> out;
    for (const SqlRow& r : rows) {
      out.push_back(AuditEntry{r.Int(0), r.Int(1), r.Text(2), r.Text(3), r.Text(4), r.Text(5)});
    }
    return out;
  }

  absl::StatusOr<std::vector<VersionChange>> ChangedSince(TimeMicros since) override {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query("SELECT " CALIBD_VERSION_SELECT
                     ", c.change, c.at, c.range_begin, c.range_end" CALIBD_VERSION_FROM
                     " JOIN changes c ON c.version_id = v.id WHERE c.at >= ? ORDER BY c.at, c.id",
                     {since}));
    std::vector<VersionChange> out;
    for (const SqlRow& r : rows) {
      VersionChange ch;
      ch.version = RowToVersion(r);
      ch.change = r.Text(19);
      ch.at = r.Int(20);
      ch.range_begin = r.OptInt(21);
      ch.range_end = r.OptInt(22);
      out.push_back(std::move(ch));
    }
    return out;
  }

  absl::StatusOr<int64_t> ChangeCounter() override {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                            conn_->Query("SELECT COALESCE(MAX(id), 0) FROM audit"));
    return rows[0].Int(0);
  }

  absl::StatusOr<int64_t> WaitForChange(int64_t known, absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      CALIBD_ASSIGN_OR_RETURN(int64_t now, ChangeCounter());
      if (now > known) return now;
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return now;
      const absl::Duration slice = std::min(left, absl::Milliseconds(listen_conn_ ? 1000 : 50));
      if (listen_conn_) {
        absl::MutexLock lock(&listen_mu_);
        WaitForNotify(slice);
      } else {
        absl::SleepFor(slice);
      }
    }
  }

 private:
  // A NOTIFY (or the timeout) on the LISTEN connection; then the caller re-reads.
  void WaitForNotify(absl::Duration slice) ABSL_EXCLUSIVE_LOCKS_REQUIRED(listen_mu_) {
    PGconn* pg = dynamic_cast<internal::PgAccess&>(*listen_conn_).raw();
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

  template <typename T, typename F>
  absl::StatusOr<T> WithTx(bool write, F&& fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    thread_local std::mt19937 rng(std::random_device{}());
    absl::Status last;
    for (int attempt = 0; attempt < 30; ++attempt) {
      if (attempt > 0) {
        const int max_ms = std::min(2 + attempt * 4, 60);
        absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(1, max_ms)(rng)));
      }
      absl::Status s = conn_->Begin(write);
      if (s.ok()) {
        absl::StatusOr<T> r = fn();
        if (r.ok()) {
          s = conn_->Commit();
          if (s.ok()) return r;
        } else {
          s = r.status();
        }
      }
      (void)conn_->Rollback();
      if (!IsRetryable(s)) return s;
      last = s;
    }
    return absl::AbortedError(absl::StrCat("gave up after 30 conflicting attempts: ",
                                           last.message(), "; retry later"));
  }

  absl::Status CheckActor(const std::string& actor) {
    if (actor.empty()) {
      return absl::InvalidArgumentError("the actor (who makes the change) must be given");
    }
    return absl::OkStatus();
  }

  absl::Status CheckContent(const DetectorSpec& spec, const CalibratedFrame& f,
                            const std::string& what) {
    const int w = f.width(), h = f.height();
    // The raw or the trimmed shape, possibly binned by 1..8 on each axis.
    auto fits_shape = [&](int full_w, int full_h) {
      bool x = false, y = false;
      for (int b = 1; b <= 8; ++b) {
        x |= w == full_w / b;
        y |= h == full_h / b;
      }
      return x && y;
    };
    bool ok = fits_shape(spec.width, spec.height);
    std::string shapes = absl::StrCat(spec.width, "x", spec.height);
    if (!spec.trim_section.empty()) {
      absl::StatusOr<Section> t = ParseFitsSection(spec.trim_section, spec.width, spec.height);
      if (t.ok()) {
        ok = ok || fits_shape(t->width(), t->height());
        absl::StrAppend(&shapes, " or ", t->width(), "x", t->height(), " (trimmed)");
      }
    }
    absl::StrAppend(&shapes, ", or those binned by 1..8");
    if (!ok || w == 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, " is ", w, "x", h, " but detector ",
                                                     spec.name, " masters are ", shapes));
    }
    if ((f.has_variance() && (f.variance.width() != w || f.variance.height() != h)) ||
        (f.has_dq() && (f.dq.width() != w || f.dq.height() != h))) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": variance/dq planes do not match the data's shape"));
    }
    for (int y = 0; y < h; ++y) {
      const float* row = f.data.data() + int64_t{y} * w;
      bool finite = true;
      for (int x = 0; x < w; ++x) finite &= std::isfinite(row[x]);
      if (!finite) {
        for (int x = 0; x < w; ++x) {
          if (!std::isfinite(row[x])) {
            return absl::InvalidArgumentError(absl::StrCat(
                what, ": data pixel (", x, ", ", y, ") is ", row[x],
                "; masters must be finite (flag bad pixels in dq instead)"));
          }
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status Audit(TimeMicros now, const std::string& actor, absl::string_view action,
                     const std::string& subject, const std::string& details)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CALIBD_RETURN_IF_ERROR(conn_->Exec(
        "INSERT INTO audit (time, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)",
        {now, actor, std::string(action), subject, details}));
    if (conn_->postgres()) {
      CALIBD_RETURN_IF_ERROR(conn_->Exec("SELECT pg_notify('calibd_changes', ?)",
                                         {std::string(action)}));
    }
    return absl::OkStatus();
  }

  absl::Status LockSeries(int64_t series_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query(absl::StrCat("SELECT id FROM series WHERE id = ?",
                                  conn_->postgres() ? " FOR UPDATE" : ""),
                     {series_id}));
    if (rows.empty()) {
      return absl::NotFoundError(absl::StrCat("no series ", series_id, "; list series to find it"));
    }
    return absl::OkStatus();
  }

  // Certifications of the series (of one version if given) overlapping [b, e).
  absl::StatusOr<std::vector<Certification>> Overlapping(int64_t series_id,
                                                         std::optional<int64_t> version,
                                                         TimeMicros b, std::optional<TimeMicros> e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string sql = absl::StrCat("SELECT ", kCertCols,
                                   " WHERE series_id = ? AND (end_us IS NULL OR end_us > ?)");
    std::vector<SqlValue> params = {series_id, b};
    if (e) {
      absl::StrAppend(&sql, " AND begin_us < ?");
      params.push_back(*e);
    }
    if (version) {
      absl::StrAppend(&sql, " AND version = ?");
      params.push_back(*version);
    }
    absl::StrAppend(&sql, " ORDER BY begin_us");
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows, conn_->Query(sql, params));
    std::vector<Certification> out;
    for (const SqlRow& r : rows) out.push_back(RowToCert(r));
    return out;
  }

  // Removes [b, e) from certification c, keeping the pieces on either side.
  absl::Status CutCertification(const Certification& c, TimeMicros b, std::optional<TimeMicros> e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CALIBD_RETURN_IF_ERROR(conn_->Exec("DELETE FROM certifications WHERE id = ?", {c.id}));
    for (const auto& [pb, pe] : Subtract(c, b, e)) {
      CALIBD_RETURN_IF_ERROR(conn_->Exec(
          "INSERT INTO certifications (series_id, version, begin_us, end_us, created_at, actor, "
          "reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
          {c.series_id, c.version, pb, SqlNullable(pe), c.created_at, c.actor, c.reason}));
    }
    return absl::OkStatus();
  }

  absl::Status RecordChange(int64_t series_id, int64_t version, const std::string& change,
                            TimeMicros at, TimeMicros b, std::optional<TimeMicros> e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return conn_->Exec(
        "INSERT INTO changes (version_id, change, at, range_begin, range_end) SELECT id, ?, ?, "
        "?, ? FROM versions WHERE series_id = ? AND version = ?",
        {change, at, b, SqlNullable(e), series_id, version});
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

  static bool ConfigSubset(const Configuration& want, const Configuration& have) {
    for (const auto& [k, v] : want) {
      auto it = have.find(k);
      if (it == have.end() || it->second != v) return false;
    }
    return true;
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

  absl::StatusOr<DetectorRecord> GetDetectorLocked(const std::string& name, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
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
          conn_->Query("SELECT spec_json FROM detectors WHERE name = ? AND version = ?",
                       {name, v}));
      if (spec_rows.empty()) return absl::NotFoundError("detector vanished");
      CALIBD_ASSIGN_OR_RETURN(DetectorSpec spec, DecodeStoredSpec(spec_rows[0].Text(0), name));
      it = spec_cache_.emplace(key, std::move(spec)).first;
    }
    return DetectorRecord{it->second, v, rows[0].Int(1), rows[0].Text(2)};
  }

  absl::StatusOr<MasterVersion> GetVersionLocked(int64_t series_id, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query(absl::StrCat("SELECT ", kVersionCols,
                                  " WHERE v.series_id = ? AND v.version = ?"),
                     {series_id, version}));
    if (rows.empty()) {
      return absl::NotFoundError(absl::StrCat("series ", series_id, " has no version ", version,
                                              "; see its history for the versions it has"));
    }
    return RowToVersion(rows[0]);
  }

  absl::StatusOr<std::vector<MasterVersion>> FindByShaLocked(const std::string& sha)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!ValidSha(sha)) {
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

  // New series since the last call (series rows never change once written).
  absl::Status RefreshSeries() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> rows,
        conn_->Query("SELECT id, detector, kind, config_key FROM series WHERE id > ? ORDER BY id",
                     {max_series_id_}));
    for (const SqlRow& r : rows) {
      KindIndex& idx = series_by_kind_[std::make_pair(r.Text(1), r.Text(2))];
      idx.all.push_back(CachedSeries{r.Int(0), ParseConfig(r.Text(3))});
      idx.built = false;
      max_series_id_ = std::max(max_series_id_, r.Int(0));
    }
    return absl::OkStatus();
  }

  absl::Status SelectKind(const DetectorRecord& det, const SelectionRequest& req,
                          const std::string& kind, const Configuration& frame_config,
                          std::optional<TimeMicros> t, KindSelection* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string description_;
  const StoreOptions options_;
  absl::Mutex mu_;
  std::unique_ptr<SqlConnection> conn_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<BlobBackend> blobs_;
  MasterCache cache_;
  int lock_fd_;
  absl::Mutex listen_mu_;
  std::unique_ptr<SqlConnection> listen_conn_ ABSL_GUARDED_BY(listen_mu_);
  std::string owned_spool_;
  std::map<std::pair<std::string, int64_t>, DetectorSpec> spec_cache_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, KindIndex> series_by_kind_
      ABSL_GUARDED_BY(mu_);
  int64_t max_series_id_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<SelectionResult> CatalogStore::Select(const SelectionRequest& req) {
  if (req.kinds.empty()) {
    return absl::InvalidArgumentError("selection needs at least one kind (e.g. bias, dark, flat)");
  }
  for (const std::string& k : req.kinds) {
    if (!ValidKind(k)) return absl::InvalidArgumentError(absl::StrCat("bad kind '", k, "'"));
  }
  if (req.max_age < 0) return absl::InvalidArgumentError("max_age must be >= 0");
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(DetectorRecord det, GetDetectorLocked(req.detector, req.detector_version));
  SelectionResult result;
  result.detector = req.detector;
  result.detector_version = det.version;
  result.policy = req.policy;
  result.configuration =
      req.configuration ? *req.configuration : ExtractAllConfiguration(det.spec, req.header);
  std::optional<TimeMicros> t = req.time;
  if (!t) {
    absl::StatusOr<TimeMicros> ht = ExtractTime(det.spec, req.header);
    if (ht.ok()) {
      t = *ht;
    } else {
      bool all_pinned = true;
      for (const std::string& k : req.kinds) all_pinned &= req.pinned.count(k) > 0;
      if (!all_pinned) {
        return absl::InvalidArgumentError(absl::StrCat("cannot select without the frame's time: ",
                                                       ht.status().message()));
      }
    }
  }
  result.time = t.value_or(0);
  CALIBD_RETURN_IF_ERROR(RefreshSeries());
  for (const std::string& kind : req.kinds) {
    KindSelection ks;
    ks.kind = kind;
    absl::Status s = SelectKind(det, req, kind, result.configuration, t, &ks);
    if (!s.ok() && ks.status.ok()) {
      // An infrastructure failure (database) fails the whole call.
      return s;
    }
    result.kinds.push_back(std::move(ks));
  }
  return result;
}

absl::Status CatalogStore::SelectKind(const DetectorRecord& det, const SelectionRequest& req,
                                      const std::string& kind, const Configuration& frame_config,
                                      std::optional<TimeMicros> t, KindSelection* out) {
  out->status = absl::OkStatus();
  // Matching series, best configuration first.
  struct Match {
    const CachedSeries* series;
    double distance;
  };
  std::vector<Match> matches;
  auto sit = series_by_kind_.find(std::make_pair(req.detector, kind));
  int rejected = 0;
  auto reject = [&](const CachedSeries& s, const std::string& why) {
    if (rejected++ < kMaxTrailRejections) {
      TrailEntry e;
      e.series_id = s.id;
      e.configuration = s.configuration;
      e.reason = absl::StrCat("rejected: ", why);
      out->trail.push_back(std::move(e));
    } else {
      ++out->candidates_omitted;
    }
  };
  if (sit != series_by_kind_.end()) {
    KindIndex& idx = sit->second;
    const std::map<std::string, double> tolerances = TolerancesOf(det.spec);
    idx.Ensure(tolerances);
    // Fast path: only the series whose untoleranced values equal the frame's can match.
    std::vector<size_t> candidates = idx.Candidates(frame_config);
    std::sort(candidates.begin(), candidates.end());
    for (size_t i : candidates) {
      const CachedSeries& s = idx.all[i];
      std::string why;
      double distance = 0;
      if (ConfigurationMatches(det.spec, kind, s.configuration, frame_config, &why, &distance)) {
        matches.push_back(Match{&s, distance});
      } else {
        reject(s, why);
      }
    }
    if (!matches.empty()) {
      // The rest differ in an untoleranced key: explain a few, count the others.
      size_t next = 0;
      for (size_t i = 0; i < idx.all.size(); ++i) {
        if (next < candidates.size() && candidates[next] == i) {
          ++next;
          continue;
        }
        if (rejected >= kMaxTrailRejections) {
          out->candidates_omitted += static_cast<int64_t>(idx.all.size() - i) -
                                     static_cast<int64_t>(candidates.size() - next);
          break;
        }
        std::string why;
        if (!ConfigurationMatches(det.spec, kind, idx.all[i].configuration, frame_config, &why,
                                  nullptr)) {
          reject(idx.all[i], why);
        }
      }
    } else {
      // Nothing matched textually: compare every series (numbers written differently, e.g.
      // "2" and "2.0", still match), which also explains every rejection.
      out->trail.clear();
      rejected = 0;
      for (const CachedSeries& s : idx.all) {
        std::string why;
        double distance = 0;
        if (ConfigurationMatches(det.spec, kind, s.configuration, frame_config, &why,
                                 &distance)) {
          matches.push_back(Match{&s, distance});
        } else {
          reject(s, why);
        }
      }
    }
  }
  std::stable_sort(matches.begin(), matches.end(),
                   [](const Match& a, const Match& b) { return a.distance < b.distance; });
  auto fail = [&](absl::Status s) {
    out->status = std::move(s);
    out->chosen.reset();
    out->method.clear();
    return absl::OkStatus();
  };

  // 1. Pins.
  if (auto pit = req.pinned.find(kind); pit != req.pinned.end()) {
    const PinnedVersion& pin = pit->second;
    std::optional<MasterVersion> chosen;
    if (!pin.sha256.empty()) {
      absl::StatusOr<std::vector<MasterVersion>> found = FindByShaLocked(pin.sha256);
      if (!found.ok()) return fail(found.status());
      for (const MasterVersion& v : *found) {
        if (v.detector != req.detector || v.kind != kind) continue;
        const bool in_match = std::any_of(matches.begin(), matches.end(), [&](const Match& m) {
          return m.series->id == v.series_id;
        });
        if (!chosen || in_match) chosen = v;
        if (in_match) break;
      }
      if (!chosen) {
        return fail(absl::NotFoundError(absl::StrCat("pinned ", kind, " sha256 ", pin.sha256,
                                                     " is not a stored ", kind, " of ",
                                                     req.detector)));
      }
    } else {
      int64_t series_id = pin.series_id;
      if (series_id == 0) {
        if (matches.empty()) {
          return fail(absl::NotFoundError(
              absl::StrCat("pinned ", kind, " version ", pin.version, ": no ", kind,
                           " series of ", req.detector, " matches configuration ",
                           FormatConfig(frame_config))));
        }
        series_id = matches.front().series->id;
      }
      absl::StatusOr<MasterVersion> v = GetVersionLocked(series_id, pin.version);
      if (!v.ok()) {
        if (absl::IsNotFound(v.status())) {
          return fail(absl::NotFoundError(absl::StrCat("pinned ", kind, " version ", pin.version,
                                                       " does not exist: ",
                                                       v.status().message())));
        }
        return v.status();
      }
      if (v->detector != req.detector || v->kind != kind) {
        return fail(absl::InvalidArgumentError(absl::StrCat(
            "pinned series ", series_id, " holds ", v->detector, " ", v->kind, ", not ",
            req.detector, " ", kind)));
      }
      chosen = *v;
    }
    TrailEntry e;
    e.series_id = chosen->series_id;
    e.version = chosen->version;
    e.sha256 = chosen->sha256;
    e.configuration = chosen->configuration;
    e.chosen = true;
    std::string why;
    const bool ok = ConfigurationMatches(det.spec, kind, chosen->configuration, frame_config,
                                         &why, nullptr);
    e.reason = absl::StrCat("chosen: pinned by the request",
                            ok ? "" : absl::StrCat(" (note: ", why, ")"));
    out->trail.push_back(std::move(e));
    out->chosen = std::move(chosen);
    out->method = "pinned";
    return absl::OkStatus();
  }

  if (!t) return fail(absl::InvalidArgumentError("the frame's time is unknown"));
  if (matches.empty()) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "no ", kind, " of ", req.detector, " matches configuration ", FormatConfig(frame_config),
        "; put and certify one")));
  }

  // 2. Certifications holding the time.
  struct Candidate {
    Certification cert;
    double distance;
  };
  std::vector<Candidate> holding;
  std::vector<TrailEntry> misses;
  for (const Match& m : matches) {
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> before,
        conn_->Query(absl::StrCat("SELECT ", kCertCols,
                                  " WHERE series_id = ? AND begin_us <= ? ORDER BY begin_us DESC "
                                  "LIMIT 2"),
                     {m.series->id, *t}));
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> after,
        conn_->Query(absl::StrCat("SELECT ", kCertCols,
                                  " WHERE series_id = ? AND begin_us > ? ORDER BY begin_us LIMIT 1"),
                     {m.series->id, *t}));
    // The latest certification starting at or before t (it may hold t) and the one before it.
    for (const SqlRow& row : before) {
      Certification c = RowToCert(row);
      if (c.Holds(*t)) {
        holding.push_back(Candidate{c, m.distance});
      } else {
        TrailEntry e;
        e.series_id = c.series_id;
        e.version = c.version;
        e.configuration = m.series->configuration;
        e.reason = absl::StrCat("rejected: certified ", FormatRange(c.begin, c.end),
                                " ended before the frame time ", FormatTime(*t));
        e.certification = std::move(c);
        misses.push_back(std::move(e));
      }
    }
    if (!after.empty()) {
      Certification c = RowToCert(after[0]);
      TrailEntry e;
      e.series_id = c.series_id;
      e.version = c.version;
      e.configuration = m.series->configuration;
      e.reason = absl::StrCat("rejected: certified ", FormatRange(c.begin, c.end),
                              " starts after the frame time ", FormatTime(*t));
      e.certification = std::move(c);
      misses.push_back(std::move(e));
    }
    if (before.empty() && after.empty()) {
      TrailEntry e;
      e.series_id = m.series->id;
      e.configuration = m.series->configuration;
      e.reason = "rejected: configuration matches but no version of this series is certified";
      misses.push_back(std::move(e));
    }
  }
  if (!holding.empty()) {
    std::stable_sort(holding.begin(), holding.end(), [](const Candidate& a, const Candidate& b) {
      if (a.distance != b.distance) return a.distance < b.distance;
      if (a.cert.begin != b.cert.begin) return a.cert.begin > b.cert.begin;
      return a.cert.version > b.cert.version;
    });
    for (size_t i = 0; i < holding.size(); ++i) {
      const Certification& c = holding[i].cert;
      CALIBD_ASSIGN_OR_RETURN(MasterVersion v, GetVersionLocked(c.series_id, c.version));
      TrailEntry e;
      e.series_id = c.series_id;
      e.version = c.version;
      e.sha256 = v.sha256;
      e.configuration = v.configuration;
      e.certification = c;
      if (i == 0) {
        e.chosen = true;
        e.reason = absl::StrCat("chosen: certified ", FormatRange(c.begin, c.end),
                                " holds the frame time ", FormatTime(*t),
                                holding.size() > 1 ? " and its configuration is the closest" : "");
        out->chosen = std::move(v);
      } else {
        e.reason = absl::StrCat("rejected: certified ", FormatRange(c.begin, c.end),
                                " holds the frame time too, but another series' configuration "
                                "is closer or its certification newer");
      }
      out->trail.push_back(std::move(e));
    }
    for (TrailEntry& e : misses) out->trail.push_back(std::move(e));
    out->method = "certified";
    return absl::OkStatus();
  }
  for (TrailEntry& e : misses) out->trail.push_back(std::move(e));
  if (req.policy == SelectionPolicy::kStrict) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "no certified ", kind, " of ", req.detector, " for configuration ",
        FormatConfig(frame_config), " at ", FormatTime(*t),
        "; certify one, pin a version, or use the nearest policy")));
  }

  // 3. Nearest in time among matching, not decertified versions.
  struct Near {
    MasterVersion v;
    TimeMicros dt;
    double distance;
  };
  std::vector<Near> near;
  for (const Match& m : matches) {
    for (const char* q :
         {" WHERE v.series_id = ? AND v.obs_time <= ? AND v.decertified_at IS NULL ORDER BY "
          "v.obs_time DESC, v.version DESC LIMIT 1",
          " WHERE v.series_id = ? AND v.obs_time > ? AND v.decertified_at IS NULL ORDER BY "
          "v.obs_time, v.version DESC LIMIT 1"}) {
      CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                              conn_->Query(absl::StrCat("SELECT ", kVersionCols, q),
                                           {m.series->id, *t}));
      if (rows.empty()) continue;
      MasterVersion v = RowToVersion(rows[0]);
      const TimeMicros dt = v.obs_time > *t ? v.obs_time - *t : *t - v.obs_time;
      near.push_back(Near{std::move(v), dt, m.distance});
    }
  }
  std::stable_sort(near.begin(), near.end(), [](const Near& a, const Near& b) {
    if (a.dt != b.dt) return a.dt < b.dt;
    if (a.distance != b.distance) return a.distance < b.distance;
    return a.v.version > b.v.version;
  });
  bool chosen = false;
  for (Near& n : near) {
    TrailEntry e;
    e.series_id = n.v.series_id;
    e.version = n.v.version;
    e.sha256 = n.v.sha256;
    e.configuration = n.v.configuration;
    const std::string age = absl::StrCat(static_cast<double>(n.dt) / kMicrosPerSecond, " s");
    if (req.max_age > 0 && n.dt > req.max_age) {
      e.reason = absl::StrCat("rejected: nearest in time but ", age, " from the frame, more than "
                              "max_age ", static_cast<double>(req.max_age) / kMicrosPerSecond,
                              " s");
    } else if (!chosen) {
      chosen = true;
      e.chosen = true;
      e.reason = absl::StrCat("chosen: nearest in time (", age,
                              " from the frame) with no certification holding the frame time");
      out->chosen = n.v;
    } else {
      e.reason = absl::StrCat("rejected: ", age, " from the frame, farther than the chosen one");
    }
    out->trail.push_back(std::move(e));
  }
  if (!chosen) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "no ", kind, " of ", req.detector, " for configuration ", FormatConfig(frame_config),
        " is certified at ", FormatTime(*t), " or within max_age of it",
        "; certify one, pin a version, or widen max_age")));
  }
  out->method = "nearest";
  return absl::OkStatus();
}

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
  auto store = std::make_unique<CatalogStore>(absl::StrCat("embedded:", dir), *std::move(conn),
                                              internal::NewFileBlobBackend(dir), options, lock_fd,
                                              nullptr, "");
  CALIBD_RETURN_IF_ERROR(store->Migrate());
  if (alone) {
    CALIBD_RETURN_IF_ERROR(store->CollectGarbage().status());
  }
  flock(lock_fd, LOCK_SH);
  return store;
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
      if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
        std::filesystem::remove_all(e.path(), ec);
      }
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
  absl::StatusOr<std::unique_ptr<SqlConnection>> conn = internal::OpenPostgres(url);
  if (!conn.ok()) {
    cleanup();
    return conn.status();
  }
  absl::StatusOr<std::unique_ptr<BlobBackend>> blobs = internal::NewPgBlobBackend(url, spool);
  if (!blobs.ok()) {
    cleanup();
    return blobs.status();
  }
  absl::StatusOr<std::unique_ptr<SqlConnection>> listen = internal::OpenPostgres(url);
  if (!listen.ok()) {
    cleanup();
    return listen.status();
  }
  CALIBD_RETURN_IF_ERROR((*listen)->ExecScript("LISTEN calibd_changes"));
  // Describe without the password.
  std::string shown = url;
  if (size_t at = shown.find('@'); at != std::string::npos) {
    size_t scheme = shown.find("://");
    size_t colon = shown.find(':', scheme == std::string::npos ? 0 : scheme + 3);
    if (colon != std::string::npos && colon < at) shown.replace(colon + 1, at - colon - 1, "***");
  }
  auto store = std::make_unique<CatalogStore>(shown, *std::move(conn), *std::move(blobs), options,
                                              -1, *std::move(listen), owned);
  CALIBD_RETURN_IF_ERROR(store->Migrate());
  CALIBD_RETURN_IF_ERROR(store->CollectGarbage().status());
  return store;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CalibrationStore>> OpenStore(const std::string& url,
                                                            const StoreOptions& options) {
  if (url.empty()) return absl::InvalidArgumentError("empty store URL: give a directory or postgresql://…");
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
