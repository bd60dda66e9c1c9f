// server/spool: spool files are hashed while written, removed when destroyed, and their errors
// never name the server's paths.
#include "server/spool.h"

#include <sys/stat.h>

#include "core/hash/sha256.h"
#include "core/status/status_matchers.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

TEST(SpoolTest, AppendHashesAndDestructionRemoves) {
  calibd::testing::TempDir dir;
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SpoolFile> f,
                         SpoolFile::Create(dir.path(), "calibd-put-", ".fits"));
    path = f->path();
    EXPECT_THAT(path, StartsWith(dir.path() + "/calibd-put-"));
    EXPECT_TRUE(absl::EndsWith(path, ".fits"));
    ASSERT_OK(f->Append("hello "));
    ASSERT_OK(f->Append(std::string(3 << 20, 'x')));
    ASSERT_OK(f->Close());
    EXPECT_EQ(f->bytes(), 6 + (3 << 20));
    EXPECT_EQ(f->Sha256Hex(), hash::Sha256Hex("hello " + std::string(3 << 20, 'x')));
    ASSERT_OK_AND_ASSIGN(std::string on_disk, hash::Sha256File(path));
    EXPECT_EQ(on_disk, hash::Sha256Hex("hello " + std::string(3 << 20, 'x')));
    EXPECT_THAT(f->Append("late"), StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  EXPECT_FALSE(Exists(path));
}

TEST(SpoolTest, ErrorsDoNotNameThePath) {
  const std::string missing = "/nonexistent-calibd-spool/sub";
  absl::StatusOr<std::unique_ptr<SpoolFile>> f = SpoolFile::Create(missing, "p-", ".fits");
  EXPECT_THAT(f, StatusIs(absl::StatusCode::kInternal, Not(HasSubstr("nonexistent"))));
  EXPECT_THAT(MakeSpoolDirectory(missing, "calibd-build-"),
              StatusIs(absl::StatusCode::kInternal, Not(HasSubstr("nonexistent"))));
}

TEST(SpoolTest, DirectoriesAndTheDefaultBase) {
  calibd::testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::string d, MakeSpoolDirectory(dir.path(), "calibd-build-"));
  EXPECT_THAT(d, StartsWith(dir.path() + "/calibd-build-"));
  EXPECT_TRUE(Exists(d));
  EXPECT_EQ(SpoolBase("/x/y"), "/x/y");
  EXPECT_FALSE(SpoolBase("").empty());
}

}  // namespace
}  // namespace calibd::server
