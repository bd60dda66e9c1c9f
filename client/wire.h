// Pixel chunks on the wire without protobuf's copies. A chunk request is encoded by hand as the
// protobuf bytes it would be (`{chunk: {data: ...}}`) in a grpc::ByteBuffer whose data slice
// points into the frame's own (pooled) memory, kept alive until gRPC has sent it; a received
// CalibrateResponse chunk is decoded from gRPC's slices straight into the result's rows.
//
//   auto frame = std::make_shared<RawFrame>(std::move(raw));
//   grpc::ByteBuffer msg = ChunkRequest(2, bytes + off, len, frame);  // CalibrateRequest.chunk
//   stream->Write(msg);
//   ...
//   grpc::ByteBuffer in;  stream->Read(&in);
//   ASSIGN_OR_RETURN(bool consumed, ReadChunkInto(in, assembler));  // pixels in place
//   if (!consumed) ParseMessage(in, &response);                     // a header: protobuf
//
// Thread safety: pure functions; a ByteBuffer belongs to one thread.
#ifndef CALIBD_CLIENT_WIRE_H_
#define CALIBD_CLIENT_WIRE_H_

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/convert.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/support/byte_buffer.h"

namespace calibd::client {

// The bytes of a message whose field `field` is a PixelChunk{data = [data, data + n)}. The data
// is not copied: `owner` is held until gRPC releases the slice.
grpc::ByteBuffer ChunkRequest(int field, const void* data, size_t n,
                              std::shared_ptr<const void> owner);

// Any message, serialized once into one slice.
grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message);
// INVALID_ARGUMENT when the bytes are not a `message`.
absl::Status ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message);

// When `buffer` is a CalibrateResponse{chunk: {plane, data}} with the plane before the data (as
// every protobuf encoder writes it), copies the data into `assembler`'s destination and returns
// true; returns false for anything else (a header, an unusual encoding: parse it with protobuf).
// Errors are the assembler's (a chunk that does not fit) or INVALID_ARGUMENT for bad bytes.
absl::StatusOr<bool> ReadChunkInto(const grpc::ByteBuffer& buffer, ResultAssembler& assembler);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_WIRE_H_
