// server/build_impl: the effective options a build records as provenance.
#include "server/build_impl.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::server {
namespace {

TEST(BuildImplTest, ProvenanceRecordsTheDefaultClippingThatRan) {
  BuildRequest r;
  r.detector = "lfc/chip0";
  r.kind = "bias";
  r.options_text["combine"] = "method: \"median\"";
  const combine::CombineOptions defaults;  // what an unset CombineOptions proto becomes
  const std::map<std::string, std::string> o = EffectiveBuildOptions(r, defaults);
  EXPECT_EQ(o.at("combine.method"), "median");
  EXPECT_EQ(o.at("combine.sigma_clip"),
            "low=3 high=3 center=median spread=std max_iters=until_stable");
  EXPECT_EQ(o.at("combine.variance"), "ccdproc");
  EXPECT_EQ(o.at("combine.scale"), std::string(combine::ScaleName(defaults.scale)));
  EXPECT_EQ(o.at("preprocess.masters"), "none");  // biases: overscan and trim only
  EXPECT_EQ(o.at("request.combine"), "method: \"median\"");
}

TEST(BuildImplTest, ProvenanceOfAnExplicitMeanWithoutClipping) {
  BuildRequest r;
  r.kind = "flat";
  combine::CombineOptions c;
  c.method = combine::CombineOptions::Method::kMean;
  c.sigma_clip.enabled = false;
  c.nlow = 1;
  c.weights = {1, 2};
  const std::map<std::string, std::string> o = EffectiveBuildOptions(r, c);
  EXPECT_EQ(o.at("combine.method"), "mean");
  EXPECT_EQ(o.at("combine.sigma_clip"), "off");
  EXPECT_EQ(o.at("combine.nlow"), "1");
  EXPECT_EQ(o.at("combine.weights"), "1,2");
  EXPECT_EQ(o.at("preprocess.masters"), "bias,dark");
}

}  // namespace
}  // namespace calibd::server
