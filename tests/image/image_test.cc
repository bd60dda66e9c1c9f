#include "core/image/image.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "core/image/buffer_pool.h"
#include "core/image/dq.h"
#include "core/image/header.h"
#include "core/image/section.h"
#include "core/status/status_matchers.h"
#include "gtest/gtest.h"

namespace calibd {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;

TEST(SectionTest, ParsesOneBasedInclusiveToZeroBasedHalfOpen) {
  ASSERT_OK_AND_ASSIGN(Section s, ParseFitsSection("[2:10, 3:4]", 20, 5));
  EXPECT_EQ(s, (Section{1, 10, 2, 4}));
  EXPECT_EQ(s.width(), 9);
  EXPECT_EQ(s.height(), 2);
  EXPECT_EQ(FormatFitsSection(s), "[2:10,3:4]");
}

TEST(SectionTest, StarSingleAndReversed) {
  ASSERT_OK_AND_ASSIGN(Section s, ParseFitsSection("[*,7]", 20, 10));
  EXPECT_EQ(s, (Section{0, 20, 6, 7}));
  ASSERT_OK_AND_ASSIGN(Section r, ParseFitsSection("[10:1,*]", 20, 10));
  EXPECT_EQ(r.x0, 0);
  EXPECT_EQ(r.x1, 10);
  EXPECT_TRUE(r.x_reversed);
  EXPECT_FALSE(r.y_reversed);
  EXPECT_EQ(FormatFitsSection(r), "[10:1,1:10]");
}

TEST(SectionTest, RejectsMalformedAndOutOfBounds) {
  for (const char* bad : {"", "1:2,3:4", "[1:2]", "[a:2,1:2]", "[0:2,1:2]", "[1:21,1:2]",
                          "[1:2:3,1:2]", "[1:2,1:11]", "[1:2,x]"}) {
    EXPECT_THAT(ParseFitsSection(bad, 20, 10), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  EXPECT_THAT(ParseFitsSection("[1:21,1:2]", 20, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside 1:20")));
}

TEST(SectionTest, InFrameMeansNonEmptyAndInside) {
  EXPECT_TRUE((Section{0, 10, 0, 5}).InFrame(10, 5));
  EXPECT_TRUE((Section{3, 4, 2, 3}).InFrame(10, 5));   // one pixel
  EXPECT_FALSE((Section{0, 11, 0, 5}).InFrame(10, 5));  // one column too far
  EXPECT_FALSE((Section{0, 10, 0, 6}).InFrame(10, 5));  // one row too far
  EXPECT_FALSE((Section{-1, 4, 0, 5}).InFrame(10, 5));
  EXPECT_FALSE((Section{0, 4, -1, 5}).InFrame(10, 5));
  EXPECT_FALSE((Section{4, 4, 0, 5}).InFrame(10, 5));   // empty
  EXPECT_FALSE((Section{0, 4, 3, 3}).InFrame(10, 5));
  EXPECT_FALSE((Section{5, 4, 0, 5}).InFrame(10, 5));   // inverted
  EXPECT_TRUE(FullSection(7, 9).InFrame(7, 9));
}

TEST(HeaderTest, TypedGettersAndCaseInsensitiveKeys) {
  Header h;
  h.Set("EXPTIME", 30.5, "s");
  h.Set("NCOMBINE", int64_t{5});
  h.Set("IMAGETYP", "flat");
  h.Set("SIMPLE", true);
  EXPECT_EQ(*h.GetDouble("exptime"), 30.5);
  EXPECT_EQ(*h.GetDouble("NCOMBINE"), 5.0);  // integers widen to double
  EXPECT_EQ(*h.GetInt("NCOMBINE"), 5);
  EXPECT_EQ(*h.GetString("imagetyp"), "flat");
  EXPECT_TRUE(*h.GetBool("SIMPLE"));
  EXPECT_THAT(h.GetDouble("IMAGETYP"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(h.GetDouble("GAIN"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("GAIN")));
  EXPECT_EQ(*h.GetText("EXPTIME"), "30.5");
  EXPECT_EQ(*h.GetText("SIMPLE"), "T");
}

TEST(HeaderTest, SetReplacesInPlaceHistoryAppends) {
  Header h;
  h.Set("A", 1);
  h.Set("B", 2);
  h.Set("a", 3);
  h.AddHistory("one");
  h.AddHistory("two");
  ASSERT_EQ(h.cards().size(), 4u);
  EXPECT_EQ(h.cards()[0].key, "A");
  EXPECT_EQ(*h.GetInt("A"), 3);
  EXPECT_EQ(h.cards()[3].comment, "two");
  EXPECT_EQ(h.Erase("HISTORY"), 2);
  EXPECT_EQ(h.cards().size(), 2u);
}

TEST(ImageTest, RowsAreContiguousAndCloneIsDeep) {
  Image<float> a = Image<float>::Filled(5, 3, 1.5f);
  a.at(4, 2) = 7;
  EXPECT_EQ(a.row(2) - a.row(1), 5);
  EXPECT_EQ(a.Row(2).size(), 5u);
  Image<float> b = a.Clone();
  b.at(4, 2) = 8;
  EXPECT_EQ(a.at(4, 2), 7);
  EXPECT_EQ(b.at(0, 0), 1.5f);
}

TEST(RawImageTest, RowToFloatConvertsEveryType) {
  Image<uint16_t> u = Image<uint16_t>::Filled(4, 2, 65535);
  RawImage raw = RawImage::FromImage(std::move(u));
  EXPECT_EQ(raw.type(), PixelType::kUint16);
  float out[4];
  raw.RowToFloat(1, 1, 3, out);
  EXPECT_EQ(out[0], 65535.0f);
  Image<int16_t> s = Image<int16_t>::Filled(2, 1, -32768);
  RawImage raws = RawImage::FromImage(std::move(s));
  double d[2];
  raws.RowToDouble(0, 0, 2, d);
  EXPECT_EQ(d[1], -32768.0);
  EXPECT_EQ(*ParsePixelType("float64"), PixelType::kFloat64);
  EXPECT_THAT(ParsePixelType("uint12"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BufferPoolTest, RecyclesFreedBuffersOfTheSameSizeClass) {
  BufferPool pool(1 << 26);
  void* first;
  {
    Buffer b = pool.Acquire(1000000);
    first = b.data();
    std::memset(b.data(), 1, b.size());
  }
  EXPECT_GT(pool.cached_bytes(), 0u);
  Buffer again = pool.Acquire(990000);  // same size class
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(pool.hits(), 1);
  EXPECT_EQ(pool.misses(), 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(again.data()) % 64, 0u);
}

TEST(BufferPoolTest, BufferMayOutliveItsPool) {
  Buffer b;
  {
    BufferPool pool(1 << 20);
    b = pool.Acquire(4096);
  }
  std::memset(b.data(), 0, b.size());  // still valid; freed when b goes (ASan checks)
}

TEST(BufferPoolTest, CapBoundsIdleBytes) {
  BufferPool pool(1 << 20);
  { Buffer big = pool.Acquire(4 << 20); }
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

// A new large pool buffer is mapped in by one madvise, not page by page at first touch
// (PERFORMANCE.md fact 1): every page of it is resident before anything is written.
TEST(BufferPoolTest, NewLargeBuffersArePopulated) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  {  // Every kernel calibd runs on has the advice (5.14+; Debian 12 ships 6.1). On an older one
     // the pool still works (pages are faulted in at first touch) but this test fails, saying why.
    void* probe = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(probe, MAP_FAILED);
    const bool supported = madvise(probe, page, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(probe, page);
    ASSERT_TRUE(supported) << "this kernel has no MADV_POPULATE_WRITE (older than 5.14)";
  }
  BufferPool pool(size_t{1} << 28);
  // 64 MiB: glibc maps blocks this large afresh (above its mmap threshold), so untouched
  // pages would not be resident.
  Buffer b = pool.Acquire(size_t{64} << 20);
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(b.data()) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(b.data()) + b.size()) & ~(page - 1);
  std::vector<unsigned char> resident((end - begin) / page);
  ASSERT_EQ(mincore(reinterpret_cast<void*>(begin), end - begin, resident.data()), 0);
  size_t in = 0;
  for (unsigned char r : resident) in += r & 1;
  EXPECT_EQ(in, resident.size());
  // Small buffers are left to first touch.
  Buffer small = pool.Acquire(64 << 10);
  EXPECT_NE(small.data(), nullptr);
}

TEST(DqTest, RegistryIsOrderedDistinctBits) {
  uint16_t seen = 0;
  uint16_t last = 0;
  for (const DqBitInfo& b : DqBitRegistry()) {
    EXPECT_EQ(b.bit & (b.bit - 1), 0) << b.name;  // one bit each
    EXPECT_GT(b.bit, last);
    EXPECT_EQ(seen & b.bit, 0);
    seen |= b.bit;
    last = b.bit;
  }
  EXPECT_EQ(last, kDqLastCoreBit);
}

}  // namespace
}  // namespace calibd
