#include "proto/api_convert.h"

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace calibd::api {

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
      case v1::HeaderCard::kBoolValue:
        c.value = p.bool_value();
        break;
      case v1::HeaderCard::kIntValue:
        c.value = p.int_value();
        break;
      case v1::HeaderCard::kDoubleValue:
        c.value = p.double_value();
        break;
      case v1::HeaderCard::kStringValue:
        c.value = p.string_value();
        break;
      default:
        break;
    }
    h.Append(std::move(c));
  }
  return h;
}

v1::PixelType PixelTypeToProto(PixelType type) { return static_cast<v1::PixelType>(type); }

absl::StatusOr<PixelType> PixelTypeFromProto(v1::PixelType type) {
  const int v = static_cast<int>(type);
  if (v < static_cast<int>(PixelType::kUint8) || v > static_cast<int>(PixelType::kFloat64)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pixel_type ", v, " is not set or unknown; use PIXEL_TYPE_UINT16, ..._FLOAT32, ..."));
  }
  return static_cast<PixelType>(v);
}

google::protobuf::Timestamp TimeMicrosToProto(store::TimeMicros t) {
  constexpr int64_t kMicros = store::kMicrosPerSecond;
  google::protobuf::Timestamp ts;
  int64_t seconds = t / kMicros;
  int64_t micros = t % kMicros;
  if (micros < 0) {  // C++ division truncates toward zero; Timestamp wants floor
    micros += kMicros;
    --seconds;
  }
  if (seconds < kMinTimestampSeconds) {
    seconds = kMinTimestampSeconds;
    micros = 0;
  } else if (seconds > kMaxTimestampSeconds) {
    seconds = kMaxTimestampSeconds;
    micros = kMicros - 1;
  }
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(micros * 1000));
  return ts;
}

absl::StatusOr<store::TimeMicros> TimeMicrosFromProto(const google::protobuf::Timestamp& t,
                                                      absl::string_view field) {
  if (t.nanos() < 0 || t.nanos() > 999'999'999) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": nanos ", t.nanos(),
                     " outside [0, 999999999] (a time before a whole second has "
                     "seconds one lower and positive nanos)"));
  }
  if (t.seconds() < kMinTimestampSeconds || t.seconds() > kMaxTimestampSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": seconds ", t.seconds(), " outside 0001-01-01..9999-12-31 (",
                     kMinTimestampSeconds, "..", kMaxTimestampSeconds, ")"));
  }
  return t.seconds() * store::kMicrosPerSecond + t.nanos() / 1000;  // nanos >= 0: floor
}

v1::DarkPolicy DarkPolicyToProto(store::DarkPolicy policy) {
  switch (policy) {
    case store::DarkPolicy::kMeasured: return v1::DARK_POLICY_MEASURED;
    case store::DarkPolicy::kSynthesized: return v1::DARK_POLICY_SYNTHESIZED;
    case store::DarkPolicy::kMeasuredElseSynthesized:
      return v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED;
  }
  return v1::DARK_POLICY_UNSPECIFIED;
}

absl::StatusOr<std::optional<store::DarkPolicy>> DarkPolicyFromProto(int policy) {
  switch (policy) {
    case v1::DARK_POLICY_UNSPECIFIED: return std::optional<store::DarkPolicy>();
    case v1::DARK_POLICY_MEASURED: return store::DarkPolicy::kMeasured;
    case v1::DARK_POLICY_SYNTHESIZED: return store::DarkPolicy::kSynthesized;
    case v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED:
      return store::DarkPolicy::kMeasuredElseSynthesized;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "dark_policy: unknown value ", policy,
          " (MEASURED, SYNTHESIZED or MEASURED_ELSE_SYNTHESIZED)"));
  }
}

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
  k->set_em_gain(s.keys.em_gain);
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
  if (s.dark_temperature_coefficient) {
    p.set_dark_temperature_coefficient(*s.dark_temperature_coefficient);
  }
  p.set_dark_policy(DarkPolicyToProto(s.dark_policy));
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
  if (p.gain() != 0) s.gain = p.gain();  // unset keeps the default (0 is never valid)
  s.read_noise = p.read_noise();
  s.saturation = p.saturation();
  auto key = [](const std::string& v, std::string* out) {
    if (!v.empty()) *out = v;  // empty keeps the default keyword
  };
  key(p.keys().exposure(), &s.keys.exposure);
  key(p.keys().time(), &s.keys.time);
  key(p.keys().filter(), &s.keys.filter);
  key(p.keys().readout_mode(), &s.keys.readout_mode);
  key(p.keys().binning(), &s.keys.binning);
  key(p.keys().gain_setting(), &s.keys.gain_setting);
  key(p.keys().temperature(), &s.keys.temperature);
  key(p.keys().em_gain(), &s.keys.em_gain);
  for (const auto& [kind, keys] : p.configuration_keys()) {
    s.configuration_keys[kind].assign(keys.keys().begin(), keys.keys().end());
  }
  for (const auto& [k, tol] : p.tolerances()) s.tolerances[k] = tol;
  for (const v1::DqBit& b : p.dq_bits()) {
    s.dq_bits.push_back({static_cast<uint16_t>(b.bit()), b.name(), b.description()});
  }
  s.description = p.description();
  if (p.has_dark_temperature_coefficient()) {
    s.dark_temperature_coefficient = p.dark_temperature_coefficient();
  }
  // An unknown value is refused by the server before it gets here (DarkPolicyFromProto).
  s.dark_policy = DarkPolicyFromProto(p.dark_policy()).value_or(std::nullopt)
                      .value_or(store::DarkPolicy::kMeasured);
  return s;
}

}  // namespace calibd::api
