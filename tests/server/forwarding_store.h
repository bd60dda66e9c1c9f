// A CalibrationStore decorator for tests: forwards every call to a real store; tests derive
// from it and override the calls they slow down or break.
//
//   class SlowPing : public ForwardingStore {
//    public:
//     using ForwardingStore::ForwardingStore;
//     absl::Status Ping() override { return absl::UnavailableError("down"); }
//   };
//   server->SetStore(std::make_shared<SlowPing>(*store::OpenStore(dir)));
//
// Thread safety: as the wrapped store.
#ifndef CALIBD_TESTS_SERVER_FORWARDING_STORE_H_
#define CALIBD_TESTS_SERVER_FORWARDING_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/store/store.h"

namespace calibd::server {

class ForwardingStore : public store::CalibrationStore {
 public:
  explicit ForwardingStore(std::unique_ptr<store::CalibrationStore> inner)
      : inner_(std::move(inner)) {}
  std::string Describe() const override { return inner_->Describe(); }
  absl::Status Ping() override { return inner_->Ping(); }
  store::MasterCacheStats CacheStats() const override { return inner_->CacheStats(); }
  absl::StatusOr<store::DetectorRecord> PutDetector(const store::DetectorSpec& spec,
                                                    const std::string& actor) override {
    return inner_->PutDetector(spec, actor);
  }
  absl::StatusOr<store::DetectorRecord> GetDetector(const std::string& name,
                                                    int64_t version) override {
    return inner_->GetDetector(name, version);
  }
  absl::StatusOr<std::vector<store::DetectorRecord>> ListDetectors() override {
    return inner_->ListDetectors();
  }
  absl::StatusOr<store::MasterVersion> PutMaster(const store::PutMasterRequest& request,
                                                 const std::string& actor) override {
    return inner_->PutMaster(request, actor);
  }
  absl::StatusOr<std::vector<store::MasterVersion>> ListMasters(
      const store::MasterFilter& filter) override {
    return inner_->ListMasters(filter);
  }
  absl::StatusOr<std::vector<store::SeriesInfo>> ListSeries(
      const store::MasterFilter& filter) override {
    return inner_->ListSeries(filter);
  }
  absl::StatusOr<std::vector<store::MasterVersion>> History(int64_t series_id) override {
    return inner_->History(series_id);
  }
  absl::StatusOr<store::MasterVersion> GetVersion(int64_t series_id, int64_t version) override {
    return inner_->GetVersion(series_id, version);
  }
  absl::StatusOr<store::MasterVersion> GetMaster(const std::string& detector,
                                                 const std::string& kind,
                                                 const store::Configuration& configuration,
                                                 int64_t version) override {
    return inner_->GetMaster(detector, kind, configuration, version);
  }
  absl::StatusOr<std::vector<store::MasterVersion>> FindBySha256(
      const std::string& sha256) override {
    return inner_->FindBySha256(sha256);
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
  absl::StatusOr<store::Certification> Certify(const store::CertifyRequest& request) override {
    return inner_->Certify(request);
  }
  absl::Status Decertify(const store::DecertifyRequest& request) override {
    return inner_->Decertify(request);
  }
  absl::StatusOr<std::vector<store::Certification>> ListCertifications(
      int64_t series_id) override {
    return inner_->ListCertifications(series_id);
  }
  absl::StatusOr<store::SelectionResult> Select(const store::SelectionRequest& request) override {
    return inner_->Select(request);
  }
  absl::StatusOr<std::vector<store::AuditEntry>> AuditLog(store::TimeMicros since,
                                                          int limit) override {
    return inner_->AuditLog(since, limit);
  }
  absl::StatusOr<std::vector<store::VersionChange>> ChangedSince(store::TimeMicros since) override {
    return inner_->ChangedSince(since);
  }
  absl::StatusOr<int64_t> ChangeCounter() override { return inner_->ChangeCounter(); }
  absl::StatusOr<int64_t> WaitForChange(int64_t known, absl::Duration timeout) override {
    return inner_->WaitForChange(known, timeout);
  }

 protected:
  std::unique_ptr<store::CalibrationStore> inner_;
};

}  // namespace calibd::server

#endif  // CALIBD_TESTS_SERVER_FORWARDING_STORE_H_
