// server/build_impl: the effective options a build records as provenance; where inputs live
// (in memory within the budget, spooled beyond it) never changes a master or a noise product.
#include "server/build_impl.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/fits/fits.h"
#include "core/image/buffer_pool.h"
#include "core/image/dq.h"
#include "core/image/section.h"
#include "core/noise/noise.h"
#include "core/parallel/thread_pool.h"
#include "core/status/status_matchers.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/calibrate_impl.h"
#include "server/noise_build.h"
#include "server/store_impl.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::CcdModel;
using ::calibd::testing::FrameKind;
using ::calibd::testing::SimulateFrame;
using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;

bool SamePlanes(const CalibratedFrame& a, const CalibratedFrame& b) {
  auto same = [](const auto& x, const auto& y) {
    using T = std::remove_cvref_t<decltype(*x.data())>;
    return x.width() == y.width() && x.height() == y.height() &&
           std::memcmp(x.data(), y.data(), size_t(x.num_pixels()) * sizeof(T)) == 0;
  };
  return same(a.data, b.data) && a.has_variance() == b.has_variance() &&
         (!a.has_variance() || same(a.variance, b.variance)) && a.has_dq() == b.has_dq() &&
         (!a.has_dq() || same(a.dq, b.dq));
}

// A backend over its own embedded store, with the detector of CcdModel registered.
class BuildBackend {
 public:
  BuildBackend(const TempDir& dir, const std::string& name, int64_t combine_memory_bytes,
               const CcdModel& ccd) {
    absl::StatusOr<std::unique_ptr<store::CalibrationStore>> st =
        store::OpenStore(dir.File(name));
    EXPECT_OK(st.status());
    store_ = std::move(*st);
    backend_.store.Set(store_);
    backend_.pool = &pool_;
    backend_.store_pool = &pool_;
    backend_.blob_pool = &pool_;
    backend_.buffers = &buffers_;
    backend_.limits.combine_memory_bytes = combine_memory_bytes;
    backend_.spool_dir = dir.path();
    store::DetectorSpec spec;
    spec.name = "t/ccd";
    spec.width = ccd.width();
    spec.height = ccd.height;
    spec.overscan_section = FormatFitsSection(Section{ccd.data_width, ccd.width(), 0, ccd.height});
    spec.trim_section = FormatFitsSection(Section{0, ccd.data_width, 0, ccd.height});
    spec.gain = ccd.gain;
    spec.read_noise = ccd.read_noise;
    spec.saturation = 65000;
    spec.configuration_keys["default"];
    EXPECT_OK(store_->PutDetector(spec, "test").status());
  }
  Backend* get() { return &backend_; }
  const CalibrateImpl* calibrate() const { return &calibrate_; }
  store::CalibrationStore& store() { return *store_; }

 private:
  ThreadPool pool_{2};
  BufferPool buffers_;
  std::shared_ptr<store::CalibrationStore> store_;
  Backend backend_;
  CalibrateImpl calibrate_{&backend_};
};

// Builds a master bias from `n` simulated biases; returns the stored master's planes and how
// many inputs were kept in memory.
// With `cancelled` the build is expected to end CANCELLED (and the returned frame is empty).
CalibratedFrame BuildBias(BuildBackend& b, const CcdModel& ccd, int n,
                          combine::CombineOptions::Variance variance, int* in_memory,
                          const std::atomic<bool>* cancelled = nullptr) {
  BuildRequest request;
  request.detector = "t/ccd";
  request.kind = "bias";
  request.combine.sigma_clip.enabled = false;
  request.combine.variance = variance;
  request.actor = "test";
  BuildSession session(b.get(), b.calibrate(), request);
  EXPECT_OK(session.Begin());
  for (int i = 0; i < n; ++i) {
    RawFrame raw = SimulateFrame(ccd, FrameKind::kBias, 100 + i);
    FrameRequest fr;
    fr.frame_id = "bias" + std::to_string(i);
    fr.header = raw.header;
    fr.width = raw.pixels.width();
    fr.height = raw.pixels.height();
    fr.pixel_type = raw.pixels.type();
    PreparedFrame prepared;
    EXPECT_OK(session.PrepareRaw(std::move(fr), prepared));
    EXPECT_OK(session.AddRaw(prepared, std::move(raw.pixels), std::string(64, 'a' + i % 6)));
  }
  *in_memory = session.inputs_in_memory();
  EXPECT_LE(session.memory_bytes(), session.memory_limit());
  absl::StatusOr<BuildResult> r = session.Finish(cancelled);
  if (cancelled != nullptr) {
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kCancelled));
    return {};
  }
  EXPECT_OK(r.status());
  if (!r.ok()) return {};
  StoreImpl store(b.get());
  absl::StatusOr<std::string> blob = store.BlobPath(r->version.sha256);
  EXPECT_OK(blob.status());
  absl::StatusOr<CalibratedFrame> master = fits::ReadCalibratedFrame(*blob);
  EXPECT_OK(master.status());
  return master.ok() ? *std::move(master) : CalibratedFrame{};
}

