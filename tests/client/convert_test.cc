// Tests of the client's proto ⇄ core conversions: header cards keep type, order and comments;
// the sample SPEC.json goes through core's JSON codec, the proto and back unchanged; a streamed
// result is assembled byte-exactly and protocol errors are refused.
#include "client/convert.h"

#include <cstring>

#include "absl/time/time.h"
#include "client/samples.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::client {
namespace {

using ::calibd::testing::StatusIs;

TEST(ConvertTest, HeaderCardsRoundTrip) {
  Header h;
  h.Set("EXPTIME", 30.5, "exposure");
  h.Set("NCOMBINE", 5);
  h.Set("SIMPLE", true);
  h.Set("IMAGETYP", "light", "type");
  h.AddHistory("bias subtracted");
  h.Append({"ESO DET CHIP NAME", std::string("chip0"), ""});
  google::protobuf::RepeatedPtrField<v1::HeaderCard> cards;
  HeaderToProto(h, &cards);
  ASSERT_EQ(cards.size(), 6);
  EXPECT_EQ(cards[0].value_case(), v1::HeaderCard::kDoubleValue);
  EXPECT_EQ(cards[1].value_case(), v1::HeaderCard::kIntValue);
  EXPECT_EQ(cards[2].value_case(), v1::HeaderCard::kBoolValue);
  EXPECT_EQ(cards[4].value_case(), v1::HeaderCard::VALUE_NOT_SET);
  EXPECT_EQ(cards[4].comment(), "bias subtracted");
  const Header back = HeaderFromProto(cards);
  ASSERT_EQ(back.cards().size(), h.cards().size());
  for (size_t i = 0; i < h.cards().size(); ++i) {
    EXPECT_EQ(back.cards()[i].key, h.cards()[i].key);
    EXPECT_EQ(back.cards()[i].value, h.cards()[i].value);
    EXPECT_EQ(back.cards()[i].comment, h.cards()[i].comment);
  }
}

TEST(ConvertTest, TimesAndPixelTypes) {
  const absl::Time t = absl::FromUnixMicros(1772330584123456);
  EXPECT_EQ(TimeFromProto(TimeToProto(t)), t);
  // The epoch is a time like any other (presence says whether a field is set), and a time
  // before it keeps microsecond precision (floor division in proto/api_convert).
  EXPECT_EQ(TimeFromProto(google::protobuf::Timestamp()), absl::UnixEpoch());
  const absl::Time before = absl::FromUnixMicros(-1'250'001);
  EXPECT_EQ(TimeFromProto(TimeToProto(before)), before);
  google::protobuf::Timestamp bad;
  bad.set_nanos(-1);
  EXPECT_EQ(TimeFromProto(bad), absl::InfinitePast());
  for (PixelType p : {PixelType::kUint8, PixelType::kUint16, PixelType::kFloat64}) {
    ASSERT_OK_AND_ASSIGN(PixelType back, PixelTypeFromProto(PixelTypeToProto(p)));
    EXPECT_EQ(back, p);
  }
  EXPECT_THAT(PixelTypeFromProto(v1::PIXEL_TYPE_UNSPECIFIED),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ConvertTest, SampleSpecThroughCoreJsonAndProto) {
  ASSERT_OK_AND_ASSIGN(store::DetectorSpec spec, store::DetectorSpecFromJson(SampleSpecJson({})));
  EXPECT_OK(store::ValidateDetectorSpec(spec));
  EXPECT_EQ(spec.name, "demo/ccd0");
  EXPECT_EQ(spec.width, 1056);
  EXPECT_EQ(spec.overscan_section, "[1025:1056,1:1024]");
  EXPECT_EQ(spec.configuration_keys.at("flat"), std::vector<std::string>{"filter"});
  spec.tolerances["exposure"] = 2;
  spec.dq_bits.push_back({1024, "bleed", "charge bleed"});
  const v1::DetectorSpec proto = DetectorSpecToProto(spec);
  EXPECT_EQ(proto.keys().exposure(), "EXPTIME");
  EXPECT_EQ(DetectorSpecFromProto(proto), spec);
}

TEST(ConvertTest, UnsetSpecFieldsKeepCoreDefaults) {
  // A client in another language may leave gain and the header keywords unset (0 / ""): the
  // spec then has core's defaults, as with a SPEC.json that omits them, never a gain of 0.
  v1::DetectorSpec proto;
  proto.set_name("demo/ccd0");
  proto.set_width(64);
  proto.set_height(32);
  proto.mutable_keys()->set_filter("FILTNAM");
  const store::DetectorSpec defaults;
  const store::DetectorSpec spec = DetectorSpecFromProto(proto);
  EXPECT_EQ(spec.gain, defaults.gain);
  EXPECT_GT(spec.gain, 0.0);
  EXPECT_EQ(spec.keys.exposure, defaults.keys.exposure);
  EXPECT_EQ(spec.keys.filter, "FILTNAM");
  proto.set_gain(2.5);
  EXPECT_EQ(DetectorSpecFromProto(proto).gain, 2.5);
}

TEST(ConvertTest, FrameHeaderDescribesTheRawFrame) {
  RawFrame raw;
  raw.pixels = RawImage::Allocate(PixelType::kUint16, 7, 3);
  raw.header.Set("EXPTIME", 1.0);
  v1::FrameHeader fh;
  FillFrameHeader(raw, "a/b", "f.fits", &fh);
  EXPECT_EQ(fh.detector(), "a/b");
  EXPECT_EQ(fh.frame_id(), "f.fits");
  EXPECT_EQ(fh.width(), 7);
  EXPECT_EQ(fh.height(), 3);
  EXPECT_EQ(fh.pixel_type(), v1::PIXEL_TYPE_UINT16);
  EXPECT_EQ(fh.cards_size(), 1);
}

v1::ResultHeader Header3x2(std::vector<v1::Plane> planes) {
  v1::ResultHeader h;
  h.set_frame_id("f");
  h.set_width(3);
  h.set_height(2);
  h.set_unit(v1::OUTPUT_UNIT_ELECTRON);
  for (v1::Plane p : planes) h.add_planes(p);
  v1::HeaderCard* c = h.add_cards();
  c->set_key("CALBIAS");
  c->set_bool_value(true);
  return h;
}

v1::ResultChunk Chunk(v1::Plane plane, const void* data, size_t n) {
  v1::ResultChunk c;
  c.set_plane(plane);
  c.set_data(data, n);
  return c;
}

TEST(ResultAssemblerTest, AssemblesPlanesFromSplitChunks) {
  ResultAssembler a;
  ASSERT_OK(a.Start(Header3x2({v1::PLANE_DATA, v1::PLANE_VARIANCE, v1::PLANE_DQ})));
  const float data[6] = {1, 2, 3, 4, 5, 6};
  const float var[6] = {0.5f, 0.5f, 0.5f, 1, 1, 1};
  const uint16_t dq[6] = {0, 8, 0, 0, 0, 256};
  // Data split mid-pixel: chunk boundaries need not align with pixels or rows.
  ASSERT_OK(a.AddChunk(Chunk(v1::PLANE_DATA, data, 10)));
  ASSERT_OK(a.AddChunk(Chunk(v1::PLANE_DATA, reinterpret_cast<const char*>(data) + 10, 14)));
  EXPECT_FALSE(a.complete());
  ASSERT_OK(a.AddChunk(Chunk(v1::PLANE_VARIANCE, var, sizeof var)));
  ASSERT_OK(a.AddChunk(Chunk(v1::PLANE_DQ, dq, sizeof dq)));
  ASSERT_TRUE(a.complete());
  CalibratedFrame f = a.Take();
  EXPECT_EQ(f.unit, "electron");
  EXPECT_EQ(f.data.at(2, 1), 6.f);
  EXPECT_EQ(f.variance.at(0, 1), 1.f);
  EXPECT_EQ(f.dq.at(1, 0), 8);
  EXPECT_EQ(f.dq.at(2, 1), 256);
  EXPECT_TRUE(f.header.Has("CALBIAS"));
}

TEST(ResultAssemblerTest, DataOnlyLeavesOtherPlanesEmpty) {
  ResultAssembler a;
  ASSERT_OK(a.Start(Header3x2({v1::PLANE_DATA})));
  const float data[6] = {};
  ASSERT_OK(a.AddChunk(Chunk(v1::PLANE_DATA, data, sizeof data)));
  ASSERT_TRUE(a.complete());
  CalibratedFrame f = a.Take();
  EXPECT_FALSE(f.has_variance());
  EXPECT_FALSE(f.has_dq());
}

TEST(ResultAssemblerTest, ProtocolErrors) {
  ResultAssembler a;
  const float data[8] = {};
  EXPECT_THAT(a.AddChunk(Chunk(v1::PLANE_DATA, data, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument));  // no header yet
  ASSERT_OK(a.Start(Header3x2({v1::PLANE_DATA, v1::PLANE_DQ})));
  EXPECT_THAT(a.AddChunk(Chunk(v1::PLANE_DQ, data, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument));  // out of order
  EXPECT_THAT(a.AddChunk(Chunk(v1::PLANE_DATA, data, sizeof data)),
              StatusIs(absl::StatusCode::kInvalidArgument));  // 32 bytes > 24
  EXPECT_THAT(a.Start(Header3x2({v1::PLANE_DATA})),
              StatusIs(absl::StatusCode::kInvalidArgument));  // previous result incomplete
}

TEST(ResultAssemblerTest, FailedFrameReturnsItsStatus) {
  ResultAssembler a;
  v1::ResultHeader h;
  h.set_frame_id("f");
  h.mutable_status()->set_code(9);
  h.mutable_status()->set_message("no certified bias");
  EXPECT_THAT(a.Start(h), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(a.active());
}

}  // namespace
}  // namespace calibd::client
