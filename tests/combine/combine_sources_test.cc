// The FrameSources of core/combine and how Combine treats them: a read error keeps its code
// and names the source, a cancelled build stops between bands (Combine's flag and
// CancellableSource), and FITS files combine exactly like the frames they were written from.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/combine/combine.h"
#include "core/fits/fits.h"
#include "core/image/dq.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/combine/combine_testing.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::combine {
namespace {

using ::calibd::combine::ctest::MakeFrame;
using ::calibd::combine::ctest::NoClip;
using ::calibd::combine::ctest::ScriptedSource;
using ::calibd::combine::ctest::Sources;
using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;
using Method = CombineOptions::Method;

constexpr int kW = ScriptedSource::kWidth;
constexpr int kH = ScriptedSource::kHeight;

std::shared_ptr<CalibratedFrame> Ones() {
  return MakeFrame(kW, kH, [](int, int) { return 1.0f; });
}

TEST(CombineTest, ReadErrorKeepsItsCodeAndNamesTheSource) {
  int reads = 0;
  std::vector<std::unique_ptr<FrameSource>> in;
  in.push_back(MemorySource(Ones()));
  in.push_back(std::make_unique<ScriptedSource>("broken.fits", &reads, [](int, int y0) {
    return y0 > 0 ? absl::DataLossError("checksum mismatch") : absl::OkStatus();
  }));
  CombineOptions o;
  o.memory_budget_bytes = 9600;  // 8 rows per band
  EXPECT_THAT(Combine(std::move(in), o),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("broken.fits")));
  EXPECT_EQ(reads, 2);  // the first band, then the failing second
}

// Raises `*cancel` while reading band `at` (as a client going away would, from another thread,
// mid-combine); never when `at` is -1.
ScriptedSource::OnRead CancelAt(std::atomic<bool>* cancel, int at) {
  return [cancel, at](int n, int) {
    if (n == at) cancel->store(true);
    return absl::OkStatus();
  };
}

