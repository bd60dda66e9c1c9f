#include "client/convert.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace calibd::client {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::Status FromProto(const v1::Status& status) {
  if (status.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

void HeaderToProto(const Header& header,
                   google::protobuf::RepeatedPtrField<v1::HeaderCard>* cards) {
  cards->Reserve(cards->size() + static_cast<int>(header.cards().size()));
  for (const HeaderCard& c : header.cards()) {
    v1::HeaderCard* p = cards->Add();
    p->set_key(c.key);
    p->set_comment(c.comment);
    if (const bool* b = std::get_if<bool>(&c.value)) p->set_bool_value(*b);
    if (const int64_t* i = std::get_if<int64_t>(&c.value)) p->set_int_value(*i);
    if (const double* d = std::get_if<double>(&c.value)) p->set_double_value(*d);
    if (const std::string* s = std::get_if<std::string>(&c.value)) p->set_string_value(*s);
  }
}

Header HeaderFromProto(const google::protobuf::RepeatedPtrField<v1::HeaderCard>& cards) {
  Header h;
  for (const v1::HeaderCard& p : cards) {
    HeaderCard c;
    c.key = p.key();
    c.comment = p.comment();
    switch (p.value_case()) {
      case v1::HeaderCard::kBoolValue: c.value = p.bool_value(); break;
      case v1::HeaderCard::kIntValue: c.value = p.int_value(); break;
      case v1::HeaderCard::kDoubleValue: c.value = p.double_value(); break;
      case v1::HeaderCard::kStringValue: c.value = p.string_value(); break;
      default: break;
    }
    h.Append(std::move(c));
  }
  return h;
}

v1::PixelType PixelTypeToProto(PixelType type) { return static_cast<v1::PixelType>(type); }

absl::StatusOr<PixelType> PixelTypeFromProto(v1::PixelType type) {
  if (type < v1::PIXEL_TYPE_UINT8 || type > v1::PIXEL_TYPE_FLOAT64) {
    return absl::InvalidArgumentError(absl::StrCat("unknown pixel type ", static_cast<int>(type)));
  }
  return static_cast<PixelType>(type);
}

google::protobuf::Timestamp TimeToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t s = absl::ToUnixSeconds(t);
  out.set_seconds(s);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(s))));
  return out;
}

absl::Time TimeFromProto(const google::protobuf::Timestamp& t) {
  if (!IsSet(t)) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

bool IsSet(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

v1::DetectorSpec DetectorSpecToProto(const store::DetectorSpec& s) {
  v1::DetectorSpec p;
  p.set_name(s.name);
  p.set_width(s.width);
  p.set_height(s.height);
  p.set_overscan_section(s.overscan_section);
  p.set_trim_section(s.trim_section);
  p.set_data_section(s.data_section);
  p.set_statistics_section(s.statistics_section);
  p.set_gain(s.gain);
  p.set_read_noise(s.read_noise);
  p.set_saturation(s.saturation);
  v1::HeaderKeys* k = p.mutable_keys();
  k->set_exposure(s.keys.exposure);
  k->set_time(s.keys.time);
  k->set_filter(s.keys.filter);
  k->set_readout_mode(s.keys.readout_mode);
  k->set_binning(s.keys.binning);
  k->set_gain_setting(s.keys.gain_setting);
  k->set_temperature(s.keys.temperature);
  for (const auto& [kind, keys] : s.configuration_keys) {
    v1::ConfigurationKeys& ck = (*p.mutable_configuration_keys())[kind];
    for (const std::string& key : keys) ck.add_keys(key);
  }
  for (const auto& [key, tol] : s.tolerances) (*p.mutable_tolerances())[key] = tol;
  for (const store::DetectorDqBit& b : s.dq_bits) {
    v1::DqBit* q = p.add_dq_bits();
    q->set_bit(b.bit);
    q->set_name(b.name);
    q->set_description(b.description);
  }
  p.set_description(s.description);
  return p;
}

store::DetectorSpec DetectorSpecFromProto(const v1::DetectorSpec& p) {
  store::DetectorSpec s;
  s.name = p.name();
  s.width = p.width();
  s.height = p.height();
  s.overscan_section = p.overscan_section();
  s.trim_section = p.trim_section();
  s.data_section = p.data_section();
  s.statistics_section = p.statistics_section();
  s.gain = p.gain();
  s.read_noise = p.read_noise();
  s.saturation = p.saturation();
  // Empty fields keep the defaults (as the proto documents).
  auto key = [](const std::string& v, std::string* out) {
    if (!v.empty()) *out = v;
  };
  key(p.keys().exposure(), &s.keys.exposure);
  key(p.keys().time(), &s.keys.time);
  key(p.keys().filter(), &s.keys.filter);
  key(p.keys().readout_mode(), &s.keys.readout_mode);
  key(p.keys().binning(), &s.keys.binning);
  key(p.keys().gain_setting(), &s.keys.gain_setting);
  key(p.keys().temperature(), &s.keys.temperature);
  for (const auto& [kind, keys] : p.configuration_keys()) {
    s.configuration_keys[kind].assign(keys.keys().begin(), keys.keys().end());
  }
  for (const auto& [k, tol] : p.tolerances()) s.tolerances[k] = tol;
  for (const v1::DqBit& b : p.dq_bits()) {
    s.dq_bits.push_back({static_cast<uint16_t>(b.bit()), b.name(), b.description()});
  }
  s.description = p.description();
  return s;
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
    case v1::SELECTION_OUTCOME_CERTIFIED: return "certified";
    case v1::SELECTION_OUTCOME_PINNED: return "pinned";
    case v1::SELECTION_OUTCOME_FALLBACK: return "fallback";
    case v1::SELECTION_OUTCOME_MISS: return "miss";
    case v1::SELECTION_OUTCOME_SKIPPED: return "skipped";
    default: return "unspecified";
  }
}

std::string UnitName(v1::OutputUnit unit) {
  return unit == v1::OUTPUT_UNIT_ELECTRON ? "electron" : "adu";
}

absl::Status ResultAssembler::Start(const v1::ResultHeader& header) {
  if (active_ && !complete()) {
    return absl::InvalidArgumentError(
        absl::StrCat("result for '", header.frame_id(), "' started before '", header_.frame_id(),
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
      case v1::PLANE_DATA: frame_.data = Image<float>::Allocate(w, h, pool_); break;
      case v1::PLANE_VARIANCE: frame_.variance = Image<float>::Allocate(w, h, pool_); break;
      case v1::PLANE_DQ: frame_.dq = Image<uint16_t>::Allocate(w, h, pool_); break;
      default:
        return absl::InvalidArgumentError(absl::StrCat("result announces unknown plane ", p));
    }
  }
  frame_.unit = UnitName(header.unit());
  frame_.header = HeaderFromProto(header.cards());
  active_ = true;
  return absl::OkStatus();
}

bool ResultAssembler::complete() const {
  return active_ && plane_index_ >= header_.planes_size();
}

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
    return absl::InvalidArgumentError(absl::StrCat("result plane ", plane, " of '",
                                                   header_.frame_id(), "' exceeds ", size,
                                                   " bytes"));
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
