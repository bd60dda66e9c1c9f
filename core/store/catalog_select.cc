// CatalogStore: selection — the catalog fetches the candidates (using an in-memory index of the
// series, which never change once written) and the pure SelectKind (selection.cc) decides.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/hash/sha256.h"
#include "core/status/macros.h"
#include "core/store/catalog_codec.h"
#include "core/store/catalog_store.h"

namespace calibd::store::internal {
namespace {

// Series that cannot match but are listed in the trail to explain why (the rest are counted).
constexpr size_t kExplainedSeries = 10;

std::string Sig(const std::vector<std::string>& keys) { return absl::StrJoin(keys, "\x1f"); }

}  // namespace

// ---------------------------------------------------------------- the series index
void KindIndex::Add(size_t i, const std::map<std::string, double>& tolerances) {
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

void KindIndex::Ensure(const std::map<std::string, double>& tolerances) {
  std::string tsig;
  for (const auto& [k, v] : tolerances) absl::StrAppend(&tsig, k, "\x1f");
  if (built && tsig == tolerance_signature) return;
  signatures.clear();
  buckets.clear();
  for (size_t i = 0; i < all.size(); ++i) Add(i, tolerances);
  tolerance_signature = tsig;
  built = true;
}

std::vector<size_t> KindIndex::Candidates(const Configuration& frame) const {
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
  std::sort(out.begin(), out.end());
  return out;
}

// New series since the last call (series rows never change once written).
absl::Status CatalogStore::RefreshSeries() {
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> rows,
      conn_->Query("SELECT id, detector, kind, config_key FROM series WHERE id > ? ORDER BY id",
                   {max_series_id_}));
  for (const SqlRow& r : rows) {
    KindIndex& idx = series_by_kind_[std::make_pair(r.Text(1), r.Text(2))];
    idx.all.push_back(KindIndex::Series{r.Int(0), ParseConfig(r.Text(3))});
    idx.built = false;
    max_series_id_ = std::max(max_series_id_, r.Int(0));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- candidates
absl::StatusOr<SelectionCandidates> CatalogStore::FetchCandidates(const DetectorSpec& spec,
                                                                  const KindRequest& request,
                                                                  int64_t only_series) {
  absl::MutexLock lock(&mu_);
  CALIBD_RETURN_IF_ERROR(RefreshSeries());
  return FetchCandidatesLocked(spec, request, only_series);
}

absl::StatusOr<SelectionCandidates> CatalogStore::FetchCandidatesLocked(
    const DetectorSpec& spec, const KindRequest& req, int64_t only_series) {
  SelectionCandidates out;
  auto sit = series_by_kind_.find(std::make_pair(req.detector, req.kind));
  if (sit != series_by_kind_.end()) {
    KindIndex& idx = sit->second;
    idx.Ensure(TolerancesOf(spec));
    std::vector<size_t> matched, unmatched;
    if (only_series != 0) {
      for (size_t i = 0; i < idx.all.size(); ++i) {
        if (idx.all[i].id == only_series) matched.push_back(i);
      }
    } else {
      auto matches = [&](size_t i) {
        return ConfigurationMatches(spec, req.kind, idx.all[i].configuration, req.configuration,
                                    nullptr, nullptr);
      };
      // Fast path: only the series whose untoleranced values equal the frame's can match.
      std::vector<size_t> fast = idx.Candidates(req.configuration);
      for (size_t i : fast) (matches(i) ? matched : unmatched).push_back(i);
      if (matched.empty()) {
        // Nothing matched textually: compare every series (numbers written differently, e.g.
        // "2" and "2.0", still match).
        unmatched.clear();
        for (size_t i = 0; i < idx.all.size(); ++i) (matches(i) ? matched : unmatched).push_back(i);
      } else {
        // The rest differ in an untoleranced key: explain a few, count the others.
        size_t next = 0;
        for (size_t i = 0; i < idx.all.size() && unmatched.size() < kExplainedSeries; ++i) {
          while (next < fast.size() && fast[next] < i) ++next;
          if (next < fast.size() && fast[next] == i) continue;
          unmatched.push_back(i);
        }
      }
      if (unmatched.size() > kExplainedSeries) unmatched.resize(kExplainedSeries);
      out.series_omitted = static_cast<int64_t>(idx.all.size() - matched.size() - unmatched.size());
    }
    for (size_t i : matched) {
      SeriesCandidate s;
      s.series_id = idx.all[i].id;
      s.configuration = idx.all[i].configuration;
      s.fetched = true;
      CALIBD_RETURN_IF_ERROR(FetchSeriesRows(req, &s));
      out.series.push_back(std::move(s));
    }
    for (size_t i : unmatched) {
      out.series.push_back(SeriesCandidate{idx.all[i].id, idx.all[i].configuration, false, {}, {}});
    }
    std::sort(out.series.begin(), out.series.end(),
              [](const SeriesCandidate& a, const SeriesCandidate& b) {
                return a.series_id < b.series_id;
              });
  }
  if (req.pin && !req.pin->sha256.empty() && hash::IsSha256Hex(req.pin->sha256)) {
    CALIBD_ASSIGN_OR_RETURN(std::vector<MasterVersion> found, FindByShaLocked(req.pin->sha256));
    for (MasterVersion& v : found) {
      if (v.detector == req.detector && v.kind == req.kind) out.sha_matches.push_back(std::move(v));
    }
  } else if (req.pin && req.pin->sha256.empty()) {
    if (const int64_t sid = PinnedSeries(spec, out, req); sid != 0) {
      absl::StatusOr<MasterVersion> v = GetVersionLocked(sid, req.pin->version);
      if (v.ok()) {
        out.pinned_version = *std::move(v);
      } else if (!absl::IsNotFound(v.status())) {
        return v.status();
      }
    }
  }
  return out;
}

// The certifications and versions of one series that can decide `req` (see SeriesCandidate).
absl::Status CatalogStore::FetchSeriesRows(const KindRequest& req, SeriesCandidate* s) {
  if (!req.time) return absl::OkStatus();
  const TimeMicros t = *req.time;
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> before,
      conn_->Query(absl::StrCat("SELECT ", kCertCols,
                                " WHERE series_id = ? AND begin_us <= ? ORDER BY begin_us DESC "
                                "LIMIT 2"),
                   {s->series_id, t}));
  CALIBD_ASSIGN_OR_RETURN(
      std::vector<SqlRow> after,
      conn_->Query(absl::StrCat("SELECT ", kCertCols,
                                " WHERE series_id = ? AND begin_us > ? ORDER BY begin_us LIMIT 1"),
                   {s->series_id, t}));
  for (const SqlRow& r : before) s->certifications.push_back(RowToCert(r));
  for (const SqlRow& r : after) s->certifications.push_back(RowToCert(r));
  std::set<int64_t> have;
  for (const Certification& c : s->certifications) {
    if (!c.Holds(t) || !have.insert(c.version).second) continue;
    CALIBD_ASSIGN_OR_RETURN(MasterVersion v, GetVersionLocked(s->series_id, c.version));
    s->versions.push_back(std::move(v));
  }
  if (req.policy != SelectionPolicy::kNearest) return absl::OkStatus();
  for (const char* q :
       {" WHERE v.series_id = ? AND v.obs_time <= ? AND v.decertified_at IS NULL ORDER BY "
        "v.obs_time DESC, v.version DESC LIMIT 1",
        " WHERE v.series_id = ? AND v.obs_time > ? AND v.decertified_at IS NULL ORDER BY "
        "v.obs_time, v.version DESC LIMIT 1"}) {
    CALIBD_ASSIGN_OR_RETURN(std::vector<SqlRow> rows,
                            conn_->Query(absl::StrCat("SELECT ", kVersionCols, q),
                                         {s->series_id, t}));
    for (const SqlRow& r : rows) {
      MasterVersion v = RowToVersion(r);
      if (have.insert(v.version).second) s->versions.push_back(std::move(v));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- Select
absl::StatusOr<SelectionResult> CatalogStore::Select(const SelectionRequest& req) {
  if (req.kinds.empty()) {
    return absl::InvalidArgumentError("selection needs at least one kind (e.g. bias, dark, flat)");
  }
  for (const std::string& k : req.kinds) {
    if (!ValidKind(k)) return absl::InvalidArgumentError(absl::StrCat("bad kind '", k, "'"));
  }
  if (req.max_age < 0) return absl::InvalidArgumentError("max_age must be >= 0");
  absl::MutexLock lock(&mu_);
  CALIBD_ASSIGN_OR_RETURN(DetectorRecord det,
                          GetDetectorLocked(req.detector, req.detector_version));
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
        return absl::InvalidArgumentError(
            absl::StrCat("cannot select without the frame's time: ", ht.status().message()));
      }
    }
  }
  result.time = t.value_or(0);
  CALIBD_RETURN_IF_ERROR(RefreshSeries());
  for (const std::string& kind : req.kinds) {
    KindRequest k;
    k.detector = req.detector;
    k.kind = kind;
    k.configuration = result.configuration;
    k.time = t;
    k.policy = req.policy;
    k.max_age = req.max_age;
    if (auto pit = req.pinned.find(kind); pit != req.pinned.end()) k.pin = pit->second;
    if (k.pin && !k.pin->sha256.empty() && !hash::IsSha256Hex(k.pin->sha256)) {
      KindSelection bad;
      bad.kind = kind;
      bad.status = absl::InvalidArgumentError(
          absl::StrCat("pinned ", kind, " sha256 '", k.pin->sha256,
                       "' is not a sha256 (64 lowercase hex digits)"));
      result.kinds.push_back(std::move(bad));
      continue;
    }
    // A database failure fails the whole call; everything else is the kind's status.
    CALIBD_ASSIGN_OR_RETURN(SelectionCandidates c, FetchCandidatesLocked(det.spec, k, 0));
    result.kinds.push_back(SelectKind(det.spec, c, k));
  }
  return result;
}

}  // namespace calibd::store::internal
