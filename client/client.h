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
#include "calibd/v1/store.grpc.pb.h"
#include "core/image/frame.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace calibd::client {

inline constexpr size_t kMaxChunkBytes = size_t{1} << 20;  // 1 MiB, under gRPC's 4 MiB cap

struct ClientOptions {
  std::string server = "127.0.0.1:50051";
  std::string token;  // sent as "authorization: Bearer <token>"
  // PEM files: a CA → TLS; plus cert and key → mutual TLS. All empty → plaintext.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // Deadline of unary calls; streams get `stream_timeout` (0 = none).
  absl::Duration timeout = absl::Seconds(60);
  absl::Duration stream_timeout = absl::ZeroDuration();
};

// Called with (bytes done, bytes total) as an upload or download proceeds.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

struct PutMasterOptions {
  std::string detector;
  std::string kind;
  std::map<std::string, std::string> attributes;
  std::map<std::string, std::string> configuration;  // empty = derived from the header
};

struct VersionChoice {
  int64_t version = 0;                  // > 0: this version
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
  std::vector<v1::Plane> planes;  // empty = all
  ProgressFn progress;            // bytes sent over all files
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

  // Sends every file as a raw input of one build.
  absl::StatusOr<v1::BuildMasterResponse> BuildMaster(const v1::BuildOptions& options,
                                                      const std::vector<std::string>& paths,
                                                      ProgressFn progress = nullptr);

  // Calibrates every file over ONE stream: a writer thread reads and sends file n+1 while
  // results of file n come back. `on_result` is called once per file, in order. The returned
  // status is the stream's (a protocol error, a lost connection); per-file failures go to
  // `on_result` only.
  absl::Status Calibrate(const std::vector<std::string>& paths, const CalibrateOptions& options,
                         const std::function<void(CalibrateResult)>& on_result);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  CalibdClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  void Prepare(grpc::ClientContext* context, bool stream) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Store::Stub> store_;
  std::unique_ptr<v1::Calibrator::Stub> calibrator_;
  std::unique_ptr<v1::Builder::Stub> builder_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_CLIENT_H_
