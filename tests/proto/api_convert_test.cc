// Tests of the shared proto ⇄ core time conversion: floor division before the epoch, the epoch
// itself as an ordinary time, sub-microsecond nanos dropped toward the past, the Timestamp
// range's ends, and malformed Timestamps refused. The oracle is protobuf's own TimeUtil and
// absl's civil-time arithmetic, both independent of the code under test.
#include "proto/api_convert.h"

#include <cstdint>
#include <limits>
#include <random>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace calibd::api {
namespace {

using ::calibd::testing::StatusIs;
using ::google::protobuf::Timestamp;
using ::google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;

Timestamp Ts(int64_t seconds, int32_t nanos) {
  Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

int64_t MicrosOf(absl::CivilSecond civil, int64_t micros = 0) {
  return absl::ToUnixMicros(absl::FromCivil(civil, absl::UTCTimeZone())) + micros;
}

TEST(TimeConvertTest, EpochIsAnOrdinaryTime) {
  const Timestamp t = TimeMicrosToProto(0);
  EXPECT_EQ(t.seconds(), 0);
  EXPECT_EQ(t.nanos(), 0);
  ASSERT_OK_AND_ASSIGN(store::TimeMicros back, TimeMicrosFromProto(t));
  EXPECT_EQ(back, 0);
}

TEST(TimeConvertTest, NegativeTimesUseFloorDivision) {
  // One microsecond before the epoch: seconds -1, nanos 999999000 (never nanos -1000).
  Timestamp t = TimeMicrosToProto(-1);
  EXPECT_EQ(t.seconds(), -1);
  EXPECT_EQ(t.nanos(), 999'999'000);
  // 1969-12-31T23:59:58.75Z.
  t = TimeMicrosToProto(-1'250'000);
  EXPECT_EQ(t.seconds(), -2);
  EXPECT_EQ(t.nanos(), 750'000'000);
  // A whole negative second has no fraction.
  t = TimeMicrosToProto(-3'000'000);
  EXPECT_EQ(t.seconds(), -3);
  EXPECT_EQ(t.nanos(), 0);
  ASSERT_OK_AND_ASSIGN(store::TimeMicros back, TimeMicrosFromProto(Ts(-2, 750'000'000)));
  EXPECT_EQ(back, -1'250'000);
}

TEST(TimeConvertTest, SubMicrosecondNanosFloorTowardThePast) {
  ASSERT_OK_AND_ASSIGN(store::TimeMicros a, TimeMicrosFromProto(Ts(10, 1'999)));
  EXPECT_EQ(a, 10'000'001);
  ASSERT_OK_AND_ASSIGN(store::TimeMicros b, TimeMicrosFromProto(Ts(10, 999'999'999)));
  EXPECT_EQ(b, 10'999'999);
  // Before the epoch the floor is still toward the past: -0.0000005 s → -1 µs.
  ASSERT_OK_AND_ASSIGN(store::TimeMicros c, TimeMicrosFromProto(Ts(-1, 999'999'500)));
  EXPECT_EQ(c, -1);
  // Order is kept: a later Timestamp never maps to an earlier TimeMicros.
  ASSERT_OK_AND_ASSIGN(store::TimeMicros d, TimeMicrosFromProto(Ts(-1, 999'999'999)));
  EXPECT_LE(c, d);
}

TEST(TimeConvertTest, AgreesWithProtobufTimeUtilAndRoundTrips) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> any(
      MicrosOf(absl::CivilSecond(1, 1, 1)),
      MicrosOf(absl::CivilSecond(9999, 12, 31, 23, 59, 59), 999'999));
  for (int i = 0; i < 10'000; ++i) {
    const int64_t us = i < 3 ? -i : any(rng);
    const Timestamp ours = TimeMicrosToProto(us);
    const Timestamp oracle = TimeUtil::MicrosecondsToTimestamp(us);
    ASSERT_EQ(ours.seconds(), oracle.seconds()) << us;
    ASSERT_EQ(ours.nanos(), oracle.nanos()) << us;
    ASSERT_OK_AND_ASSIGN(store::TimeMicros back, TimeMicrosFromProto(ours));
    ASSERT_EQ(back, us);
  }
}

TEST(TimeConvertTest, RangeEndsAndFarFuture) {
  const int64_t first = MicrosOf(absl::CivilSecond(1, 1, 1));
  const int64_t last = MicrosOf(absl::CivilSecond(9999, 12, 31, 23, 59, 59), 999'999);
  EXPECT_EQ(TimeMicrosToProto(first).seconds(), kMinTimestampSeconds);
  EXPECT_EQ(TimeMicrosToProto(last).seconds(), kMaxTimestampSeconds);
  EXPECT_EQ(TimeMicrosToProto(last).nanos(), 999'999'000);
  ASSERT_OK_AND_ASSIGN(store::TimeMicros back, TimeMicrosFromProto(TimeMicrosToProto(last)));
  EXPECT_EQ(back, last);
  // Beyond the range a core time saturates and stays a valid Timestamp.
  const Timestamp far = TimeMicrosToProto(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(far.seconds(), kMaxTimestampSeconds);
  EXPECT_EQ(far.nanos(), 999'999'000);
  EXPECT_EQ(far.seconds(), TimeUtil::kTimestampMaxSeconds);
  const Timestamp past = TimeMicrosToProto(std::numeric_limits<int64_t>::min());
  EXPECT_EQ(past.seconds(), kMinTimestampSeconds);
  EXPECT_EQ(past.nanos(), 0);
  EXPECT_EQ(past.seconds(), TimeUtil::kTimestampMinSeconds);
}

TEST(TimeConvertTest, MalformedTimestampsAreInvalidArgument) {
  EXPECT_THAT(TimeMicrosFromProto(Ts(5, -1), "begin"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("begin: nanos -1")));
  EXPECT_THAT(TimeMicrosFromProto(Ts(5, 1'000'000'000)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(TimeMicrosFromProto(Ts(kMaxTimestampSeconds + 1, 0), "end"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("end: seconds")));
  EXPECT_THAT(TimeMicrosFromProto(Ts(kMinTimestampSeconds - 1, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Seconds that would overflow int64 microseconds are refused, not wrapped.
  EXPECT_THAT(TimeMicrosFromProto(Ts(std::numeric_limits<int64_t>::max(), 0)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DetectorSpecConvertTest, NoiseFieldsRoundTrip) {
  store::DetectorSpec spec;
  spec.name = "roman/excam";
  spec.width = 64;
  spec.height = 32;
  spec.keys.em_gain = "CMDGAIN";
  spec.dark_temperature_coefficient = 0.07;
  spec.dark_policy = store::DarkPolicy::kMeasuredElseSynthesized;
  v1::DetectorSpec p = DetectorSpecToProto(spec);
  EXPECT_EQ(p.keys().em_gain(), "CMDGAIN");
  EXPECT_TRUE(p.has_dark_temperature_coefficient());
  EXPECT_EQ(p.dark_temperature_coefficient(), 0.07);
  EXPECT_EQ(p.dark_policy(), v1::DARK_POLICY_MEASURED_ELSE_SYNTHESIZED);
  EXPECT_EQ(DetectorSpecFromProto(p), spec);
  // Unset on the wire = the defaults: keyword EMGAIN, no coefficient, MEASURED.
  v1::DetectorSpec empty;
  empty.set_name("a/b");
  store::DetectorSpec d = DetectorSpecFromProto(empty);
  EXPECT_EQ(d.keys.em_gain, "EMGAIN");
  EXPECT_FALSE(d.dark_temperature_coefficient.has_value());
  EXPECT_EQ(d.dark_policy, store::DarkPolicy::kMeasured);
}

TEST(DetectorSpecConvertTest, DarkPolicyBothWays) {
  for (store::DarkPolicy policy :
       {store::DarkPolicy::kMeasured, store::DarkPolicy::kSynthesized,
        store::DarkPolicy::kMeasuredElseSynthesized}) {
    ASSERT_OK_AND_ASSIGN(std::optional<store::DarkPolicy> back,
                         DarkPolicyFromProto(DarkPolicyToProto(policy)));
    EXPECT_EQ(back, policy);
  }
  ASSERT_OK_AND_ASSIGN(std::optional<store::DarkPolicy> unset,
                       DarkPolicyFromProto(v1::DARK_POLICY_UNSPECIFIED));
  EXPECT_FALSE(unset.has_value());
  EXPECT_THAT(DarkPolicyFromProto(17),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dark_policy")));
}

}  // namespace
}  // namespace calibd::api
