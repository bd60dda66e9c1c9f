// Hostile input: files crafted byte by byte (2880-byte blocks of 80-character cards) or valid
// files edited after writing. Each must give its exact status code, without crashing,
// leaking (the sanitizer build runs these) or allocating what a header merely claims.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/fits/fits.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

// CFITSIO 4.2 leaks small buffers when a tile fails to decompress (imcomp_decompress_tile's
// error paths, and a static helper of its HCOMPRESS decoder that has no symbol to name):
// tens of bytes per corrupt tile, inside the library. LeakSanitizer is told to ignore
// allocations made inside libcfitsio; our own handles are checked by
// FilesAreClosedOnEveryPath below.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:imcomp_decompress_tile\nleak:libcfitsio.so\n";
}

namespace calibd::fits {
namespace {

int OpenFileDescriptors() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

using ::calibd::testing::MakeFrame;
using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;
using ::testing::HasSubstr;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

std::string Card(const std::string& text) {
  std::string card = text.substr(0, 80);
  card.resize(80, ' ');
  return card;
}

// "KEY     = value" with the value right-justified to column 30, as FITS writes it.
std::string ValueCard(const std::string& key, const std::string& value) {
  std::string k = key;
  k.resize(8, ' ');
  return Card(absl::StrFormat("%s= %20s", k, value));
}

std::string PadBlock(std::string bytes, char fill) {
  size_t rem = bytes.size() % 2880;
  if (rem != 0) bytes.append(2880 - rem, fill);
  return bytes;
}

// A primary header from cards, with END, padded with blanks.
std::string HeaderBlock(const std::vector<std::string>& cards, bool end = true) {
  std::string h;
  for (const std::string& c : cards) h += c;
  if (end) h += Card("END");
  return PadBlock(h, ' ');
}

std::vector<std::string> ImageCards(const std::string& bitpix, const std::string& naxis,
                                    const std::vector<std::string>& axes) {
  std::vector<std::string> cards = {ValueCard("SIMPLE", "T"), ValueCard("BITPIX", bitpix),
                                    ValueCard("NAXIS", naxis)};
  for (size_t i = 0; i < axes.size(); ++i) {
    cards.push_back(ValueCard("NAXIS" + std::to_string(i + 1), axes[i]));
  }
  return cards;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), bytes.size());
  ASSERT_TRUE(out.good());
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every reader on `path`: each must give `code`.
void ExpectAllReadersFail(const std::string& path, absl::StatusCode code,
                          const ReadOptions& options = {}) {
  EXPECT_THAT(ReadRawFrame(path, options), StatusIs(code)) << path;
  EXPECT_THAT(ReadCalibratedFrame(path, options), StatusIs(code)) << path;
  EXPECT_THAT(BandReader::Open(path, options), StatusIs(code)) << path;
}

class HostileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = dir_.File(name);
    WriteBytes(path, bytes);
    return path;
  }
  TempDir dir_;
};

TEST_F(HostileTest, ACraftedValidFileReads) {
  // The crafting helpers make real FITS: without this, the failures below prove nothing.
  std::string data(10 * 6 * 2, '\0');
  for (int i = 0; i < 60; ++i) data[2 * i + 1] = static_cast<char>(i);  // big-endian int16 = i
  std::string path = Write("ok.fits", HeaderBlock(ImageCards("16", "2", {"10", "6"})) +
                                          PadBlock(data, '\0'));
  ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(path));
  EXPECT_EQ(frame.pixels.type(), PixelType::kInt16);
  EXPECT_EQ(frame.pixels.row<int16_t>(5)[9], 59);
  // NAXIS = 3 with NAXIS3 = 1 is a 2-D image too.
  std::string p3 = Write("ok3.fits", HeaderBlock(ImageCards("16", "3", {"10", "6", "1"})) +
                                         PadBlock(data, '\0'));
  ASSERT_OK_AND_ASSIGN(RawFrame frame3, ReadRawFrame(p3));
  EXPECT_EQ(frame3.pixels.row<int16_t>(1)[0], 10);
}

