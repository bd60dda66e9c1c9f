// CalibrationStore: the versioned store of detector specs, masters, certifications and their
// audit log; selection of the masters that apply to a frame. One interface, two backends:
//   - embedded: a directory — SQLite catalog `catalog.db` + content-addressed FITS blobs
//     `blobs/ab/<sha256>.fits` (single host, the default);
//   - shared: PostgreSQL, blobs in a chunked table (many replicas, no shared filesystem).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<CalibrationStore> store,
//                    OpenStore("/var/lib/calibd/store", StoreOptions{}));   // or "postgresql://…"
//   ASSIGN_OR_RETURN(DetectorRecord det, store->PutDetector(spec, "alice"));
//   PutMasterRequest put;
//   put.detector = "lfc/chip0"; put.kind = "bias"; put.frame = &master_frame;
//   ASSIGN_OR_RETURN(MasterVersion v, store->PutMaster(put, "alice"));      // v.version == 1
//   ASSIGN_OR_RETURN(Certification c, store->Certify({.series_id = v.series_id,
//       .version = v.version, .begin = t0, .actor = "alice", .reason = "nightly"}));
//   ASSIGN_OR_RETURN(SelectionResult sel, store->Select(request));
//   ASSIGN_OR_RETURN(std::shared_ptr<const CalibratedFrame> bias,
//                    store->LoadMaster(sel.kinds[0].chosen->sha256));
//
// Semantics (both backends):
//   - Versions are immutable and numbered 1, 2, 3… per series, densely, even with concurrent
//     writers in several processes. The blob is durable before the catalog row commits; a
//     process killed at any instant leaves the whole version or none.
//   - Putting content identical to a version of the same series (same blob sha256, or the same
//     pixels: data, variance, dq, unit) returns that version with created = false. The same
//     content in another series is a new version there (the blob is shared).
//   - A certification overlapping another in its series is ALREADY_EXISTS naming the
//     conflicting version and range, unless `replace`, which trims/splits the old ranges.
//   - A blob whose sha256 no longer matches is DATA_LOSS and is never served. (Embedded: putting
//     the same bytes again replaces the damaged file.)
//   - Every change is in the audit log.
// Status codes: unknown detector/series/version/sha → NOT_FOUND; bad input → INVALID_ARGUMENT;
// overlap or duplicate version with other content → ALREADY_EXISTS; a write that lost a race it
// cannot retry → ABORTED; corrupt data → DATA_LOSS; database unreachable → UNAVAILABLE; blob
// larger than StoreOptions::max_blob_bytes → RESOURCE_EXHAUSTED.
//
// PutMaster is the one validator of a master's content (the server checks only transport: byte
// count and sha256 in transit). In this order, one code per failure:
//   - not a FITS file in the calibrated layout (SCI [+ VAR] [+ DQ] float/uint16 images)
//                                                              → INVALID_ARGUMENT
//   - a CHECKSUM/DATASUM card that does not match the bytes     → DATA_LOSS (the file is
//     damaged; sending the same bytes again cannot help)
//   - configuration: given, or extracted from the request's and the file's header cards
//     (a missing keyword)                                        → INVALID_ARGUMENT
//   - shape: the detector's raw or trimmed shape divided by the master's binning (its
//     configuration's "binning" NxM, 1..8; 1x1 when it has none), VAR/DQ planes of the data's
//     shape                                                      → INVALID_ARGUMENT
//   - values: every data and variance pixel finite, except where DQ ≠ 0 (a flagged pixel may be
//     NaN/Inf; without a DQ plane every pixel must be finite)    → INVALID_ARGUMENT
//   - client_sha256 given and not the blob's sha256             → INVALID_ARGUMENT
//   - larger than max_blob_bytes                                 → RESOURCE_EXHAUSTED
//
// Errors are safe to show a client: messages are short sentences without SQL text, connection
// strings or server file paths. Where there is more to know (the SQL error, the path, the errno)
// the status carries it as a payload under kInternalDetailPayload (UTF-8 text) for the server's
// log; `InternalDetail(status)` reads it. INTERNAL/UNAVAILABLE from the database read e.g.
// "catalog database unavailable".
//
// Failover (shared store): a pooled connection found broken (PostgreSQL restarted, a failover)
// is replaced on its next use, and a statement outside a transaction (a read) or a transaction
// that failed before COMMIT was sent is run once more on the new connection — so after a
// restart calls succeed without errors. A connection lost during COMMIT is UNAVAILABLE (the
// outcome is unknown; PutMaster is idempotent, so retrying it is safe).
//
// Thread safety: every method may be called concurrently from any thread; several processes
// may open the same store. Within one instance catalog calls share one connection (a mutex;
// a selection costs ~0.1 ms of CPU on 100 000 versions), blob reads/writes and decoding run
// outside it (PostgreSQL blob transfers share a second connection).
#ifndef CALIBD_CORE_STORE_STORE_H_
#define CALIBD_CORE_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/hash/sha256.h"
#include "core/image/buffer_pool.h"
#include "core/image/frame.h"
#include "core/image/header.h"
#include "core/store/detector.h"
#include "core/store/selection.h"
#include "core/store/time.h"
#include "core/store/types.h"

