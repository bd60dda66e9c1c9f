// Internal to core/store: CatalogStore, the CalibrationStore over a SQL catalog (SQLite or
// PostgreSQL) and a BlobBackend — every rule (dense versions, idempotent puts, certification
// conflicts) is written once here; selection's rules are the pure SelectKind (selection.h),
// fed by FetchCandidates. Its methods are spread over files of one idea each:
//   catalog_store.cc     connection, transactions, detectors, lists, audit, change feed
//   catalog_masters.cc   PutMaster, LoadMaster, blobs
//   catalog_certify.cc   Certify, Decertify, certifications
//   catalog_select.cc    Select, FetchCandidates (the series index)
//   open_store.cc        OpenStore: the embedded and shared openers
//
//   auto store = std::make_unique<CatalogStore>(CatalogStore::Parts{...}, options);
//   RETURN_IF_ERROR(store->Migrate());
//
// Thread safety: as CalibrationStore (store.h). Catalog statements run under `mu_` on one
// connection; blob transfers and decoding run outside it.
#ifndef CALIBD_CORE_STORE_CATALOG_STORE_H_
#define CALIBD_CORE_STORE_CATALOG_STORE_H_

#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "core/store/blobs.h"
#include "core/store/master_cache.h"
#include "core/store/sql.h"
#include "core/store/store.h"

namespace calibd::store::internal {

// The series of one (detector, kind), indexed by the values of their keys that have no
// tolerance, so a selection compares only the few series that can match instead of all.
// Series rows never change, so the index only grows; it is rebuilt when the spec's set of
// toleranced keys changes.
struct KindIndex {
  struct Series {
    int64_t id;
    Configuration configuration;
  };
  std::vector<Series> all;  // by id
  std::string tolerance_signature;
  bool built = false;
  std::map<std::string, std::vector<std::string>> signatures;  // exact-key set → its keys
  absl::flat_hash_map<std::string, std::vector<size_t>> buckets;

  void Ensure(const std::map<std::string, double>& tolerances);
  // Indices (ascending) of the series whose exact-key values equal the frame's (text equality).
  std::vector<size_t> Candidates(const Configuration& frame) const;

 private:
  void Add(size_t i, const std::map<std::string, double>& tolerances);
};

class CatalogStore : public CalibrationStore {
 public:
  struct Parts {
    std::string description;
    std::unique_ptr<SqlConnection> conn;
    std::unique_ptr<BlobBackend> blobs;
    int lock_fd = -1;                          // embedded: the LOCK file (closed with the store)
    std::unique_ptr<SqlConnection> listen;     // shared: the LISTEN connection
    std::unique_ptr<SqlConnection> ping;       // shared: Ping's own (short timeouts)
    std::string owned_spool;                   // removed with the store
  };
  CatalogStore(Parts parts, const StoreOptions& options);
  ~CatalogStore() override;

  absl::Status Migrate();
  absl::StatusOr<int> CollectGarbage();

  // The transitional unpaged overloads (store.h) stay visible beside the paged ones.
  using CalibrationStore::History;
  using CalibrationStore::ListDetectors;
  using CalibrationStore::ListMasters;

  std::string Describe() const override { return description_; }
  absl::Status Ping() override;
  MasterCacheStats CacheStats() const override;

  absl::StatusOr<DetectorRecord> PutDetector(const DetectorSpec& spec,
                                             const std::string& actor) override;
  absl::StatusOr<DetectorRecord> GetDetector(const std::string& name, int64_t version) override;
  absl::StatusOr<Page<DetectorRecord>> ListDetectors(const PageRequest& page) override;

  absl::StatusOr<MasterVersion> PutMaster(const PutMasterRequest& request,
                                          const std::string& actor) override;
  absl::StatusOr<Page<MasterVersion>> ListMasters(const MasterFilter& filter,
                                                  const PageRequest& page) override;
  absl::StatusOr<std::vector<SeriesInfo>> ListSeries(const MasterFilter& filter) override;
  absl::StatusOr<Page<MasterVersion>> History(int64_t series_id, const PageRequest& page) override;
  absl::StatusOr<std::vector<VersionCount>> CountVersions() override;
  absl::StatusOr<MasterVersion> GetVersion(int64_t series_id, int64_t version) override;
  absl::StatusOr<MasterVersion> GetMaster(const std::string& detector, const std::string& kind,
                                          const Configuration& configuration,
                                          int64_t version) override;
  absl::StatusOr<std::shared_ptr<const CalibratedFrame>> LoadMaster(
      const std::string& sha256) override;
  absl::StatusOr<std::string> MaterializeBlob(const std::string& sha256) override;
  absl::Status ReadBlob(const std::string& sha256, size_t chunk_bytes,
                        const std::function<absl::Status(absl::string_view)>& sink) override;

