// CalibdClient: the typed client of a calibd server, what calibctl is built on. It wraps the
// generated stubs with what every caller would otherwise repeat: bearer-token metadata, TLS,
// deadlines, status conversion, chunked uploads (≤ 1 MiB, sha256 streamed with core/hash),
// checked downloads, and a pipelined Calibrate stream for many files.
//
//   ClientOptions options;
//   options.server = "127.0.0.1:50051";
//   ASSIGN_OR_RETURN(std::unique_ptr<CalibdClient> c, CalibdClient::Connect(options));
//   ASSIGN_OR_RETURN(v1::PutMasterResponse put,
//                    c->PutMaster("bias.fits", {.detector = "demo/ccd0", .kind = "bias"}));
//   CalibrateOptions co;
//   co.detector = "demo/ccd0";
//   RETURN_IF_ERROR(c->Calibrate({"a.fits", "b.fits"}, co, [](CalibrateResult r) { ... }));
//
// Errors keep the server's gRPC code (NOT_FOUND, FAILED_PRECONDITION, ...); local problems
// (unreadable file) are INVALID_ARGUMENT/NOT_FOUND from core/fits; a downloaded master whose
// bytes do not hash to its sha256 is DATA_LOSS.
//
// Thread safety: a CalibdClient may be used from several threads at once (each call has its
// own context). Calibrate's `on_result` runs on the calling thread, one result at a time; its
// `progress` runs on the stream's writer thread, so it may run while `on_result` does.
#ifndef CALIBD_CLIENT_CLIENT_H_
#define CALIBD_CLIENT_CLIENT_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "calibd/v1/builder.grpc.pb.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "calibd/v1/noise.grpc.pb.h"
#include "calibd/v1/store.grpc.pb.h"
#include "core/image/buffer_pool.h"
#include "core/image/frame.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace calibd::client {

inline constexpr size_t kMaxChunkBytes = size_t{1} << 20;  // 1 MiB, under gRPC's 4 MiB cap

struct ClientOptions {
  // One HOST:PORT; a list "10.0.0.1:50051,10.0.0.2:50051" (IP literals) or "dns:///NAME:PORT",
  // both balanced round-robin over the replicas; or any gRPC target ("unix:/path", ...).
  std::string server = "127.0.0.1:50051";
  std::string token;  // sent as "authorization: Bearer <token>"
  // PEM files: a CA → TLS; plus cert and key → mutual TLS. All empty → plaintext.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // Deadline of unary calls; streams get `stream_timeout` (0 = none).
  absl::Duration timeout = absl::Seconds(60);
  absl::Duration stream_timeout = absl::ZeroDuration();
  // Idempotent calls (reads; Calibrate's frames, re-sent on a new stream) that end UNAVAILABLE
  // are tried up to `max_attempts` times in all, `retry_backoff` apart, doubling up to 2 s.
  int max_attempts = 5;
  absl::Duration retry_backoff = absl::Milliseconds(100);
};

// Where one Calibrate call's time went, summed over frames (threads overlap, so the parts may
// add up to more than the wall time). Seconds.
struct CalibrateStats {
  double read_seconds = 0;     // FITS read + decode of the raw files (reader thread)
  double send_seconds = 0;     // blocked in Write: flow control, the transport (sender thread)
  double receive_seconds = 0;  // waiting for and placing results (calling thread)
  double deliver_seconds = 0;  // in on_result (calling thread)
  int64_t frames = 0;          // results delivered (ok or not)
  int64_t bytes_sent = 0;      // pixel bytes
  int64_t bytes_received = 0;  // result bytes
  int streams = 0;             // streams opened (1 + retries of the stream)
  int64_t frames_resent = 0;   // frames sent again after the stream broke with UNAVAILABLE
};

// Called with (bytes done, bytes total) as an upload or download proceeds.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// The bytes of these files on disk (those that cannot be read count 0): what a calibration's
// progress counts.
int64_t FileBytes(const std::vector<std::string>& paths);

// The progress of a round that sends only `pending` of the batch `all`, as the batch's: on top
// of the bytes of the files already delivered, out of all of them, so that a progress bar over
// the batch goes on where it was instead of starting over. nullptr for a null `batch`.
ProgressFn RoundProgress(const ProgressFn& batch, const std::vector<std::string>& all,
                         const std::vector<std::string>& pending);

struct PutMasterOptions {
  std::string detector;
  std::string kind;
  std::map<std::string, std::string> attributes;
  std::map<std::string, std::string> configuration;  // empty = derived from the header
};

struct VersionChoice {
  int64_t version = 0;                   // > 0: this version
  absl::Time at = absl::InfinitePast();  // else: the one certified at this time
};

// One page of a list call (AIP-158): at most `page_size` entries (0 = the server's default),
// after the page whose next_page_token was `page_token` ("" = the first page).
struct PageRequest {
  int32_t page_size = 0;
  std::string page_token;
};

struct CalibrateOptions {
  std::string detector;
  v1::SelectionOptions selection;
  v1::RecipeOverrides recipe;
  v1::OutputUnit unit = v1::OUTPUT_UNIT_UNSPECIFIED;
  std::vector<v1::Plane> planes;    // empty = all
  ProgressFn progress;              // bytes sent over all files
  CalibrateStats* stats = nullptr;  // filled when set
};

