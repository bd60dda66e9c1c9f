// server/convert: wire → request types (validation with exact codes) and results → wire.
#include "server/convert.h"

#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::server {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::FrameHeader Header16(int w, int h) {
  v1::FrameHeader p;
  p.set_frame_id("f1");
  p.set_detector("lfc/chip0");
  p.set_width(w);
  p.set_height(h);
  p.set_pixel_type(v1::PIXEL_TYPE_UINT16);
  return p;
}

TEST(ConvertTest, FrameRequestFromProto) {
  v1::FrameHeader p = Header16(10, 4);
  p.set_unit(v1::OUTPUT_UNIT_ELECTRON);
  p.add_planes(v1::PLANE_DATA);
  p.add_planes(v1::PLANE_DQ);
  p.mutable_recipe()->set_flat(false);
  p.mutable_recipe()->set_gain(1.5);
  ASSERT_OK_AND_ASSIGN(FrameRequest r, FrameRequestFromProto(p));
  EXPECT_EQ(r.frame_id, "f1");
  EXPECT_EQ(r.num_pixels(), 40);
  EXPECT_EQ(r.num_bytes(), 80);
  EXPECT_EQ(r.unit, calib::RecipeOptions::Unit::kElectron);
  EXPECT_TRUE(r.want_data);
  EXPECT_FALSE(r.want_variance);
  EXPECT_TRUE(r.want_dq);
  EXPECT_EQ(r.recipe.flat, false);
  EXPECT_FALSE(r.recipe.bias.has_value());
  EXPECT_EQ(r.recipe.gain, 1.5);
  EXPECT_EQ(r.selection.policy, store::SelectionPolicy::kStrict);  // unspecified = strict
}

TEST(ConvertTest, DarkPolicyAndNoiseProductSwitches) {
  v1::FrameHeader p = Header16(4, 4);
  ASSERT_OK_AND_ASSIGN(FrameRequest unset, FrameRequestFromProto(p));
  EXPECT_FALSE(unset.recipe.dark_policy.has_value());  // = the detector's default
  EXPECT_FALSE(unset.recipe.read_noise_map.has_value());
  EXPECT_FALSE(unset.recipe.gain_product.has_value());
  EXPECT_FALSE(unset.recipe.bad_pixels.has_value());
  p.mutable_recipe()->set_dark_policy(v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED);
  p.mutable_recipe()->set_read_noise_map(true);
  p.mutable_recipe()->set_gain_product(false);
  p.mutable_recipe()->set_bad_pixels(true);
  ASSERT_OK_AND_ASSIGN(FrameRequest r, FrameRequestFromProto(p));
  EXPECT_EQ(r.recipe.dark_policy, store::DarkPolicy::kMeasuredElseSynthesized);
  EXPECT_EQ(r.recipe.read_noise_map, true);
  EXPECT_EQ(r.recipe.gain_product, false);
  EXPECT_EQ(r.recipe.bad_pixels, true);
  p.mutable_recipe()->set_dark_policy(v1::DARK_POLICY_SYNTHESIZED);
  ASSERT_OK_AND_ASSIGN(r, FrameRequestFromProto(p));
  EXPECT_EQ(r.recipe.dark_policy, store::DarkPolicy::kSynthesized);
  p.mutable_recipe()->set_dark_policy(static_cast<v1::DarkPolicy>(9));
  EXPECT_THAT(FrameRequestFromProto(p),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dark_policy")));
  v1::BuildOptions b;
  b.mutable_preprocess()->set_dark_policy(static_cast<v1::DarkPolicy>(9));
  EXPECT_THAT(BuildRequestFromProto(b),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dark_policy")));
}

TEST(ConvertTest, NoiseBuildOptionsReachTheBuildOrFailExactly) {
  v1::BuildOptions b;
  b.set_kind("dark_current");
  b.mutable_noise()->set_hot_sigma(1e6);
  b.mutable_noise()->set_hot_min_rate(100);
  ASSERT_OK_AND_ASSIGN(BuildRequest r, BuildRequestFromProto(b));
  EXPECT_EQ(r.options_text.at("noise.hot_sigma"), "1000000");
  EXPECT_EQ(r.options_text.at("noise.hot_min_rate"), "100");
  b.mutable_noise()->set_hot_sigma(4.123456789);  // exact, not 6 digits
  ASSERT_OK_AND_ASSIGN(r, BuildRequestFromProto(b));
  EXPECT_EQ(r.options_text.at("noise.hot_sigma"), "4.123456789");
  b.mutable_noise()->set_min_frames(3);
  EXPECT_THAT(BuildRequestFromProto(b),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("min_frames is not an option of 'dark_current'")));
  b.set_kind("bias");
  b.mutable_noise()->clear_min_frames();
  EXPECT_THAT(BuildRequestFromProto(b), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("options of the noise kinds")));
  b.clear_noise();
  ASSERT_OK_AND_ASSIGN(r, BuildRequestFromProto(b));  // no noise options: nothing added
  for (const auto& [key, value] : r.options_text) EXPECT_NE(key.rfind("noise.", 0), 0u) << key;
  b.set_kind("gain");
  b.mutable_noise()->add_sections("[1:8,1:10]");
  b.mutable_noise()->add_sections("[9:16,1:10]");
  b.mutable_noise()->add_level_sizes(2);
  b.mutable_noise()->add_level_sizes(4);
  ASSERT_OK_AND_ASSIGN(r, BuildRequestFromProto(b));
  EXPECT_EQ(r.options_text.at("noise.sections"), "[1:8,1:10];[9:16,1:10]");
  EXPECT_EQ(r.options_text.at("noise.level_sizes"), "2,4");
}

