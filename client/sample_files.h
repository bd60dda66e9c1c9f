// The file side that both sample generators (samples.h, noise_samples.h) share: the night's
// date, a sample directory started with its SPEC.json, and one raw frame written into a
// kind's folder. Internal to calibd::client_samples.
//
//   CALIBD_ASSIGN_OR_RETURN(absl::Time night, ParseSampleNight("2026-03-01"));
//   CALIBD_RETURN_IF_ERROR(StartSampleDir(dir, dir + "/SPEC.json", spec_json, {}, overwrite));
//   CALIBD_RETURN_IF_ERROR(WriteSampleFrame(dir, "bias", "bias_000", frame, "", overwrite, &paths));
//
// Thread safety: functions of the file system only; distinct directories may be written from
// several threads.
#ifndef CALIBD_CLIENT_SAMPLE_FILES_H_
#define CALIBD_CLIENT_SAMPLE_FILES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/image/frame.h"

namespace calibd::client {

// Midnight UTC of a "2026-03-01" date; INVALID_ARGUMENT for anything else.
absl::StatusOr<absl::Time> ParseSampleNight(absl::string_view night);

// Creates `dir` and writes `spec_json` to `spec_path`. Without `overwrite`, ALREADY_EXISTS when
// the spec or any of `also_ours` (other files the set writes at the top) exists.
absl::Status StartSampleDir(const std::string& dir, const std::string& spec_path,
                            const std::string& spec_json,
                            const std::vector<std::string>& also_ours, bool overwrite);

// Writes `frame` as <dir>/<kind>/<name>.fits (creating the folder; `compression` as
// fits::WriteRawFrame) and appends the path to `paths`.
absl::Status WriteSampleFrame(const std::string& dir, absl::string_view kind,
                              absl::string_view name, const RawFrame& frame,
                              const std::string& compression, bool overwrite,
                              std::vector<std::string>* paths);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_SAMPLE_FILES_H_
