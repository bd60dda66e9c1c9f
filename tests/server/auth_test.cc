// TokenAuth: the token-file format and the read/admin decisions, with exact codes.
#include "server/auth.h"

#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;

TEST(AuthTest, ParsesTokensScopesAndNames) {
  ASSERT_OK_AND_ASSIGN(TokenAuth auth, TokenAuth::Parse("# comment\n\n"
                                                        "  r3ad read alice \n"
                                                        "adm1n\tadmin\n"));
  EXPECT_TRUE(auth.enabled());
  ASSERT_OK_AND_ASSIGN(Principal a, auth.Authorize("Bearer r3ad", Scope::kRead));
  EXPECT_EQ(a.name, "alice");
  EXPECT_EQ(a.scope, Scope::kRead);
  ASSERT_OK_AND_ASSIGN(Principal b, auth.Authorize("bearer  adm1n ", Scope::kAdmin));
  EXPECT_EQ(b.name, "token#4");  // unnamed: its line number
  EXPECT_EQ(b.scope, Scope::kAdmin);
}

TEST(AuthTest, BadLinesNameTheirNumber) {
  EXPECT_THAT(TokenAuth::Parse("ok read\nbad\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  EXPECT_THAT(TokenAuth::Parse("t superuser"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(TokenAuth::Parse("t read a\nt admin b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

TEST(AuthTest, DecisionsHaveExactCodes) {
  ASSERT_OK_AND_ASSIGN(TokenAuth auth, TokenAuth::Parse("r read\na admin"));
  EXPECT_THAT(auth.Authorize("", Scope::kRead), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth.Authorize("Basic r", Scope::kRead),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth.Authorize("Bearer nope", Scope::kRead),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth.Authorize("Bearer r", Scope::kAdmin),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_OK(auth.Authorize("Bearer a", Scope::kRead));
  EXPECT_OK(auth.Authorize("Bearer a", Scope::kAdmin));
}

TEST(AuthTest, OpenAllowsEverythingAsAnonymousAdmin) {
  const TokenAuth open = TokenAuth::Open();
  EXPECT_FALSE(open.enabled());
  ASSERT_OK_AND_ASSIGN(Principal p, open.Authorize("", Scope::kAdmin));
  EXPECT_EQ(p.name, "anonymous");
}

TEST(AuthTest, LoadFile) {
  calibd::testing::TempDir dir;
  EXPECT_THAT(TokenAuth::LoadFile(dir.File("missing")), StatusIs(absl::StatusCode::kNotFound));
  const std::string path = dir.File("tokens");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("t1 admin ops\n", f);
    std::fclose(f);
  }
  ASSERT_OK_AND_ASSIGN(TokenAuth auth, TokenAuth::LoadFile(path));
  EXPECT_OK(auth.Authorize("Bearer t1", Scope::kAdmin));
}

}  // namespace
}  // namespace calibd::server