TEST(ConvertTest, AppliedMasterSaysWhatItWasUsedAs) {
  AppliedMaster a;
  a.kind = "noise_model";
  a.version = 3;
  a.sha256 = std::string(64, 'a');
  a.used_as = "dark";
  a.detail = "synthesized for t=30 s, g=1";
  v1::AppliedMaster p;
  AppliedMasterToProto(a, &p);
  EXPECT_EQ(p.kind(), "noise_model");
  EXPECT_EQ(p.used_as(), "dark");
  EXPECT_EQ(p.detail(), "synthesized for t=30 s, g=1");
  AppliedMaster bias;
  bias.kind = "bias";
  AppliedMasterToProto(bias, &p);
  EXPECT_EQ(p.used_as(), "bias");  // a plain master serves its own kind
  EXPECT_EQ(p.detail(), "");
}

TEST(ConvertTest, FrameRequestFromProtoRefusesWhatTheWireCanGetWrong) {
  EXPECT_THAT(FrameRequestFromProto(Header16(0, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("width and height")));
  v1::FrameHeader p = Header16(2, 2);
  p.set_unit(static_cast<v1::OutputUnit>(99));
  EXPECT_THAT(FrameRequestFromProto(p), StatusIs(absl::StatusCode::kInvalidArgument));
  p = Header16(2, 2);
  p.add_planes(static_cast<v1::Plane>(42));
  EXPECT_THAT(FrameRequestFromProto(p),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("plane")));
  p = Header16(2, 2);
  p.set_output_pixel_type(v1::PIXEL_TYPE_UINT16);
  EXPECT_THAT(FrameRequestFromProto(p),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("output_pixel_type")));
}

