// Unit tests of calibctl's output formatting: tables, JSON, sizes, the progress bar.
#include "client/format.h"

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::client {
namespace {

using ::testing::HasSubstr;

TEST(TableTest, AlignsColumnsByDisplayWidth) {
  Table t({"KIND", "VERSION", "CERTIFIED"});
  t.AddRow({"bias", "12", "[2026-03-01T00:00:00Z, open)"});
  t.AddRow({"flat", "3", "→"});  // a multi-byte character counts as one column
  t.AddRow({"dark"});             // missing cells are blank
  EXPECT_EQ(t.Render(),
            "KIND  VERSION  CERTIFIED\n"
            "bias  12       [2026-03-01T00:00:00Z, open)\n"
            "flat  3        →\n"
            "dark\n");
}

TEST(JsonWriterTest, NestedValuesAndEscapes) {
  JsonWriter j;
  j.BeginObject();
  j.Key("name");
  j.String("a\"b\\c\n\x01");
  j.Key("list");
  j.BeginArray();
  j.Int(-3);
  j.Double(0.5);
  j.Bool(true);
  j.Null();
  j.Double(std::numeric_limits<double>::quiet_NaN());
  j.EndArray();
  j.Key("empty");
  j.BeginObject();
  j.EndObject();
  j.Key("raw");
  j.Raw("{\"x\":1}");
  j.EndObject();
  EXPECT_EQ(j.str(),
            R"({"name":"a\"b\\c\n\u0001","list":[-3,0.5,true,null,null],"empty":{},"raw":{"x":1}})");
}

TEST(JsonWriterTest, DoublesRoundTrip) {
  JsonWriter j;
  j.Double(0.1);
  EXPECT_EQ(std::stod(j.str()), 0.1);
}

TEST(FormatTest, BytesSecondsNumbers) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3.0 GiB");
  EXPECT_EQ(FormatSeconds(0.0042), "4.2 ms");
  EXPECT_EQ(FormatSeconds(2.5), "2.50 s");
  EXPECT_EQ(FormatSeconds(75), "1m15s");
  EXPECT_EQ(ShortSha("0123456789abcdef0123"), "0123456789ab");
  EXPECT_EQ(FormatNumber(1234.5678, 6), "1234.57");
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::quiet_NaN()), "nan");
}

TEST(ProgressBarTest, RenderShowsFractionAndRate) {
  const std::string s = ProgressBar::Render("upload", 512 << 10, 1 << 20, true, 1.0, 10);
  EXPECT_EQ(s, "upload [#####     ]  50% 512.0 KiB/1.0 MiB 512.0 KiB/s");
  EXPECT_EQ(ProgressBar::Render("frames", 3, 3, false, 0, 4), "frames [####] 100% 3/3");
  EXPECT_EQ(ProgressBar::Render("x", 5, 0, false, 0, 2), "x [  ]   0% 5/0");
}

TEST(ProgressBarTest, DrawsNothingWhenDisabled) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buf, &size);
  {
    ProgressBar bar("upload", 100, /*enabled=*/false, true, f);
    bar.Update(50);
    bar.Update(100);
  }
  std::fclose(f);
  EXPECT_EQ(size, 0u);
  std::free(buf);
}

TEST(ProgressBarTest, DrawsAndClearsWhenEnabled) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buf, &size);
  {
    ProgressBar bar("upload", 100, /*enabled=*/true, false, f);
    bar.Update(100);  // the final state is always drawn
    bar.Finish();
  }
  std::fclose(f);
  const std::string out(buf, size);
  std::free(buf);
  EXPECT_THAT(out, HasSubstr("upload ["));
  EXPECT_THAT(out, HasSubstr("100% 100/100"));
  EXPECT_EQ(out.substr(out.size() - 4), "\r\033[K");  // the line is cleared at the end
}

TEST(ProgressBarTest, ClearErasesAndTheNextUpdateRedraws) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buf, &size);
  {
    ProgressBar bar("calibrate", 4, /*enabled=*/true, false, f);
    bar.Update(4);
    bar.Clear();
    std::fputs("result line\n", f);
    bar.Update(4);  // drawn again at once, not rate-limited
    bar.Finish();
  }
  std::fclose(f);
  const std::string out(buf, size);
  std::free(buf);
  const size_t result = out.find("result line\n");
  ASSERT_NE(result, std::string::npos) << out;
  EXPECT_EQ(out.substr(result - 4, 4), "\r\033[K");  // the bar was erased before the line
  EXPECT_NE(out.find("100% 4/4", result), std::string::npos) << out;  // and drawn after it
}

TEST(ProgressBarTest, DisabledWhenJson) { EXPECT_FALSE(ProgressBar::Enabled(/*json_output=*/true)); }

}  // namespace
}  // namespace calibd::client
