// The client's proto ⇄ core conversions (the twin of server/convert): header cards, pixel
// types, times, detector specs, and the assembly of a streamed calibration result into a
// CalibratedFrame. The only client file that knows both proto and core types.
//
//   v1::FrameHeader fh;
//   FillFrameHeader(raw, "demo/ccd0", "light_000.fits", &fh);
//   ...
//   ResultAssembler result;
//   RETURN_IF_ERROR(result.Start(response.header()));      // allocates the planes
//   RETURN_IF_ERROR(result.AddChunk(response.chunk()));    // copies bytes straight into rows
//   if (result.complete()) CalibratedFrame frame = result.Take();
//
// Thread safety: pure functions; a ResultAssembler belongs to one thread.
#ifndef CALIBD_CLIENT_CONVERT_H_
#define CALIBD_CLIENT_CONVERT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "calibd/v1/builder.pb.h"
#include "calibd/v1/calibrator.pb.h"
#include "calibd/v1/store.pb.h"
#include "calibd/v1/types.pb.h"
#include "core/image/frame.h"
#include "core/image/header.h"
#include "core/store/detector.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "proto/api_convert.h"

namespace calibd::client {

// A grpc::Status as an absl::Status with the same code and message (the codes are equal).
absl::Status FromGrpc(const grpc::Status& status);
// The same, carrying the server's request id (metadata `calibd-request-id`, trailing or
// initial) as a payload when the server sent one; `context` is the finished call's.
absl::Status FromGrpc(const grpc::Status& status, const grpc::ClientContext& context);
inline constexpr char kRequestIdMetadata[] = "calibd-request-id";
// The request id FromGrpc attached, or "".
std::string RequestIdOf(const absl::Status& status);
// A per-frame calibd.v1.Status.
absl::Status FromProto(const v1::Status& status);

// The shared API types convert in proto/api_convert (the server uses the same functions).
using api::DetectorSpecFromProto;
using api::DetectorSpecToProto;
using api::HeaderFromProto;
using api::HeaderToProto;
using api::PixelTypeFromProto;
using api::PixelTypeToProto;

// Times through proto/api_convert's one Timestamp ⇄ TimeMicros rule (microseconds, floor).
// Whether a time field is set is its presence (has_end()); the epoch is an ordinary time.
google::protobuf::Timestamp TimeToProto(absl::Time t);
// A malformed Timestamp (nanos outside [0, 1e9), seconds beyond year 9999) is InfinitePast.
absl::Time TimeFromProto(const google::protobuf::Timestamp& t);

// The FrameHeader of a raw frame (everything but recipe, selection, unit and planes, which the
// caller sets).
void FillFrameHeader(const RawFrame& raw, const std::string& detector, const std::string& frame_id,
                     v1::FrameHeader* header);

// Names of enum values for people: "certified", "strict", "data", "electron", ...
std::string OutcomeName(v1::SelectionOutcome outcome);
std::string UnitName(v1::OutputUnit unit);

// Collects one result (ResultHeader then its chunks) into a CalibratedFrame. Chunk bytes are
// copied straight into the destination plane; a chunk for a plane not announced, out of order,
// or beyond its plane's size is INVALID_ARGUMENT (a protocol error of the server).
class ResultAssembler {
 public:
  explicit ResultAssembler(BufferPool* pool = nullptr) : pool_(pool) {}
  // Starts a result. A header with a non-OK status returns that status (no chunks follow).
  absl::Status Start(const v1::ResultHeader& header);
  absl::Status AddChunk(const v1::ResultChunk& chunk);
  // Where the next `n` bytes of `plane` go (the caller copies them there), after the same
  // checks as AddChunk: a chunk received without protobuf's copy (proto/wire.h).
  absl::StatusOr<char*> Reserve(int plane, size_t n);
  bool active() const { return active_; }
  // Every announced plane is complete.
  bool complete() const;
  const v1::ResultHeader& header() const { return header_; }
  // The frame; the assembler is then idle again.
  CalibratedFrame Take();

 private:
  BufferPool* pool_;
  bool active_ = false;
  v1::ResultHeader header_;
  CalibratedFrame frame_;
  int plane_index_ = 0;      // index into header_.planes() of the plane being filled
  size_t plane_filled_ = 0;  // bytes of that plane received
};

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_CONVERT_H_