// A synthesized dark: the frame (data e⁻, variance e⁻², DQ; header cards as the server sent
// them) and the server's header (the model's provenance, statistics).
struct SynthesizedDark {
  v1::SynthesizeDarkHeader header;
  CalibratedFrame frame;
};

// One file's outcome: either the calibrated frame with the server's result header, or why it
// failed (locally, or the server's per-frame status).
struct CalibrateResult {
  std::string path;
  absl::Status status;
  v1::ResultHeader header;
  CalibratedFrame frame;
};

class CalibdClient {
 public:
  static absl::StatusOr<std::unique_ptr<CalibdClient>> Connect(const ClientOptions& options);

  // grpc.health.v1 Check ("" = the server as a whole): SERVING, NOT_SERVING, ...
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health(
      const std::string& service = "");

  absl::StatusOr<v1::DetectorSpec> PutDetector(const v1::DetectorSpec& spec);
  absl::StatusOr<v1::DetectorSpec> GetDetector(const std::string& name, int64_t version = 0);
  absl::StatusOr<v1::ListDetectorsResponse> ListDetectors(const PageRequest& page = {});
  absl::StatusOr<v1::GetDqBitsResponse> GetDqBits(const std::string& detector);

  // Uploads a FITS file: sha256 first (a streaming pass over the file), then ≤ 1 MiB chunks,
  // hashed again as they are sent (ABORTED if the file changed in between).
  absl::StatusOr<v1::PutMasterResponse> PutMaster(const std::string& path,
                                                  const PutMasterOptions& options,
                                                  ProgressFn progress = nullptr);
  absl::StatusOr<v1::ListMastersResponse> ListMasters(const std::string& detector,
                                                      const std::string& kind,
                                                      const PageRequest& page = {});
  absl::StatusOr<v1::HistoryResponse> History(const std::string& detector, const std::string& kind,
                                              const PageRequest& page = {});
  // Downloads to `out_path` (written to a temporary name, renamed when the sha256 matched).
  absl::StatusOr<v1::MasterVersion> GetMaster(const std::string& detector, const std::string& kind,
                                              const VersionChoice& which,
                                              const std::string& out_path,
                                              ProgressFn progress = nullptr);
  absl::StatusOr<v1::CertifyResponse> Certify(const v1::CertifyRequest& request);
  absl::StatusOr<v1::DecertifyResponse> Decertify(const v1::DecertifyRequest& request);
  absl::StatusOr<v1::SelectResponse> Select(const v1::SelectRequest& request);

  // Sends the stored versions `stored` (e.g. the products a bad_pixels map is made from), then
  // every file as a raw input of one build.
  absl::StatusOr<v1::BuildMasterResponse> BuildMaster(
      const v1::BuildOptions& options, const std::vector<std::string>& paths,
      ProgressFn progress = nullptr, const std::vector<v1::StoredFrameRef>& stored = {});

  // Noise.SynthesizeDark: the dark for (exptime, em_gain[, temperature]) from the detector's
  // noise_model (else dark_current product), received into memory. Read-only: tried again
  // after UNAVAILABLE.
  absl::StatusOr<SynthesizedDark> SynthesizeDark(const v1::SynthesizeDarkRequest& request);

  // Calibrates every file over one stream: a reader thread reads file n+2 while a sender
  // thread sends file n+1 and results of file n come back; pixels go out over the frames' own
  // pooled memory and results land in their rows without protobuf copies (proto/wire.h).
  // `on_result` is called once per file, in order. When the stream ends UNAVAILABLE (a replica
  // died, the connection broke), the files without a result are sent again on a new stream
  // (up to max_attempts streams). The returned status is the last stream's (a protocol error,
  // a lost connection beyond the retries); per-file failures go to `on_result` only.
  absl::Status Calibrate(const std::vector<std::string>& paths, const CalibrateOptions& options,
                         const std::function<void(CalibrateResult)>& on_result);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // Calls and frames tried again after UNAVAILABLE, since Connect.
  int64_t retries() const { return retries_.load(); }

 private:
  struct StreamOutcome;
  CalibdClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  void Prepare(grpc::ClientContext* context, bool stream) const;
  // Runs `call` (one attempt: its own context) until it is not UNAVAILABLE, max_attempts times.
  template <typename T>
  absl::StatusOr<T> WithRetry(const std::function<absl::StatusOr<T>()>& call);
  void Backoff(int attempt);
  StreamOutcome CalibrateStream(const std::vector<std::string>& paths,
                                const std::vector<size_t>& indices, const CalibrateOptions& options,
                                const std::function<void(CalibrateResult)>& on_result,
                                BufferPool& pool, CalibrateStats& stats);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Store::Stub> store_;
  std::unique_ptr<v1::Calibrator::Stub> calibrator_;
  std::unique_ptr<v1::Builder::Stub> builder_;
  std::unique_ptr<v1::Noise::Stub> noise_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::atomic<int64_t> retries_{0};
};

// The gRPC target and whether to balance round-robin for a --server value (see ClientOptions).
// INVALID_ARGUMENT for a list with a host name or an empty entry.
absl::StatusOr<std::string> ChannelTarget(const std::string& server, bool* round_robin);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_CLIENT_H_
