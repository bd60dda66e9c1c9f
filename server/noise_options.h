// The noise kinds' build options from the wire (calibd.v1.NoiseBuildOptions) as the
// `BuildRequest::options_text` entries server/noise_build.cc reads ("noise.hot_sigma" = "5",
// "noise.sections" = "[1:512,1:1024];[513:1024,1:1024]", "noise.level_sizes" = "2,2,4", …):
// only the fields that are set, numbers in their shortest exact text.
//
//   BuildRequest r = ...;
//   for (auto& [key, text] : NoiseOptionsText(options.noise())) r.options_text[key] = text;
//
// Thread safety: pure.
#ifndef CALIBD_SERVER_NOISE_OPTIONS_H_
#define CALIBD_SERVER_NOISE_OPTIONS_H_

#include <map>
#include <string>

#include "calibd/v1/noise.pb.h"

namespace calibd::server {

std::map<std::string, std::string> NoiseOptionsText(const v1::NoiseBuildOptions& options);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_NOISE_OPTIONS_H_
