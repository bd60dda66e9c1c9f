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

namespace calibd::server {
namespace {

TEST(AuthScopeTest, WriteSitsBetweenReadAndAdmin) {
  ASSERT_OK_AND_ASSIGN(TokenAuth auth, TokenAuth::Parse("r read\nw write\na admin"));
  EXPECT_OK(auth.Authorize("Bearer w", Scope::kRead));
  EXPECT_OK(auth.Authorize("Bearer w", Scope::kWrite));
  EXPECT_THAT(auth.Authorize("Bearer w", Scope::kAdmin),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("write scope")));
  EXPECT_THAT(auth.Authorize("Bearer r", Scope::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_OK(auth.Authorize("Bearer a", Scope::kWrite));
}

TEST(AuthScopeTest, DetectorPatterns) {
  ASSERT_OK_AND_ASSIGN(TokenAuth auth, TokenAuth::Parse("t1 read lfc-team lfc/* hsc/ccd1?\n"
                                                        "t2 write lfc/chip0\n"
                                                        "t3 admin ops\n"
                                                        "t4 read pipe sub\n"));
  ASSERT_OK_AND_ASSIGN(Principal a, auth.Authorize("Bearer t1", Scope::kRead));
  EXPECT_EQ(a.name, "lfc-team");
  EXPECT_TRUE(a.MayUse("lfc/chip0"));
  EXPECT_TRUE(a.MayUse("lfc/blue/chip3"));  // '*' crosses '/'
  EXPECT_TRUE(a.MayUse("hsc/ccd12"));
  EXPECT_FALSE(a.MayUse("hsc/ccd1"));
  EXPECT_FALSE(a.MayUse("lfcx/chip0"));
  EXPECT_THAT(CheckDetector(a, "hsc/ccd3"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("hsc/ccd3")));
  // A pattern in the third field: the name defaults to the line.
  ASSERT_OK_AND_ASSIGN(Principal b, auth.Authorize("Bearer t2", Scope::kWrite));
  EXPECT_EQ(b.name, "token#2");
  EXPECT_TRUE(b.MayUse("lfc/chip0"));
  EXPECT_FALSE(b.MayUse("lfc/chip1"));
  ASSERT_OK_AND_ASSIGN(Principal c, auth.Authorize("Bearer t3", Scope::kAdmin));
  EXPECT_TRUE(c.MayUse("anything/at-all"));
  // A bare instrument name allows its detectors.
  ASSERT_OK_AND_ASSIGN(Principal d, auth.Authorize("Bearer t4", Scope::kRead));
  EXPECT_TRUE(d.MayUse("sub"));
  EXPECT_TRUE(d.MayUse("sub/ccd0"));
  EXPECT_FALSE(d.MayUse("subaru/ccd0"));
}

}  // namespace
}  // namespace calibd::server