namespace calibd::store {

struct StoreOptions {
  // Byte budget of the decoded-master cache (LoadMaster).
  size_t cache_bytes = size_t{2} << 30;
  // Where decoded masters' pixel buffers come from (nullptr: plain allocation).
  BufferPool* pool = nullptr;
  // Create the directory / schema when absent (else NOT_FOUND for a missing embedded store).
  bool create = true;
  // Largest blob accepted by PutMaster: RESOURCE_EXHAUSTED above it.
  int64_t max_blob_bytes = int64_t{4} << 30;
  // Shared store only: a local directory for materialised blobs (MaterializeBlob, LoadMaster).
  // "" = a private directory under $TMPDIR, removed when the store closes.
  std::string spool_dir;
  // Shared store only: bytes of materialised blobs kept in the spool for reuse (least recently
  // used evicted beyond it; the newest is always kept).
  int64_t spool_bytes = int64_t{2} << 30;
  // SQLite busy timeout / PostgreSQL statement retries on lock contention.
  int busy_timeout_ms = 10000;
};

struct PutMasterRequest {
  std::string detector;
  std::string kind;  // [a-z0-9_]+
  // Configuration of the series. Empty: extracted from `header` (or the frame's header) by the
  // detector spec's configuration keys for `kind`.
  Configuration configuration;
  std::map<std::string, std::string> attributes;
  // Cards consulted (before the master's own) for the configuration and the time; they are not
  // written into the blob.
  Header header;
  // The content — exactly one of:
  std::string fits_path;                  // a spooled FITS file in the calibrated layout
  const CalibratedFrame* frame = nullptr;  // written to FITS by the store
  std::string client_sha256;  // optional: must equal the blob's sha256 (INVALID_ARGUMENT)
  Provenance provenance;
  std::map<std::string, double> statistics;
  std::optional<TimeMicros> obs_time;  // default: the header's time keyword, else now
  // 0 = the next version. Else the version this put must become: if it exists with the same
  // content it is returned (created = false), with other content ALREADY_EXISTS; if the series
  // is elsewhere, ABORTED.
  int64_t expected_version = 0;
};

struct MasterFilter {
  std::string detector;  // "" = all
  std::string kind;      // "" = all
  int64_t series_id = 0; // 0 = all
  Configuration configuration;  // every entry given must match exactly
  int limit = 1000;      // ListSeries only (ListMasters pages instead)
};

// A page of a list (AIP-158). page_size 0 = kDefaultPageSize; above kMaxPageSize it is capped;
// negative is INVALID_ARGUMENT. page_token "" = the first page, else a next_page_token from an
// earlier call of the same list (a token from another list, or garbage, is INVALID_ARGUMENT).
// Tokens are opaque (base64url of the last key returned) and stable under concurrent inserts:
// pages never repeat or skip an item that existed when the first page was read; items added
// later appear on a later page or not at all.
struct PageRequest {
  int32_t page_size = 0;
  std::string page_token;
};
constexpr int32_t kDefaultPageSize = 1000;
constexpr int32_t kMaxPageSize = 10000;

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;  // "" = this was the last page
};

