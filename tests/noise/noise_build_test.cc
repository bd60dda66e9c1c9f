// The server glue of the noise kinds (server/noise_build.cc, server/synth_dark_impl.cc) over a
// real embedded store: a noise_model built from FITS inputs is stored as one version whose blob
// keeps every map, and a synthesized dark is made from the stored version.
#include "server/noise_build.h"

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/fits/fits.h"
#include "core/image/dq.h"
#include "core/noise/noise.h"
#include "core/noise/noise_product.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend.h"
#include "server/store_impl.h"
#include "server/synth_dark_impl.h"
#include "tests/noise/noise_testing.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::Gaussian;
using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kW = 24;
constexpr int kH = 16;

class NoiseBuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::CalibrationStore> st,
                         store::OpenStore(dir_.File("store")));
    store_ = std::move(st);
    backend_.store.Set(store_);
    backend_.pool = &pool_;
    store::DetectorSpec spec;
    spec.name = "test/emccd";
    spec.width = kW;
    spec.height = kH;
    spec.gain = 1.0;
    ASSERT_OK(store_->PutDetector(spec, "test").status());
  }

  std::vector<std::string> WriteEmccdStack() {
    noise::ntest::Stack s;
    Gaussian g(91);
    for (auto [gain, t] : std::vector<std::pair<double, double>>{
             {1, 10}, {10, 10}, {50, 30}, {100, 60}, {200, 30}}) {
      for (int k = 0; k < 6; ++k) {
        CalibratedFrame& f = s.Add(
            [&](int x, int) {
              return 20 + 0.1 * x + gain * t * 0.01 + gain * 0.05 +
                     std::sqrt(16 + 2 * gain * gain * (0.01 * t + 0.05)) * g.Next();
            },
            {{"EMGAIN", gain}, {"EXPTIME", t}}, nullptr, kW, kH);
        f.header.Set("IMAGETYP", "dark");
      }
    }
    return s.Write(dir_.path(), "emccd");
  }

  calibd::testing::TempDir dir_;
  ThreadPool pool_{2};
  std::shared_ptr<store::CalibrationStore> store_;
  Backend backend_;
};

TEST_F(NoiseBuildTest, NoiseModelIsStoredWithEveryMapAndSynthesizesADark) {
  std::vector<std::string> paths = WriteEmccdStack();
  ASSERT_EQ(paths.size(), 30u);
  BuildRequest request;
  request.detector = "test/emccd";
  request.kind = "noise_model";
  request.configuration = {{"readout_mode", "em"}};
  request.actor = "test";
  std::vector<std::string> sha(paths.size(), std::string(64, 'a'));
  ASSERT_OK_AND_ASSIGN(BuildResult result,
                       FinishNoiseBuild(&backend_, request, paths, sha, dir_.path()));
  EXPECT_EQ(result.version.kind, "noise_model");
  EXPECT_EQ(result.version.version, 1);
  EXPECT_EQ(result.inputs, 30);
  ASSERT_TRUE(result.version.statistics.count("nfitted"));
  EXPECT_EQ(result.version.statistics.at("nfitted"), kW * kH);

  // The blob is the whole product: every map, readable as a NoiseProduct.
  StoreImpl impl(&backend_);
  ASSERT_OK_AND_ASSIGN(std::string blob, impl.BlobPath(result.version.sha256));
  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct stored, noise::ReadNoiseProduct(blob));
  EXPECT_EQ(stored.kind, "noise_model");
  for (const char* name : {"FPN", "FPN_ERR", "DARK_CURRENT", "CIC", "COV_D_C", "NUSABLE"}) {
    EXPECT_NE(stored.Find(name), nullptr) << name;
  }
  // The same build from the files, without the store, gives the same FPN.
  ASSERT_OK_AND_ASSIGN(store::DetectorRecord det, store_->GetDetector("test/emccd"));
  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct direct,
                       BuildNoiseProductFromFiles(det.spec, request, paths, 64 << 20, &pool_));
  EXPECT_EQ(direct.Find("FPN")->at(5, 5), stored.Find("FPN")->at(5, 5));

  // A synthesized dark from the stored (latest) version.
  SynthDarkQuery q;
  q.detector = "test/emccd";
  q.exptime = 45;
  q.em_gain = 300;
  ASSERT_OK_AND_ASSIGN(SynthDark dark, SynthesizeDarkFor(&backend_, q));
  EXPECT_EQ(dark.model.version, 1);
  noise::SynthDarkRequest r;
  r.exptime = 45;
  r.em_gain = 300;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame expect, noise::SynthesizeDark(stored, r));
  EXPECT_EQ(dark.frame.data.at(7, 3), expect.data.at(7, 3));
  // Truth: 20 + 0.1·x over g, + t·D + C.
  EXPECT_NEAR(dark.frame.data.at(7, 3), (20 + 0.7) / 300 + 45 * 0.01 + 0.05,
              4 * std::sqrt(dark.frame.variance.at(7, 3)));
  ASSERT_OK_AND_ASSIGN(int64_t model_version, dark.frame.header.GetInt("SYNMODV"));
  EXPECT_EQ(model_version, 1);
}

TEST_F(NoiseBuildTest, CancelledBuildStoresNothing) {
  std::vector<std::string> paths = WriteEmccdStack();
  std::vector<BuildInput> inputs;
  for (const std::string& p : paths) inputs.push_back({nullptr, p, std::string(64, 'b')});
  BuildRequest request;
  request.detector = "test/emccd";
  request.kind = "noise_model";
  request.configuration = {{"readout_mode", "em"}};
  request.actor = "test";
  std::atomic<bool> cancelled{true};  // the client went away before the build began
  EXPECT_THAT(FinishNoiseBuild(&backend_, request, inputs, dir_.path(), &cancelled),
              StatusIs(absl::StatusCode::kCancelled));
  store::MasterFilter all;
  all.detector = "test/emccd";
  ASSERT_OK_AND_ASSIGN(std::vector<store::MasterVersion> stored, store_->ListMasters(all));
  EXPECT_TRUE(stored.empty());
  // The flag is the only difference: lowered, the same build stores version 1.
  cancelled.store(false);
  ASSERT_OK_AND_ASSIGN(BuildResult result,
                       FinishNoiseBuild(&backend_, request, inputs, dir_.path(), &cancelled));
  EXPECT_EQ(result.version.version, 1);
}

TEST_F(NoiseBuildTest, Errors) {
  SynthDarkQuery q;
  q.detector = "test/emccd";
  q.exptime = 10;
  EXPECT_THAT(SynthesizeDarkFor(&backend_, q),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("has no noise_model or dark_current product")));
  BuildRequest request;
  request.detector = "test/emccd";
  request.kind = "gain_normalisation";
  // gain_normalisation builds (tests/client/noise_cli_test checks the table); a missing input
  // is NOT_FOUND naming it.
  EXPECT_THAT(FinishNoiseBuild(&backend_, request, {dir_.File("x.fits")}, {""}, dir_.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));
  EXPECT_EQ(PreprocessKindFor("gain_normalisation"), "bias");
  EXPECT_EQ(PreprocessKindFor("read_noise"), "bias");
  EXPECT_EQ(PreprocessKindFor("gain"), "bias");
  EXPECT_EQ(PreprocessKindFor("noise_model"), "dark");
  EXPECT_EQ(PreprocessKindFor("flat"), "flat");
  EXPECT_TRUE(IsNoiseKind("read_noise"));
  EXPECT_FALSE(IsNoiseKind("bias"));
}

}  // namespace
}  // namespace calibd::server
