// Interoperability with astropy (Debian astropy 5.2), the oracle: files astropy writes are
// read with the values astropy put in (tests/oracle/fits_write_astropy.py, closed-form pixel
// functions recomputed here), and calibrated frames we write are loaded unchanged by
// CCDData.read (tests/oracle/ccddata_read.py asserts data, uncertainty, mask, unit, header).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/fits/fits.h"
#include "core/image/dq.h"
#include "core/status/macros.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace calibd::fits {
namespace {

using ::calibd::testing::CommandResult;
using ::calibd::testing::PythonCommand;
using ::calibd::testing::RunCommand;
using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;

constexpr int kW = 37, kH = 23;  // as in fits_write_astropy.py

int64_t ModifiedTime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
}

// The astropy files, written once per build tree (ctest runs every test case in its own
// process, and astropy takes seconds to start): regenerated when the script is newer than
// the stamp. Written into a private directory and renamed into place, so concurrent test
// processes never see half a set.
absl::StatusOr<std::string> AstropyFiles() {
  const std::string script = ::calibd::testing::SourcePath("tests/oracle/fits_write_astropy.py");
  const std::string dir = std::string(CALIBD_BINARY_DIR) + "/tests/fits/astropy_files";
  const std::string stamp = dir + "/stamp";
  if (ModifiedTime(stamp) >= ModifiedTime(script) && ModifiedTime(script) >= 0) return dir;
  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  CALIBD_ASSIGN_OR_RETURN(CommandResult r,
                          RunCommand("rm -rf '" + tmp + "' && mkdir -p '" + tmp + "' && " +
                                     PythonCommand("tests/oracle/fits_write_astropy.py", {tmp}) +
                                     " && touch '" + tmp + "/stamp'"));
  if (r.exit_code != 0) {
    return absl::InternalError("fits_write_astropy.py failed: " + r.output);
  }
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    // Another process got there first, or an old set is in the way: replace an old set.
    if (ModifiedTime(stamp) < ModifiedTime(script)) {
      CALIBD_ASSIGN_OR_RETURN(CommandResult rm, RunCommand("rm -rf '" + dir + "'"));
      (void)rm;
      if (::rename(tmp.c_str(), dir.c_str()) == 0) return dir;
    }
    CALIBD_ASSIGN_OR_RETURN(CommandResult rm, RunCommand("rm -rf '" + tmp + "'"));
    (void)rm;
  }
  return dir;
}

class AstropyFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::string> dir = AstropyFiles();
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *dir;
  }
  static std::string File(const std::string& name) { return dir_ + "/" + name; }
  static std::string dir_;
};
std::string AstropyFilesTest::dir_;

TEST_F(AstropyFilesTest, CcdDataWithUncertaintyAndMask) {
  ASSERT_OK_AND_ASSIGN(CalibratedFrame frame,
                       ReadCalibratedFrame(File("ccddata.fits"), {.verify_checksum = true}));
  EXPECT_EQ(frame.unit, "electron");
  ASSERT_EQ(frame.width(), kW);
  ASSERT_EQ(frame.height(), kH);
  ASSERT_TRUE(frame.has_variance());
  ASSERT_TRUE(frame.has_dq());  // from MASK: there is no DQ extension
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      ASSERT_EQ(frame.data.at(x, y), 0.5f * x - 0.25f * y + 100) << x << "," << y;
      float sigma = 1 + 0.5f * x + y;
      ASSERT_EQ(frame.variance.at(x, y), sigma * sigma) << x << "," << y;
      ASSERT_EQ(frame.dq.at(x, y), (x + 2 * y) % 5 == 0 ? kDqBad : 0) << x << "," << y;
    }
  }
  absl::StatusOr<double> exptime = frame.header.GetDouble("EXPTIME");
  ASSERT_OK(exptime);
  EXPECT_EQ(*exptime, 30.0);
}

TEST_F(AstropyFilesTest, Uint16WithBzeroAndHeaderCards) {
  ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(File("uint16.fits")));
  ASSERT_EQ(frame.pixels.type(), PixelType::kUint16);
  ASSERT_EQ(frame.pixels.width(), kW);
  ASSERT_EQ(frame.pixels.height(), kH);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      ASSERT_EQ(frame.pixels.row<uint16_t>(y)[x], (x * 37 + y * 707) % 65536);
    }
  }
  const Header& h = frame.header;
  EXPECT_EQ(h.GetString("OBSERVER").value_or(""), "O'Brien");
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "word ";
  EXPECT_EQ(h.GetString("LONGSTR").value_or(""), long_text + "end");
  EXPECT_EQ(h.GetString("ESO DET CHIP NAME").value_or(""), "chip 7");
  EXPECT_EQ(h.GetBool("FLAG").value_or(false), true);
  EXPECT_EQ(h.GetInt("COUNT").value_or(0), -12);
  EXPECT_EQ(h.GetDouble("THIRD").value_or(0), 1.0 / 3.0);
  std::vector<std::string> commentary;
  for (const HeaderCard& c : h.cards()) {
    if (c.key == "HISTORY" || c.key == "COMMENT") commentary.push_back(c.key + ":" + c.comment);
  }
  EXPECT_THAT(commentary, ::testing::ElementsAre("HISTORY:first history", "COMMENT:a comment",
                                                 "HISTORY:second history"));
  EXPECT_FALSE(h.Has("BZERO"));
  EXPECT_FALSE(h.Has("BITPIX"));
}

