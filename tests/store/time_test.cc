// ParseTime / FormatTime against libc's timegm (the oracle) and round trips.
#include <ctime>
#include <random>

#include "absl/strings/str_format.h"
#include "core/status/status_matchers.h"
#include "core/store/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::store {
namespace {

int64_t ValueOr(const absl::StatusOr<int64_t>& v) {
  return v.ok() ? *v : std::numeric_limits<int64_t>::min();
}

using ::calibd::testing::StatusIs;

int64_t Timegm(int y, int mo, int d, int h, int mi, int s) {
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm));
}

TEST(TimeTest, MatchesTimegmOnRandomDates) {
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    const int y = 1950 + rng() % 150, mo = 1 + rng() % 12, d = 1 + rng() % 28, h = rng() % 24,
              mi = rng() % 60, s = rng() % 60, us = rng() % 1000000;
    const std::string text =
        absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06d", y, mo, d, h, mi, s, us);
    ASSERT_OK_AND_ASSIGN(TimeMicros t, ParseTime(text));
    EXPECT_EQ(t, Timegm(y, mo, d, h, mi, s) * kMicrosPerSecond + us) << text;
    EXPECT_EQ(FormatTime(t), text + "Z");
  }
}

TEST(TimeTest, Forms) {
  const int64_t base = Timegm(2026, 3, 1, 2, 3, 4) * kMicrosPerSecond;
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01T02:03:04.5")), (base + 500000));
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01T02:03:04.5Z")), (base + 500000));
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01 02:03:04")), (base));
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01T02:03")), (base - 4 * kMicrosPerSecond));
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01T04:03:04+02:00")), (base));
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01T00:33:04-01:30")), (base));
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01T02:03:04.1234567")), (base + 123456));
  EXPECT_EQ(ValueOr(ParseTime("2026-03-01")), (Timegm(2026, 3, 1, 0, 0, 0) * kMicrosPerSecond));
  EXPECT_EQ(FormatTime(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(TimeTest, RejectsBadText) {
  for (const char* bad : {"", "2026", "2026-13-01", "2026-02-30", "2026-03-01T25:00:00",
                          "2026-03-01T02:03:04.", "2026-03-01T02:03:04Zjunk", "yesterday",
                          "2026/03/01"}) {
    EXPECT_THAT(ParseTime(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_EQ(ValueOr(ParseTime("2024-02-29")), (Timegm(2024, 2, 29, 0, 0, 0) *
                                                           kMicrosPerSecond));
}

}  // namespace
}  // namespace calibd::store
