// CatalogStore: putting masters (the one content validator, see store.h) and reading them back.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "core/fits/fits.h"
#include "core/hash/sha256.h"
#include "core/status/macros.h"
#include "core/store/catalog_codec.h"
#include "core/store/catalog_store.h"
#include "core/store/errors.h"
#include "core/store/master_content.h"

namespace calibd::store::internal {
namespace {

struct TempFile {
  std::string path;
  ~TempFile() { unlink(path.c_str()); }
};

// What PutMaster learned from the content.
struct Content {
  int width = 0, height = 0;
  std::string content_sha;  // PixelDigest
  std::string sha;          // of the blob bytes
  int64_t size = 0;
};

}  // namespace

absl::StatusOr<MasterVersion> CatalogStore::PutMaster(const PutMasterRequest& req,
                                                      const std::string& actor) {
  if (actor.empty()) {
    return absl::InvalidArgumentError("the actor (who makes the change) must be given");
  }
  if (!ValidKind(req.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kind '", req.kind, "' must be lowercase letters, digits and '_' (e.g. bias, dark)"));
  }
  if (req.fits_path.empty() == (req.frame == nullptr)) {
    return absl::InvalidArgumentError(
        "PutMaster needs exactly one of fits_path (a spooled FITS file) or frame");
  }
  if (!req.client_sha256.empty() && !hash::IsSha256Hex(req.client_sha256)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client sha256 '", req.client_sha256, "' is not 64 lowercase hex digits"));
  }
  if (req.expected_version < 0) return absl::InvalidArgumentError("expected_version must be >= 0");
  DetectorRecord det;
  {
    absl::MutexLock lock(&mu_);
    CALIBD_ASSIGN_OR_RETURN(det, GetDetectorLocked(req.detector, 0));
  }
  // The content: read and check it, spool the blob bytes, hash them.
  TempFile temp{blobs_->TempPath()};
  Content c;
  std::optional<CalibratedFrame> read;
  if (req.frame == nullptr) {
    struct stat st;
    if (stat(req.fits_path.c_str(), &st) != 0) {
      return FileError(errno, "the master file cannot be read", req.fits_path);
    }
    if (st.st_size > options_.max_blob_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("the master is ", st.st_size,
                                                       " bytes; the store accepts at most ",
                                                       options_.max_blob_bytes));
    }
    CALIBD_ASSIGN_OR_RETURN(read, ReadMasterFile(req.fits_path, options_.pool));
  }
  const CalibratedFrame& frame = req.frame != nullptr ? *req.frame : *read;
  // Request header cards win over the file's: look them up first.
  Header lookup = req.header;
  for (const HeaderCard& card : frame.header.cards()) lookup.Append(card);
  Configuration config = req.configuration;
  if (config.empty()) {
    CALIBD_ASSIGN_OR_RETURN(config, ExtractConfiguration(det.spec, req.kind, lookup));
  }
  CALIBD_ASSIGN_OR_RETURN(const auto binning, MasterBinning(config));
  CALIBD_RETURN_IF_ERROR(CheckMasterContent(det.spec, req.kind, frame, binning));
  c.content_sha = PixelDigest(frame);
  c.width = frame.width();
  c.height = frame.height();
  if (req.frame != nullptr) {
    fits::WriteOptions wo;
    wo.overwrite = true;
    CALIBD_RETURN_IF_ERROR(Redact(
        Context(fits::WriteCalibratedFrame(temp.path, *req.frame, wo), "writing the master's blob"),
        temp.path, "the blob"));
  }
  read.reset();  // the pixels are no longer needed
  CALIBD_ASSIGN_OR_RETURN(c.sha, HashFile(req.frame != nullptr ? temp.path : req.fits_path,
                                          req.frame != nullptr ? "" : temp.path, &c.size));
  if (c.size > options_.max_blob_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the master blob is ", c.size, " bytes; the store accepts at most ",
        options_.max_blob_bytes));
  }
  if (!req.client_sha256.empty() && req.client_sha256 != c.sha) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sha256 mismatch: the client said ", req.client_sha256, " but the received bytes hash to ",
        c.sha, "; the upload was damaged, send it again"));
  }
  const TimeMicros now = NowMicros();
  TimeMicros obs_time = now;
  if (req.obs_time) {
    obs_time = *req.obs_time;
  } else if (absl::StatusOr<TimeMicros> t = ExtractTime(det.spec, lookup); t.ok()) {
    obs_time = *t;
  }
  CALIBD_RETURN_IF_ERROR(blobs_->Persist(temp.path, c.sha, c.size));

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
    if (srows.empty()) return RetryableError("series vanished");
    const int64_t series_id = srows[0].Int(0);
    const int64_t latest = srows[0].Int(1);
    CALIBD_ASSIGN_OR_RETURN(
        std::vector<SqlRow> same,
        conn_->Query(absl::StrCat("SELECT ", kVersionCols,
                                  " WHERE v.series_id = ? AND (v.sha256 = ? OR "
                                  "v.content_sha256 = ?) ORDER BY v.version LIMIT 1"),
                     {series_id, c.sha, c.content_sha}));
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
            FormatConfig(config),
            " exists with other content; versions are immutable — put without expected_version "
            "to add version ",
            version));
      }
      return absl::AbortedError(absl::StrCat("expected to create version ", req.expected_version,
                                             " but the series is at version ", latest,
                                             "; re-read the series and retry"));
    }
    CALIBD_RETURN_IF_ERROR(conn_->Exec(
        "INSERT INTO versions (series_id, version, sha256, content_sha256, size_bytes, width, "
        "height, created_at, obs_time, detector_version, actor, attributes_json, "
        "provenance_json, statistics_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        {series_id, version, c.sha, c.content_sha, c.size, int64_t{c.width}, int64_t{c.height},
         now, obs_time, det.version, actor, StringMapJson(req.attributes),
         ProvenanceJson(req.provenance), StatsJson(req.statistics)}));
    CALIBD_RETURN_IF_ERROR(conn_->Exec("UPDATE series SET latest_version = ? WHERE id = ?",
                                       {version, series_id}));
    CALIBD_RETURN_IF_ERROR(
        Audit(now, actor, "put_master",
              absl::StrCat(req.detector, " ", req.kind, " series ", series_id, " v", version),
              absl::StrCat("sha256 ", c.sha, ", ", c.size, " bytes, configuration ",
                           FormatConfig(config)),
              series_id, version));
    MasterVersion v;
    v.series_id = series_id;
    v.detector = req.detector;
    v.kind = req.kind;
    v.configuration = config;
    v.version = version;
    v.sha256 = c.sha;
    v.size_bytes = c.size;
    v.width = c.width;
    v.height = c.height;
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