// Versions per (detector, kind), for metrics (one GROUP BY, not a listing).
struct VersionCount {
  std::string detector;
  std::string kind;
  int64_t versions = 0;
};

struct CertifyRequest {
  int64_t series_id = 0;
  int64_t version = 0;
  TimeMicros begin = 0;
  std::optional<TimeMicros> end;  // nullopt = open-ended; else must be > begin
  bool replace = false;
  std::string actor;
  std::string reason;
};

struct DecertifyRequest {
  int64_t series_id = 0;
  int64_t version = 0;
  // No range: remove every certification of the version. A range: remove that part of the
  // version's ranges (splitting one if needed). NOT_FOUND when nothing was certified there.
  std::optional<TimeMicros> begin;
  std::optional<TimeMicros> end;
  std::string actor;
  std::string reason;
};

// The decoded-master cache's counters (for metrics).
struct MasterCacheStats {
  size_t bytes = 0;
  size_t budget_bytes = 0;
  int64_t entries = 0;
  int64_t hits = 0;
  int64_t misses = 0;
};

class CalibrationStore {
 public:
  virtual ~CalibrationStore() = default;

  // "embedded:<dir>" or "postgresql://host:port/db" (password elided).
  virtual std::string Describe() const = 0;
  // OK when the catalog answers; UNAVAILABLE ("catalog database unavailable") otherwise — for
  // readiness. Shared store: on its own connection (not queued behind other calls), failing
  // within ~5 s when the database is down or unreachable (2 s connect timeout, tried twice;
  // 2 s statement timeout); embedded: a SELECT on the catalog.
  virtual absl::Status Ping() = 0;
  // Counters of the LoadMaster cache (zeros for a store without one).
  virtual MasterCacheStats CacheStats() const { return {}; }

  // ---- detectors ----
  // Validates and stores a new version of the spec (1, 2, …). An identical spec to the latest
  // returns the latest unchanged.
  virtual absl::StatusOr<DetectorRecord> PutDetector(const DetectorSpec& spec,
                                                     const std::string& actor) = 0;
  // version 0 = the latest. NOT_FOUND for an unknown name or version.
  virtual absl::StatusOr<DetectorRecord> GetDetector(const std::string& name,
                                                     int64_t version = 0) = 0;
  // The latest version of every detector, by name, a page at a time.
  virtual absl::StatusOr<Page<DetectorRecord>> ListDetectors(const PageRequest& page);

  // ---- masters ----
  virtual absl::StatusOr<MasterVersion> PutMaster(const PutMasterRequest& request,
                                                  const std::string& actor) = 0;
  // Versions matching the filter, ordered by (series id, version), a page at a time.
  virtual absl::StatusOr<Page<MasterVersion>> ListMasters(const MasterFilter& filter,
                                                          const PageRequest& page);
  virtual absl::StatusOr<std::vector<SeriesInfo>> ListSeries(const MasterFilter& filter) = 0;
  // The versions of a series, oldest first, a page at a time. NOT_FOUND for an unknown series.
  virtual absl::StatusOr<Page<MasterVersion>> History(int64_t series_id,
                                                      const PageRequest& page);
  // Number of versions per (detector, kind), ordered by detector, kind.
  virtual absl::StatusOr<std::vector<VersionCount>> CountVersions();
  virtual absl::StatusOr<MasterVersion> GetVersion(int64_t series_id, int64_t version) = 0;
  // The version `version` of the series (detector, kind, configuration); 0 = the latest.
  virtual absl::StatusOr<MasterVersion> GetMaster(const std::string& detector,
                                                  const std::string& kind,
                                                  const Configuration& configuration,
                                                  int64_t version = 0) = 0;
  // The decoded master, from the cache or the blob (sha256 verified first: DATA_LOSS on a
  // mismatch, and nothing is cached). NOT_FOUND for an unknown sha256.
  virtual absl::StatusOr<std::shared_ptr<const CalibratedFrame>> LoadMaster(
      const std::string& sha256) = 0;
  // A local path to the verified blob file (embedded: the blob itself; shared: a copy in the
  // spool directory, reused by sha256 and evicted beyond StoreOptions::spool_bytes — open it
  // promptly: an open descriptor survives eviction).
  virtual absl::StatusOr<std::string> MaterializeBlob(const std::string& sha256) = 0;
  // Streams the blob's bytes to `sink` in chunks of at most `chunk_bytes`. The sha256 is
  // verified before the first byte is passed on (DATA_LOSS otherwise). A sink error stops the
  // stream and is returned.
  virtual absl::Status ReadBlob(const std::string& sha256, size_t chunk_bytes,
                                const std::function<absl::Status(absl::string_view)>& sink) = 0;

