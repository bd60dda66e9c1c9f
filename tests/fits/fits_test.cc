// Round trips through core/fits: every pixel type, every tile compression, named and indexed
// HDUs, header cards, calibrated frames, the band reader. Oracles are closed-form: pixels are
// a known function of (x, y), so what is read must equal what the function says.
#include "core/fits/fits.h"

#include <fitsio.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/fits/rice_check.h"
#include "core/image/dq.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::fits {
namespace {

using ::calibd::testing::MakeFrame;
using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;
using ::testing::HasSubstr;

// A StatusOr that is OK and whose value matches `m`.
MATCHER_P(HasValue, m, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(m, *arg, result_listener);
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A value of `type` that uses the type's range: negative values for signed types, values
// above the signed range for unsigned ones, fractions for floats.
double Pattern(PixelType type, int x, int y) {
  int k = x * 37 + y * 101;
  switch (type) {
    case PixelType::kUint8: return k % 256;
    case PixelType::kInt16: return (k % 60000) - 30000;
    case PixelType::kUint16: return (k * 7) % 65536;
    case PixelType::kInt32: return double(k) * 40000.0 - 2.0e9 + (k % 3);
    case PixelType::kUint32: return 4.0e9 - double(k) * 30000.0;
    case PixelType::kInt64: return double(k) * 1.0e12 - 3.0e15;
    case PixelType::kFloat32: return k * 0.37 - 100.0;
    case PixelType::kFloat64: return k * 1.0e-3 + 1.0 / 3.0;
  }
  return 0;
}

// Pixel (x, y) of `image` as double, whatever its type.
double At(const RawImage& image, int x, int y) {
  double v = 0;
  image.RowToDouble(y, x, 1, &v);
  return v;
}

constexpr PixelType kAllTypes[] = {PixelType::kUint8,  PixelType::kInt16,   PixelType::kUint16,
                                   PixelType::kInt32,  PixelType::kUint32,  PixelType::kInt64,
                                   PixelType::kFloat32, PixelType::kFloat64};

class PixelTypeRoundTrip : public ::testing::TestWithParam<PixelType> {};

TEST_P(PixelTypeRoundTrip, EveryPixelKeepsItsTypeAndValue) {
  const PixelType type = GetParam();
  TempDir dir;
  const std::string path = dir.File("raw.fits");
  RawFrame frame = MakeFrame(23, 17, type, [&](int x, int y) { return Pattern(type, x, y); });
  frame.header.Set("EXPTIME", 12.5);
  ASSERT_OK(WriteRawFrame(path, frame));

  ASSERT_OK_AND_ASSIGN(RawFrame back, ReadRawFrame(path, {.verify_checksum = true}));
  EXPECT_EQ(back.pixels.type(), type) << PixelTypeName(type);
  ASSERT_EQ(back.pixels.width(), 23);
  ASSERT_EQ(back.pixels.height(), 17);
  EXPECT_EQ(std::memcmp(back.pixels.data(), frame.pixels.data(), frame.pixels.size_bytes()), 0);
  for (int y = 0; y < 17; ++y) {
    for (int x = 0; x < 23; ++x) {
      double want = type == PixelType::kFloat32 ? double(float(Pattern(type, x, y)))
                                                : Pattern(type, x, y);
      ASSERT_EQ(At(back.pixels, x, y), want) << x << "," << y;
    }
  }
  EXPECT_THAT(back.header.GetDouble("EXPTIME"), HasValue(12.5));
  // The structural cards are CFITSIO's, not the header's.
  EXPECT_FALSE(back.header.Has("BITPIX"));
  EXPECT_FALSE(back.header.Has("BZERO"));
  EXPECT_FALSE(back.header.Has("CHECKSUM"));

  ASSERT_OK_AND_ASSIGN(Header h, ReadHeader(path));
  EXPECT_TRUE(h.Has("EXPTIME"));

  // The band reader (direct reads of uncompressed pixels) and the calibrated reader give
  // float32 of the same values.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(path));
  EXPECT_EQ(reader->stored_type(), type);
  std::vector<float> band(23 * 17);
  ASSERT_OK(reader->ReadRows(3, 7, band.data()));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame cal, ReadCalibratedFrame(path));
  for (int y = 0; y < 17; ++y) {
    for (int x = 0; x < 23; ++x) {
      float want = static_cast<float>(At(back.pixels, x, y));
      ASSERT_EQ(cal.data.at(x, y), want) << x << "," << y;
      if (y >= 3 && y < 10) ASSERT_EQ(band[(y - 3) * 23 + x], want) << x << "," << y;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, PixelTypeRoundTrip, ::testing::ValuesIn(kAllTypes),
                         [](const auto& info) { return std::string(PixelTypeName(info.param)); });

struct CompressionCase {
  std::string compression;
  PixelType type;
};

class CompressionRoundTrip : public ::testing::TestWithParam<CompressionCase> {};

TEST_P(CompressionRoundTrip, LosslessForIntegersAndUnquantisedFloats) {
  const CompressionCase c = GetParam();
  TempDir dir;
  const std::string path = dir.File("c.fits");
  // PLIO holds non-negative integers below 2^24 only.
  auto value = [&](int x, int y) {
    return c.compression == "PLIO_1" ? double((x * 37 + y * 101) % 5000) : Pattern(c.type, x, y);
  };
  RawFrame frame = MakeFrame(40, 33, c.type, value);
  frame.header.Set("OBJECT", "M 42");
  ASSERT_OK(WriteRawFrame(path, frame, c.compression));

  ASSERT_OK_AND_ASSIGN(RawFrame back, ReadRawFrame(path, {.verify_checksum = true}));
  EXPECT_EQ(back.pixels.type(), c.type);
  ASSERT_EQ(back.pixels.width(), 40);
  ASSERT_EQ(back.pixels.height(), 33);
  EXPECT_EQ(std::memcmp(back.pixels.data(), frame.pixels.data(), frame.pixels.size_bytes()), 0);
  EXPECT_THAT(back.header.GetString("OBJECT"), HasValue(std::string("M 42")));
  for (const HeaderCard& card : back.header.cards()) {
    EXPECT_FALSE(card.key.rfind("ZTILE", 0) == 0 || card.key == "ZCMPTYPE" ||
                 card.key == "TFIELDS" || card.key == "ZIMAGE")
        << "compression keyword leaked into the header: " << card.key;
  }

  // It really is compressed: the image lives in a binary table extension.
  ASSERT_OK_AND_ASSIGN(Header h1, ReadHeader(path, {.hdu_index = 1}));
  (void)h1;

  // The band reader decompresses too, converting to float.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(path));
  EXPECT_EQ(reader->stored_type(), c.type);
  std::vector<float> rows(40 * 5);
  ASSERT_OK(reader->ReadRows(28, 5, rows.data()));
  for (int r = 0; r < 5; ++r) {
    for (int x = 0; x < 40; ++x) {
      ASSERT_EQ(rows[r * 40 + x], float(At(frame.pixels, x, 28 + r)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllCompressions, CompressionRoundTrip,
    ::testing::Values(CompressionCase{"RICE_1", PixelType::kUint16},
                      CompressionCase{"RICE_1", PixelType::kInt16},
                      CompressionCase{"RICE_1", PixelType::kInt32},
                      CompressionCase{"RICE_1", PixelType::kUint8},
                      CompressionCase{"GZIP_1", PixelType::kUint16},
                      CompressionCase{"GZIP_1", PixelType::kInt32},
                      CompressionCase{"GZIP_1", PixelType::kFloat32},
                      CompressionCase{"GZIP_2", PixelType::kUint16},
                      CompressionCase{"GZIP_2", PixelType::kFloat64},
                      CompressionCase{"HCOMPRESS_1", PixelType::kUint16},
                      CompressionCase{"HCOMPRESS_1", PixelType::kInt16},
                      CompressionCase{"HCOMPRESS_1", PixelType::kInt32},
                      CompressionCase{"PLIO_1", PixelType::kUint16},
                      CompressionCase{"PLIO_1", PixelType::kInt32}),
    [](const auto& info) {
      return info.param.compression + "_" + std::string(PixelTypeName(info.param.type));
    });

TEST(WriteRawFrameTest, FloatsCompressOnlyLosslesslyWithGzip) {
  TempDir dir;
  for (PixelType type : {PixelType::kFloat32, PixelType::kFloat64}) {
    RawFrame frame = MakeFrame(8, 8, type, [](int x, int y) { return x * 0.1; });
    for (const char* c : {"RICE_1", "HCOMPRESS_1", "PLIO_1"}) {
      EXPECT_THAT(WriteRawFrame(dir.File("f.fits"), frame, c),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("GZIP")));
      EXPECT_FALSE(FileExists(dir.File("f.fits")));
    }
  }
}

TEST(WriteRawFrameTest, RefusesUnknownCompressionAndExistingFile) {
  TempDir dir;
  RawFrame frame = MakeFrame(4, 4, PixelType::kUint16, [](int x, int y) { return x + y; });
  EXPECT_THAT(WriteRawFrame(dir.File("a.fits"), frame, "LZW"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(FileExists(dir.File("a.fits")));
  ASSERT_OK(WriteRawFrame(dir.File("b.fits"), frame));
  EXPECT_THAT(WriteRawFrame(dir.File("b.fits"), frame), StatusIs(absl::StatusCode::kAlreadyExists));
  frame.pixels.row<uint16_t>(0)[0] = 999;
  ASSERT_OK(WriteRawFrame(dir.File("b.fits"), frame, "", /*overwrite=*/true));
  ASSERT_OK_AND_ASSIGN(RawFrame back, ReadRawFrame(dir.File("b.fits")));
  EXPECT_EQ(back.pixels.row<uint16_t>(0)[0], 999);
  // A directory that does not exist.
  EXPECT_THAT(WriteRawFrame(dir.File("no/such/dir.fits"), frame),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(WriteRawFrameTest, FailureLeavesNoFile) {
  TempDir dir;
  RawFrame frame = MakeFrame(4, 4, PixelType::kUint16, [](int x, int y) { return x + y; });
  frame.header.Set("OK", 1);
  frame.header.Set("BAD", std::string("caf\xc3\xa9"));  // not ASCII: FITS cannot hold it
  const std::string path = dir.File("bad.fits");
  EXPECT_THAT(WriteRawFrame(path, frame), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("BAD")));
  EXPECT_FALSE(FileExists(path));

  CalibratedFrame cal;
  cal.data = Image<float>::Filled(4, 4, 1.0f);
  cal.header = frame.header.cards().empty() ? Header() : frame.header;
  EXPECT_THAT(WriteCalibratedFrame(path, cal), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(FileExists(path));
  // Mismatched planes are refused before anything is written.
  cal.header = Header();
  cal.variance = Image<float>::Filled(3, 4, 1.0f);
  EXPECT_THAT(WriteCalibratedFrame(path, cal), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(FileExists(path));
}

TEST(HeaderTest, CardsSurviveWriteAndRead) {
  TempDir dir;
  const std::string path = dir.File("h.fits");
  RawFrame frame = MakeFrame(3, 2, PixelType::kInt16, [](int x, int y) { return x - y; });
  Header& h = frame.header;
  h.Set("OBSERVER", "O'Brien & 'friends'", "quotes inside");
  std::string long_text;
  for (int i = 0; i < 30; ++i) long_text += "segment" + std::to_string(i) + " ";
  long_text += "end";
  h.Set("LONGSTR", long_text, "a long string");
  h.Set("ESO DET CHIP NAME", "chip 7", "a HIERARCH keyword");
  h.Set("HIERARCH_LONG_KEYWORD", int64_t{42});
  h.AddHistory("first history");
  h.AddComment("a comment between");
  h.AddHistory("second history");
  h.Set("FLAG", true);
  h.Set("NOFLAG", false);
  h.Set("BIGINT", int64_t{-9007199254740993});
  h.Set("THIRD", 1.0 / 3.0, "full precision");
  h.Set("TENTH", 0.1);
  h.Set("TINY", 4.9e-310);
  h.Set("HUGE", 1.7976931348623157e308);
  h.Set("ROUND", 30.0);
  h.Set("NEGZERO", -2.5e-7);
  h.Set("EMPTYSTR", "");
  h.Set("TRAIL", "  leading spaces kept");
  h.Append(HeaderCard{"UNDEF", std::monostate{}, "no value"});
  h.AddHistory("last");
  ASSERT_OK(WriteRawFrame(path, frame));

  ASSERT_OK_AND_ASSIGN(RawFrame back, ReadRawFrame(path));
  const std::vector<HeaderCard>& want = h.cards();
  const std::vector<HeaderCard>& got = back.header.cards();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].key, want[i].key) << i;
    EXPECT_EQ(got[i].value, want[i].value) << want[i].key << " = " << FormatCardValue(got[i].value);
    EXPECT_EQ(got[i].comment, want[i].comment) << want[i].key;
  }
}

TEST(HeaderTest, StructuralCardsInAHeaderAreNotCopied) {
  TempDir dir;
  RawFrame frame = MakeFrame(5, 4, PixelType::kUint16, [](int x, int y) { return 7; });
  frame.header.Set("BITPIX", 8);
  frame.header.Set("NAXIS1", 999);
  frame.header.Set("BZERO", 3.0);
  frame.header.Set("CHECKSUM", "garbage");
  frame.header.Set("KEEP", 1);
  ASSERT_OK(WriteRawFrame(dir.File("s.fits"), frame));
  ASSERT_OK_AND_ASSIGN(RawFrame back, ReadRawFrame(dir.File("s.fits"), {.verify_checksum = true}));
  EXPECT_EQ(back.pixels.type(), PixelType::kUint16);
  EXPECT_EQ(back.pixels.width(), 5);
  EXPECT_EQ(back.pixels.row<uint16_t>(3)[4], 7);
  ASSERT_EQ(back.header.cards().size(), 1u);
  EXPECT_EQ(back.header.cards()[0].key, "KEEP");
}

CalibratedFrame MakeCalibrated(int w, int h, bool variance, bool dq) {
  CalibratedFrame f;
  f.data = Image<float>::Allocate(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) f.data.at(x, y) = 0.37f * x - 1.9f * y + 1000.125f;
  }
  if (variance) {
    f.variance = Image<float>::Allocate(w, h);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) f.variance.at(x, y) = 1.0f + 0.731f * x * y + 0.01f * x;
    }
  }
  if (dq) {
    f.dq = Image<uint16_t>::Filled(w, h, 0);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        if ((x * 3 + y) % 7 == 0) f.dq.at(x, y) = static_cast<uint16_t>(1u << ((x + y) % 16));
      }
    }
  }
  f.header.Set("IMAGETYP", "object");
  f.header.Set("EXPTIME", 30.0);
  f.header.AddHistory("bias subtracted");
  return f;
}

TEST(CalibratedFrameTest, RoundTripKeepsDataDqAndVarianceToFloatPrecision) {
  TempDir dir;
  const std::string path = dir.File("cal.fits");
  CalibratedFrame frame = MakeCalibrated(31, 19, true, true);
  frame.unit = "electron";
  ASSERT_OK(WriteCalibratedFrame(path, frame));
  BufferPool pool;
  ASSERT_OK_AND_ASSIGN(CalibratedFrame back,
                       ReadCalibratedFrame(path, {.verify_checksum = true, .pool = &pool}));
  EXPECT_EQ(back.unit, "electron");
  ASSERT_EQ(back.width(), 31);
  ASSERT_EQ(back.height(), 19);
  ASSERT_TRUE(back.has_variance());
  ASSERT_TRUE(back.has_dq());
  EXPECT_EQ(std::memcmp(back.data.data(), frame.data.data(), 31 * 19 * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(back.dq.data(), frame.dq.data(), 31 * 19 * sizeof(uint16_t)), 0);
  // Variance is stored as UNCERT = sqrt(variance) in float32 (what CCDData reads) and squared
  // back: 2:1 many float32 variances share one float32 sigma, so it cannot be exact; the
  // round trip stays within 2 float32 ulps (relative 2.4e-7).
  for (int y = 0; y < 19; ++y) {
    for (int x = 0; x < 31; ++x) {
      float want = frame.variance.at(x, y);
      float got = back.variance.at(x, y);
      ASSERT_NEAR(got, want, 2 * std::numeric_limits<float>::epsilon() * want) << x << "," << y;
    }
  }
  EXPECT_EQ(back.header.cards().size(), frame.header.cards().size());
  EXPECT_FALSE(back.header.Has("BUNIT"));  // it became `unit`
  EXPECT_THAT(back.header.GetString("IMAGETYP"), HasValue(std::string("object")));

  // Each plane is an HDU of its own, reachable by name and by index.
  ASSERT_OK_AND_ASSIGN(RawFrame dq, ReadRawFrame(path, {.hdu_name = "DQ"}));
  EXPECT_EQ(dq.pixels.type(), PixelType::kUint16);
  EXPECT_EQ(std::memcmp(dq.pixels.data(), frame.dq.data(), 31 * 19 * sizeof(uint16_t)), 0);
  ASSERT_OK_AND_ASSIGN(RawFrame mask, ReadRawFrame(path, {.hdu_index = 2}));
  EXPECT_EQ(mask.pixels.type(), PixelType::kUint8);
  for (int y = 0; y < 19; ++y) {
    for (int x = 0; x < 31; ++x) {
      ASSERT_EQ(mask.pixels.row<uint8_t>(y)[x], frame.dq.at(x, y) != 0 ? 1 : 0);
    }
  }
  ASSERT_OK_AND_ASSIGN(Header uncert, ReadHeader(path, {.hdu_name = "UNCERT"}));
  EXPECT_THAT(uncert.GetString("UTYPE"), HasValue(std::string("StdDevUncertainty")));
  ASSERT_OK_AND_ASSIGN(RawFrame sigma, ReadRawFrame(path, {.hdu_index = 1}));
  EXPECT_EQ(sigma.pixels.row<float>(5)[7], std::sqrt(frame.variance.at(7, 5)));

  EXPECT_THAT(ReadRawFrame(path, {.hdu_name = "NOPE"}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadRawFrame(path, {.hdu_index = 4}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadHeader(path, {.hdu_index = 17}), StatusIs(absl::StatusCode::kNotFound));
}

TEST(CalibratedFrameTest, OnlyDataAndMaskWithoutDq) {
  TempDir dir;
  CalibratedFrame frame = MakeCalibrated(8, 6, false, false);
  ASSERT_OK(WriteCalibratedFrame(dir.File("d.fits"), frame));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame back, ReadCalibratedFrame(dir.File("d.fits")));
  EXPECT_EQ(back.unit, "adu");
  EXPECT_FALSE(back.has_variance());
  EXPECT_FALSE(back.has_dq());
  EXPECT_EQ(back.data.at(7, 5), frame.data.at(7, 5));
  EXPECT_THAT(ReadRawFrame(dir.File("d.fits"), {.hdu_name = "UNCERT"}),
              StatusIs(absl::StatusCode::kNotFound));

  // MASK without DQ (as CCDData writes it) is covered by astropy_test.cc.
  CalibratedFrame masked = MakeCalibrated(8, 6, true, true);
  WriteOptions options;
  // ...and the no-planes options.
  options.write_mask = false;
  options.write_uncertainty = false;
  ASSERT_OK(WriteCalibratedFrame(dir.File("p.fits"), masked, options));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame plain, ReadCalibratedFrame(dir.File("p.fits")));
  EXPECT_FALSE(plain.has_variance());
  EXPECT_FALSE(plain.has_dq());
}

TEST(CalibratedFrameTest, NonFinitePixelsAreReadAsIs) {
  TempDir dir;
  CalibratedFrame frame = MakeCalibrated(6, 5, true, true);
  frame.data.at(1, 1) = std::numeric_limits<float>::quiet_NaN();
  frame.data.at(2, 3) = std::numeric_limits<float>::infinity();
  frame.data.at(4, 4) = -std::numeric_limits<float>::infinity();
  ASSERT_OK(WriteCalibratedFrame(dir.File("nan.fits"), frame));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame back, ReadCalibratedFrame(dir.File("nan.fits")));
  EXPECT_TRUE(std::isnan(back.data.at(1, 1)));
  EXPECT_EQ(back.data.at(2, 3), std::numeric_limits<float>::infinity());
  EXPECT_EQ(back.data.at(4, 4), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(back.data.at(0, 0), frame.data.at(0, 0));

  RawFrame raw = MakeFrame(4, 3, PixelType::kFloat64, [](int x, int y) { return x * 1.5; });
  raw.pixels.row<double>(2)[3] = std::numeric_limits<double>::quiet_NaN();
  raw.pixels.row<double>(0)[1] = -std::numeric_limits<double>::infinity();
  ASSERT_OK(WriteRawFrame(dir.File("nan64.fits"), raw));
  ASSERT_OK_AND_ASSIGN(RawFrame rback, ReadRawFrame(dir.File("nan64.fits")));
  EXPECT_TRUE(std::isnan(rback.pixels.row<double>(2)[3]));
  EXPECT_EQ(rback.pixels.row<double>(0)[1], -std::numeric_limits<double>::infinity());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(dir.File("nan64.fits")));
  std::vector<float> rows(4 * 3);
  ASSERT_OK(reader->ReadRows(0, 3, rows.data()));
  EXPECT_TRUE(std::isnan(rows[2 * 4 + 3]));
  EXPECT_EQ(rows[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(rows[2 * 4 + 2], 3.0f);
}

TEST(BandReaderTest, ReadsBandsAsFloatWithBzeroApplied) {
  TempDir dir;
  const std::string path = dir.File("u16.fits");
  RawFrame frame =
      MakeFrame(50, 41, PixelType::kUint16, [](int x, int y) { return 65535 - x * 300 - y; });
  frame.header.Set("GAIN", 1.5);
  ASSERT_OK(WriteRawFrame(path, frame));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(path));
  EXPECT_EQ(reader->width(), 50);
  EXPECT_EQ(reader->height(), 41);
  EXPECT_EQ(reader->stored_type(), PixelType::kUint16);
  EXPECT_THAT(reader->header().GetDouble("GAIN"), HasValue(1.5));
  std::vector<float> band(50 * 16);
  for (int y0 = 0; y0 < 41; y0 += 16) {
    int rows = std::min(16, 41 - y0);
    ASSERT_OK(reader->ReadRows(y0, rows, band.data()));
    for (int r = 0; r < rows; ++r) {
      for (int x = 0; x < 50; ++x) {
        ASSERT_EQ(band[r * 50 + x], float(65535 - x * 300 - (y0 + r)));
      }
    }
  }
  ASSERT_OK(reader->ReadRows(41, 0, band.data()));
  EXPECT_THAT(reader->ReadRows(40, 2, band.data()), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(reader->ReadRows(-1, 1, band.data()), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ReadOptionsTest, MaxPixelsIsEnforcedOnValidFiles) {
  TempDir dir;
  RawFrame frame = MakeFrame(100, 100, PixelType::kInt16, [](int x, int y) { return 1; });
  ASSERT_OK(WriteRawFrame(dir.File("a.fits"), frame));
  ASSERT_OK(WriteRawFrame(dir.File("b.fits"), frame, "RICE_1"));
  for (const char* name : {"a.fits", "b.fits"}) {
    EXPECT_THAT(ReadRawFrame(dir.File(name), {.max_pixels = 9999}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("9999")));
    EXPECT_OK(ReadRawFrame(dir.File(name), {.max_pixels = 10000}));
    EXPECT_THAT(BandReader::Open(dir.File(name), {.max_pixels = 9999}),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(RiceCheckTest, AcceptsCfitsioStreamsAndRejectsShortOnes) {
  // Hand-made streams for bytepix 2 (4-bit split codes), blocks of 4 pixels.
  // First value 0x0102, then code 0 (all equal) for a block: 4 bits + padding.
  const uint8_t equal[] = {0x01, 0x02, 0x00};
  EXPECT_TRUE(RiceStreamIsSafe(equal, 3, 4, 2, 4));
  EXPECT_FALSE(RiceStreamIsSafe(equal, 3, 12, 2, 4));  // three blocks need 12 bits, 8 left
  EXPECT_FALSE(RiceStreamIsSafe(equal, 2, 4, 2, 4));  // not even the first stream byte
  // Code 15 (raw, fsmax 14 + 1): 4 pixels x 16 bits must follow.
  const uint8_t raw[] = {0x00, 0x00, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0x0F};
  EXPECT_TRUE(RiceStreamIsSafe(raw, 11, 4, 2, 4));
  EXPECT_FALSE(RiceStreamIsSafe(raw, 10, 4, 2, 4));
  // Code 1 (fs = 0): each pixel a unary run ended by a 1 bit. 0001 then 1111 → 4 pixels.
  const uint8_t unary[] = {0x00, 0x00, 0x1F};
  EXPECT_TRUE(RiceStreamIsSafe(unary, 3, 4, 2, 4));
  EXPECT_FALSE(RiceStreamIsSafe(unary, 3, 5, 2, 4));  // a fifth pixel runs off the end
  // Zero runs that never end: what made CFITSIO read past its buffer.
  const uint8_t zeros[] = {0x00, 0x00, 0x10, 0, 0, 0, 0, 0};
  EXPECT_FALSE(RiceStreamIsSafe(zeros, 8, 4, 2, 4));
  EXPECT_FALSE(RiceStreamIsSafe(equal, 3, 4, 3, 4));  // unsupported bytepix
  EXPECT_FALSE(RiceStreamIsSafe(equal, 3, 4, 2, 0));  // blocksize 0 would never advance
}

TEST(FitsThreadingTest, CfitsioIsReentrant) {
  // fits.h promises reentrant functions; that rests on this.
  EXPECT_EQ(fits_is_reentrant(), 1);
}

TEST(FitsThreadingTest, ConcurrentReadsAndWritesOfDifferentFiles) {
  TempDir dir;
  RawFrame shared = MakeFrame(64, 32, PixelType::kUint16, [](int x, int y) { return x * 100 + y; });
  ASSERT_OK(WriteRawFrame(dir.File("shared.fits"), shared, "RICE_1"));
  std::atomic<int> failures{0};
  auto work = [&](int t) {
    for (int i = 0; i < 20; ++i) {
      const std::string path = dir.File("t" + std::to_string(t) + "_" + std::to_string(i) + ".fits");
      RawFrame frame = MakeFrame(40, 20, PixelType::kInt32,
                                 [&](int x, int y) { return t * 100000 + i * 1000 + x + y; });
      if (!WriteRawFrame(path, frame, i % 2 ? "GZIP_1" : "").ok()) ++failures;
      absl::StatusOr<RawFrame> back = ReadRawFrame(path);
      if (!back.ok() || back->pixels.row<int32_t>(19)[39] != t * 100000 + i * 1000 + 58) {
        ++failures;
      }
      absl::StatusOr<RawFrame> s = ReadRawFrame(dir.File("shared.fits"));
      if (!s.ok() || s->pixels.row<uint16_t>(31)[63] != 6331) ++failures;
      if (ReadRawFrame(dir.File("missing.fits")).status().code() != absl::StatusCode::kNotFound) {
        ++failures;
      }
    }
  };
  // Both threads also read the same file through band readers, interleaved.
  auto bands = [&]() {
    for (int i = 0; i < 20; ++i) {
      absl::StatusOr<std::unique_ptr<BandReader>> r = BandReader::Open(dir.File("shared.fits"));
      if (!r.ok()) {
        ++failures;
        continue;
      }
      std::vector<float> band(64 * 4);
      for (int y = 0; y < 32; y += 4) {
        if (!(*r)->ReadRows(y, 4, band.data()).ok() || band[3 * 64 + 5] != 500 + y + 3) {
          ++failures;
        }
      }
    }
  };
  std::thread c(bands), d(bands);
  c.join();
  d.join();
  std::thread a(work, 1), b(work, 2);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace calibd::fits
