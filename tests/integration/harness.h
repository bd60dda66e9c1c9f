// Integration-test harness: talks to a real calibd (tests/testing/calibd_process.h) through the
// generated stubs, so a test controls chunking, cancellation and timing byte by byte.
//
//   ASSERT_OK_AND_ASSIGN(auto calibd, CalibdProcess::Start());
//   Client client(calibd->address());
//   ASSERT_OK(client.SetUpTestDetector());          // itest/ccd + certified bias, dark, flat
//   CalibrateCall call(client.calibrator());
//   call.SendFrame(LightHeader("f1"), LightPixels());
//   FrameResult r = call.ReadResult();              // r.header.status().code() == 0
//   ExpectStillServing(client);                     // health SERVING and a correct calibration
//
// The test detector `itest/ccd` is 72×48 uint16 with 8 overscan columns on the right, trimmed to
// 64×48. Its masters are closed-form: bias 100 ADU, dark 10 ADU for EXPTIME 100 s, flat 1.5
// on even and 0.5 on odd columns (mean 1). The light frame (EXPTIME 50) is 1000 ADU in the
// overscan and 1000 + 100 + 5 + 2000·flat in the data region, so its calibrated data plane is
// exactly 2000 ADU everywhere: an answer that needs no oracle.
//
// Thread safety: a Client may be shared by threads (stubs are thread-safe); a CalibrateCall
// belongs to one thread for writing and one for reading.
#ifndef CALIBD_TESTS_INTEGRATION_HARNESS_H_
#define CALIBD_TESTS_INTEGRATION_HARNESS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "calibd/v1/store.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace calibd::integration {

namespace v1 = ::calibd::v1;

inline constexpr char kDetector[] = "itest/ccd";
inline constexpr int kRawWidth = 72, kRawHeight = 48, kOverscan = 8;
inline constexpr int kWidth = kRawWidth - kOverscan, kHeight = kRawHeight;
inline constexpr double kExpectedLight = 2000.0;  // calibrated value of LightPixels()
inline constexpr int64_t kCertifyBegin = 1767225600;  // 2026-01-01T00:00:00Z
inline constexpr char kDateObs[] = "2026-03-01T02:03:04.5";

// gRPC status → absl::Status with the same code (for ASSERT_OK / StatusIs).
absl::Status FromGrpc(const grpc::Status& status);

class Client {
 public:
  explicit Client(const std::string& address, const std::string& token = "");

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  v1::Calibrator::Stub* calibrator() { return calibrator_.get(); }
  v1::Store::Stub* store() { return store_.get(); }
  // A ClientContext with the token (if any) and a deadline `seconds` from now.
  std::unique_ptr<grpc::ClientContext> Context(double seconds = 30) const;

  // The test detector (PutDetector). `name` and shape may be changed for special tests.
  absl::Status PutDetector(const std::string& name = kDetector, int width = kRawWidth,
                           int height = kRawHeight, int overscan = kOverscan);
  // Uploads FITS bytes as one PutMaster stream in `chunk` byte pieces; sha256 empty → computed.
  absl::StatusOr<v1::PutMasterResponse> PutMasterBytes(const std::string& kind,
                                                       const std::string& bytes,
                                                       const std::string& detector = kDetector,
                                                       std::string sha256 = "",
                                                       size_t chunk = 64 << 10);
  absl::Status Certify(const std::string& kind, int64_t version,
                       const std::string& detector = kDetector);
  // PutDetector + bias, dark, flat masters, each certified from kCertifyBegin (certify=false
  // leaves them uncertified).
  absl::Status SetUpTestDetector(bool certify = true);

 private:
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Calibrator::Stub> calibrator_;
  std::unique_ptr<v1::Store::Stub> store_;
};

// FITS bytes of a master for the test detector (64×48 float32 plus the cards selection needs).
// `value(x, y)` gives the pixels; `exptime` < 0 leaves EXPTIME out.
std::string MasterFits(const std::string& kind, double (*value)(int x, int y), double exptime,
                       int width = kWidth, int height = kHeight);
std::string BiasFits();
std::string DarkFits();
std::string FlatFits();

// A light frame's FrameHeader (EXPTIME 50 unless `exptime` < 0, which leaves it out).
v1::FrameHeader LightHeader(const std::string& frame_id, double exptime = 50.0,
                            const std::string& detector = kDetector, int width = kRawWidth,
                            int height = kRawHeight);
// The light frame's uint16 pixels as little-endian bytes (see the file comment).
std::string LightPixels(int width = kRawWidth, int height = kRawHeight);

struct FrameResult {
  bool ok = false;  // false: the stream ended before a whole result arrived
  v1::ResultHeader header;
  std::vector<float> data, variance;
  std::vector<uint16_t> dq;
};

// One Calibrate stream.
class CalibrateCall {
 public:
  explicit CalibrateCall(Client* client, double deadline_seconds = 60);
  grpc::ClientContext& context() { return *context_; }

  bool Send(const v1::CalibrateRequest& request) { return stream_->Write(request); }
  bool SendHeader(const v1::FrameHeader& header);
  // Sends `bytes` as chunks of at most `chunk` bytes; false when the stream broke.
  bool SendChunks(const std::string& bytes, size_t chunk = 1 << 20);
  bool SendFrame(const v1::FrameHeader& header, const std::string& bytes) {
    return SendHeader(header) && SendChunks(bytes);
  }
  // Reads one frame's result: its header and, when OK, every announced plane.
  FrameResult ReadResult();
  bool Read(v1::CalibrateResponse* response) { return stream_->Read(response); }
  // WritesDone (once), then drains any unread responses and returns the final status.
  grpc::Status Finish();

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::CalibrateRequest, v1::CalibrateResponse>> stream_;
  bool writes_done_ = false;
};

// Asserts (gtest) that the server answers health SERVING and calibrates a light frame on a new
// stream to exactly kExpectedLight. Call after every fault.
void ExpectStillServing(Client& client, const std::string& address);

// GET http://127.0.0.1:<port>/metrics.
absl::StatusOr<std::string> ScrapeMetrics(int port);
// The value of the sample `name{labels}` whose labels include every `label="value"` pair given;
// NOT_FOUND when no sample matches.
absl::StatusOr<double> MetricValue(const std::string& exposition, const std::string& name,
                                   const std::vector<std::pair<std::string, std::string>>& labels);

// Resident set size of a process in bytes (/proc/<pid>/status VmRSS).
absl::StatusOr<int64_t> ResidentBytes(int pid);

}  // namespace calibd::integration

#endif  // CALIBD_TESTS_INTEGRATION_HARNESS_H_
