// status_util: what a client sees of an error (sentences, scrubbing, the UTF-8 cap, request id).
#include "server/status_util.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace calibd::server {
namespace {

using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

// True when `s` is well-formed UTF-8 (no split or stray continuation bytes).
bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (int k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(StatusUtilTest, CodeIsCarriedOverAndRequestIdAppended) {
  const grpc::Status s = ToGrpcStatus(absl::NotFoundError("no bias series for lfc/chip0"), "ab12");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no bias series for lfc/chip0 [request id ab12]");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus(), "ab12").ok());
  EXPECT_EQ(ToGrpcStatus(absl::OkStatus(), "ab12").error_message(), "");
}

TEST(StatusUtilTest, InternalCodesGetASentenceNotTheDetail) {
  const std::string detail =
      "SELECT id FROM series WHERE detector = $1: connection to postgresql://calib:s3cret@db/x "
      "failed; spool /var/spool/calibd/x.fits";
  for (absl::StatusCode code : {absl::StatusCode::kUnavailable, absl::StatusCode::kInternal,
                                absl::StatusCode::kUnknown, absl::StatusCode::kDataLoss}) {
    const grpc::Status s = ToGrpcStatus(absl::Status(code, detail), "ff00");
    EXPECT_EQ(static_cast<int>(s.error_code()), static_cast<int>(code));
    EXPECT_THAT(s.error_message(), AllOf(Not(HasSubstr("SELECT")), Not(HasSubstr("s3cret")),
                                         Not(HasSubstr("/var")), Not(HasSubstr("postgresql")),
                                         EndsWith("[request id ff00]")));
  }
}

TEST(StatusUtilTest, OtherMessagesLoseAbsolutePathsAndUrls) {
  EXPECT_EQ(ScrubMessage("cannot read /var/lib/calibd/blobs/ab/cd.fits: no such file"),
            "cannot read <path>: no such file");
  EXPECT_EQ(ScrubMessage("open '/tmp/calibd-put-1.fits'."), "open '<path>'.");
  EXPECT_EQ(ScrubMessage("store postgresql://u:pw@host:5432/db is down"), "store <url> is down");
  EXPECT_EQ(ScrubMessage("dbname=calib password=hunter2 host=x"),
            "dbname=calib password=<hidden> host=x");
  // Names with slashes inside a word and plain fractions are not paths.
  EXPECT_EQ(ScrubMessage("detector lfc/chip0: 1/2 of the rows"),
            "detector lfc/chip0: 1/2 of the rows");
  const grpc::Status s =
      ToGrpcStatus(absl::InvalidArgumentError("bad FITS in /srv/spool/u.fits"), "01");
  EXPECT_EQ(s.error_message(), "bad FITS in <path> [request id 01]");
}

TEST(StatusUtilTest, CapCutsAtACharacterBoundary) {
  // 1020 ASCII bytes then two-byte characters: the cut falls inside one of them.
  std::string m(kMaxStatusMessageBytes - 4, 'x');
  for (int i = 0; i < 100; ++i) m += "\xC3\xA9";  // é
  const std::string capped = CapMessage(m);
  EXPECT_LE(capped.size(), kMaxStatusMessageBytes);
  EXPECT_TRUE(IsValidUtf8(capped));
  EXPECT_TRUE(absl::EndsWith(capped, "\xE2\x80\xA6"));
  for (int shift = 0; shift < 4; ++shift) {  // every alignment of 3- and 4-byte characters
    std::string w(kMaxStatusMessageBytes - 6 + shift, 'y');
    for (int i = 0; i < 50; ++i) w += "\xE2\x82\xAC\xF0\x9F\x94\xAD";  // € 🔭
    const std::string c = CapMessage(w);
    EXPECT_LE(c.size(), kMaxStatusMessageBytes) << shift;
    EXPECT_TRUE(IsValidUtf8(c)) << shift;
  }
  EXPECT_EQ(CapMessage("short"), "short");
  const std::string exact(kMaxStatusMessageBytes, 'z');
  EXPECT_EQ(CapMessage(exact), exact);
  // The wire message is capped before the request id is added.
  const grpc::Status s = ToGrpcStatus(absl::InvalidArgumentError(m), "77");
  EXPECT_LE(s.error_message().size(), kMaxStatusMessageBytes + 20);
  EXPECT_TRUE(IsValidUtf8(s.error_message()));
}

TEST(StatusUtilTest, LogDetailKeepsTheMessageAndTheInternalPayload) {
  absl::Status s = absl::UnavailableError("catalog database unavailable");
  s.SetPayload(kInternalDetailPayload, absl::Cord("SELECT 1: server closed the connection"));
  EXPECT_EQ(LogDetail(s),
            "catalog database unavailable (detail: SELECT 1: server closed the connection)");
  EXPECT_EQ(LogDetail(absl::NotFoundError("x")), "x");
  EXPECT_THAT(ToGrpcStatus(s, "1").error_message(), Not(HasSubstr("SELECT")));
}

TEST(StatusUtilTest, CodeNamesAreAbslsAndRequestIdsAreFresh) {
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::INVALID_ARGUMENT), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  const std::string a = NewRequestId(), b = NewRequestId();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace calibd::server
