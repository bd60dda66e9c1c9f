// ForwardingStore: a CalibrationStore that passes every call to another one — the base for
// wrappers (test doubles that delay or fail some calls, instrumentation) so they override only
// what they change and keep building when the interface grows.
//
//   class SlowStore final : public store::ForwardingStore {
//    public:
//     using ForwardingStore::ForwardingStore;
//     absl::StatusOr<store::DetectorRecord> GetDetector(const std::string& name,
//                                                       int64_t version) override {
//       absl::SleepFor(absl::Milliseconds(500));
//       return ForwardingStore::GetDetector(name, version);
//     }
//   };
//   auto slow = std::make_unique<SlowStore>(std::move(real_store));
//
// Thread safety: as the inner store (ForwardingStore adds no state).
#ifndef CALIBD_CORE_STORE_FORWARDING_STORE_H_
#define CALIBD_CORE_STORE_FORWARDING_STORE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/store/store.h"

namespace calibd::store {

class ForwardingStore : public CalibrationStore {
 public:
  explicit ForwardingStore(std::unique_ptr<CalibrationStore> inner) : inner_(std::move(inner)) {}
  CalibrationStore& inner() { return *inner_; }

  std::string Describe() const override { return inner_->Describe(); }
  absl::Status Ping() override { return inner_->Ping(); }
  MasterCacheStats CacheStats() const override { return inner_->CacheStats(); }

  absl::StatusOr<DetectorRecord> PutDetector(const DetectorSpec& spec,
                                             const std::string& actor) override {
    return inner_->PutDetector(spec, actor);
  }
  absl::StatusOr<DetectorRecord> GetDetector(const std::string& name, int64_t version) override {
    return inner_->GetDetector(name, version);
  }
  absl::StatusOr<Page<DetectorRecord>> ListDetectors(const PageRequest& page) override {
    return inner_->ListDetectors(page);
  }
  absl::StatusOr<MasterVersion> PutMaster(const PutMasterRequest& request,
                                          const std::string& actor) override {
    return inner_->PutMaster(request, actor);
  }
  absl::StatusOr<Page<MasterVersion>> ListMasters(const MasterFilter& filter,
                                                  const PageRequest& page) override {
    return inner_->ListMasters(filter, page);
  }
  absl::StatusOr<std::vector<SeriesInfo>> ListSeries(const MasterFilter& filter) override {
    return inner_->ListSeries(filter);
  }
  absl::StatusOr<Page<MasterVersion>> History(int64_t series_id, const PageRequest& page) override {
    return inner_->History(series_id, page);
  }
  absl::StatusOr<std::vector<VersionCount>> CountVersions() override {
    return inner_->CountVersions();
  }
  absl::StatusOr<MasterVersion> GetVersion(int64_t series_id, int64_t version) override {
    return inner_->GetVersion(series_id, version);
  }
  absl::StatusOr<MasterVersion> GetMaster(const std::string& detector, const std::string& kind,
                                          const Configuration& configuration,
                                          int64_t version) override {
    return inner_->GetMaster(detector, kind, configuration, version);
  }
  absl::StatusOr<std::shared_ptr<const CalibratedFrame>> LoadMaster(
      const std::string& sha256) override {
    return inner_->LoadMaster(sha256);
  }
  absl::StatusOr<std::string> MaterializeBlob(const std::string& sha256) override {
    return inner_->MaterializeBlob(sha256);
  }
  absl::Status ReadBlob(const std::string& sha256, size_t chunk_bytes,
                        const std::function<absl::Status(absl::string_view)>& sink) override {
    return inner_->ReadBlob(sha256, chunk_bytes, sink);
  }
  absl::StatusOr<Certification> Certify(const CertifyRequest& request) override {
    return inner_->Certify(request);
  }
  absl::Status Decertify(const DecertifyRequest& request) override {
    return inner_->Decertify(request);
  }
  absl::StatusOr<std::vector<Certification>> ListCertifications(int64_t series_id) override {
    return inner_->ListCertifications(series_id);
  }
  absl::StatusOr<SelectionResult> Select(const SelectionRequest& request) override {
    return inner_->Select(request);
  }
  absl::StatusOr<SelectionCandidates> FetchCandidates(const DetectorSpec& spec,
                                                      const KindRequest& request,
                                                      int64_t only_series) override {
    return inner_->FetchCandidates(spec, request, only_series);
  }
  absl::StatusOr<std::vector<AuditEntry>> AuditLog(TimeMicros since, int limit) override {
    return inner_->AuditLog(since, limit);
  }
  absl::StatusOr<std::vector<AuditEntry>> SeriesAudit(int64_t series_id, int64_t min_version,
                                                      int64_t max_version) override {
    return inner_->SeriesAudit(series_id, min_version, max_version);
  }
  absl::StatusOr<int64_t> ChangeCounter() override { return inner_->ChangeCounter(); }
  absl::StatusOr<int64_t> WaitForChange(int64_t known, absl::Duration timeout) override {
    return inner_->WaitForChange(known, timeout);
  }

 private:
  std::unique_ptr<CalibrationStore> inner_;
};

}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_FORWARDING_STORE_H_