  // ---- certification ----
  virtual absl::StatusOr<Certification> Certify(const CertifyRequest& request) = 0;
  virtual absl::Status Decertify(const DecertifyRequest& request) = 0;
  // Current certifications of a series, by begin.
  virtual absl::StatusOr<std::vector<Certification>> ListCertifications(int64_t series_id) = 0;

  // ---- selection ----
  virtual absl::StatusOr<SelectionResult> Select(const SelectionRequest& request) = 0;

  // ---- selection candidates (what Select runs the pure SelectKind on) ----
  // The series of (request.detector, request.kind) with the certifications and versions that
  // can decide `request` (see SeriesCandidate). `only_series` ≠ 0 restricts it to that series.
  virtual absl::StatusOr<SelectionCandidates> FetchCandidates(const DetectorSpec& spec,
                                                              const KindRequest& request,
                                                              int64_t only_series = 0);

  // ---- audit and impact ----
  virtual absl::StatusOr<std::vector<AuditEntry>> AuditLog(TimeMicros since, int limit = 1000) = 0;
  // The audit entries about versions [min_version, max_version] of a series (puts,
  // certifications, decertifications), by id. Keyed by series id and version, not by text.
  virtual absl::StatusOr<std::vector<AuditEntry>> SeriesAudit(int64_t series_id,
                                                              int64_t min_version,
                                                              int64_t max_version);
  // ---- change notification (for replicas and caches of selections) ----
  // A counter that grows with every committed change (the latest audit id).
  virtual absl::StatusOr<int64_t> ChangeCounter() = 0;
  // Waits until ChangeCounter() > `known` or `timeout` passes; returns the counter. The bound
  // after a commit by any instance: shared store — at once on PostgreSQL NOTIFY (a hint; the
  // counter is re-read), at most 1 s by polling when a notification is lost (e.g. while the
  // LISTEN connection reconnects); embedded store — at most 50 ms (polling). Select itself always
  // reads the catalog, so a put + certify committed through one instance is selected by every
  // other at once; the feed is for caches of derived state.
  virtual absl::StatusOr<int64_t> WaitForChange(int64_t known, absl::Duration timeout) = 0;

  // ---- transitional: the pre-paging API, kept so wrappers written against it (the server's
  // SlowStore test double) still build. Do not call or override these in new code; derive
  // wrappers from ForwardingStore (forwarding_store.h). A store must override the paged methods
  // above or these (the defaults of each pair call the other). They go next phase. ----
  virtual absl::StatusOr<std::vector<DetectorRecord>> ListDetectors();   // every page
  virtual absl::StatusOr<std::vector<MasterVersion>> ListMasters(const MasterFilter& filter);
  virtual absl::StatusOr<std::vector<MasterVersion>> History(int64_t series_id);
};

// A path (absolute or relative, or "file:<path>") → the embedded store in that directory;
// "postgresql://…" or "postgres://…" → the shared store. Creates the schema when absent and
// migrates an older one. INVALID_ARGUMENT for an unusable URL, UNAVAILABLE when the database
// cannot be reached, FAILED_PRECONDITION for a schema newer than this build.
absl::StatusOr<std::unique_ptr<CalibrationStore>> OpenStore(const std::string& url,
                                                            const StoreOptions& options = {});

// The status payload type URL holding an error's internal detail (for logs, never for clients).
inline constexpr char kInternalDetailPayload[] = "calibd.internal_detail";
// The detail of `status` ("" when none).
std::string InternalDetail(const absl::Status& status);


}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_STORE_H_