TEST_F(AstropyFilesTest, Int8WithBzeroIsScaledToFloat) {
  ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(File("int8.fits")));
  ASSERT_EQ(frame.pixels.type(), PixelType::kFloat32);
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      ASSERT_EQ(frame.pixels.row<float>(y)[x], float((x * 3 + y * 11) % 256 - 128));
    }
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(File("int8.fits")));
  std::vector<float> band(kW * kH);
  ASSERT_OK(reader->ReadRows(0, kH, band.data()));
  EXPECT_EQ(std::memcmp(band.data(), frame.pixels.data(), band.size() * sizeof(float)), 0);
}

TEST_F(AstropyFilesTest, Float64ExtensionByDefaultByNameAndByIndex) {
  for (ReadOptions options : {ReadOptions{}, ReadOptions{.hdu_name = "SCI"},
                              ReadOptions{.hdu_index = 1}}) {
    ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(File("float64_ext.fits"), options));
    ASSERT_EQ(frame.pixels.type(), PixelType::kFloat64);
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        ASSERT_EQ(frame.pixels.row<double>(y)[x], x * 0.001 + y * 1e6 + 1.0 / 3.0);
      }
    }
    EXPECT_EQ(frame.header.GetString("EXTNAME").value_or(""), "SCI");
  }
  // The primary HDU has no pixels.
  EXPECT_THAT(ReadRawFrame(File("float64_ext.fits"), {.hdu_index = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ReadRawFrame(File("float64_ext.fits"), {.hdu_name = "ERR"}),
              StatusIs(absl::StatusCode::kNotFound));
  // A table is not an image, but its header can be read.
  EXPECT_THAT(ReadRawFrame(File("float64_ext.fits"), {.hdu_name = "TAB"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BandReader::Open(File("float64_ext.fits"), {.hdu_index = 2}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(Header table, ReadHeader(File("float64_ext.fits"), {.hdu_name = "TAB"}));
  EXPECT_EQ(table.GetString("TTYPE1").value_or(""), "a");
  EXPECT_THAT(ReadRawFrame(File("float64_ext.fits"), {.hdu_index = 3}),
              StatusIs(absl::StatusCode::kNotFound));
}

class AstropyCompressedTest : public AstropyFilesTest,
                              public ::testing::WithParamInterface<std::string> {};

TEST_P(AstropyCompressedTest, TileCompressedImagesDecompressExactly) {
  const std::string path = File("comp_" + GetParam() + ".fits");
  ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(path, {.verify_checksum = true}));
  ASSERT_EQ(frame.pixels.width(), kW);
  ASSERT_EQ(frame.pixels.height(), kH);
  std::vector<double> row(kW);
  for (int y = 0; y < kH; ++y) {
    frame.pixels.RowToDouble(y, 0, kW, row.data());
    for (int x = 0; x < kW; ++x) {
      double want = GetParam() == "uint16" ? double((x * 37 + y * 707) % 65536)
                                           : double(x * 1000 + y * 3);
      ASSERT_EQ(row[x], want) << x << "," << y;
    }
  }
  if (GetParam() == "uint16") {
    EXPECT_EQ(frame.pixels.type(), PixelType::kUint16);
  } else {
    EXPECT_EQ(frame.pixels.type(), PixelType::kInt32);
    EXPECT_EQ(frame.header.GetString("FILTER").value_or(""), "r");
  }
  for (const HeaderCard& c : frame.header.cards()) {
    EXPECT_NE(c.key, "ZCMPTYPE");
    EXPECT_NE(c.key, "TTYPE1");
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(path));
  std::vector<float> band(kW * 3);
  ASSERT_OK(reader->ReadRows(20, 3, band.data()));
  frame.pixels.RowToDouble(21, 0, kW, row.data());
  EXPECT_EQ(band[kW + 5], float(row[5]));
}

TEST_F(AstropyFilesTest, QuantisedFloatRice) {
  ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(File("comp_float32.fits")));
  ASSERT_EQ(frame.pixels.type(), PixelType::kFloat32);
  double worst = 0;
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      float want = 0.5f * x - 0.25f * y + 100 + 0.01f * ((x * 7 + y * 3) % 11);
      worst = std::max(worst, std::abs(double(frame.pixels.row<float>(y)[x]) - want));
    }
  }
  // astropy quantises to a step well below the data's own scatter (0.01 here).
  EXPECT_LT(worst, 0.01);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, AstropyCompressedTest,
                         ::testing::Values("RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1",
                                           "uint16"));

TEST(CcdDataReadTest, CcdDataLoadsOurCalibratedFrameUnchanged) {
  TempDir dir;
  for (const char* unit : {"electron", "adu"}) {
    const std::string path = dir.File(std::string(unit) + ".fits");
    CalibratedFrame frame;
    frame.unit = unit;
    frame.data = Image<float>::Allocate(kW, kH);
    frame.variance = Image<float>::Allocate(kW, kH);
    frame.dq = Image<uint16_t>::Filled(kW, kH, 0);
    for (int y = 0; y < kH; ++y) {
      for (int x = 0; x < kW; ++x) {
        frame.data.at(x, y) = 0.5f * x - 0.25f * y + 100;
        float sigma = 1 + 0.5f * x + y;
        frame.variance.at(x, y) = sigma * sigma;
        if ((x + 2 * y) % 5 == 0) frame.dq.at(x, y) = kDqSaturated;
      }
    }
    frame.header.Set("EXPTIME", 30.0);
    frame.header.Set("OBSERVER", "O'Brien");
    frame.header.Set("BUNIT", "ignored: the frame's unit wins");
    ASSERT_OK(WriteCalibratedFrame(path, frame));
    ASSERT_OK_AND_ASSIGN(
        CommandResult r,
        RunCommand(PythonCommand("tests/oracle/ccddata_read.py",
                                 {path, std::to_string(kW), std::to_string(kH), unit})));
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
}

}  // namespace
}  // namespace calibd::fits
