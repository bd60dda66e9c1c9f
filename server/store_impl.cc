#include "server/store_impl.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status/macros.h"
#include "server/metrics.h"
#include "server/noise_calibration.h"

namespace calibd::server {
namespace {

std::string FormatConfiguration(const store::Configuration& c) {
  if (c.empty()) return "{}";
  return absl::StrCat("{", absl::StrJoin(c, ", ", absl::PairFormatter("=")), "}");
}

}  // namespace

absl::StatusOr<store::SeriesInfo> StoreImpl::ResolveSeries(const SeriesKey& key) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  if (key.detector.empty() || key.kind.empty()) {
    return absl::InvalidArgumentError("detector and kind are required");
  }
  store::MasterFilter f;
  f.detector = key.detector;
  f.kind = key.kind;
  f.configuration = key.configuration;
  CALIBD_ASSIGN_OR_RETURN(std::vector<store::SeriesInfo> series, st->ListSeries(f));
  // The filter matches entries given; an explicit configuration must match the whole series.
  if (!key.configuration.empty()) {
    std::vector<store::SeriesInfo> exact;
    for (store::SeriesInfo& s : series) {
      if (s.configuration == key.configuration) exact.push_back(std::move(s));
    }
    if (!exact.empty()) series = std::move(exact);
  }
  if (series.empty()) {
    return absl::NotFoundError(absl::StrCat("no ", key.kind, " series for detector ",
                                            key.detector, " with configuration ",
                                            FormatConfiguration(key.configuration)));
  }
  if (series.size() > 1) {
    std::vector<std::string> names;
    for (const store::SeriesInfo& s : series) names.push_back(FormatConfiguration(s.configuration));
    return absl::InvalidArgumentError(absl::StrCat(
        series.size(), " ", key.kind, " series of ", key.detector,
        " match; give the configuration, one of: ", absl::StrJoin(names, "; ")));
  }
  return series.front();
}

absl::StatusOr<store::MasterVersion> StoreImpl::PutMaster(const PutMasterInput& in) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  if (in.received_bytes != in.declared_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "received ", in.received_bytes, " bytes but the header declared ", in.declared_bytes,
        "; send exactly total_bytes"));
  }
  if (!in.client_sha256.empty() && in.client_sha256 != in.received_sha256) {
    return absl::DataLossError(absl::StrCat(
        "sha256 of the received bytes is ", in.received_sha256, " but the client sent ",
        in.client_sha256, ": the upload was damaged on the way; retry it"));
  }
  store::PutMasterRequest req;
  req.detector = in.detector;
  req.kind = in.kind;
  req.configuration = in.configuration;
  req.attributes = in.attributes;
  req.fits_path = in.spooled_path;
  req.client_sha256 = in.received_sha256;
  req.obs_time = in.obs_time;
  CALIBD_ASSIGN_OR_RETURN(store::MasterVersion v, st->PutMaster(req, in.actor));
  UpdateVersionMetrics();
  return v;
}

absl::StatusOr<store::MasterVersion> StoreImpl::ResolveMaster(
    const SeriesKey& key, int64_t version, std::optional<store::TimeMicros> at) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  CALIBD_ASSIGN_OR_RETURN(store::SeriesInfo series, ResolveSeries(key));
  if (at.has_value()) {
    CALIBD_ASSIGN_OR_RETURN(store::DetectorRecord det, st->GetDetector(key.detector, 0));
    store::KindRequest k;
    k.detector = key.detector;
    k.kind = key.kind;
    k.configuration = series.configuration;
    k.time = *at;
    k.policy = store::SelectionPolicy::kStrict;
    CALIBD_ASSIGN_OR_RETURN(store::SelectionCandidates c,
                            st->FetchCandidates(det.spec, k, series.id));
    store::KindSelection sel = store::SelectKind(det.spec, c, k);
    if (!sel.status.ok()) {
      if (!absl::IsFailedPrecondition(sel.status)) return sel.status;
      return absl::NotFoundError(absl::StrCat("no ", key.kind, " version of ", key.detector, " ",
                                              FormatConfiguration(series.configuration),
                                              " is certified at ", store::FormatTime(*at)));
    }
    return *std::move(sel.chosen);
  }
  return st->GetVersion(series.id, version > 0 ? version : series.latest_version);
}

absl::StatusOr<std::string> StoreImpl::BlobPath(const std::string& sha256) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  return st->MaterializeBlob(sha256);
}

absl::StatusOr<MasterWithCerts> StoreImpl::WithCertifications(const store::MasterVersion& v) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  MasterWithCerts out;
  out.version = v;
  CALIBD_ASSIGN_OR_RETURN(std::vector<store::Certification> certs,
                          st->ListCertifications(v.series_id));
  for (store::Certification& c : certs) {
    if (c.version == v.version) out.certifications.push_back(std::move(c));
  }
  return out;
}

