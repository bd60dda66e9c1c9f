// Page tokens: round trip, and every foreign or damaged token refused with INVALID_ARGUMENT.
#include "core/store/page_token.h"

#include "core/status/status_matchers.h"
#include "core/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::store::internal {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::ElementsAre;

TEST(PageTokenTest, RoundTripsTheKey) {
  const std::string t = EncodePageToken("masters", {"12", "3"});
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> key, DecodePageToken("masters", t, 2));
  EXPECT_THAT(key, ElementsAre("12", "3"));
  EXPECT_EQ(t.find_first_of("+/="), std::string::npos);  // URL-safe
}

TEST(PageTokenTest, RefusesForeignAndDamagedTokens) {
  const std::string t = EncodePageToken("masters", {"12", "3"});
  EXPECT_THAT(DecodePageToken("history", t, 2), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodePageToken("masters", t, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodePageToken("masters", "!!not base64!!", 2),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(TokenInt("x1"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PageTokenTest, PageSizes) {
  EXPECT_EQ(*EffectivePageSize(0), kDefaultPageSize);
  EXPECT_EQ(*EffectivePageSize(5), 5);
  EXPECT_EQ(*EffectivePageSize(kMaxPageSize + 1), kMaxPageSize);
  EXPECT_THAT(EffectivePageSize(-1), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace calibd::store::internal
