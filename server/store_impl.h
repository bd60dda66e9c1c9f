// StoreImpl: the transport-free logic behind the Store service — uploads of masters (checked
// from a spooled file), look-ups, certification, selection explained, detector specs and the DQ
// registry — over core's CalibrationStore.
//
//   StoreImpl impl(&backend);
//   PutMasterInput in{.detector = "lfc/chip0", .kind = "bias", .spooled_path = path, ...};
//   ASSIGN_OR_RETURN(store::MasterVersion v, impl.PutMaster(in));
//   ASSIGN_OR_RETURN(Certification c, impl.Certify({"lfc/chip0", "bias", {}}, v.version, t0,
//                                                  std::nullopt, false, "alice", "nightly"));
//
// A series is named by (detector, kind, configuration); an empty configuration means "the only
// series of this detector and kind" (none → NOT_FOUND, several → INVALID_ARGUMENT naming them).
// PutMaster checks only the transport, in this order: byte count equals the declared total
// (INVALID_ARGUMENT), the sha256 computed while streaming equals the client's (DATA_LOSS: the
// bytes were damaged on the way; retry). The content (FITS, CHECKSUM, shape, finite values where
// DQ is 0) is checked once, by core's CalibrationStore::PutMaster (codes in core/store/store.h).
// The spooled file is read once there; the server need not parse it.
//
// Lists page (AIP-158): pass a store::PageRequest (page_size 0 = 1000, at most 10000;
// page_token from the previous next_page_token) and get next_page_token back ("" = last page).
//
// Thread safety: every method may be called concurrently from any thread.
#ifndef CALIBD_SERVER_STORE_IMPL_H_
#define CALIBD_SERVER_STORE_IMPL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/image/dq.h"
#include "core/store/store.h"
#include "server/backend.h"
#include "server/recipe_options.h"
#include "server/requests.h"

namespace calibd::server {

struct SeriesKey {
  std::string detector;
  std::string kind;
  store::Configuration configuration;  // empty = the only series
};

struct PutMasterInput {
  std::string detector;
  std::string kind;
  store::Configuration configuration;
  std::map<std::string, std::string> attributes;
  std::optional<store::TimeMicros> obs_time;
  int64_t declared_bytes = 0;   // from the client's header
  std::string client_sha256;    // from the client's header (hex)
  std::string spooled_path;     // the bytes as received
  int64_t received_bytes = 0;
  std::string received_sha256;  // computed while receiving
  std::string actor;
};

struct MasterWithCerts {
  store::MasterVersion version;
  std::vector<store::Certification> certifications;
};

struct HistoryResult {
  std::vector<MasterWithCerts> versions;
  // The audit entries about the versions of this page (by series id and version), by id.
  std::vector<store::AuditEntry> events;
  std::string next_page_token;  // "" = the last page
};

struct MasterPage {
  std::vector<MasterWithCerts> masters;
  std::string next_page_token;  // "" = the last page
};

struct DqBitEntry {
  uint32_t bit = 0;
  std::string name;
  std::string description;
};

class StoreImpl {
 public:
  explicit StoreImpl(const Backend* backend) : backend_(backend) {}

  absl::StatusOr<store::MasterVersion> PutMaster(const PutMasterInput& input) const;
  // By number (version > 0), by certification at `at` (the pure store::SelectKind on this
  // series' candidates; none certified → NOT_FOUND), else the latest.
  absl::StatusOr<store::MasterVersion> ResolveMaster(const SeriesKey& key, int64_t version,
                                                     std::optional<store::TimeMicros> at) const;
  // A local path to the verified blob of `sha256`.
  absl::StatusOr<std::string> BlobPath(const std::string& sha256) const;
  absl::StatusOr<MasterPage> ListMasters(const std::string& detector, const std::string& kind,
                                         const store::PageRequest& page) const;
  // Transitional (every page; services.cc moves to the paged call): do not add callers.
  absl::StatusOr<std::vector<MasterWithCerts>> ListMasters(const std::string& detector,
                                                           const std::string& kind) const;
  absl::StatusOr<MasterWithCerts> WithCertifications(const store::MasterVersion& v) const;
  // The versions of the series matching `key` (its configuration entries as a filter; empty =
  // every series of detector and kind), ordered by (series id, version). NOT_FOUND when none.
  absl::StatusOr<HistoryResult> History(const SeriesKey& key, const store::PageRequest& page) const;
  // Transitional (every page): do not add callers.
  absl::StatusOr<HistoryResult> History(const SeriesKey& key) const;
  absl::StatusOr<store::Certification> Certify(const SeriesKey& key, int64_t version,
                                               store::TimeMicros begin,
                                               std::optional<store::TimeMicros> end, bool replace,
                                               const std::string& actor,
                                               const std::string& reason) const;
  absl::StatusOr<MasterWithCerts> Decertify(const SeriesKey& key, int64_t version,
                                            std::optional<store::TimeMicros> begin,
                                            std::optional<store::TimeMicros> end,
                                            const std::string& actor,
                                            const std::string& reason) const;
  // Explains the choice for a frame header; kinds empty = what the recipe would need.
  absl::StatusOr<store::SelectionResult> Select(const std::string& detector, const Header& header,
                                                const SelectionSpec& selection,
                                                std::vector<std::string> kinds,
                                                const RecipeOverrides& recipe) const;
  absl::StatusOr<store::DetectorRecord> PutDetector(const store::DetectorSpec& spec,
                                                    const std::string& actor) const;
  absl::StatusOr<store::DetectorRecord> GetDetector(const std::string& name,
                                                    int64_t version) const;
  absl::StatusOr<store::Page<store::DetectorRecord>> ListDetectors(
      const store::PageRequest& page) const;
  // Transitional (every page): do not add callers.
  absl::StatusOr<std::vector<store::DetectorRecord>> ListDetectors() const;
  absl::StatusOr<std::vector<DqBitEntry>> DqBits(const std::string& detector) const;

  // The series of `key` (see the header comment).
  absl::StatusOr<store::SeriesInfo> ResolveSeries(const SeriesKey& key) const;
  // Refreshes the store-versions gauge (after start-up and each put): one GROUP BY query.
  void UpdateVersionMetrics() const;

 private:
  static absl::StatusOr<std::vector<MasterWithCerts>> AttachCertifications(
      store::CalibrationStore& st, std::vector<store::MasterVersion> versions);

  const Backend* backend_;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_STORE_IMPL_H_
