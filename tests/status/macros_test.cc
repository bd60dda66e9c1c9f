#include "core/status/macros.h"

#include "core/status/status_matchers.h"
#include "gtest/gtest.h"

namespace calibd {
namespace {

using ::calibd::testing::IsOk;
using ::calibd::testing::StatusIs;

int calls = 0;
absl::StatusOr<int> Half(int x) {
  ++calls;
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  CALIBD_ASSIGN_OR_RETURN(int half, Half(x));
  CALIBD_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  CALIBD_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(MacrosTest, AssignOrReturnPassesValuesAndErrors) {
  calls = 0;
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(calls, 2);  // each expression evaluated once
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Quarter(3), StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
}

TEST(MacrosTest, ReturnIfError) {
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(5), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MacrosTest, AnnotateKeepsCodeAndPrefixesMessage) {
  absl::Status s = Annotate(absl::NotFoundError("no such HDU"), "bias.fits");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, "bias.fits: no such HDU"));
  EXPECT_THAT(Annotate(absl::OkStatus(), "x"), IsOk());
}

}  // namespace
}  // namespace calibd
