// Conversions of the calibd.v1 types that the server and the client share (header cards, pixel
// types, detector specs) to and from core's types: written once, so the two ends cannot drift.
//
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

#include "absl/status/statusor.h"
#include "calibd/v1/types.pb.h"
#include "core/image/header.h"
#include "core/image/image.h"
#include "core/store/detector.h"

namespace calibd::api {

void HeaderToProto(const Header& header,
                   google::protobuf::RepeatedPtrField<v1::HeaderCard>* cards);
Header HeaderFromProto(const google::protobuf::RepeatedPtrField<v1::HeaderCard>& cards);

v1::PixelType PixelTypeToProto(PixelType type);
// INVALID_ARGUMENT for PIXEL_TYPE_UNSPECIFIED or an unknown value.
absl::StatusOr<PixelType> PixelTypeFromProto(v1::PixelType type);

v1::DetectorSpec DetectorSpecToProto(const store::DetectorSpec& spec);
store::DetectorSpec DetectorSpecFromProto(const v1::DetectorSpec& spec);

}  // namespace calibd::api

#endif  // CALIBD_PROTO_API_CONVERT_H_