TEST_F(HostileTest, BlankIntegerPixelsAreRawInFramesAndNanInBands) {
  std::string data(4 * 3 * 2, '\0');
  for (int i = 0; i < 12; ++i) data[2 * i + 1] = static_cast<char>(i);
  data[2 * 5] = '\xff';  // pixel 5 = -1 = BLANK
  data[2 * 5 + 1] = '\xff';
  std::vector<std::string> cards = ImageCards("16", "2", {"4", "3"});
  cards.push_back(ValueCard("BLANK", "-1"));
  std::string path = Write("blank.fits", HeaderBlock(cards) + PadBlock(data, '\0'));
  ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(path));
  EXPECT_EQ(frame.pixels.row<int16_t>(1)[1], -1);
  EXPECT_EQ(frame.pixels.row<int16_t>(1)[2], 6);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(path));
  std::vector<float> rows(12);
  ASSERT_OK(reader->ReadRows(0, 3, rows.data()));
  EXPECT_TRUE(std::isnan(rows[5]));
  EXPECT_EQ(rows[6], 6.0f);
  ASSERT_OK_AND_ASSIGN(CalibratedFrame cal, ReadCalibratedFrame(path));
  EXPECT_TRUE(std::isnan(cal.data.at(1, 1)));
}

TEST_F(HostileTest, ScaledIntegersAreAppliedEverywhere) {
  // int16 with BSCALE 0.5, BZERO 10: value = 0.5 * stored + 10, as float32.
  std::string data(5 * 2 * 2, '\0');
  for (int i = 0; i < 10; ++i) {
    int16_t v = static_cast<int16_t>(i * 1000 - 4000);
    data[2 * i] = static_cast<char>((v >> 8) & 0xff);
    data[2 * i + 1] = static_cast<char>(v & 0xff);
  }
  std::vector<std::string> cards = ImageCards("16", "2", {"5", "2"});
  cards.push_back(ValueCard("BSCALE", "0.5"));
  cards.push_back(ValueCard("BZERO", "10.0"));
  std::string path = Write("scaled.fits", HeaderBlock(cards) + PadBlock(data, '\0'));
  ASSERT_OK_AND_ASSIGN(RawFrame frame, ReadRawFrame(path));
  ASSERT_EQ(frame.pixels.type(), PixelType::kFloat32);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BandReader> reader, BandReader::Open(path));
  std::vector<float> rows(10);
  ASSERT_OK(reader->ReadRows(0, 2, rows.data()));
  for (int i = 0; i < 10; ++i) {
    float want = 0.5f * (i * 1000 - 4000) + 10;
    EXPECT_EQ(frame.pixels.row<float>(i / 5)[i % 5], want) << i;
    EXPECT_EQ(rows[i], want) << i;
  }
}

