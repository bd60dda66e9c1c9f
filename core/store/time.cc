#include "core/store/time.h"

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calibd::store {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t yy = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int64_t y, unsigned m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

class Cursor {
 public:
  explicit Cursor(absl::string_view s) : s_(s) {}
  bool Done() const { return i_ >= s_.size(); }
  char Peek() const { return Done() ? '\0' : s_[i_]; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++i_;
    return true;
  }
  // Exactly n digits.
  bool Digits(int n, int64_t* out) {
    int64_t v = 0;
    for (int k = 0; k < n; ++k) {
      if (Done() || s_[i_] < '0' || s_[i_] > '9') return false;
      v = v * 10 + (s_[i_++] - '0');
    }
    *out = v;
    return true;
  }

 private:
  absl::string_view s_;
  size_t i_ = 0;
};

}  // namespace

absl::StatusOr<TimeMicros> ParseTime(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad time '", text, "' (", why,
        "); expected ISO-8601 like 2026-03-01T02:03:04.5 with optional Z or +hh:mm"));
  };
  Cursor c(text);
  int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, micros = 0;
  if (!c.Digits(4, &year) || !c.Eat('-') || !c.Digits(2, &month) || !c.Eat('-') ||
      !c.Digits(2, &day)) {
    return bad("date must be YYYY-MM-DD");
  }
  if (month < 1 || month > 12) return bad("month out of range");
  if (day < 1 || day > DaysInMonth(year, static_cast<unsigned>(month))) {
    return bad("day out of range");
  }
  int64_t offset_minutes = 0;
  if (!c.Done()) {
    if (!c.Eat('T') && !c.Eat(' ')) return bad("expected 'T' after the date");
    if (!c.Digits(2, &hour) || !c.Eat(':') || !c.Digits(2, &minute)) {
      return bad("time must be hh:mm[:ss[.f]]");
    }
    if (c.Eat(':')) {
      if (!c.Digits(2, &second)) return bad("seconds must be two digits");
      if (c.Eat('.')) {
        int digits = 0;
        int64_t frac = 0;
        while (!c.Done() && c.Peek() >= '0' && c.Peek() <= '9') {
          int64_t d = 0;
          c.Digits(1, &d);
          if (digits < 6) {
            frac = frac * 10 + d;
            ++digits;
          }
        }
        if (digits == 0) return bad("empty fraction");
        while (digits < 6) {
          frac *= 10;
          ++digits;
        }
        micros = frac;
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return bad("time of day out of range");
    if (c.Eat('Z') || c.Eat('z')) {
    } else if (c.Peek() == '+' || c.Peek() == '-') {
      const int sign = c.Peek() == '-' ? -1 : 1;
      c.Eat(c.Peek());
      int64_t oh = 0, om = 0;
      if (!c.Digits(2, &oh)) return bad("offset must be +hh:mm");
      c.Eat(':');
      if (!c.Done() && !c.Digits(2, &om)) return bad("offset must be +hh:mm");
      if (oh > 23 || om > 59) return bad("offset out of range");
      offset_minutes = sign * (oh * 60 + om);
    }
  }
  if (!c.Done()) return bad("trailing characters");
  const int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return seconds * kMicrosPerSecond + micros;
}

std::string FormatTime(TimeMicros t) {
  int64_t seconds = t / kMicrosPerSecond;
  int64_t micros = t % kMicrosPerSecond;
  if (micros < 0) {
    micros += kMicrosPerSecond;
    --seconds;
  }
  int64_t days = seconds / 86400;
  int64_t sod = seconds % 86400;
  if (sod < 0) {
    sod += 86400;
    --days;
  }
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d, sod / 3600,
                         (sod / 60) % 60, sod % 60, micros);
}

TimeMicros NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace calibd::store
