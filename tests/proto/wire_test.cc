// Tests of proto/wire: a hand-encoded chunk is exactly what protobuf's encoder writes for the
// message, without copying the pixels, and keeps its owner alive until gRPC lets go; a received
// chunk lands where the receiver says whatever the slice boundaries, and anything unusual falls
// back to protobuf or is refused, never placed twice.
#include "proto/wire.h"

#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "calibd/v1/builder.grpc.pb.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::wire {
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

TEST(WireTest, EncodedChunksAreProtobufsBytesAndDoNotCopy) {
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{300000}, size_t{1} << 20}) {
    auto pixels = std::make_shared<std::vector<char>>(n);
    std::iota(pixels->begin(), pixels->end(), 0);
    grpc::ByteBuffer b = EncodeChunk(kCalibrateRequestChunk, 0, pixels->data(), n, pixels);
    EXPECT_EQ(pixels.use_count(), n == 0 ? 1 : 2) << "the slice holds the owner";
    v1::CalibrateRequest req;
    ASSERT_OK(ParseMessage(b, &req));
    ASSERT_TRUE(req.has_chunk()) << n;
    EXPECT_EQ(req.chunk().data(), std::string(pixels->begin(), pixels->end()));
    EXPECT_EQ(Bytes(b), req.SerializeAsString()) << "the same bytes as protobuf's encoder";
    if (n > 0) {
      std::vector<grpc::Slice> slices;
      ASSERT_TRUE(b.Dump(&slices).ok());
      ASSERT_EQ(slices.size(), 2u);
      EXPECT_EQ(static_cast<const void*>(slices[1].begin()), pixels->data()) << "not copied";
    }
    // The response shape, with its plane.
    for (v1::Plane plane : {v1::PLANE_DATA, v1::PLANE_VARIANCE, v1::PLANE_DQ}) {
      grpc::ByteBuffer r = EncodeChunk(kCalibrateResponseChunk, plane, pixels->data(), n, pixels);
      v1::CalibrateResponse resp;
      ASSERT_OK(ParseMessage(r, &resp));
      ASSERT_TRUE(resp.has_chunk());
      EXPECT_EQ(resp.chunk().plane(), plane);
      EXPECT_EQ(Bytes(r), resp.SerializeAsString()) << n << " " << plane;
    }
  }
  // BuildMasterRequest.chunk is field 3.
  auto px = std::make_shared<std::string>("abcdef");
  v1::BuildMasterRequest breq;
  ASSERT_OK(ParseMessage(EncodeChunk(kBuildRequestChunk, 0, px->data(), px->size(), px), &breq));
  EXPECT_EQ(breq.chunk().data(), "abcdef");
}

TEST(WireTest, OwnerIsReleasedWhenTheBufferIsGone) {
  auto pixels = std::make_shared<std::vector<char>>(4096, 'x');
  std::weak_ptr<std::vector<char>> weak = pixels;
  {
    grpc::ByteBuffer b =
        EncodeChunk(kCalibrateResponseChunk, 1, pixels->data(), pixels->size(), pixels);
    pixels.reset();
    EXPECT_FALSE(weak.expired());
  }
  EXPECT_TRUE(weak.expired());
}

// A receiver with one destination per plane that refuses a wrong plane or an overflow.
class DecodeChunkTest : public ::testing::Test {
 protected:
  absl::StatusOr<bool> Decode(const grpc::ByteBuffer& b, ChunkShape shape = kCalibrateResponseChunk) {
    return DecodeChunk(b, shape, [this](int plane, size_t n) -> absl::StatusOr<char*> {
      if (plane != expected_plane_) {
        return absl::InvalidArgumentError(absl::StrCat("chunk of plane ", plane));
      }
      if (filled_ + n > dest_.size()) return absl::InvalidArgumentError("chunk exceeds the plane");
      char* d = dest_.data() + filled_;
      filled_ += n;
      return d;
    });
  }
  int expected_plane_ = v1::PLANE_DATA;
  std::string dest_ = std::string(140, '\0');
  size_t filled_ = 0;
};

TEST_F(DecodeChunkTest, ChunksLandAtAnySliceBoundary) {
  std::string data(140, '\0');
  std::iota(data.begin(), data.end(), 1);
  // Two chunks (100 + 40 bytes), cut into slices of various sizes.
  for (auto [off, n, slice] : {std::tuple<size_t, size_t, size_t>{0, 100, 1}, {100, 40, 7}}) {
    v1::CalibrateResponse r;
    r.mutable_chunk()->set_plane(v1::PLANE_DATA);
    r.mutable_chunk()->set_data(data.data() + off, n);
    ASSERT_OK_AND_ASSIGN(bool placed, Decode(Resliced(r.SerializeAsString(), slice)));
    EXPECT_TRUE(placed);
  }
  EXPECT_EQ(dest_, data);
  // The request shape has no plane: the receiver is asked for plane 0.
  expected_plane_ = 0;
  filled_ = 0;
  v1::CalibrateRequest req;
  req.mutable_chunk()->set_data("pixels");
  ASSERT_OK_AND_ASSIGN(bool placed,
                       Decode(Resliced(req.SerializeAsString(), 3), kCalibrateRequestChunk));
  EXPECT_TRUE(placed);
  EXPECT_EQ(dest_.substr(0, 6), "pixels");
}