TEST_F(HostileTest, MissingFileIsNotFound) {
  ExpectAllReadersFail(dir_.File("nope.fits"), absl::StatusCode::kNotFound);
  EXPECT_THAT(ReadHeader(dir_.File("nope.fits")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(HostileTest, NotFitsEmptyOrDirectory) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "this is not a FITS file at all\n";
  ExpectAllReadersFail(Write("text.fits", text), kInvalid);
  ExpectAllReadersFail(Write("empty.fits", ""), kInvalid);
  ExpectAllReadersFail(dir_.path(), kInvalid);
  // gzip magic: never handed to CFITSIO's decompressing drivers.
  ExpectAllReadersFail(Write("gz.fits", std::string("\x1f\x8b\x08\x00", 4) + std::string(4000, 'x')),
                       kInvalid);
  EXPECT_THAT(ReadHeader(dir_.File("text.fits")), StatusIs(kInvalid));
}

TEST_F(HostileTest, TruncatedHeader) {
  // No END card anywhere.
  ExpectAllReadersFail(
      Write("noend.fits", HeaderBlock(ImageCards("16", "2", {"10", "6"}), /*end=*/false)),
      kInvalid);
  // Shorter than one block.
  ExpectAllReadersFail(
      Write("short.fits", HeaderBlock(ImageCards("16", "2", {"10", "6"})).substr(0, 1000)),
      kInvalid);
}

TEST_F(HostileTest, DataShorterThanDeclared) {
  std::string header = HeaderBlock(ImageCards("16", "2", {"100", "100"}));
  ExpectAllReadersFail(Write("nodata.fits", header), kInvalid);
  ExpectAllReadersFail(Write("somedata.fits", header + std::string(2880 * 2, '\0')), kInvalid);
  EXPECT_THAT(ReadRawFrame(dir_.File("somedata.fits")),
              StatusIs(kInvalid, HasSubstr("truncated")));
}

TEST_F(HostileTest, BadBitpixAndNaxis) {
  std::string data = PadBlock(std::string(200, '\0'), '\0');
  ExpectAllReadersFail(Write("bitpix17.fits", HeaderBlock(ImageCards("17", "2", {"10", "5"})) + data),
                       kInvalid);
  std::vector<std::string> axes(999, "1");
  ExpectAllReadersFail(Write("naxis999.fits", HeaderBlock(ImageCards("16", "999", axes)) + data),
                       kInvalid);
  ExpectAllReadersFail(Write("naxis999b.fits", HeaderBlock(ImageCards("16", "999", {"10", "5"})) + data),
                       kInvalid);
  ExpectAllReadersFail(Write("neg.fits", HeaderBlock(ImageCards("16", "2", {"-10", "5"})) + data),
                       kInvalid);
  ExpectAllReadersFail(Write("zero.fits", HeaderBlock(ImageCards("16", "2", {"0", "5"})) + data),
                       kInvalid);
  ExpectAllReadersFail(Write("naxis1.fits", HeaderBlock(ImageCards("16", "1", {"10"})) + data),
                       kInvalid);
  ExpectAllReadersFail(Write("cube.fits", HeaderBlock(ImageCards("16", "3", {"4", "5", "2"})) + data),
                       kInvalid);
  ExpectAllReadersFail(Write("noimage.fits", HeaderBlock(ImageCards("16", "0", {}))), kInvalid);
}

TEST_F(HostileTest, HugeDeclaredImageOnASmallFile) {
  std::string bytes = HeaderBlock(ImageCards("16", "2", {"100000", "100000"})) +
                      PadBlock(std::string(2000, '\0'), '\0');
  ASSERT_LT(bytes.size(), 7000u);
  std::string path = Write("huge.fits", bytes);
  ExpectAllReadersFail(path, kInvalid);
  EXPECT_THAT(ReadRawFrame(path), StatusIs(kInvalid, HasSubstr("268435456")));
  // Even with the pixel limit lifted, the file size check refuses before allocating.
  ExpectAllReadersFail(path, kInvalid, {.max_pixels = int64_t{1} << 40});
  EXPECT_THAT(ReadRawFrame(path, {.max_pixels = int64_t{1} << 40}),
              StatusIs(kInvalid, HasSubstr("truncated")));
  // Sizes that overflow 64-bit arithmetic.
  ExpectAllReadersFail(
      Write("overflow.fits", HeaderBlock(ImageCards("-64", "2", {"4611686018427387904", "8"})) +
                                 PadBlock(std::string(100, '\0'), '\0')),
      kInvalid, {.max_pixels = INT64_MAX});
}

// Replaces the value of `key` (right-justified in columns 11-30) in the first card with it.
void EditCard(std::string* bytes, const std::string& key, const std::string& value) {
  std::string k = key;
  k.resize(8, ' ');
  for (size_t pos = 0; pos + 80 <= bytes->size(); pos += 80) {
    if (bytes->compare(pos, 10, k + "= ") == 0) {
      std::string v = absl::StrFormat("%20s", value);
      bytes->replace(pos + 10, 20, v);
      return;
    }
  }
  FAIL() << key << " not found";
}

TEST_F(HostileTest, CompressionBomb) {
  RawFrame frame = MakeFrame(64, 64, PixelType::kUint16, [](int x, int y) { return x * y; });
  std::string valid_path = dir_.File("valid.fits");
  ASSERT_OK(WriteRawFrame(valid_path, frame, "RICE_1"));
  const std::string valid = ReadBytes(valid_path);
  ASSERT_OK(ReadRawFrame(valid_path));

  // 100000 x 100000 with the tiling edited to match the table's 64 rows, so that CFITSIO
  // opens it happily: only our pixel limit stands between it and a 20 GB allocation.
  std::string bomb = valid;
  EditCard(&bomb, "ZNAXIS1", "100000");
  EditCard(&bomb, "ZNAXIS2", "100000");
  EditCard(&bomb, "ZTILE1", "100000");
  EditCard(&bomb, "ZTILE2", "1563");
  std::string path = Write("bomb.fits", bomb);
  ExpectAllReadersFail(path, kInvalid);
  EXPECT_THAT(ReadRawFrame(path), StatusIs(kInvalid, HasSubstr("268435456")));
  // Only the image size edited: the tile table no longer matches it.
  std::string plain = valid;
  EditCard(&plain, "ZNAXIS1", "100000");
  EditCard(&plain, "ZNAXIS2", "100000");
  ExpectAllReadersFail(Write("bomb2.fits", plain), kInvalid, {.max_pixels = int64_t{1} << 40});

  std::string tile = valid;
  EditCard(&tile, "ZTILE1", "2000000000");
  ExpectAllReadersFail(Write("tile.fits", tile), kInvalid);
  std::string tile0 = valid;
  EditCard(&tile0, "ZTILE2", "0");
  ExpectAllReadersFail(Write("tile0.fits", tile0), kInvalid);
  // A heap larger than the file.
  std::string heap = valid;
  EditCard(&heap, "PCOUNT", "999999999");
  ExpectAllReadersFail(Write("heap.fits", heap), kInvalid);
}

TEST_F(HostileTest, NonAsciiHeaderBytes) {
  RawFrame frame = MakeFrame(8, 8, PixelType::kUint16, [](int x, int y) { return 1; });
  frame.header.Set("OBJECT", "Vega");
  std::string path = dir_.File("ascii.fits");
  ASSERT_OK(WriteRawFrame(path, frame));
  std::string bytes = ReadBytes(path);
  size_t pos = bytes.find("Vega");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 1] = static_cast<char>(0xe9);
  std::string bad = Write("latin1.fits", bytes);
  ExpectAllReadersFail(bad, kInvalid);
  EXPECT_THAT(ReadHeader(bad), StatusIs(kInvalid));
  // A control character in an extension's header.
  CalibratedFrame cal;
  cal.data = Image<float>::Filled(4, 4, 1.0f);
  cal.variance = Image<float>::Filled(4, 4, 1.0f);
  std::string cpath = dir_.File("cal.fits");
  ASSERT_OK(WriteCalibratedFrame(cpath, cal));
  std::string cbytes = ReadBytes(cpath);
  size_t u = cbytes.find("StdDevUncertainty");
  ASSERT_NE(u, std::string::npos);
  cbytes[u] = '\x07';
  std::string cbad = Write("ctrl.fits", cbytes);
  EXPECT_THAT(ReadCalibratedFrame(cbad), StatusIs(kInvalid));
  EXPECT_THAT(ReadRawFrame(cbad, {.hdu_name = "UNCERT"}), StatusIs(kInvalid));
  // Every header is checked before CFITSIO parses any, so the file as a whole is refused.
  EXPECT_THAT(ReadRawFrame(cbad), StatusIs(kInvalid, HasSubstr("not printable ASCII")));
}

TEST_F(HostileTest, ChecksumMismatchIsDataLoss) {
  CalibratedFrame cal;
  cal.data = Image<float>::Filled(16, 16, 3.0f);
  cal.variance = Image<float>::Filled(16, 16, 4.0f);
  cal.dq = Image<uint16_t>::Filled(16, 16, 0);
  cal.header.Set("OBJECT", "Vega");
  std::string path = dir_.File("sum.fits");
  ASSERT_OK(WriteCalibratedFrame(path, cal));
  ASSERT_OK(ReadCalibratedFrame(path, {.verify_checksum = true}));
  const std::string valid = ReadBytes(path);

  // A flipped bit in the primary data.
  std::string data_flip = valid;
  data_flip[2880 + 100] ^= 0x01;
  std::string p1 = Write("dataflip.fits", data_flip);
  ExpectAllReadersFail(p1, absl::StatusCode::kDataLoss, {.verify_checksum = true});
  EXPECT_OK(ReadCalibratedFrame(p1));  // unverified, it is just different data
  // A changed header value (still ASCII).
  std::string header_edit = valid;
  header_edit[header_edit.find("Vega")] = 'W';
  std::string p2 = Write("hdredit.fits", header_edit);
  EXPECT_THAT(ReadRawFrame(p2, {.verify_checksum = true}), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ReadHeader(p2, {.verify_checksum = true}), StatusIs(absl::StatusCode::kDataLoss));
  // A flipped bit in the last extension (DQ): ReadCalibratedFrame verifies every plane.
  std::string dq_flip = valid;
  dq_flip[dq_flip.size() - 2880 + 10] ^= 0x10;
  std::string p3 = Write("dqflip.fits", dq_flip);
  EXPECT_THAT(ReadCalibratedFrame(p3, {.verify_checksum = true}),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_OK(ReadRawFrame(p3, {.verify_checksum = true}));  // the primary HDU is intact
}

TEST_F(HostileTest, UnknownHduIsNotFound) {
  RawFrame frame = MakeFrame(8, 8, PixelType::kUint16, [](int x, int y) { return 1; });
  std::string path = dir_.File("one.fits");
  ASSERT_OK(WriteRawFrame(path, frame));
  ExpectAllReadersFail(path, absl::StatusCode::kNotFound, {.hdu_name = "SCI"});
  ExpectAllReadersFail(path, absl::StatusCode::kNotFound, {.hdu_index = 1});
  EXPECT_THAT(ReadHeader(path, {.hdu_name = "SCI"}), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(HostileTest, FilesAreClosedOnEveryPath) {
  RawFrame frame = MakeFrame(8, 8, PixelType::kUint16, [](int x, int y) { return x; });
  std::string good = dir_.File("good.fits");
  ASSERT_OK(WriteRawFrame(good, frame, "RICE_1"));
  std::string bad = Write("bad.fits", HeaderBlock(ImageCards("16", "2", {"100", "100"})));
  const int before = OpenFileDescriptors();
  for (int i = 0; i < 50; ++i) {
    EXPECT_OK(ReadRawFrame(good));
    EXPECT_OK(ReadCalibratedFrame(good));
    EXPECT_OK(BandReader::Open(good));
    EXPECT_THAT(ReadRawFrame(good, {.hdu_name = "X"}), StatusIs(absl::StatusCode::kNotFound));
    EXPECT_THAT(ReadRawFrame(bad), StatusIs(kInvalid));
    EXPECT_THAT(WriteRawFrame(good, frame), StatusIs(absl::StatusCode::kAlreadyExists));
    frame.header.Set("BAD", std::string("\x01"));
    EXPECT_THAT(WriteRawFrame(dir_.File("w.fits"), frame), StatusIs(kInvalid));
    frame.header.Erase("BAD");
  }
  EXPECT_EQ(OpenFileDescriptors(), before);
}

// Flips and truncations of valid files at many deterministic places: every read returns OK
// or an error; nothing crashes (the sanitizer build checks memory too).
TEST_F(HostileTest, MutatedFilesNeverCrash) {
  std::vector<std::string> sources;
  {
    RawFrame frame = MakeFrame(48, 40, PixelType::kUint16, [](int x, int y) { return x * 40 + y; });
    frame.header.Set("OBJECT", "fuzz");
    frame.header.Set("LONGSTR", std::string(150, 'a'));
    for (const char* c : {"RICE_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1"}) {
      std::string p = dir_.File(std::string("src_") + c + ".fits");
      ASSERT_OK(WriteRawFrame(p, frame, c));
      sources.push_back(ReadBytes(p));
    }
    CalibratedFrame cal;
    cal.data = Image<float>::Filled(20, 10, 2.0f);
    cal.variance = Image<float>::Filled(20, 10, 1.0f);
    cal.dq = Image<uint16_t>::Filled(20, 10, 1);
    std::string p = dir_.File("src_cal.fits");
    ASSERT_OK(WriteCalibratedFrame(p, cal));
    sources.push_back(ReadBytes(p));
  }
  const std::string path = dir_.File("mutant.fits");
  const int fds_before = OpenFileDescriptors();
  std::vector<float> band;
  int variants = 0, ok = 0, refused = 0;
  // Every reader either refuses the mutant as INVALID_ARGUMENT (a hostile file, never another
  // code: nothing here is missing or checksummed) or reads it consistently with the others.
  auto refused_as_invalid = [&](const absl::Status& status, const char* reader) {
    EXPECT_EQ(status.code(), kInvalid)
        << reader << " refused variant " << variants << " with " << status;
  };
  auto try_all = [&](const std::string& bytes) {
    WriteBytes(path, bytes);
    ++variants;
    ReadOptions options{.max_pixels = 1 << 20};
    absl::StatusOr<RawFrame> raw = ReadRawFrame(path, options);
    absl::StatusOr<CalibratedFrame> cal = ReadCalibratedFrame(path, options);
    absl::StatusOr<Header> header = ReadHeader(path, options);
    absl::StatusOr<std::unique_ptr<BandReader>> reader = BandReader::Open(path, options);
    for (auto [status, name] : {std::pair{raw.status(), "ReadRawFrame"},
                                std::pair{cal.status(), "ReadCalibratedFrame"},
                                std::pair{header.status(), "ReadHeader"},
                                std::pair{reader.status(), "BandReader::Open"}}) {
      if (!status.ok()) refused_as_invalid(status, name);
    }
    if (raw.ok()) {
      ++ok;
      // The same HDU, validated the same way: the header and band readers accept it too.
      EXPECT_TRUE(header.ok()) << "variant " << variants << ": " << header.status();
      EXPECT_TRUE(reader.ok()) << "variant " << variants << ": " << reader.status();
      if (header.ok()) {
        EXPECT_EQ(header->cards().size(), raw->header.cards().size());
      }
    } else {
      ++refused;
    }
    bool all_rows = reader.ok();  // every row of the image read by the band reader
    if (reader.ok()) {
      const int w = (*reader)->width(), h = (*reader)->height();
      if (raw.ok()) {
        EXPECT_EQ(w, raw->pixels.width());
        EXPECT_EQ(h, raw->pixels.height());
        EXPECT_EQ((*reader)->stored_type(), raw->pixels.type());
      }
      band.resize(size_t(w) * 8);
      for (int y = 0; y < h; y += 8) {
        const int n = std::min(8, h - y);
        const absl::Status rows = (*reader)->ReadRows(y, n, band.data());
        if (!rows.ok()) {
          refused_as_invalid(rows, "BandReader::ReadRows");
          all_rows = false;
          break;
        }
        // Rows read as float32 are the calibrated reader's data of the same HDU, bit for bit
        // (NaN where the other has NaN).
        if (cal.ok() && cal->data.width() == w && cal->data.height() == h) {
          for (int r = 0; r < n; ++r) {
            const float* want = cal->data.row(y + r);
            for (int x = 0; x < w; ++x) {
              const float got = band[size_t(r) * w + x];
              if (!(got == want[x] || (std::isnan(got) && std::isnan(want[x])))) {
                ADD_FAILURE() << "variant " << variants << ": pixel " << x << "," << y + r
                              << " is " << got << " from BandReader, " << want[x]
                              << " from ReadCalibratedFrame";
                r = n;
                break;
              }
            }
          }
        }
      }
    }
    // Pixels that decode as stored also decode as float32 (not the converse: a corrupt tile
    // may decode to values that overflow the stored type but not float32).
    if (raw.ok()) {
      EXPECT_TRUE(all_rows) << "variant " << variants << ": the band reader failed";
    }
  };
  uint64_t state = 12345;
  auto next = [&]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  // CALIBD_FITS_FUZZ_SCALE=k runs k times as many variants (for a longer local hunt).
  int scale = 1;
  if (const char* env = std::getenv("CALIBD_FITS_FUZZ_SCALE")) scale = std::max(1, std::atoi(env));
  for (const std::string& src : sources) {
    for (int i = 0; i < 50 * scale; ++i) {  // byte flips, biased towards the headers and table
      std::string m = src;
      size_t pos = (i % 2 == 0) ? next() % std::min<size_t>(m.size(), 2880 * 3) : next() % m.size();
      m[pos] = static_cast<char>(m[pos] ^ (1 + next() % 255));
      try_all(m);
    }
    for (int i = 0; i < 10 * scale; ++i) {  // truncations
      try_all(src.substr(0, next() % src.size()));
    }
    for (int i = 0; i < 8 * scale; ++i) {  // digits in numeric cards replaced
      std::string m = src;
      for (int k = 0; k < 3; ++k) {
        size_t pos = next() % std::min<size_t>(m.size(), 2880 * 3);
        if (m[pos] >= '0' && m[pos] <= '9') m[pos] = static_cast<char>('0' + next() % 10);
        else if (m[pos] == ' ') m[pos] = '9';
      }
      try_all(m);
    }
  }
  // Exactly what the loops above generate: 5 sources × (50 flips + 10 truncations + 8 digit
  // edits) × scale.
  EXPECT_EQ(sources.size(), 5u);
  EXPECT_EQ(variants, int(sources.size()) * (50 + 10 + 8) * scale);
  EXPECT_EQ(ok + refused, variants);
  EXPECT_EQ(OpenFileDescriptors(), fds_before) << "a read path leaks its file";
  EXPECT_GT(ok, 0);       // some flips only touch pixels or comments
  EXPECT_GT(refused, 0);  // and most of the rest break the structure
}

}  // namespace
}  // namespace calibd::fits