// The page's versions with their certifications (one ListCertifications per series).
absl::StatusOr<std::vector<MasterWithCerts>> StoreImpl::AttachCertifications(
    store::CalibrationStore& st, std::vector<store::MasterVersion> versions) {
  std::map<int64_t, std::vector<store::Certification>> certs;
  std::vector<MasterWithCerts> out;
  for (store::MasterVersion& v : versions) {
    auto it = certs.find(v.series_id);
    if (it == certs.end()) {
      CALIBD_ASSIGN_OR_RETURN(std::vector<store::Certification> c,
                              st.ListCertifications(v.series_id));
      it = certs.emplace(v.series_id, std::move(c)).first;
    }
    MasterWithCerts m;
    for (const store::Certification& c : it->second) {
      if (c.version == v.version) m.certifications.push_back(c);
    }
    m.version = std::move(v);
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<MasterPage> StoreImpl::ListMasters(const std::string& detector,
                                                  const std::string& kind,
                                                  const store::PageRequest& page) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  store::MasterFilter f;
  f.detector = detector;
  f.kind = kind;
  CALIBD_ASSIGN_OR_RETURN(store::Page<store::MasterVersion> versions, st->ListMasters(f, page));
  MasterPage out;
  CALIBD_ASSIGN_OR_RETURN(out.masters, AttachCertifications(*st, std::move(versions.items)));
  out.next_page_token = std::move(versions.next_page_token);
  return out;
}

absl::StatusOr<std::vector<MasterWithCerts>> StoreImpl::ListMasters(const std::string& detector,
                                                                    const std::string& kind) const {
  std::vector<MasterWithCerts> all;
  store::PageRequest page;
  page.page_size = store::kMaxPageSize;
  do {
    CALIBD_ASSIGN_OR_RETURN(MasterPage p, ListMasters(detector, kind, page));
    for (MasterWithCerts& m : p.masters) all.push_back(std::move(m));
    page.page_token = std::move(p.next_page_token);
  } while (!page.page_token.empty());
  return all;
}

absl::StatusOr<HistoryResult> StoreImpl::History(const SeriesKey& key,
                                                 const store::PageRequest& page) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  if (key.detector.empty() || key.kind.empty()) {
    return absl::InvalidArgumentError("detector and kind are required");
  }
  store::MasterFilter f;
  f.detector = key.detector;
  f.kind = key.kind;
  f.configuration = key.configuration;
  CALIBD_ASSIGN_OR_RETURN(store::Page<store::MasterVersion> versions, st->ListMasters(f, page));
  if (versions.items.empty() && page.page_token.empty()) {
    return absl::NotFoundError(absl::StrCat("no ", key.kind, " series for detector ",
                                            key.detector, " with configuration ",
                                            FormatConfiguration(key.configuration)));
  }
  // The audit entries of exactly this page's versions, keyed by (series id, version).
  std::map<int64_t, std::pair<int64_t, int64_t>> ranges;  // series → [min, max] version
  for (const store::MasterVersion& v : versions.items) {
    auto [it, fresh] = ranges.emplace(v.series_id, std::make_pair(v.version, v.version));
    if (!fresh) {
      it->second.first = std::min(it->second.first, v.version);
      it->second.second = std::max(it->second.second, v.version);
    }
  }
  HistoryResult out;
  for (const auto& [series_id, range] : ranges) {
    CALIBD_ASSIGN_OR_RETURN(std::vector<store::AuditEntry> log,
                            st->SeriesAudit(series_id, range.first, range.second));
    for (store::AuditEntry& e : log) out.events.push_back(std::move(e));
  }
  std::sort(out.events.begin(), out.events.end(),
            [](const store::AuditEntry& a, const store::AuditEntry& b) { return a.id < b.id; });
  CALIBD_ASSIGN_OR_RETURN(out.versions, AttachCertifications(*st, std::move(versions.items)));
  out.next_page_token = std::move(versions.next_page_token);
  return out;
}

absl::StatusOr<HistoryResult> StoreImpl::History(const SeriesKey& key) const {
  HistoryResult all;
  store::PageRequest page;
  page.page_size = store::kMaxPageSize;
  do {
    CALIBD_ASSIGN_OR_RETURN(HistoryResult p, History(key, page));
    for (MasterWithCerts& m : p.versions) all.versions.push_back(std::move(m));
    for (store::AuditEntry& e : p.events) all.events.push_back(std::move(e));
    page.page_token = std::move(p.next_page_token);
  } while (!page.page_token.empty());
  return all;
}