absl::Status CatalogStore::CheckKnownSha(const std::string& sha) {
  absl::MutexLock lock(&mu_);
  if (!hash::IsSha256Hex(sha)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", sha, "' is not a sha256 (64 lowercase hex digits)"));
  }
  CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                          conn_->Query("SELECT 1 FROM versions WHERE sha256 = ? LIMIT 1", {sha}));
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("no stored master has sha256 ", sha));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const CalibratedFrame>> CatalogStore::LoadMaster(
    const std::string& sha256) {
  if (auto hit = cache_.Lookup(sha256)) return hit;
  CALIBD_RETURN_IF_ERROR(CheckKnownSha(sha256));
  return cache_.GetOrLoad(sha256, [&]() -> absl::StatusOr<CalibratedFrame> {
    CALIBD_ASSIGN_OR_RETURN(std::string path, blobs_->Materialize(sha256));
    fits::ReadOptions ro;
    ro.verify_checksum = true;
    ro.pool = options_.pool;
    absl::StatusOr<CalibratedFrame> frame = fits::ReadCalibratedFrame(path, ro);
    if (!frame.ok()) {
      return WithDetail(absl::StatusCode::kDataLoss,
                        absl::StrCat("stored master ", sha256, " cannot be decoded"),
                        frame.status().message());
    }
    return frame;
  });
}

absl::StatusOr<std::string> CatalogStore::MaterializeBlob(const std::string& sha256) {
  CALIBD_RETURN_IF_ERROR(CheckKnownSha(sha256));
  return blobs_->Materialize(sha256);
}

absl::Status CatalogStore::ReadBlob(const std::string& sha256, size_t chunk_bytes,
                                    const std::function<absl::Status(absl::string_view)>& sink) {
  if (chunk_bytes == 0) return absl::InvalidArgumentError("chunk_bytes must be > 0");
  CALIBD_ASSIGN_OR_RETURN(std::string path, MaterializeBlob(sha256));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return WithDetail(absl::StatusCode::kDataLoss,
                      absl::StrCat("stored master ", sha256, " vanished while being read"), path);
  }
  std::vector<char> buf(chunk_bytes);
  absl::Status status;
  while (status.ok()) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) status = FileError(errno, "reading a stored master", path);
    if (n <= 0) break;
    status = sink(absl::string_view(buf.data(), n));
  }
  close(fd);
  return status;
}

}  // namespace calibd::store::internal