TEST(ConvertTest, SelectionFromProto) {
  v1::SelectionOptions s;
  s.set_policy(v1::SELECTION_POLICY_NEAREST);
  s.mutable_max_age()->set_seconds(3600);
  v1::PinnedVersion* pin = s.add_pins();
  pin->set_kind("bias");
  pin->set_version(3);
  ASSERT_OK_AND_ASSIGN(SelectionSpec spec, SelectionFromProto(s));
  EXPECT_EQ(spec.policy, store::SelectionPolicy::kNearest);
  EXPECT_EQ(spec.max_age_micros, int64_t{3600} * 1000000);
  ASSERT_EQ(spec.pins.count("bias"), 1u);
  EXPECT_EQ(spec.pins["bias"].version, 3);

  v1::SelectionOptions bad = s;
  bad.mutable_pins(0)->set_version(0);
  EXPECT_THAT(SelectionFromProto(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pin for bias")));
  bad = s;
  bad.mutable_pins(0)->clear_kind();
  EXPECT_THAT(SelectionFromProto(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = s;
  bad.mutable_max_age()->set_seconds(-1);
  EXPECT_THAT(SelectionFromProto(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = s;
  bad.set_policy(static_cast<v1::SelectionPolicy>(77));
  EXPECT_THAT(SelectionFromProto(bad), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ConvertTest, CombineOptionsFromProto) {
  v1::CombineOptions c;
  ASSERT_OK_AND_ASSIGN(combine::CombineOptions d, CombineOptionsFromProto(c));
  EXPECT_EQ(d.method, combine::CombineOptions::Method::kMedian);
  EXPECT_TRUE(d.sigma_clip.enabled);  // the default clipping runs unless switched off
  EXPECT_EQ(d.sigma_clip.low, 3.0);
  c.set_method("mean");
  c.mutable_sigma_clip()->set_enabled(true);
  c.mutable_sigma_clip()->set_low(2.5);
  c.mutable_sigma_clip()->set_spread("mad_std");
  c.set_variance("propagated");
  c.add_weights(1);
  c.add_weights(2);
  ASSERT_OK_AND_ASSIGN(combine::CombineOptions o, CombineOptionsFromProto(c));
  EXPECT_EQ(o.method, combine::CombineOptions::Method::kMean);
  EXPECT_EQ(o.sigma_clip.low, 2.5);
  EXPECT_EQ(o.sigma_clip.high, 3.0);  // unset keeps the default
  EXPECT_EQ(o.sigma_clip.spread, combine::CombineOptions::Spread::kMadStd);
  EXPECT_EQ(o.variance, combine::CombineOptions::Variance::kPropagated);
  EXPECT_THAT(o.weights, ElementsAre(1.0, 2.0));
  for (auto mutate : std::vector<std::function<void(v1::CombineOptions&)>>{
           [](v1::CombineOptions& x) { x.set_method("mode"); },
           [](v1::CombineOptions& x) { x.mutable_sigma_clip()->set_center("mode"); },
           [](v1::CombineOptions& x) { x.mutable_sigma_clip()->set_spread("iqr"); },
           [](v1::CombineOptions& x) { x.set_variance("poisson"); }}) {
    v1::CombineOptions b;
    mutate(b);
    EXPECT_THAT(CombineOptionsFromProto(b), StatusIs(absl::StatusCode::kInvalidArgument))
        << b.ShortDebugString();
  }
}

TEST(ConvertTest, PutMasterInputFromProto) {
  v1::PutMasterHeader h;
  h.set_detector("lfc/chip0");
  h.set_kind("bias");
  (*h.mutable_configuration())["binning"] = "2x2";
  (*h.mutable_attributes())["night"] = "2026-01-15";
  h.set_total_bytes(2880);
  h.set_sha256(std::string(64, 'a'));
  ASSERT_OK_AND_ASSIGN(const PutMasterInput in, PutMasterInputFromProto(h));
  EXPECT_EQ(in.detector, "lfc/chip0");
  EXPECT_EQ(in.kind, "bias");
  EXPECT_EQ(in.configuration.at("binning"), "2x2");
  EXPECT_EQ(in.attributes.at("night"), "2026-01-15");
  EXPECT_EQ(in.declared_bytes, 2880);
  EXPECT_EQ(in.client_sha256, std::string(64, 'a'));
  EXPECT_FALSE(in.obs_time.has_value());
  EXPECT_EQ(in.received_bytes, 0);  // filled while spooling, not from the header
  h.mutable_obs_time()->set_nanos(-1);
  EXPECT_THAT(PutMasterInputFromProto(h),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("obs_time")));
}

TEST(ConvertTest, BuildResultToProto) {
  BuildResult r;
  r.version.detector = "lfc/chip0";
  r.version.kind = "bias";
  r.version.version = 4;
  r.inputs = 7;
  r.rejected_fraction = 0.01;
  r.noise = 2.5;
  r.input_sha256 = {"aa", "bb"};
  v1::BuildMasterResponse p;
  BuildResultToProto(r, {}, &p);
  EXPECT_EQ(p.version().version(), 4);
  EXPECT_EQ(p.statistics().inputs(), 7);
  EXPECT_DOUBLE_EQ(p.statistics().rejected_fraction(), 0.01);
  EXPECT_DOUBLE_EQ(p.statistics().noise(), 2.5);
  EXPECT_THAT(p.input_sha256(), ElementsAre("aa", "bb"));
  EXPECT_FALSE(p.has_certification());
}

}  // namespace
}  // namespace calibd::server