absl::StatusOr<store::Certification> StoreImpl::Certify(const SeriesKey& key, int64_t version,
                                                        store::TimeMicros begin,
                                                        std::optional<store::TimeMicros> end,
                                                        bool replace, const std::string& actor,
                                                        const std::string& reason) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  CALIBD_ASSIGN_OR_RETURN(store::SeriesInfo series, ResolveSeries(key));
  if (version <= 0) return absl::InvalidArgumentError("certify needs a version number > 0");
  store::CertifyRequest r;
  r.series_id = series.id;
  r.version = version;
  r.begin = begin;
  r.end = end;
  r.replace = replace;
  r.actor = actor;
  r.reason = reason;
  return st->Certify(r);
}

absl::StatusOr<MasterWithCerts> StoreImpl::Decertify(const SeriesKey& key, int64_t version,
                                                     std::optional<store::TimeMicros> begin,
                                                     std::optional<store::TimeMicros> end,
                                                     const std::string& actor,
                                                     const std::string& reason) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  CALIBD_ASSIGN_OR_RETURN(store::SeriesInfo series, ResolveSeries(key));
  store::DecertifyRequest r;
  r.series_id = series.id;
  r.version = version;
  r.begin = begin;
  r.end = end;
  r.actor = actor;
  r.reason = reason;
  CALIBD_RETURN_IF_ERROR(st->Decertify(r));
  CALIBD_ASSIGN_OR_RETURN(store::MasterVersion v, st->GetVersion(series.id, version));
  return WithCertifications(v);
}

absl::StatusOr<store::SelectionResult> StoreImpl::Select(const std::string& detector,
                                                         const Header& header,
                                                         const SelectionSpec& selection,
                                                         std::vector<std::string> kinds,
                                                         const RecipeOverrides& recipe) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  store::SelectionRequest r;
  r.detector = detector;
  r.header = header;
  r.policy = selection.policy;
  r.max_age = selection.max_age_micros;
  r.pinned = selection.pins;
  if (!kinds.empty()) {  // named kinds: exactly those
    r.kinds = std::move(kinds);
    return st->Select(r);
  }
  // What Calibrate would select for this frame: the recipe's masters, the noise products in
  // use and, under a synthesizing dark policy, the model the dark would come from.
  kinds = NeededKinds(header, recipe, "");
  if (kinds.empty()) {
    return absl::InvalidArgumentError(
        "this frame needs no masters (IMAGETYP bias, or every step switched off); name kinds");
  }
  CALIBD_ASSIGN_OR_RETURN(store::DetectorRecord det, st->GetDetector(detector, 0));
  const NoisePlan plan = PlanNoise(det.spec, recipe, kinds, "");
  CALIBD_ASSIGN_OR_RETURN(store::SelectionResult out, SelectForPlan(*st, std::move(r), plan, kinds));
  ExplainDark(out, plan);
  return out;
}

absl::StatusOr<store::DetectorRecord> StoreImpl::PutDetector(const store::DetectorSpec& spec,
                                                             const std::string& actor) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  return st->PutDetector(spec, actor);
}

absl::StatusOr<store::DetectorRecord> StoreImpl::GetDetector(const std::string& name,
                                                             int64_t version) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  return st->GetDetector(name, version);
}

absl::StatusOr<store::Page<store::DetectorRecord>> StoreImpl::ListDetectors(
    const store::PageRequest& page) const {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  return st->ListDetectors(page);
}

absl::StatusOr<std::vector<store::DetectorRecord>> StoreImpl::ListDetectors() const {
  std::vector<store::DetectorRecord> all;
  store::PageRequest page;
  page.page_size = store::kMaxPageSize;
  do {
    CALIBD_ASSIGN_OR_RETURN(store::Page<store::DetectorRecord> p, ListDetectors(page));
    for (store::DetectorRecord& d : p.items) all.push_back(std::move(d));
    page.page_token = std::move(p.next_page_token);
  } while (!page.page_token.empty());
  return all;
}

absl::StatusOr<std::vector<DqBitEntry>> StoreImpl::DqBits(const std::string& detector) const {
  std::vector<DqBitEntry> out;
  for (const DqBitInfo& b : DqBitRegistry()) {
    out.push_back({b.bit, std::string(b.name), std::string(b.description)});
  }
  if (!detector.empty()) {
    CALIBD_ASSIGN_OR_RETURN(store::DetectorRecord det, GetDetector(detector, 0));
    for (const store::DetectorDqBit& b : det.spec.dq_bits) {
      out.push_back({b.bit, b.name, b.description});
    }
  }
  return out;
}

void StoreImpl::UpdateVersionMetrics() const {
  if (backend_->metrics == nullptr) return;
  absl::StatusOr<std::shared_ptr<store::CalibrationStore>> st = backend_->store.Get();
  if (!st.ok()) return;
  absl::StatusOr<std::vector<store::VersionCount>> counts = (*st)->CountVersions();
  if (!counts.ok()) return;
  for (const store::VersionCount& c : *counts) {
    backend_->metrics->SetStoreVersions(c.detector, c.kind, static_cast<double>(c.versions));
  }
}

}  // namespace calibd::server
