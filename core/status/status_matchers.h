// GoogleTest matchers for absl::Status and absl::StatusOr (test-only; link calibd::status_matchers).
//
//   EXPECT_THAT(store.Get(key), StatusIs(absl::StatusCode::kNotFound));
//   EXPECT_THAT(ParseFitsSection("[1:10,1:5]", 20, 20), IsOk());
//   ASSERT_OK_AND_ASSIGN(Section s, ParseFitsSection("[1:10,1:5]", 20, 20));
//
// Thread safety: stateless matchers.
#ifndef CALIBD_CORE_STATUS_STATUS_MATCHERS_H_
#define CALIBD_CORE_STATUS_STATUS_MATCHERS_H_

#include <ostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

}  // namespace calibd::testing

#define CALIBD_MATCHERS_CONCAT_INNER_(a, b) a##b
#define CALIBD_MATCHERS_CONCAT_(a, b) CALIBD_MATCHERS_CONCAT_INNER_(a, b)
#define ASSERT_OK(expr) ASSERT_THAT((expr), ::calibd::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::calibd::testing::IsOk())
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                              \
  auto CALIBD_MATCHERS_CONCAT_(statusor_, __LINE__) = (rexpr);                        \
  ASSERT_THAT(CALIBD_MATCHERS_CONCAT_(statusor_, __LINE__), ::calibd::testing::IsOk()); \
  lhs = std::move(CALIBD_MATCHERS_CONCAT_(statusor_, __LINE__)).value()

#endif  // CALIBD_CORE_STATUS_STATUS_MATCHERS_H_
