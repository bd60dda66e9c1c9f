// The CalibrationStore methods with defaults: the transitional pre-paging API in terms of the
// paged one and back (store.h), and generic fallbacks of the newer calls for stores that only
// implement the older ones.
#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/store.h"

namespace calibd::store {

absl::StatusOr<Page<DetectorRecord>> CalibrationStore::ListDetectors(const PageRequest& page) {
  Page<DetectorRecord> out;
  CALIBD_ASSIGN_OR_RETURN(out.items, ListDetectors());
  return out;
}

absl::StatusOr<Page<MasterVersion>> CalibrationStore::ListMasters(const MasterFilter& filter,
                                                                  const PageRequest& page) {
  Page<MasterVersion> out;
  CALIBD_ASSIGN_OR_RETURN(out.items, ListMasters(filter));
  return out;
}

absl::StatusOr<Page<MasterVersion>> CalibrationStore::History(int64_t series_id,
                                                              const PageRequest& page) {
  Page<MasterVersion> out;
  CALIBD_ASSIGN_OR_RETURN(out.items, History(series_id));
  return out;
}

absl::StatusOr<std::vector<VersionCount>> CalibrationStore::CountVersions() {
  std::vector<VersionCount> out;
  PageRequest page{kMaxPageSize, ""};
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  do {
    CALIBD_ASSIGN_OR_RETURN(Page<MasterVersion> p, ListMasters(MasterFilter{}, page));
    for (const MasterVersion& v : p.items) ++counts[{v.detector, v.kind}];
    page.page_token = p.next_page_token;
  } while (!page.page_token.empty());
  for (const auto& [k, n] : counts) out.push_back(VersionCount{k.first, k.second, n});
  return out;
}

// Generic (for wrappers that do not forward it): every certification and version of each
// matching series, through the public calls. CatalogStore fetches only what can decide.
absl::StatusOr<SelectionCandidates> CalibrationStore::FetchCandidates(const DetectorSpec& spec,
                                                                      const KindRequest& req,
                                                                      int64_t only_series) {
  MasterFilter f;
  f.detector = req.detector;
  f.kind = req.kind;
  f.series_id = only_series;
  f.limit = 0;
  CALIBD_ASSIGN_OR_RETURN(std::vector<SeriesInfo> series, ListSeries(f));
  SelectionCandidates out;
  for (SeriesInfo& s : series) {
    SeriesCandidate c;
    c.series_id = s.id;
    c.configuration = std::move(s.configuration);
    if (only_series != 0 || ConfigurationMatches(spec, req.kind, c.configuration,
                                                 req.configuration, nullptr, nullptr)) {
      c.fetched = true;
      CALIBD_ASSIGN_OR_RETURN(c.certifications, ListCertifications(s.id));
      CALIBD_ASSIGN_OR_RETURN(c.versions, History(s.id));
    }
    out.series.push_back(std::move(c));
  }
  if (req.pin && !req.pin->sha256.empty()) {
    for (const SeriesCandidate& c : out.series) {
      for (const MasterVersion& v : c.versions) {
        if (v.sha256 == req.pin->sha256) out.sha_matches.push_back(v);
      }
    }
  } else if (req.pin) {
    if (const int64_t sid = PinnedSeries(spec, out, req); sid != 0) {
      absl::StatusOr<MasterVersion> v = GetVersion(sid, req.pin->version);
      if (v.ok()) {
        out.pinned_version = *std::move(v);
      } else if (!absl::IsNotFound(v.status())) {
        return v.status();
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<AuditEntry>> CalibrationStore::SeriesAudit(int64_t series_id,
                                                                      int64_t min_version,
                                                                      int64_t max_version) {
  CALIBD_ASSIGN_OR_RETURN(std::vector<AuditEntry> all, AuditLog(0, 0));
  std::vector<AuditEntry> out;
  for (AuditEntry& e : all) {
    if (e.series_id == series_id && e.version >= min_version && e.version <= max_version) {
      out.push_back(std::move(e));
    }
  }
  return out;
}

absl::StatusOr<std::vector<DetectorRecord>> CalibrationStore::ListDetectors() {
  std::vector<DetectorRecord> all;
  PageRequest page{kMaxPageSize, ""};
  do {
    CALIBD_ASSIGN_OR_RETURN(Page<DetectorRecord> p, ListDetectors(page));
    for (DetectorRecord& d : p.items) all.push_back(std::move(d));
    page.page_token = p.next_page_token;
  } while (!page.page_token.empty());
  return all;
}

absl::StatusOr<std::vector<MasterVersion>> CalibrationStore::ListMasters(
    const MasterFilter& filter) {
  std::vector<MasterVersion> all;
  PageRequest page{kMaxPageSize, ""};
  do {
    CALIBD_ASSIGN_OR_RETURN(Page<MasterVersion> p, ListMasters(filter, page));
    for (MasterVersion& v : p.items) {
      if (filter.limit > 0 && static_cast<int>(all.size()) >= filter.limit) return all;
      all.push_back(std::move(v));
    }
    page.page_token = p.next_page_token;
  } while (!page.page_token.empty());
  return all;
}

absl::StatusOr<std::vector<MasterVersion>> CalibrationStore::History(int64_t series_id) {
  std::vector<MasterVersion> all;
  PageRequest page{kMaxPageSize, ""};
  do {
    CALIBD_ASSIGN_OR_RETURN(Page<MasterVersion> p, History(series_id, page));
    for (MasterVersion& v : p.items) all.push_back(std::move(v));
    page.page_token = p.next_page_token;
  } while (!page.page_token.empty());
  return all;
}

}  // namespace calibd::store
