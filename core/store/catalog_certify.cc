// CatalogStore: certifying versions for time ranges, and taking certifications back.
#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/catalog_codec.h"
#include "core/store/catalog_store.h"
#include "core/store/cert_ranges.h"

namespace calibd::store::internal {

absl::StatusOr<Certification> CatalogStore::Certify(const CertifyRequest& req) {
  if (req.actor.empty()) {
    return absl::InvalidArgumentError("the actor (who makes the change) must be given");
  }
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
    CALIBD_RETURN_IF_ERROR(
        conn_->Exec("UPDATE versions SET decertified_at = NULL WHERE series_id = ? AND version = ?",
                    {req.series_id, req.version}));
    std::string replaced;
    for (const Certification& c : overlapping) {
      const Range cut = IntersectRange({c.begin, c.end}, {req.begin, req.end});
      absl::StrAppend(&replaced, replaced.empty() ? ", replacing " : "; ", "v", c.version, " ",
                      FormatRange(cut.begin, cut.end));
    }
    CALIBD_RETURN_IF_ERROR(Audit(
        now, req.actor, "certify",
        absl::StrCat(target.detector, " ", target.kind, " series ", req.series_id, " v",
                     req.version),
        absl::StrCat(FormatRange(req.begin, req.end), replaced,
                     req.reason.empty() ? "" : absl::StrCat("; reason: ", req.reason)),
        req.series_id, req.version));
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

absl::Status CatalogStore::Decertify(const DecertifyRequest& req) {
  if (req.actor.empty()) {
    return absl::InvalidArgumentError("the actor (who makes the change) must be given");
  }
  if (req.end && !req.begin) return absl::InvalidArgumentError("decertify: a range end needs a begin");
  if (req.begin && req.end && *req.end <= *req.begin) {
    return absl::InvalidArgumentError(
        absl::StrCat("decertify range ", FormatRange(*req.begin, req.end), " is empty"));
  }
  absl::MutexLock lock(&mu_);
  return WithTx<bool>(true, [&]() -> absl::StatusOr<bool> {
           CALIBD_RETURN_IF_ERROR(LockSeries(req.series_id));
           CALIBD_ASSIGN_OR_RETURN(MasterVersion target,
                                   GetVersionLocked(req.series_id, req.version));
           const Range removed{req.begin.value_or(std::numeric_limits<TimeMicros>::min()),
                               req.begin ? req.end : std::nullopt};
           CALIBD_ASSIGN_OR_RETURN(
               std::vector<Certification> hit,
               Overlapping(req.series_id, req.version, removed.begin, removed.end));
           if (hit.empty()) {
             return absl::NotFoundError(absl::StrCat(
                 "version ", req.version, " of series ", req.series_id, " has no certification",
                 req.begin ? absl::StrCat(" overlapping ", FormatRange(*req.begin, req.end)) : "",
                 "; list its certifications"));
           }
           const TimeMicros now = NowMicros();
           std::string cut_ranges;
           for (const Certification& c : hit) {
             CALIBD_RETURN_IF_ERROR(CutCertification(c, removed.begin, removed.end));
             const Range cut = IntersectRange({c.begin, c.end}, removed);
             absl::StrAppend(&cut_ranges, cut_ranges.empty() ? "" : ", ",
                             FormatRange(cut.begin, cut.end));
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
                            " (removed ", cut_ranges, ")",
                            req.reason.empty() ? "" : absl::StrCat("; reason: ", req.reason)),
               req.series_id, req.version));
           return true;
         })
      .status();
}

absl::StatusOr<std::vector<Certification>> CatalogStore::ListCertifications(int64_t series_id) {
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

absl::Status CatalogStore::LockSeries(int64_t series_id) {
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

absl::StatusOr<std::vector<Certification>> CatalogStore::Overlapping(
    int64_t series_id, std::optional<int64_t> version, TimeMicros b, std::optional<TimeMicros> e) {
  std::string sql =
      absl::StrCat("SELECT ", kCertCols, " WHERE series_id = ? AND (end_us IS NULL OR end_us > ?)");
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
absl::Status CatalogStore::CutCertification(const Certification& c, TimeMicros b,
                                            std::optional<TimeMicros> e) {
  CALIBD_RETURN_IF_ERROR(conn_->Exec("DELETE FROM certifications WHERE id = ?", {c.id}));
  for (const Range& piece : SubtractRange({c.begin, c.end}, {b, e})) {
    CALIBD_RETURN_IF_ERROR(conn_->Exec(
        "INSERT INTO certifications (series_id, version, begin_us, end_us, created_at, actor, "
        "reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
        {c.series_id, c.version, piece.begin, SqlNullable(piece.end), c.created_at, c.actor,
         c.reason}));
  }
  return absl::OkStatus();
}

}  // namespace calibd::store::internal