TEST(BuildSessionTest, InputsInMemoryOrSpooledGiveTheSameMaster) {
  TempDir dir;
  CcdModel ccd;  // 72 × 48 raw, 64 × 48 trimmed
  const int64_t frame_bytes = int64_t{64} * 48 * (4 + 4 + 2);  // data, variance, DQ
  for (auto variance : {combine::CombineOptions::Variance::kCcdproc,
                        combine::CombineOptions::Variance::kPropagated}) {
    SCOPED_TRACE(variance == combine::CombineOptions::Variance::kCcdproc ? "ccdproc"
                                                                          : "propagated");
    BuildBackend all(dir, std::string("all") + char('0' + int(variance)), int64_t{64} << 20, ccd);
    BuildBackend some(dir, std::string("some") + char('0' + int(variance)), 5 * frame_bytes, ccd);
    int in_memory_all = 0, in_memory_some = 0;
    const CalibratedFrame a = BuildBias(all, ccd, 9, variance, &in_memory_all);
    const CalibratedFrame b = BuildBias(some, ccd, 9, variance, &in_memory_some);
    EXPECT_EQ(in_memory_all, 9);
    EXPECT_GE(in_memory_some, 1);
    EXPECT_LT(in_memory_some, 9);
    EXPECT_TRUE(SamePlanes(a, b));
    EXPECT_GT(a.width(), 0);
  }
}

// A build whose client went away during the combine stores nothing, whether its inputs are in
// memory or spooled (Finish sees the reactor's flag between row bands).
TEST(BuildSessionTest, CancelledBuildStoresNothing) {
  TempDir dir;
  CcdModel ccd;
  const int64_t frame_bytes = int64_t{64} * 48 * (4 + 4 + 2);
  std::atomic<bool> cancelled{true};
  for (int64_t budget : {int64_t{64} << 20, 5 * frame_bytes}) {
    BuildBackend b(dir, "cancel" + std::to_string(budget), budget, ccd);
    int in_memory = 0;
    BuildBias(b, ccd, 9, combine::CombineOptions::Variance::kCcdproc, &in_memory, &cancelled);
    absl::StatusOr<std::vector<store::MasterVersion>> versions =
        b.store().ListMasters(store::MasterFilter{});
    ASSERT_OK(versions.status());
    EXPECT_THAT(*versions, ::testing::IsEmpty());
  }
}

// The noise kinds read the same BuildInput list: products from frames in memory equal those
// from their spool files, map for map, bit for bit (variance included: dark_current weighs by it).
TEST(BuildSessionTest, NoiseProductsFromMemoryEqualThoseFromFiles) {
  TempDir dir;
  constexpr int kW = 20, kH = 12;
  testing::Gaussian g(7);
  std::vector<BuildInput> memory, files;
  std::vector<std::string> paths;
  int i = 0;
  for (double t : {10.0, 10.0, 10.0, 30.0, 30.0, 30.0, 60.0, 60.0, 60.0}) {
    CalibratedFrame f;
    f.data = Image<float>::Allocate(kW, kH);
    f.variance = Image<float>::Allocate(kW, kH);
    f.dq = Image<uint16_t>::Filled(kW, kH, 0);
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        f.data.at(x, y) = static_cast<float>(0.02 * t * (1 + 0.01 * x) + 3 * g.Next());
        f.variance.at(x, y) = static_cast<float>(9 + 0.01 * t + 0.1 * g.Uniform());
      }
    }
    f.dq.at(3, 4) = kDqBad;
    f.header.Set("EXPTIME", t);
    f.header.Set("IMAGETYP", "dark");
    const std::string path = dir.File("dark" + std::to_string(i++) + ".fits");
    ASSERT_OK(fits::WriteCalibratedFrame(path, f));
    paths.push_back(path);
    files.push_back({nullptr, path, ""});
    AsIfSpooled(f);
    memory.push_back({std::make_shared<const CalibratedFrame>(std::move(f)), "", ""});
  }
  store::DetectorSpec spec;
  spec.name = "t/ccd";
  spec.width = kW;
  spec.height = kH;
  spec.gain = 1.5;
  ThreadPool pool(2);
  for (absl::string_view kind : {noise::kKindDarkCurrent, noise::kKindReadNoise}) {
    SCOPED_TRACE(kind);
    BuildRequest request;
    request.detector = "t/ccd";
    request.kind = std::string(kind);
    ASSERT_OK_AND_ASSIGN(noise::NoiseProduct from_memory,
                         BuildNoiseProduct(spec, request, memory, 1 << 20, &pool));
    ASSERT_OK_AND_ASSIGN(noise::NoiseProduct from_files,
                         BuildNoiseProductFromFiles(spec, request, paths, 1 << 20, &pool));
    ASSERT_EQ(from_memory.maps.size(), from_files.maps.size());
    ASSERT_FALSE(from_memory.maps.empty());
    for (size_t m = 0; m < from_memory.maps.size(); ++m) {
      const Image<float>& a = from_memory.maps[m].data;
      const Image<float>& b = from_files.maps[m].data;
      ASSERT_EQ(a.num_pixels(), b.num_pixels());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(a.num_pixels()) * sizeof(float)), 0)
          << from_memory.maps[m].name;
    }
  }
}

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
