#include "core/hash/sha256.h"

#include <fstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace calibd::hash {
namespace {

// FIPS 180-2 test vectors.
constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kTwoBlocks[] =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), kEmpty);
  EXPECT_EQ(Sha256Hex("abc"), kAbc);
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), kTwoBlocks);
}

TEST(Sha256Test, PiecesEqualWholeAndDigestResets) {
  Sha256 h;
  h.Update("a");
  h.Update(std::string("bc"));
  EXPECT_EQ(h.HexDigest(), kAbc);
  EXPECT_EQ(h.HexDigest(), kEmpty);  // started over
}

TEST(Sha256Test, MoveTransfersState) {
  Sha256 a;
  a.Update("ab");
  Sha256 b(std::move(a));
  b.Update("c");
  EXPECT_EQ(b.HexDigest(), kAbc);
  Sha256 c;
  c = std::move(b);
  c.Update("abc");
  EXPECT_EQ(c.HexDigest(), kAbc);
}

TEST(Sha256Test, FileDigestAndErrors) {
  calibd::testing::TempDir dir;
  std::string path = dir.path() + "/f.bin";
  std::string big(9 << 20, 'x');  // more than one read block
  big += "abc";
  std::ofstream(path, std::ios::binary) << big;
  absl::StatusOr<std::string> got = Sha256File(path);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, Sha256Hex(big));
  EXPECT_EQ(Sha256File(dir.path() + "/missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(Sha256Test, IsSha256Hex) {
  EXPECT_TRUE(IsSha256Hex(kAbc));
  EXPECT_FALSE(IsSha256Hex("ABC"));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'G')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a')));
}

}  // namespace
}  // namespace calibd::hash
