// The direct writer of calibrated frames (core/fits/image_writer.h) against the CFITSIO writer
// it replaced, and the FITS checksum against CFITSIO's: the same pixel bytes in every HDU, the
// same cards, checksums that CFITSIO and astropy verify, CCDData.read loads the file; with
// tile-compressed MASK/DQ too.
#include <fitsio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/fits/checksum.h"
#include "core/fits/fits.h"
#include "core/image/dq.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/synthetic.h"
#include "tests/testing/temp_dir.h"

namespace calibd::fits {
namespace {

using ::calibd::testing::CommandResult;
using ::calibd::testing::PythonCommand;
using ::calibd::testing::RunCommand;
using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;

TEST(ChecksumTest, EncodingMatchesCfitsio) {
  std::mt19937 rng(3);
  std::vector<uint32_t> sums = {0,           1,           0xFFFFFFFFu, 0x7FFFFFFFu,
                                0x80000000u, 0x3A3B3C3Du, 0x5B5C5D5Eu, 0x30303030u};
  for (int i = 0; i < 20000; ++i) sums.push_back(rng());
  for (uint32_t sum : sums) {
    char want[17] = {0};
    fits_encode_chksum(sum, /*complm=*/1, want);
    ASSERT_EQ(EncodeChecksum(sum), std::string(want)) << sum;
  }
}

TEST(ChecksumTest, OnesComplementSumFoldsCarriesAndReadsBigEndian) {
  std::mt19937 rng(5);
  OnesComplementSum s;
  s.Add(0xFFFFFFFFu);
  s.Add(2);  // 0xFFFFFFFF + 2 = 0x1_00000001 → end-around carry → 2
  EXPECT_EQ(s.value(), 2u);
  const unsigned char bytes[8] = {0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0};
  OnesComplementSum be;
  be.AddBigEndian(bytes, 8);
  OnesComplementSum host;
  const uint32_t words[2] = {0x12345678u, 0x9ABCDEF0u};
  host.AddHostWords(words, 2);
  EXPECT_EQ(be.value(), host.value());
  EXPECT_EQ(be.value(), uint32_t((0x12345678ull + 0x9ABCDEF0ull) % 0xFFFFFFFFull));
  // Pieces summed separately add up to the whole.
  std::vector<uint32_t> many(1001);
  for (size_t i = 0; i < many.size(); ++i) many[i] = uint32_t(i * 2654435761u);
  OnesComplementSum whole, a, b;
  whole.AddHostWords(many.data(), many.size());
  a.AddHostWords(many.data(), 500);
  b.AddHostWords(many.data() + 500, 501);
  a.Add(b.value());
  EXPECT_EQ(a.value(), whole.value());
  // The vectorised path (32 bytes a step) and its tail against a plain big-endian sum mod 2^32-1.
  std::vector<unsigned char> raw(4 * 1003);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<unsigned char>(rng() >> 7);
  for (size_t n : {size_t{0}, size_t{4}, size_t{28}, size_t{32}, size_t{36}, raw.size()}) {
    uint64_t want = 0;
    for (size_t i = 0; i < n; i += 4) {
      want += (uint64_t{raw[i]} << 24) | (uint64_t{raw[i + 1]} << 16) |
              (uint64_t{raw[i + 2]} << 8) | raw[i + 3];
    }
    while (want >> 32) want = (want & 0xFFFFFFFFu) + (want >> 32);
    OnesComplementSum got;
    got.AddBigEndian(raw.data(), n);
    EXPECT_EQ(got.value(), uint32_t(want)) << n << " bytes";
  }
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Hdu {
  std::string extname;
  std::string data;  // the data unit's bytes as stored
};

// Every HDU of `path` through CFITSIO: its data bytes, and whether its checksums verify.
std::vector<Hdu> HdusVerified(const std::string& path) {
  std::vector<Hdu> out;
  const std::string bytes = ReadBytes(path);
  fitsfile* f = nullptr;
  int status = 0;
  fits_open_diskfile(&f, path.c_str(), READONLY, &status);
  EXPECT_EQ(status, 0) << path;
  if (status != 0) return out;
  int n = 0;
  fits_get_num_hdus(f, &n, &status);
  for (int i = 1; i <= n && status == 0; ++i) {
    fits_movabs_hdu(f, i, nullptr, &status);
    int dataok = 0, hduok = 0;
    fits_verify_chksum(f, &dataok, &hduok, &status);
    EXPECT_EQ(dataok, 1) << path << " HDU " << i - 1 << " DATASUM";
    EXPECT_EQ(hduok, 1) << path << " HDU " << i - 1 << " CHECKSUM";
    LONGLONG head = 0, start = 0, end = 0;
    fits_get_hduaddrll(f, &head, &start, &end, &status);
    Hdu h;
    char name[FLEN_VALUE] = {0};
    int s2 = 0;
    fits_read_key(f, TSTRING, "EXTNAME", name, nullptr, &s2);
    h.extname = s2 == 0 ? name : "";
    h.data = bytes.substr(size_t(start), size_t(end - start));
    out.push_back(std::move(h));
  }
  EXPECT_EQ(status, 0);
  fits_close_file(f, &status);
  return out;
}

CalibratedFrame TestFrame(int w, int h, bool variance, bool dq) {
  CalibratedFrame f;
  f.unit = "electron";
  f.data = Image<float>::Allocate(w, h);
  if (variance) f.variance = Image<float>::Allocate(w, h);
  if (dq) f.dq = Image<uint16_t>::Filled(w, h, 0);
  testing::Gaussian g(w * 1000 + h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      f.data.at(x, y) = static_cast<float>(1000 * g.Next());
      if (variance) f.variance.at(x, y) = static_cast<float>(std::fabs(50 * g.Next()));
      if (dq && g.Uniform() < 0.05) f.dq.at(x, y) = uint16_t(1u << (x % 16));
    }
  }
  f.data.at(0, 0) = std::numeric_limits<float>::quiet_NaN();
  f.data.at(w - 1, 0) = std::numeric_limits<float>::infinity();
  f.data.at(0, h - 1) = -0.0f;
  f.header.Set("OBJECT", "NGC 1275");
  f.header.Set("EXPTIME", 30.0, "exposure [s]");
  f.header.Set("NCOMBINE", int64_t{20});
  f.header.Set("FLAG", true);
  f.header.Set("LONGSTR", std::string(150, 'x'), "a CONTINUE'd string");
  f.header.Set("HIERARCH ESO DET CHIP", "CCD-44");
  f.header.AddHistory("calibd: bias, dark, flat");
  return f;
}

// The direct file and the CFITSIO one hold the same HDUs with the same data bytes; both
// verify. Appends (direct, reference, unit) to `astropy_args` for one astropy run.
void ExpectLikeCfitsio(const CalibratedFrame& frame, WriteOptions options, const std::string& dir,
                       const std::string& name, std::vector<std::string>* astropy_args) {
  SCOPED_TRACE(name);
  const std::string direct = dir + "/" + name + ".fits";
  const std::string reference = dir + "/" + name + "_cfitsio.fits";
  ASSERT_OK(WriteCalibratedFrame(direct, frame, options));
  options.use_cfitsio = true;
  ASSERT_OK(WriteCalibratedFrame(reference, frame, options));
  const std::vector<Hdu> a = HdusVerified(direct), b = HdusVerified(reference);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].extname, b[i].extname);
    EXPECT_TRUE(a[i].data == b[i].data) << "HDU " << i << " '" << a[i].extname << "' data differ";
  }
  // Our reader sees the same frame in both (headers card for card).
  ASSERT_OK_AND_ASSIGN(CalibratedFrame ra, ReadCalibratedFrame(direct, {.verify_checksum = true}));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame rb, ReadCalibratedFrame(reference));
  EXPECT_EQ(ra.header.cards().size(), rb.header.cards().size());
  for (size_t i = 0; i < std::min(ra.header.cards().size(), rb.header.cards().size()); ++i) {
    EXPECT_EQ(ra.header.cards()[i].key, rb.header.cards()[i].key);
    EXPECT_TRUE(ra.header.cards()[i].value == rb.header.cards()[i].value)
        << ra.header.cards()[i].key;
    EXPECT_EQ(ra.header.cards()[i].comment, rb.header.cards()[i].comment);
  }
  EXPECT_EQ(ra.unit, frame.unit);
  astropy_args->insert(astropy_args->end(), {direct, reference, frame.unit});
}

