// Pixel chunks on the wire without protobuf's copies, for both ends of a stream. A chunk message
// is encoded by hand as the protobuf bytes it would be (`{chunk: {plane, data}}`) in a
// grpc::ByteBuffer whose data slice points into the frame's own (pooled) memory, kept alive
// until gRPC has sent it; a received chunk is decoded from gRPC's slices straight into its
// destination rows. Everything that is not a chunk (headers, unusual encodings) goes through
// protobuf as before: the wire format is the .proto's, byte for byte.
//
//   // Sender: CalibrateRequest.chunk = PixelChunk{data}, no copy of the pixels.
//   auto frame = std::make_shared<RawFrame>(std::move(raw));
//   stream->Write(wire::EncodeChunk(wire::kCalibrateRequestChunk, 0, bytes + off, len, frame));
//   // Receiver: the pixels in place, or protobuf for anything else.
//   grpc::ByteBuffer in;  stream->Read(&in);
//   CALIBD_ASSIGN_OR_RETURN(bool placed, wire::DecodeChunk(in, wire::kCalibrateResponseChunk,
//       [&](int plane, size_t n) { return assembler.Reserve(plane, n); }));
//   if (!placed) CALIBD_RETURN_IF_ERROR(wire::ParseMessage(in, &response));
//   // A reader that only looks at the bytes (a hash) takes them in place instead:
//   wire::VisitChunk(in, wire::kCalibrateResponseChunk,
//       [&](int plane, size_t n, absl::string_view piece) {
//         sha.Update(piece);
//         return absl::OkStatus();
//       });
//
// Thread safety: pure functions; a ByteBuffer belongs to one thread at a time.
#ifndef CALIBD_PROTO_WIRE_H_
#define CALIBD_PROTO_WIRE_H_

#include <cstddef>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/support/byte_buffer.h"

namespace calibd::wire {

// The methods called over raw ByteBuffers (by calibctl and bench/load; the server registers
// them with WithRawCallbackMethod_*). tests/proto checks them against the generated services.
inline constexpr char kCalibrateMethod[] = "/calibd.v1.Calibrator/Calibrate";
inline constexpr char kBuildMasterMethod[] = "/calibd.v1.Builder/BuildMaster";

// Where a chunk sits: the outer message's field `field` holds a message with the pixel bytes in
// field `data_field` and, when `plane_field` is not 0, the plane (an enum) in that field.
struct ChunkShape {
  int field;
  int plane_field;
  int data_field;
};
// CalibrateRequest.chunk and BuildMasterRequest.chunk are PixelChunk{bytes data = 1}.
inline constexpr ChunkShape kCalibrateRequestChunk{2, 0, 1};
inline constexpr ChunkShape kBuildRequestChunk{3, 0, 1};
// CalibrateResponse.chunk and SynthesizeDarkResponse.chunk are ResultChunk{plane = 1, data = 2}.
inline constexpr ChunkShape kCalibrateResponseChunk{2, 1, 2};

// The bytes of the message `shape` describes, with `plane` (ignored without a plane field; an
// enum 0 is omitted, as protobuf omits it) and data = [data, data + n). The data is not copied:
// `owner` is held until gRPC releases the slice.
grpc::ByteBuffer EncodeChunk(ChunkShape shape, int plane, const void* data, size_t n,
                             std::shared_ptr<const void> owner);

// Any message, serialized once into one slice.
grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message);
// INVALID_ARGUMENT when the bytes are not a `message`.
absl::Status ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message);

// Where the next `n` bytes of `plane` go (0 for a chunk without a plane field); an error refuses
// the chunk and is returned by DecodeChunk.
using ReserveFn = absl::FunctionRef<absl::StatusOr<char*>(int plane, size_t n)>;

// When `buffer` is exactly the chunk field of `shape`, with its plane (if any) before the data
// as every protobuf encoder writes it, copies the data to where `reserve` says and returns true;
// returns false for anything else (a header, an empty chunk, an unusual encoding: parse it with
// protobuf). Errors are `reserve`'s or INVALID_ARGUMENT for bytes that cannot be a message.
absl::StatusOr<bool> DecodeChunk(const grpc::ByteBuffer& buffer, ChunkShape shape,
                                 ReserveFn reserve);

// What a reader that needs no copy is given: the chunk's plane, the length of its whole data
// field, and one piece of it in place in gRPC's slices (valid only during the call), in order.
using VisitFn = absl::FunctionRef<absl::Status(int plane, size_t n, absl::string_view piece)>;

// DecodeChunk without the copy: the same messages take the fast path (and the same return
// false), but the data is handed to `visit` piece by piece, e.g. to hash it.
absl::StatusOr<bool> VisitChunk(const grpc::ByteBuffer& buffer, ChunkShape shape,
                                VisitFn visit);

}  // namespace calibd::wire

#endif  // CALIBD_PROTO_WIRE_H_