  absl::StatusOr<Certification> Certify(const CertifyRequest& request) override;
  absl::Status Decertify(const DecertifyRequest& request) override;
  absl::StatusOr<std::vector<Certification>> ListCertifications(int64_t series_id) override;

  absl::StatusOr<SelectionResult> Select(const SelectionRequest& request) override;
  absl::StatusOr<SelectionCandidates> FetchCandidates(const DetectorSpec& spec,
                                                      const KindRequest& request,
                                                      int64_t only_series) override;

  absl::StatusOr<std::vector<AuditEntry>> AuditLog(TimeMicros since, int limit) override;
  absl::StatusOr<std::vector<AuditEntry>> SeriesAudit(int64_t series_id, int64_t min_version,
                                                      int64_t max_version) override;
  absl::StatusOr<int64_t> ChangeCounter() override;
  absl::StatusOr<int64_t> WaitForChange(int64_t known, absl::Duration timeout) override;

 private:
  // Runs `fn` in a transaction, retrying lost races (IsRetryable) with jittered back-off.
  template <typename T, typename F>
  absl::StatusOr<T> WithTx(bool write, F&& fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Status last;
    bool reconnected = false;
    for (int attempt = 0; attempt < kMaxTxAttempts; ++attempt) {
      if (attempt > 0) Backoff(attempt);
      bool committing = false;
      absl::Status s = conn_->Begin(write);
      if (s.ok()) {
        absl::StatusOr<T> r = fn();
        if (r.ok()) {
          committing = true;
          s = conn_->Commit();
          if (s.ok()) return r;
        } else {
          s = r.status();
        }
      }
      (void)conn_->Rollback();
      // A connection lost before COMMIT was sent: nothing was applied, run it once more on a
      // new connection. Lost during COMMIT the outcome is unknown: the caller decides.
      if (absl::IsUnavailable(s) && !committing && !reconnected) {
        reconnected = true;
        last = s;
        continue;
      }
      if (!IsRetryable(s)) return s;
      last = s;
    }
    return GaveUp(last);
  }
  static constexpr int kMaxTxAttempts = 30;
  static void Backoff(int attempt);
  static absl::Status GaveUp(const absl::Status& last);

  void WaitForNotify(absl::Duration slice) ABSL_EXCLUSIVE_LOCKS_REQUIRED(listen_mu_);
  absl::Status Audit(TimeMicros now, const std::string& actor, absl::string_view action,
                     const std::string& subject, const std::string& details,
                     int64_t series_id = 0, int64_t version = 0)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LockSeries(int64_t series_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<Certification>> Overlapping(int64_t series_id,
                                                         std::optional<int64_t> version,
                                                         TimeMicros b, std::optional<TimeMicros> e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CutCertification(const Certification& c, TimeMicros b, std::optional<TimeMicros> e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<DetectorRecord> GetDetectorLocked(const std::string& name, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<MasterVersion> GetVersionLocked(int64_t series_id, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<MasterVersion>> FindByShaLocked(const std::string& sha)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckKnownSha(const std::string& sha);
  absl::Status RefreshSeries() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<SelectionCandidates> FetchCandidatesLocked(const DetectorSpec& spec,
                                                            const KindRequest& request,
                                                            int64_t only_series)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FetchSeriesRows(const KindRequest& request, SeriesCandidate* s)
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
  const bool has_listen_;
  absl::Mutex ping_mu_;
  std::unique_ptr<SqlConnection> ping_conn_ ABSL_GUARDED_BY(ping_mu_);
  std::string owned_spool_;
  std::map<std::pair<std::string, int64_t>, DetectorSpec> spec_cache_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, KindIndex> series_by_kind_ ABSL_GUARDED_BY(mu_);
  int64_t max_series_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_CATALOG_STORE_H_
