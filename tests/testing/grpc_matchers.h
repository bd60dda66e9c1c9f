// GoogleTest matchers for grpc::Status that print the code's name and the message on failure
// (test-only, header-only; gRPC and gmock must be linked by the test).
//
//   grpc::Status s = stub->Certify(&ctx, request, &response);
//   ASSERT_GRPC_OK(s);
//   EXPECT_THAT(stub->Certify(&ctx2, bad, &response), GrpcIs(grpc::StatusCode::NOT_FOUND));
//   EXPECT_THAT(s, GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("total_bytes")));
//
// Thread safety: stateless matchers.
#ifndef CALIBD_TESTS_TESTING_GRPC_MATCHERS_H_
#define CALIBD_TESTS_TESTING_GRPC_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"

namespace calibd::testing {

// "INVALID_ARGUMENT" for grpc::StatusCode::INVALID_ARGUMENT.
inline std::string GrpcCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// "NOT_FOUND: no bias series ..." — what the matchers print.
inline std::string DescribeGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return "OK";
  return GrpcCodeName(status.error_code()) + ": " + status.error_message();
}

MATCHER(GrpcOk, "is an OK gRPC status") {
  if (!arg.ok()) *result_listener << "status is " << DescribeGrpcStatus(arg);
  return arg.ok();
}

MATCHER_P(GrpcIs, code, std::string("has gRPC code ") + GrpcCodeName(code)) {
  *result_listener << "status is " << DescribeGrpcStatus(arg);
  return arg.error_code() == code;
}

MATCHER_P2(GrpcIs, code, message_matcher,
           std::string("has gRPC code ") + GrpcCodeName(code)) {
  *result_listener << "status is " << DescribeGrpcStatus(arg);
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(), result_listener);
}

}  // namespace calibd::testing

#define ASSERT_GRPC_OK(expr) ASSERT_THAT((expr), ::calibd::testing::GrpcOk())
#define EXPECT_GRPC_OK(expr) EXPECT_THAT((expr), ::calibd::testing::GrpcOk())

#endif  // CALIBD_TESTS_TESTING_GRPC_MATCHERS_H_
