#include "client/wire.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace calibd::client {
namespace {

constexpr int kLengthDelimited = 2;
constexpr int kVarint = 0;

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

void ReleaseOwner(void* p) { delete static_cast<std::shared_ptr<const void>*>(p); }

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
    if (n > left_) return false;
    left_ -= n;
    while (n > 0) {
      while (offset_ == slices_[index_].size()) Next();
      const size_t k = std::min(n, slices_[index_].size() - offset_);
      if (dest != nullptr) {
        std::memcpy(dest, slices_[index_].begin() + offset_, k);
        dest += k;
      }
      offset_ += k;
      n -= k;
    }
    return true;
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

grpc::ByteBuffer ChunkRequest(int field, const void* data, size_t n,
                              std::shared_ptr<const void> owner) {
  // field: LEN(inner) where inner = [field 1: LEN(n) data].
  // An empty data field is omitted, as protobuf does.
  uint8_t head[32];
  size_t h = 0;
  const size_t inner = n == 0 ? 0 : 1 + VarintSize(n) + n;
  h += PutVarint((uint64_t(field) << 3) | kLengthDelimited, head + h);
  h += PutVarint(inner, head + h);
  if (n > 0) {
    head[h++] = (1 << 3) | kLengthDelimited;
    h += PutVarint(n, head + h);
  }
  grpc::Slice slices[2] = {grpc::Slice(head, h),  // copied: a few bytes
                           grpc::Slice(const_cast<void*>(data), n, ReleaseOwner,
                                       new std::shared_ptr<const void>(std::move(owner)))};
  return grpc::ByteBuffer(slices, n == 0 ? 1 : 2);
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

absl::StatusOr<bool> ReadChunkInto(const grpc::ByteBuffer& buffer, ResultAssembler& assembler) {
  SliceReader r(buffer);
  uint64_t tag, len;
  // Only a message that is exactly one chunk field takes the fast path.
  if (!r.Varint(&tag) || tag != ((2 << 3) | kLengthDelimited) || !r.Varint(&len) ||
      len != r.left()) {
    return false;
  }
  int plane = 0;
  bool done = false;
  while (r.left() > 0) {
    if (!r.Varint(&tag)) return absl::InvalidArgumentError("protocol error: a truncated chunk");
    const int field = static_cast<int>(tag >> 3), wire = static_cast<int>(tag & 7);
    if (field == 1 && wire == kVarint) {
      uint64_t v;
      if (!r.Varint(&v)) return absl::InvalidArgumentError("protocol error: a truncated chunk");
      plane = static_cast<int>(v);
    } else if (field == 2 && wire == kLengthDelimited) {
      if (done || plane == 0) return false;  // data before the plane, or twice: protobuf's job
      if (!r.Varint(&len) || len > r.left()) {
        return absl::InvalidArgumentError("protocol error: a truncated chunk");
      }
      absl::StatusOr<char*> dest = assembler.Reserve(plane, len);
      if (!dest.ok()) return dest.status();
      r.Take(*dest, len);
      done = true;
    } else if (!SkipField(r, wire)) {
      return absl::InvalidArgumentError("protocol error: a malformed chunk");
    }
  }
  if (!done) return false;  // an empty chunk (no data field): nothing to place
  return true;
}

}  // namespace calibd::client
