// Conversions of the calibd.v1 types that the server and the client share (header cards, pixel
// types, detector specs, times) to and from core's types: written once, so the two ends cannot
// drift.
//
//   *request.mutable_begin() = api::TimeMicrosToProto(store::NowMicros());
//   CALIBD_ASSIGN_OR_RETURN(store::TimeMicros begin, api::TimeMicrosFromProto(request.begin()));
//   v1::FrameHeader h;
//   api::HeaderToProto(raw.header, h.mutable_cards());
//   CALIBD_ASSIGN_OR_RETURN(PixelType type, api::PixelTypeFromProto(h.pixel_type()));
//   store::DetectorSpec spec = api::DetectorSpecFromProto(request.spec());
//
// Everything else proto⇄core stays in server/convert.* and client/convert.*, the only other
// files that know both kinds of type. Unset proto fields keep core's defaults (proto3 cannot
// tell "unset" from 0, and 0 is never a valid gain).
//
// Thread safety: pure functions.
#ifndef CALIBD_PROTO_API_CONVERT_H_
#define CALIBD_PROTO_API_CONVERT_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "calibd/v1/types.pb.h"
#include "core/image/header.h"
#include "core/image/image.h"
#include "core/store/detector.h"
#include "core/store/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace calibd::api {

void HeaderToProto(const Header& header, google::protobuf::RepeatedPtrField<v1::HeaderCard>* cards);
Header HeaderFromProto(const google::protobuf::RepeatedPtrField<v1::HeaderCard>& cards);

v1::PixelType PixelTypeToProto(PixelType type);
// INVALID_ARGUMENT for PIXEL_TYPE_UNSPECIFIED or an unknown value.
absl::StatusOr<PixelType> PixelTypeFromProto(v1::PixelType type);

// Times. A google.protobuf.Timestamp is seconds since the Unix epoch plus nanos in
// [0, 999999999] (a time before the epoch has negative seconds and non-negative nanos), valid
// from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. The epoch is an ordinary time:
// whether a time field is set is the message's presence (has_begin()), never a zero value.
inline constexpr int64_t kMinTimestampSeconds = -62135596800;  // 0001-01-01T00:00:00Z
inline constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31T23:59:59Z

// Exact for every time in the Timestamp range (floor division, so -1 µs is seconds -1 and
// nanos 999999000); times outside it saturate at the range's ends (store times never are).
google::protobuf::Timestamp TimeMicrosToProto(store::TimeMicros t);
// Nanos below a microsecond are dropped toward the past (floor, like ToProto), so order is kept
// and every TimeMicros round-trips. INVALID_ARGUMENT (naming `field`) for nanos outside
// [0, 999999999] (negative nanos included) or seconds outside the Timestamp range.
absl::StatusOr<store::TimeMicros> TimeMicrosFromProto(const google::protobuf::Timestamp& t,
                                                      absl::string_view field = "timestamp");

// DarkPolicy both ways; UNSPECIFIED is "not set" (nullopt), an unknown number INVALID_ARGUMENT.
v1::DarkPolicy DarkPolicyToProto(store::DarkPolicy policy);
absl::StatusOr<std::optional<store::DarkPolicy>> DarkPolicyFromProto(int policy);

v1::DetectorSpec DetectorSpecToProto(const store::DetectorSpec& spec);
store::DetectorSpec DetectorSpecFromProto(const v1::DetectorSpec& spec);

}  // namespace calibd::api

#endif  // CALIBD_PROTO_API_CONVERT_H_
