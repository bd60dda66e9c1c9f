#include "client/convert.h"

#include <cstring>
#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace calibd::client {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

namespace {
constexpr char kRequestIdPayload[] = "type.calibd.dev/calibd.request_id";
}  // namespace

absl::Status FromGrpc(const grpc::Status& status, const grpc::ClientContext& context) {
  absl::Status out = FromGrpc(status);
  if (out.ok()) return out;
  for (const auto* md :
       {&context.GetServerTrailingMetadata(), &context.GetServerInitialMetadata()}) {
    auto it = md->find(kRequestIdMetadata);
    if (it != md->end() && !it->second.empty()) {
      out.SetPayload(kRequestIdPayload,
                     absl::Cord(absl::string_view(it->second.data(), it->second.size())));
      break;
    }
  }
  return out;
}

std::string RequestIdOf(const absl::Status& status) {
  absl::optional<absl::Cord> id = status.GetPayload(kRequestIdPayload);
  return id.has_value() ? std::string(*id) : std::string();
}

absl::Status FromProto(const v1::Status& status) {
  if (status.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

google::protobuf::Timestamp TimeToProto(absl::Time t) {
  return api::TimeMicrosToProto(absl::ToUnixMicros(t));  // ToUnixMicros floors, as api does
}

absl::Time TimeFromProto(const google::protobuf::Timestamp& t) {
  absl::StatusOr<store::TimeMicros> micros = api::TimeMicrosFromProto(t);
  return micros.ok() ? absl::FromUnixMicros(*micros) : absl::InfinitePast();
}

void FillFrameHeader(const RawFrame& raw, const std::string& detector, const std::string& frame_id,
                     v1::FrameHeader* header) {
  header->set_frame_id(frame_id);
  header->set_detector(detector);
  HeaderToProto(raw.header, header->mutable_cards());
  header->set_width(raw.pixels.width());
  header->set_height(raw.pixels.height());
  header->set_pixel_type(PixelTypeToProto(raw.pixels.type()));
}

std::string OutcomeName(v1::SelectionOutcome outcome) {
  switch (outcome) {
    case v1::SELECTION_OUTCOME_CERTIFIED:
      return "certified";
    case v1::SELECTION_OUTCOME_PINNED:
      return "pinned";
    case v1::SELECTION_OUTCOME_FALLBACK:
      return "fallback";
    case v1::SELECTION_OUTCOME_MISS:
      return "miss";
    case v1::SELECTION_OUTCOME_SKIPPED:
      return "skipped";
    default:
      return "unspecified";
  }
}

std::string UnitName(v1::OutputUnit unit) {
  return unit == v1::OUTPUT_UNIT_ELECTRON ? "electron" : "adu";
}

absl::Status ResultAssembler::Start(const v1::ResultHeader& header) {
  if (active_ && !complete()) {
    return absl::InvalidArgumentError(absl::StrCat("result for '", header.frame_id(),
                                                   "' started before '", header_.frame_id(),
                                                   "' was complete"));
  }
  header_ = header;
  frame_ = CalibratedFrame();
  plane_index_ = 0;
  plane_filled_ = 0;
  active_ = false;
  absl::Status status = FromProto(header.status());
  if (!status.ok()) return status;
  const int w = header.width(), h = header.height();
  if (w <= 0 || h <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("result for '", header.frame_id(), "' has shape ", w, "x", h));
  }
  for (int p : header.planes()) {
    switch (p) {
      case v1::PLANE_DATA:
        frame_.data = Image<float>::Allocate(w, h, pool_);
        break;
      case v1::PLANE_VARIANCE:
        frame_.variance = Image<float>::Allocate(w, h, pool_);
        break;
      case v1::PLANE_DQ:
        frame_.dq = Image<uint16_t>::Allocate(w, h, pool_);
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat("result announces unknown plane ", p));
    }
  }
  frame_.unit = UnitName(header.unit());
  frame_.header = HeaderFromProto(header.cards());
  active_ = true;
  return absl::OkStatus();
}

bool ResultAssembler::complete() const { return active_ && plane_index_ >= header_.planes_size(); }

absl::Status ResultAssembler::AddChunk(const v1::ResultChunk& chunk) {
  if (!active_ || complete()) {
    return absl::InvalidArgumentError("result chunk without a result in progress");
  }
  const int plane = header_.planes(plane_index_);
  if (chunk.plane() != plane) {
    return absl::InvalidArgumentError(absl::StrCat("result chunk of plane ", chunk.plane(),
                                                   " while plane ", plane, " is incomplete"));
  }
  char* dest = nullptr;
  size_t size = 0;
  const size_t n = size_t(header_.width()) * header_.height();
  switch (plane) {
    case v1::PLANE_DATA:
      dest = reinterpret_cast<char*>(frame_.data.data());
      size = n * sizeof(float);
      break;
    case v1::PLANE_VARIANCE:
      dest = reinterpret_cast<char*>(frame_.variance.data());
      size = n * sizeof(float);
      break;
    default:
      dest = reinterpret_cast<char*>(frame_.dq.data());
      size = n * sizeof(uint16_t);
      break;
  }
  const std::string& bytes = chunk.data();
  if (plane_filled_ + bytes.size() > size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "result plane ", plane, " of '", header_.frame_id(), "' exceeds ", size, " bytes"));
  }
  std::memcpy(dest + plane_filled_, bytes.data(), bytes.size());
  plane_filled_ += bytes.size();
  if (plane_filled_ == size) {
    ++plane_index_;
    plane_filled_ = 0;
  }
  return absl::OkStatus();
}

CalibratedFrame ResultAssembler::Take() {
  active_ = false;
  return std::move(frame_);
}

}  // namespace calibd::client
