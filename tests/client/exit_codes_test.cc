// Unit test of calibctl's exit-code classes: every absl code maps to its documented class and
// the classes are distinct sysexits values.
#include "client/exit_codes.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::client {
namespace {

TEST(ExitCodesTest, EveryCodeHasItsClass) {
  using C = absl::StatusCode;
  EXPECT_EQ(ExitCodeFor(C::kOk), 0);
  for (C c : {C::kInvalidArgument, C::kOutOfRange, C::kFailedPrecondition, C::kAlreadyExists}) {
    EXPECT_EQ(ExitCodeFor(c), 65) << absl::StatusCodeToString(c);
  }
  EXPECT_EQ(ExitCodeFor(C::kNotFound), 66);
  EXPECT_EQ(ExitCodeFor(C::kUnavailable), 69);
  for (C c : {C::kInternal, C::kUnknown, C::kUnimplemented, C::kCancelled}) {
    EXPECT_EQ(ExitCodeFor(c), 70) << absl::StatusCodeToString(c);
  }
  EXPECT_EQ(ExitCodeFor(C::kDataLoss), 74);
  for (C c : {C::kDeadlineExceeded, C::kResourceExhausted, C::kAborted}) {
    EXPECT_EQ(ExitCodeFor(c), 75) << absl::StatusCodeToString(c);
  }
  EXPECT_EQ(ExitCodeFor(C::kPermissionDenied), 77);
  EXPECT_EQ(ExitCodeFor(C::kUnauthenticated), 77);
  EXPECT_EQ(ExitCodeFor(static_cast<C>(99)), 70);  // a code from the future is internal
}

TEST(ExitCodesTest, HelpListsEveryClass) {
  const std::string help = ExitCodesHelp();
  for (int code : {kExitNotServing, kExitUsage, kExitData, kExitNotFound, kExitUnavailable,
                   kExitInternal, kExitIo, kExitTryAgain, kExitPermission}) {
    EXPECT_THAT(help, ::testing::HasSubstr("  " + std::to_string(code) + " ")) << code;
  }
  const std::set<int> distinct = {kExitOk,       kExitNotServing,  kExitUsage,    kExitData,
                                  kExitNotFound, kExitUnavailable, kExitInternal, kExitIo,
                                  kExitTryAgain, kExitPermission};
  EXPECT_EQ(distinct.size(), 10u);
}

}  // namespace
}  // namespace calibd::client