TEST(CombineTest, CancelStopsBeforeTheNextBand) {
  std::atomic<bool> cancel{false};
  int reads = 0;
  std::vector<std::unique_ptr<FrameSource>> in;
  in.push_back(MemorySource(Ones()));
  in.push_back(std::make_unique<ScriptedSource>("slow.fits", &reads, CancelAt(&cancel, 2)));
  CombineOptions o = NoClip(Method::kMedian);
  o.memory_budget_bytes = 9600;
  const int rows = PlanBandRows(o, 2, kW, kH, false, false);
  ASSERT_GE(rows, 1);
  const int bands = (kH + rows - 1) / rows;
  ASSERT_GE(bands, 4);
  EXPECT_THAT(Combine(std::move(in), o, nullptr, nullptr, &cancel),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(reads, 2);  // band 2 was the last one read; bands 3.. never were

  // Already cancelled: not one band is read; not cancelled: the same stack combines.
  std::vector<std::unique_ptr<FrameSource>> again;
  int untouched = 0;
  again.push_back(std::make_unique<ScriptedSource>("slow.fits", &untouched, CancelAt(&cancel, -1)));
  EXPECT_THAT(Combine(std::move(again), o, nullptr, nullptr, &cancel),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(untouched, 0);
  cancel.store(false);
  std::vector<std::unique_ptr<FrameSource>> ok;
  ok.push_back(MemorySource(Ones()));
  int all = 0;
  ok.push_back(std::make_unique<ScriptedSource>("slow.fits", &all, CancelAt(&cancel, -1)));
  ASSERT_OK_AND_ASSIGN(CombineResult r, Combine(std::move(ok), o, nullptr, nullptr, &cancel));
  EXPECT_EQ(r.num_bands, bands);
  EXPECT_EQ(all, bands);
  EXPECT_EQ(r.frame.data.at(3, 63), 1.0f);
}

TEST(CancellableSourceTest, RefusesTheNextReadOnceCancelledAndForwardsTheRest) {
  std::atomic<bool> cancel{false};
  int reads = 0;
  std::unique_ptr<FrameSource> s = CancellableSource(
      std::make_unique<ScriptedSource>("dark_07.fits", &reads, nullptr), &cancel);
  EXPECT_EQ(s->width(), kW);
  EXPECT_EQ(s->height(), kH);
  EXPECT_EQ(s->name(), "dark_07.fits");
  EXPECT_FALSE(s->has_variance());
  EXPECT_EQ(s->in_memory(), nullptr);
  std::vector<float> band(8 * kW, 0.0f);
  ASSERT_OK(s->ReadRows(0, 8, band.data(), nullptr, nullptr));
  EXPECT_EQ(band[8 * kW - 1], 1.0f);
  ASSERT_OK(s->ReadRows(8, 8, band.data(), nullptr, nullptr));
  cancel.store(true);
  band.assign(band.size(), 0.0f);
  EXPECT_THAT(s->ReadRows(16, 8, band.data(), nullptr, nullptr),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(reads, 2);        // the refused read never reached the file
  EXPECT_EQ(band[0], 0.0f);   // nor wrote a pixel

  // No flag: never cancelled. A frame in memory stays readable in place.
  std::shared_ptr<CalibratedFrame> frame = Ones();
  std::unique_ptr<FrameSource> m = CancellableSource(MemorySource(frame), nullptr);
  EXPECT_EQ(m->in_memory(), frame.get());
  ASSERT_OK(m->ReadRows(60, 4, band.data(), nullptr, nullptr));
}

TEST(FitsSourceTest, CombinesFilesLikeTheSameFramesInMemory) {
  // Frames written in calibd's calibrated layout (data, UNCERT, MASK, DQ) and read back band by
  // band must combine exactly like the frames they were written from.
  testing::TempDir dir;
  std::vector<std::shared_ptr<CalibratedFrame>> frames;
  std::vector<std::unique_ptr<FrameSource>> files;
  for (int i = 0; i < 5; ++i) {
    testing::Gaussian g(40 + i);
    frames.push_back(MakeFrame(
        19, 13, [&](int, int) { return static_cast<float>(200 + 4 * g.Next()); },
        [i](int x, int) { return 1.0f + i + 0.5f * x; },
        [i](int x, int y) -> uint16_t { return x == i && y == 2 ? kDqCosmicRay : 0; }));
    const std::string path = dir.File("f" + std::to_string(i) + ".fits");
    ASSERT_OK(fits::WriteCalibratedFrame(path, *frames.back()));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<FrameSource> s, FitsSource(path));
    EXPECT_TRUE(s->has_variance());
    EXPECT_TRUE(s->has_dq());
    EXPECT_EQ(s->name(), path);
    files.push_back(std::move(s));
  }
  CombineOptions o;
  o.method = Method::kMean;
  o.variance = CombineOptions::Variance::kPropagated;
  o.memory_budget_bytes = 30000;  // a few rows per band
  ASSERT_OK_AND_ASSIGN(CombineResult from_files, Combine(std::move(files), o));
  ASSERT_OK_AND_ASSIGN(CombineResult from_memory, Combine(Sources(frames), o));
  EXPECT_GT(from_files.num_bands, 1);
  for (int y = 0; y < 13; ++y) {
    for (int x = 0; x < 19; ++x) {
      EXPECT_EQ(from_files.frame.data.at(x, y), from_memory.frame.data.at(x, y));
      EXPECT_NEAR(from_files.frame.variance.at(x, y), from_memory.frame.variance.at(x, y),
                  1e-5 * from_memory.frame.variance.at(x, y));
      EXPECT_EQ(from_files.count.at(x, y), from_memory.count.at(x, y));
    }
  }
  EXPECT_EQ(from_files.count.at(3, 2), 4);  // frame 3's cosmic ray is not counted
  EXPECT_THAT(FitsSource(dir.File("missing.fits")), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace calibd::combine