TEST(DirectWriterTest, SameBytesAsCfitsioAndChecksumsVerify) {
  TempDir dir;
  std::vector<std::string> args;
  // Odd sizes: rows of an odd number of bytes (MASK), pieces that are not whole blocks.
  ExpectLikeCfitsio(TestFrame(37, 23, true, true), {}, dir.path(), "all_planes", &args);
  ExpectLikeCfitsio(TestFrame(1, 1, true, true), {}, dir.path(), "one_pixel", &args);
  ExpectLikeCfitsio(TestFrame(601, 1777, false, true), {}, dir.path(), "tall_no_var", &args);
  ExpectLikeCfitsio(TestFrame(64, 8, false, false), {}, dir.path(), "data_only", &args);
  WriteOptions no_uncert;
  no_uncert.write_uncertainty = false;
  ExpectLikeCfitsio(TestFrame(40, 30, true, true), no_uncert, dir.path(), "no_uncert", &args);
  WriteOptions compressed;
  compressed.compress_masks = true;
  ExpectLikeCfitsio(TestFrame(300, 200, true, true), compressed, dir.path(), "compressed", &args);
  // astropy (checksum=True, warnings as errors) sees the same HDUs, data and cards, and
  // CCDData.read loads every direct file.
  ASSERT_OK_AND_ASSIGN(CommandResult r,
                       RunCommand(PythonCommand("tests/fits/fits_compare_astropy.py", args)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// With O_DIRECT (4096-aligned writes through the staging buffer, headers patched after their
// data, the file padded and truncated back): the same bytes as CFITSIO's writer. Frames larger
// than the staging buffer (headers patched after they were flushed), rows wider than a fill
// piece (the buffer grows), a file that is not a multiple of 4096 bytes.
TEST(DirectWriterTest, DirectIoWritesTheSameBytes) {
  TempDir dir;
  std::vector<std::string> args;
  WriteOptions direct;
  direct.direct_io = true;
  ExpectLikeCfitsio(TestFrame(37, 23, true, true), direct, dir.path(), "small", &args);
  ExpectLikeCfitsio(TestFrame(1500, 1500, true, true), direct, dir.path(), "large", &args);
  ExpectLikeCfitsio(TestFrame(530001, 4, false, true), direct, dir.path(), "wide", &args);
  WriteOptions compressed = direct;
  compressed.compress_masks = true;
  ExpectLikeCfitsio(TestFrame(300, 200, true, true), compressed, dir.path(), "compressed", &args);
  WriteOptions plain = direct;
  plain.checksum = false;
  const CalibratedFrame frame = TestFrame(1000, 999, true, true);
  ASSERT_OK(WriteCalibratedFrame(dir.File("plain_direct.fits"), frame, plain));
  plain.direct_io = false;
  ASSERT_OK(WriteCalibratedFrame(dir.File("plain_buffered.fits"), frame, plain));
  const std::string a = ReadBytes(dir.File("plain_direct.fits"));
  EXPECT_EQ(a.size() % 2880, 0u);
  EXPECT_NE(a.size() % 4096, 0u);  // padded for O_DIRECT, truncated back
  EXPECT_TRUE(a == ReadBytes(dir.File("plain_buffered.fits")));
  // Replacing a larger file leaves nothing of it behind.
  direct.overwrite = true;
  ASSERT_OK(WriteCalibratedFrame(dir.File("plain_direct.fits"), TestFrame(10, 10, false, false),
                                 direct));
  EXPECT_EQ(ReadBytes(dir.File("plain_direct.fits")).size(), 2u * 2880);
  ASSERT_OK_AND_ASSIGN(CommandResult r,
                       RunCommand(PythonCommand("tests/fits/fits_compare_astropy.py", args)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// A file system without O_DIRECT (tmpfs on older kernels) is written through the page cache.
// Where /dev/shm is missing or read-only the same assertions run in the test's temp directory
// (never a skip: the direct-I/O path must write whatever the file system).
TEST(DirectWriterTest, DirectIoOnTmpfsStillWrites) {
  struct stat st;
  const bool shm =
      ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0;
  TempDir dir;
  const std::string path = (shm ? std::string("/dev/shm") : dir.path()) + "/calibd_writer_test_" +
                           std::to_string(::getpid()) + ".fits";
  const CalibratedFrame frame = TestFrame(333, 222, true, true);
  WriteOptions o;
  o.direct_io = true;
  o.overwrite = true;
  ASSERT_OK(WriteCalibratedFrame(path, frame, o));
  std::vector<Hdu> hdus = HdusVerified(path);
  EXPECT_EQ(hdus.size(), 4u);
  ASSERT_OK_AND_ASSIGN(CalibratedFrame back, ReadCalibratedFrame(path, {.verify_checksum = true}));
  EXPECT_EQ(
      std::memcmp(back.data.data(), frame.data.data(), frame.data.num_pixels() * sizeof(float)), 0);
  ::unlink(path.c_str());
}

TEST(DirectWriterTest, WithoutChecksumsTheDataAreTheSame) {
  TempDir dir;
  const CalibratedFrame frame = TestFrame(50, 40, true, true);
  WriteOptions o;
  o.checksum = false;
  ASSERT_OK(WriteCalibratedFrame(dir.File("a.fits"), frame, o));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame back, ReadCalibratedFrame(dir.File("a.fits")));
  EXPECT_EQ(
      std::memcmp(back.data.data(), frame.data.data(), frame.data.num_pixels() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(back.dq.data(), frame.dq.data(), frame.dq.num_pixels() * sizeof(uint16_t)),
            0);
  ASSERT_OK_AND_ASSIGN(Header h, ReadHeader(dir.File("a.fits")));
  EXPECT_EQ(h.Find("CHECKSUM"), nullptr);
  const std::string bytes = ReadBytes(dir.File("a.fits"));
  EXPECT_EQ(bytes.find("CHECKSUM"), std::string::npos);
  EXPECT_EQ(bytes.size() % 2880, 0u);
}

TEST(DirectWriterTest, CompressedMasksAreSmallAndReadBackExactly) {
  TempDir dir;
  CalibratedFrame frame = TestFrame(512, 512, true, true);
  // A realistic DQ: mostly zeros, a bad column and a few saturated pixels.
  std::fill(frame.dq.data(), frame.dq.data() + frame.dq.num_pixels(), uint16_t{0});
  for (int y = 0; y < 512; ++y) frame.dq.at(100, y) = kDqBad;
  for (int i = 0; i < 300; ++i) frame.dq.at((i * 37) % 512, (i * 101) % 512) |= kDqSaturated;
  ASSERT_OK(WriteCalibratedFrame(dir.File("plain.fits"), frame));
  WriteOptions o;
  o.compress_masks = true;
  ASSERT_OK(WriteCalibratedFrame(dir.File("small.fits"), frame, o));
  struct stat plain, small;
  ASSERT_EQ(::stat(dir.File("plain.fits").c_str(), &plain), 0);
  ASSERT_EQ(::stat(dir.File("small.fits").c_str(), &small), 0);
  // MASK (256 KiB) and DQ (512 KiB) shrink to a small fraction; data and UNCERT stay.
  EXPECT_LT(small.st_size, plain.st_size - 512 * 512 * 2);
  ASSERT_OK_AND_ASSIGN(CalibratedFrame back,
                       ReadCalibratedFrame(dir.File("small.fits"), {.verify_checksum = true}));
  EXPECT_EQ(std::memcmp(back.dq.data(), frame.dq.data(), frame.dq.num_pixels() * sizeof(uint16_t)),
            0);
}

TEST(DirectWriterTest, RefusesToReplaceAndLeavesNoFileOnFailure) {
  TempDir dir;
  const CalibratedFrame frame = TestFrame(8, 8, true, true);
  ASSERT_OK(WriteCalibratedFrame(dir.File("x.fits"), frame));
  EXPECT_THAT(WriteCalibratedFrame(dir.File("x.fits"), frame),
              StatusIs(absl::StatusCode::kAlreadyExists));
  WriteOptions o;
  o.overwrite = true;
  EXPECT_OK(WriteCalibratedFrame(dir.File("x.fits"), frame, o));
  CalibratedFrame bad = TestFrame(8, 8, true, true);
  bad.header.Set("BAD", std::string("\x01"));
  EXPECT_THAT(WriteCalibratedFrame(dir.File("bad.fits"), bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
  struct stat st;
  EXPECT_NE(::stat(dir.File("bad.fits").c_str(), &st), 0);
  EXPECT_THAT(WriteCalibratedFrame(dir.File("no/such/dir.fits"), frame),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace calibd::fits
