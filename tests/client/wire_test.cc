// Tests of client/wire: the hand-encoded chunk request is exactly what protobuf parses as the
// message, without copying the pixels, and keeps its owner alive until gRPC lets go; received
// chunks land in the result's rows whatever the slice boundaries, and anything unusual falls
// back to protobuf.
#include "client/wire.h"

#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "calibd/v1/builder.pb.h"
#include "calibd/v1/calibrator.pb.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::client {
namespace {

using ::calibd::testing::StatusIs;

std::string Bytes(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// The same bytes cut into slices of `piece` bytes.
grpc::ByteBuffer Resliced(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t off = 0; off < bytes.size(); off += piece) {
    slices.emplace_back(bytes.data() + off, std::min(piece, bytes.size() - off));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

TEST(WireTest, ChunkRequestParsesAsProtobufAndDoesNotCopy) {
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{300000}, size_t{1} << 20}) {
    auto pixels = std::make_shared<std::vector<char>>(n);
    std::iota(pixels->begin(), pixels->end(), 0);
    grpc::ByteBuffer b = ChunkRequest(2, pixels->data(), n, pixels);
    EXPECT_EQ(pixels.use_count(), n == 0 ? 1 : 2) << "the slice holds the owner";
    v1::CalibrateRequest req;
    ASSERT_OK(ParseMessage(b, &req));
    ASSERT_TRUE(req.has_chunk()) << n;
    EXPECT_EQ(req.chunk().data(), std::string(pixels->begin(), pixels->end()));
    // Same bytes as protobuf's own encoder.
    EXPECT_EQ(Bytes(b), req.SerializeAsString());
    if (n > 0) {
      std::vector<grpc::Slice> slices;
      ASSERT_TRUE(b.Dump(&slices).ok());
      ASSERT_EQ(slices.size(), 2u);
      EXPECT_EQ(static_cast<const void*>(slices[1].begin()), pixels->data()) << "not copied";
    }
  }
  // BuildMasterRequest.chunk is field 3.
  auto px = std::make_shared<std::string>("abcdef");
  v1::BuildMasterRequest breq;
  ASSERT_OK(ParseMessage(ChunkRequest(3, px->data(), px->size(), px), &breq));
  EXPECT_EQ(breq.chunk().data(), "abcdef");
}

TEST(WireTest, OwnerIsReleasedWhenTheBufferIsGone) {
  auto pixels = std::make_shared<std::vector<char>>(4096, 'x');
  std::weak_ptr<std::vector<char>> weak = pixels;
  {
    grpc::ByteBuffer b = ChunkRequest(2, pixels->data(), pixels->size(), pixels);
    pixels.reset();
    EXPECT_FALSE(weak.expired());
  }
  EXPECT_TRUE(weak.expired());
}

class ReadChunkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::ResultHeader h;
    h.set_frame_id("f");
    h.set_width(7);
    h.set_height(5);
    h.add_planes(v1::PLANE_DATA);
    h.add_planes(v1::PLANE_DQ);
    ASSERT_OK(assembler_.Start(h));
  }
  ResultAssembler assembler_;
};

TEST_F(ReadChunkTest, ChunksLandInTheirRowsAtAnySliceBoundary) {
  std::vector<float> data(35);
  std::iota(data.begin(), data.end(), 0.5f);
  std::vector<uint16_t> dq(35);
  std::iota(dq.begin(), dq.end(), 1);
  const char* d = reinterpret_cast<const char*>(data.data());
  const char* q = reinterpret_cast<const char*>(dq.data());
  // Data in two chunks (100 + 40 bytes), DQ in one; each cut into slices of various sizes.
  struct Piece {
    v1::Plane plane;
    const char* bytes;
    size_t n;
    size_t slice;
  };
  for (Piece p : {Piece{v1::PLANE_DATA, d, 100, 1}, Piece{v1::PLANE_DATA, d + 100, 40, 7},
                  Piece{v1::PLANE_DQ, q, 70, 1000}}) {
    v1::CalibrateResponse r;
    r.mutable_chunk()->set_plane(p.plane);
    r.mutable_chunk()->set_data(p.bytes, p.n);
    ASSERT_OK_AND_ASSIGN(bool placed,
                         ReadChunkInto(Resliced(r.SerializeAsString(), p.slice), assembler_));
    EXPECT_TRUE(placed);
  }
  ASSERT_TRUE(assembler_.complete());
  CalibratedFrame f = assembler_.Take();
  EXPECT_EQ(std::memcmp(f.data.data(), data.data(), 140), 0);
  EXPECT_EQ(std::memcmp(f.dq.data(), dq.data(), 70), 0);
}

TEST_F(ReadChunkTest, HeadersAndUnusualEncodingsFallBackToProtobuf) {
  v1::CalibrateResponse header;
  header.mutable_header()->set_frame_id("g");
  ASSERT_OK_AND_ASSIGN(bool placed, ReadChunkInto(SerializeMessage(header), assembler_));
  EXPECT_FALSE(placed);
  // Data before the plane field (legal protobuf, never written by protobuf's encoder).
  const std::string odd = std::string("\x12\x06\x12\x02\xAB\xCD\x08\x01", 8);
  ASSERT_OK_AND_ASSIGN(placed, ReadChunkInto(Resliced(odd, 3), assembler_));
  EXPECT_FALSE(placed);
  v1::CalibrateResponse parsed;
  ASSERT_OK(ParseMessage(Resliced(odd, 3), &parsed));
  EXPECT_EQ(parsed.chunk().plane(), v1::PLANE_DATA);
  EXPECT_EQ(parsed.chunk().data(), "\xAB\xCD");
}

TEST_F(ReadChunkTest, ProtocolErrorsAreRefused) {
  v1::CalibrateResponse r;
  r.mutable_chunk()->set_plane(v1::PLANE_DQ);  // data is first
  r.mutable_chunk()->set_data("xx");
  EXPECT_THAT(ReadChunkInto(SerializeMessage(r), assembler_),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("plane")));
  r.mutable_chunk()->set_plane(v1::PLANE_DATA);
  r.mutable_chunk()->set_data(std::string(141, 'x'));  // 140 bytes fit
  EXPECT_THAT(ReadChunkInto(SerializeMessage(r), assembler_),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("exceeds")));
  // Truncated: the length says more than there is.
  const std::string truncated("\x12\x05\x08\x01\x12\x09\xAB", 7);  // 9 bytes promised, 1 sent
  EXPECT_THAT(ReadChunkInto(Resliced(truncated, 2), assembler_),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("truncated")));
  v1::CalibrateResponse junk;
  EXPECT_THAT(ParseMessage(Resliced("\x12\x05\x08", 1), &junk),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace calibd::client
