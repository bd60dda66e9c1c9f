#include "proto/wire.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/status/macros.h"

namespace calibd::wire {
namespace {

constexpr int kVarint = 0;
constexpr int kLengthDelimited = 2;

size_t PutVarint(uint64_t v, uint8_t* out) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v) | 0x80;
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

uint64_t Tag(int field, int wire_type) { return (uint64_t(field) << 3) | uint64_t(wire_type); }

void ReleaseOwner(void* p) { delete static_cast<std::shared_ptr<const void>*>(p); }

absl::Status Truncated() {
  return absl::InvalidArgumentError("protocol error: a truncated chunk");
}

// Sequential reads over a ByteBuffer's slices.
class SliceReader {
 public:
  explicit SliceReader(const grpc::ByteBuffer& buffer) {
    (void)buffer.Dump(&slices_);
    for (const grpc::Slice& s : slices_) left_ += s.size();
  }
  size_t left() const { return left_; }

  bool Byte(uint8_t* b) {
    if (left_ == 0) return false;
    while (offset_ == slices_[index_].size()) Next();
    *b = slices_[index_].begin()[offset_++];
    --left_;
    return true;
  }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      *v |= uint64_t{b & 0x7F} << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // Copies (dest != nullptr) or skips n bytes.
  bool Take(char* dest, size_t n) {
    return Pieces(n, [&](absl::string_view piece) {
      if (dest != nullptr) {
        std::memcpy(dest, piece.data(), piece.size());
        dest += piece.size();
      }
      return absl::OkStatus();
    }).ok();
  }
  // Hands the next n bytes to `fn` in place, one contiguous piece per slice they span; stops at
  // fn's first error. INVALID_ARGUMENT (truncated) when fewer than n bytes are left.
  absl::Status Pieces(size_t n, absl::FunctionRef<absl::Status(absl::string_view)> fn) {
    if (n > left_) return Truncated();
    left_ -= n;
    while (n > 0) {
      while (offset_ == slices_[index_].size()) Next();
      const size_t k = std::min(n, slices_[index_].size() - offset_);
      const char* at = reinterpret_cast<const char*>(slices_[index_].begin()) + offset_;
      absl::Status s = fn(absl::string_view(at, k));
      offset_ += k;
      n -= k;
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  void Next() {
    ++index_;
    offset_ = 0;
  }
  std::vector<grpc::Slice> slices_;
  size_t index_ = 0, offset_ = 0, left_ = 0;
};

bool SkipField(SliceReader& r, int wire_type) {
  uint64_t v;
  switch (wire_type) {
    case 0:
      return r.Varint(&v);
    case 1:
      return r.Take(nullptr, 8);
    case 2:
      return r.Varint(&v) && r.Take(nullptr, v);
    case 5:
      return r.Take(nullptr, 4);
    default:
      return false;
  }
}

}  // namespace

grpc::ByteBuffer EncodeChunk(ChunkShape shape, int plane, const void* data, size_t n,
                             std::shared_ptr<const void> owner) {
  // field: LEN(inner) where inner = [plane_field: VARINT plane] [data_field: LEN(n) data].
  // An empty data field and a zero enum are omitted, as protobuf omits them.
  const bool with_plane = shape.plane_field != 0 && plane != 0;
  size_t inner = 0;
  if (with_plane) inner += VarintSize(Tag(shape.plane_field, kVarint)) + VarintSize(uint64_t(plane));
  if (n > 0) inner += VarintSize(Tag(shape.data_field, kLengthDelimited)) + VarintSize(n) + n;
  uint8_t head[48];
  size_t h = 0;
  h += PutVarint(Tag(shape.field, kLengthDelimited), head + h);
  h += PutVarint(inner, head + h);
  if (with_plane) {
    h += PutVarint(Tag(shape.plane_field, kVarint), head + h);
    h += PutVarint(uint64_t(plane), head + h);
  }
  if (n == 0) {
    grpc::Slice only(head, h);
    return grpc::ByteBuffer(&only, 1);
  }
  h += PutVarint(Tag(shape.data_field, kLengthDelimited), head + h);
  h += PutVarint(n, head + h);
  grpc::Slice slices[2] = {grpc::Slice(head, h),  // copied: a few bytes
                           grpc::Slice(const_cast<void*>(data), n, ReleaseOwner,
                                       new std::shared_ptr<const void>(std::move(owner)))};
  return grpc::ByteBuffer(slices, 2);
}

grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message) {
  grpc::Slice s(message.ByteSizeLong());
  message.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(s.begin()));
  return grpc::ByteBuffer(&s, 1);
}

absl::Status ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  bool ok;
  if (slices.size() == 1) {
    ok = message->ParseFromArray(slices[0].begin(), static_cast<int>(slices[0].size()));
  } else {
    std::string bytes;
    bytes.reserve(buffer.Length());
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    ok = message->ParseFromString(bytes);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("protocol error: a ", message->GetTypeName(), " that does not parse"));
  }
  return absl::OkStatus();
}

namespace {

// The one parser of a chunk message: `take` is given the plane and the data's length with the
// reader at the data, and must consume exactly that many bytes.
using TakeFn = absl::FunctionRef<absl::Status(int plane, size_t n, SliceReader& r)>;

absl::StatusOr<bool> Decode(const grpc::ByteBuffer& buffer, ChunkShape shape, TakeFn take) {
  SliceReader r(buffer);
  uint64_t tag, len;
  // Only a message that is exactly one chunk field takes the fast path.
  if (!r.Varint(&tag) || tag != Tag(shape.field, kLengthDelimited) || !r.Varint(&len) ||
      len != r.left()) {
    return false;
  }
  int plane = 0;
  bool done = false;
  while (r.left() > 0) {
    if (!r.Varint(&tag)) return Truncated();
    const int field = static_cast<int>(tag >> 3), wire_type = static_cast<int>(tag & 7);
    if (shape.plane_field != 0 && field == shape.plane_field && wire_type == kVarint) {
      uint64_t v;
      if (!r.Varint(&v)) return Truncated();
      // Once the data is placed there is no handing over to protobuf: refuse what no encoder
      // writes rather than place the bytes twice.
      if (done) return absl::InvalidArgumentError("protocol error: a chunk's plane after its data");
      plane = static_cast<int>(v);
    } else if (field == shape.data_field && wire_type == kLengthDelimited) {
      if (done) return absl::InvalidArgumentError("protocol error: a chunk with two data fields");
      if (shape.plane_field != 0 && plane == 0) return false;  // data before the plane: protobuf's job
      if (!r.Varint(&len) || len > r.left()) return Truncated();
      CALIBD_RETURN_IF_ERROR(take(plane, len, r));
      done = true;
    } else if (!SkipField(r, wire_type)) {
      return absl::InvalidArgumentError("protocol error: a malformed chunk");
    }
  }
  return done;  // false for an empty chunk (no data field): nothing to place
}

}  // namespace

absl::StatusOr<bool> DecodeChunk(const grpc::ByteBuffer& buffer, ChunkShape shape,
                                 ReserveFn reserve) {
  return Decode(buffer, shape, [&](int plane, size_t n, SliceReader& r) -> absl::Status {
    absl::StatusOr<char*> dest = reserve(plane, n);
    if (!dest.ok()) return dest.status();
    r.Take(*dest, n);
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> VisitChunk(const grpc::ByteBuffer& buffer, ChunkShape shape,
                                VisitFn visit) {
  return Decode(buffer, shape, [&](int plane, size_t n, SliceReader& r) {
    return r.Pieces(n, [&](absl::string_view piece) { return visit(plane, n, piece); });
  });
}

}  // namespace calibd::wire
