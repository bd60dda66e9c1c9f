#include "client/sample_files.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/fits/fits.h"

namespace calibd::client {

namespace fs = std::filesystem;

absl::StatusOr<absl::Time> ParseSampleNight(absl::string_view night) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%d", night, absl::UTCTimeZone(), &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("night '", night, "' is not a date like 2026-03-01: ", err));
  }
  return t;
}

absl::Status StartSampleDir(const std::string& dir, const std::string& spec_path,
                            const std::string& spec_json,
                            const std::vector<std::string>& also_ours, bool overwrite) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  if (!overwrite) {
    bool taken = fs::exists(spec_path);
    for (const std::string& p : also_ours) taken = taken || fs::exists(p);
    if (taken) {
      return absl::AlreadyExistsError(
          absl::StrCat(spec_path, " exists; choose an empty directory or pass --overwrite"));
    }
  }
  std::ofstream spec(spec_path, std::ios::trunc);
  spec << spec_json;
  if (!spec) return absl::InternalError(absl::StrCat("cannot write ", spec_path));
  return absl::OkStatus();
}

absl::Status WriteSampleFrame(const std::string& dir, absl::string_view kind,
                              absl::string_view name, const RawFrame& frame,
                              const std::string& compression, bool overwrite,
                              std::vector<std::string>* paths) {
  const std::string sub = absl::StrCat(dir, "/", kind);
  std::error_code ec;
  fs::create_directories(sub, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create ", sub, ": ", ec.message()));
  }
  const std::string path = absl::StrCat(sub, "/", name, ".fits");
  if (overwrite) fs::remove(path, ec);
  if (absl::Status s = fits::WriteRawFrame(path, frame, compression, overwrite); !s.ok()) return s;
  paths->push_back(path);
  return absl::OkStatus();
}

}  // namespace calibd::client