TEST_F(DecodeChunkTest, HeadersAndUnusualEncodingsFallBackToProtobuf) {
  v1::CalibrateResponse header;
  header.mutable_header()->set_frame_id("g");
  ASSERT_OK_AND_ASSIGN(bool placed, Decode(SerializeMessage(header)));
  EXPECT_FALSE(placed);
  // A request header is not a chunk either.
  v1::CalibrateRequest req;
  req.mutable_header()->set_frame_id("h");
  ASSERT_OK_AND_ASSIGN(placed, Decode(SerializeMessage(req), kCalibrateRequestChunk));
  EXPECT_FALSE(placed);
  // Data before the plane field (legal protobuf, never written by protobuf's encoder).
  const std::string odd = std::string("\x12\x06\x12\x02\xAB\xCD\x08\x01", 8);
  ASSERT_OK_AND_ASSIGN(placed, Decode(Resliced(odd, 3)));
  EXPECT_FALSE(placed);
  EXPECT_EQ(filled_, 0u) << "nothing placed";
  v1::CalibrateResponse parsed;
  ASSERT_OK(ParseMessage(Resliced(odd, 3), &parsed));
  EXPECT_EQ(parsed.chunk().plane(), v1::PLANE_DATA);
  EXPECT_EQ(parsed.chunk().data(), "\xAB\xCD");
}

TEST_F(DecodeChunkTest, ProtocolErrorsAreRefused) {
  v1::CalibrateResponse r;
  r.mutable_chunk()->set_plane(v1::PLANE_DQ);  // data is first
  r.mutable_chunk()->set_data("xx");
  EXPECT_THAT(Decode(SerializeMessage(r)),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("plane")));
  r.mutable_chunk()->set_plane(v1::PLANE_DATA);
  r.mutable_chunk()->set_data(std::string(141, 'x'));  // 140 bytes fit
  EXPECT_THAT(Decode(SerializeMessage(r)),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("exceeds")));
  // Truncated: the length says more than there is.
  const std::string truncated("\x12\x05\x08\x01\x12\x09\xAB", 7);  // 9 bytes promised, 1 sent
  EXPECT_THAT(Decode(Resliced(truncated, 2)),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("truncated")));
  // Once placed, a second plane or data field is refused rather than placed twice.
  const std::string late_plane("\x12\x07\x08\x01\x12\x01\xAB\x08\x03", 9);
  EXPECT_THAT(Decode(Resliced(late_plane, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("after its data")));
  const std::string twice("\x12\x08\x08\x01\x12\x01\xAB\x12\x01\xCD", 10);
  EXPECT_THAT(Decode(Resliced(twice, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("two data")));
  v1::CalibrateResponse junk;
  EXPECT_THAT(ParseMessage(Resliced("\x12\x05\x08", 1), &junk),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(WireTest, RawMethodNamesAreTheGeneratedServices) {
  EXPECT_EQ(std::string(kCalibrateMethod),
            absl::StrCat("/", v1::Calibrator::service_full_name(), "/Calibrate"));
  EXPECT_EQ(std::string(kBuildMasterMethod),
            absl::StrCat("/", v1::Builder::service_full_name(), "/BuildMaster"));
}

// VisitChunk parses as DecodeChunk does, but hands over the data in place, piece by piece.
TEST(VisitChunkTest, PiecesAreTheDataInPlaceAndInOrder) {
  std::string data(1092, '\0');  // with its 8 header bytes, 1100
  std::iota(data.begin(), data.end(), 1);
  v1::CalibrateResponse r;
  r.mutable_chunk()->set_plane(v1::PLANE_VARIANCE);
  r.mutable_chunk()->set_data(data);
  // 11 slices of 100 bytes: larger than gRPC's inlined slices, so each has one address.
  const grpc::ByteBuffer buffer = Resliced(r.SerializeAsString(), 100);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  std::string seen;
  int pieces = 0;
  ASSERT_OK_AND_ASSIGN(
      bool visited,
      VisitChunk(buffer, kCalibrateResponseChunk, [&](int plane, size_t n, absl::string_view p) {
        EXPECT_EQ(plane, v1::PLANE_VARIANCE);
        EXPECT_EQ(n, data.size());
        // In place: the piece lies inside one of the buffer's own slices.
        bool inside = false;
        for (const grpc::Slice& s : slices) {
          const char* b = reinterpret_cast<const char*>(s.begin());
          inside |= p.data() >= b && p.data() + p.size() <= b + s.size();
        }
        EXPECT_TRUE(inside) << "piece " << pieces << " was copied";
        seen.append(p.data(), p.size());
        ++pieces;
        return absl::OkStatus();
      }));
  EXPECT_TRUE(visited);
  EXPECT_EQ(seen, data);
  EXPECT_EQ(pieces, 11) << "one piece per slice the data spans";

  // A header is not a chunk: nothing is visited. A visitor's error stops the walk.
  v1::CalibrateResponse header;
  header.mutable_header()->set_frame_id("g");
  int calls = 0;
  auto count = [&](int, size_t, absl::string_view) {
    ++calls;
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(visited,
                       VisitChunk(SerializeMessage(header), kCalibrateResponseChunk, count));
  EXPECT_FALSE(visited);
  EXPECT_EQ(calls, 0);
  calls = 0;
  EXPECT_THAT(VisitChunk(buffer, kCalibrateResponseChunk,
                         [&](int, size_t, absl::string_view) {
                           ++calls;
                           return absl::DataLossError("stop");
                         }),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(calls, 1);
  // Truncated data is refused before anything is visited.
  calls = 0;
  EXPECT_THAT(VisitChunk(Resliced(std::string("\x12\x05\x08\x01\x12\x09\xAB", 7), 2),
                         kCalibrateResponseChunk, count),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("truncated")));
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace calibd::wire
