#include "core/store/detector.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/image/dq.h"
#include "core/image/section.h"
#include "core/status/macros.h"

namespace calibd::store {
namespace {

using nlohmann::json;

bool ValidNamePart(absl::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

absl::Status CheckSection(const std::string& field, const std::string& text, int w, int h) {
  if (text.empty()) return absl::OkStatus();
  absl::StatusOr<Section> s = ParseFitsSection(text, w, h);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("detector spec: ", field, " '", text,
                                                   "' does not fit the ", w, "x", h,
                                                   " frame: ", s.status().message()));
  }
  return absl::OkStatus();
}

// A header value as configuration text: numbers in a canonical short form ("30", "30.9",
// "-10.5"), so 30, 30.0 and 3.0E1 give one series; strings trimmed.
absl::StatusOr<std::string> ConfigText(const Header& header, const std::string& keyword) {
  const HeaderCard* card = header.Find(keyword);
  if (card == nullptr) return absl::NotFoundError(keyword);
  if (const double* d = std::get_if<double>(&card->value)) {
    return absl::StrFormat("%.10g", *d);
  }
  if (const int64_t* i = std::get_if<int64_t>(&card->value)) return absl::StrCat(*i);
  absl::StatusOr<std::string> text = header.GetText(keyword);
  if (!text.ok()) return text.status();
  return std::string(absl::StripAsciiWhitespace(*text));
}

}  // namespace

absl::string_view DarkPolicyName(DarkPolicy policy) {
  switch (policy) {
    case DarkPolicy::kMeasured: return "measured";
    case DarkPolicy::kSynthesized: return "synthesized";
    case DarkPolicy::kMeasuredElseSynthesized: return "measured_else_synthesized";
  }
  return "measured";
}

absl::StatusOr<DarkPolicy> ParseDarkPolicy(absl::string_view name) {
  for (DarkPolicy p : {DarkPolicy::kMeasured, DarkPolicy::kSynthesized,
                       DarkPolicy::kMeasuredElseSynthesized}) {
    if (name == DarkPolicyName(p)) return p;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "dark policy '", name, "' is not measured|synthesized|measured_else_synthesized"));
}

std::string HeaderKeyMap::KeywordFor(absl::string_view logical) const {
  if (logical == kKeyExposure) return exposure;
  if (logical == kKeyTime) return time;
  if (logical == kKeyFilter) return filter;
  if (logical == kKeyReadoutMode) return readout_mode;
  if (logical == kKeyBinning) return binning;
  if (logical == kKeyGainSetting) return gain_setting;
  if (logical == kKeyTemperature) return temperature;
  if (logical == kKeyEmGain) return em_gain;
  return std::string(logical);
}

std::map<std::string, std::vector<std::string>> DefaultConfigurationKeys() {
  const std::vector<std::string> base = {std::string(kKeyReadoutMode), std::string(kKeyBinning),
                                         std::string(kKeyGainSetting)};
  std::vector<std::string> flat = base;
  flat.push_back(std::string(kKeyFilter));
  std::vector<std::string> dark = base;
  dark.push_back(std::string(kKeyExposure));
  dark.push_back(std::string(kKeyTemperature));
  // A gain_normalisation table spans the gain settings: the setting cannot be its configuration.
  const std::vector<std::string> across_gains = {std::string(kKeyReadoutMode),
                                                 std::string(kKeyBinning)};
  return {{"default", base},
          {"flat", flat},
          {"dark", dark},
          {"gain_normalisation", across_gains}};
}

std::map<std::string, double> DefaultTolerances() {
  return {{std::string(kKeyExposure), 1.0}, {std::string(kKeyTemperature), 0.5}};
}

std::map<std::string, double> TolerancesOf(const DetectorSpec& spec) {
  return spec.tolerances.empty() ? DefaultTolerances() : spec.tolerances;
}

absl::Status ValidateDetectorSpec(const DetectorSpec& spec) {
  const size_t slash = spec.name.find('/');
  if (slash == std::string::npos || spec.name.find('/', slash + 1) != std::string::npos ||
      !ValidNamePart(absl::string_view(spec.name).substr(0, slash)) ||
      !ValidNamePart(absl::string_view(spec.name).substr(slash + 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("detector spec: name '", spec.name,
                     "' must be 'instrument/detector' using letters, digits, '_', '-', '.'"));
  }
  if (spec.width <= 0 || spec.height <= 0 || spec.width > 1 << 20 || spec.height > 1 << 20) {
    return absl::InvalidArgumentError(absl::StrCat("detector spec ", spec.name, ": shape ",
                                                   spec.width, "x", spec.height,
                                                   " must be positive (width, height)"));
  }
  CALIBD_RETURN_IF_ERROR(
      CheckSection("overscan_section", spec.overscan_section, spec.width, spec.height));
  CALIBD_RETURN_IF_ERROR(CheckSection("trim_section", spec.trim_section, spec.width, spec.height));
  CALIBD_RETURN_IF_ERROR(CheckSection("data_section", spec.data_section, spec.width, spec.height));
  if (!spec.statistics_section.empty()) {
    int tw = spec.width, th = spec.height;
    if (!spec.trim_section.empty()) {
      Section t = *ParseFitsSection(spec.trim_section, spec.width, spec.height);
      tw = t.width();
      th = t.height();
    }
    CALIBD_RETURN_IF_ERROR(CheckSection("statistics_section", spec.statistics_section, tw, th));
  }
  if (!(spec.gain > 0) || !std::isfinite(spec.gain)) {
    return absl::InvalidArgumentError(
        absl::StrCat("detector spec ", spec.name, ": gain ", spec.gain, " must be > 0 e-/ADU"));
  }
  if (!(spec.read_noise >= 0) || !std::isfinite(spec.read_noise)) {
    return absl::InvalidArgumentError(absl::StrCat("detector spec ", spec.name, ": read_noise ",
                                                   spec.read_noise, " must be >= 0 e-"));
  }
  if (!(spec.saturation >= 0) || !std::isfinite(spec.saturation)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "detector spec ", spec.name, ": saturation ", spec.saturation, " must be >= 0 (0 = none)"));
  }
  if (spec.dark_temperature_coefficient && !std::isfinite(*spec.dark_temperature_coefficient)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "detector spec ", spec.name, ": dark_temperature_coefficient must be a finite number (1/K)"));
  }
  const HeaderKeyMap& k = spec.keys;
  for (const std::string* key : {&k.exposure, &k.time, &k.filter, &k.readout_mode, &k.binning,
                                  &k.gain_setting, &k.temperature, &k.em_gain}) {
    if (key->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("detector spec ", spec.name, ": a header key mapping is empty"));
    }
  }
  for (const auto& [kind, keys] : spec.configuration_keys) {
    if (kind.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("detector spec ", spec.name, ": configuration_keys has an empty kind"));
    }
    std::set<std::string> seen;
    for (const std::string& key : keys) {
      if (key.empty() || !seen.insert(key).second) {
        return absl::InvalidArgumentError(absl::StrCat("detector spec ", spec.name,
                                                       ": configuration_keys[", kind,
                                                       "] has an empty or repeated key"));
      }
    }
  }
  for (const auto& [key, tol] : spec.tolerances) {
    if (!(tol >= 0) || !std::isfinite(tol)) {
      return absl::InvalidArgumentError(absl::StrCat("detector spec ", spec.name, ": tolerance ",
                                                     key, " = ", tol, " must be >= 0"));
    }
  }
  std::set<uint16_t> bits;
  for (const DetectorDqBit& b : spec.dq_bits) {
    if (b.bit <= kDqLastCoreBit || (b.bit & (b.bit - 1)) != 0 || !bits.insert(b.bit).second ||
        b.name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "detector spec ", spec.name, ": dq bit ", b.bit, " ('", b.name,
          "') must be a single named bit above ", static_cast<int>(kDqLastCoreBit),
          ", not repeated"));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> ConfigurationKeysFor(const DetectorSpec& spec, absl::string_view kind) {
  const std::map<std::string, std::vector<std::string>> defaults = DefaultConfigurationKeys();
  const auto& table = spec.configuration_keys.empty() ? defaults : spec.configuration_keys;
  auto it = table.find(std::string(kind));
  if (it != table.end()) return it->second;
  it = table.find("default");
  if (it != table.end()) return it->second;
  return {};
}

absl::StatusOr<Configuration> ExtractConfiguration(const DetectorSpec& spec, absl::string_view kind,
                                                   const Header& header) {
  Configuration out;
  for (const std::string& key : ConfigurationKeysFor(spec, kind)) {
    const std::string keyword = spec.keys.KeywordFor(key);
    absl::StatusOr<std::string> v = ConfigText(header, keyword);
    if (!v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header has no ", keyword, " (the ", key, " of a ", kind, " for detector ", spec.name,
          "); add the card or give the configuration explicitly"));
    }
    out[key] = *v;
  }
  return out;
}

Configuration ExtractAllConfiguration(const DetectorSpec& spec, const Header& header) {
  std::set<std::string> keys;
  const std::map<std::string, std::vector<std::string>> defaults = DefaultConfigurationKeys();
  const auto& table = spec.configuration_keys.empty() ? defaults : spec.configuration_keys;
  for (const auto& [kind, ks] : table) keys.insert(ks.begin(), ks.end());
  Configuration out;
  for (const std::string& key : keys) {
    absl::StatusOr<std::string> v = ConfigText(header, spec.keys.KeywordFor(key));
    if (v.ok()) out[key] = *v;
  }
  return out;
}

absl::StatusOr<TimeMicros> ExtractTime(const DetectorSpec& spec, const Header& header) {
  if (header.Has(spec.keys.time)) {
    absl::StatusOr<std::string> text = header.GetText(spec.keys.time);
    if (!text.ok()) return text.status();
    absl::StatusOr<TimeMicros> t = ParseTime(absl::StripAsciiWhitespace(*text));
    if (!t.ok()) return Annotate(t.status(), absl::StrCat("header ", spec.keys.time));
    return *t;
  }
  if (header.Has("MJD-OBS")) {
    absl::StatusOr<double> mjd = header.GetDouble("MJD-OBS");
    if (!mjd.ok()) return Annotate(mjd.status(), "header MJD-OBS");
    // MJD 40587 = 1970-01-01.
    return static_cast<TimeMicros>(std::llround((*mjd - 40587.0) * 86400.0 * 1e6));
  }
  return absl::NotFoundError(absl::StrCat("header has neither ", spec.keys.time,
                                          " nor MJD-OBS: the frame's time is unknown; add one or "
                                          "give the time explicitly"));
}

std::string DetectorSpecToJson(const DetectorSpec& spec) {
  json j;
  j["name"] = spec.name;
  j["width"] = spec.width;
  j["height"] = spec.height;
  j["overscan_section"] = spec.overscan_section;
  j["trim_section"] = spec.trim_section;
  j["data_section"] = spec.data_section;
  j["statistics_section"] = spec.statistics_section;
  j["gain"] = spec.gain;
  j["read_noise"] = spec.read_noise;
  j["saturation"] = spec.saturation;
  j["keys"] = {{"exposure", spec.keys.exposure},         {"time", spec.keys.time},
               {"filter", spec.keys.filter},             {"readout_mode", spec.keys.readout_mode},
               {"binning", spec.keys.binning},           {"gain_setting", spec.keys.gain_setting},
               {"temperature", spec.keys.temperature},   {"em_gain", spec.keys.em_gain}};
  j["configuration_keys"] = spec.configuration_keys;
  j["tolerances"] = spec.tolerances;
  json bits = json::array();
  for (const DetectorDqBit& b : spec.dq_bits) {
    bits.push_back({{"bit", b.bit}, {"name", b.name}, {"description", b.description}});
  }
  j["dq_bits"] = bits;
  j["description"] = spec.description;
  if (spec.dark_temperature_coefficient) {
    j["dark_temperature_coefficient"] = *spec.dark_temperature_coefficient;
  }
  if (spec.dark_policy != DarkPolicy::kMeasured) {
    j["dark_policy"] = std::string(DarkPolicyName(spec.dark_policy));
  }
  return j.dump(2);
}

absl::StatusOr<DetectorSpec> DetectorSpecFromJson(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("detector spec: not a JSON object");
  }
  DetectorSpec spec;
  std::string field;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      field = it.key();
      const json& v = it.value();
      if (field == "name") {
        spec.name = v.get<std::string>();
      } else if (field == "width") {
        spec.width = v.get<int>();
      } else if (field == "height") {
        spec.height = v.get<int>();
      } else if (field == "overscan_section") {
        spec.overscan_section = v.get<std::string>();
      } else if (field == "trim_section") {
        spec.trim_section = v.get<std::string>();
      } else if (field == "data_section") {
        spec.data_section = v.get<std::string>();
      } else if (field == "statistics_section") {
        spec.statistics_section = v.get<std::string>();
      } else if (field == "gain") {
        spec.gain = v.get<double>();
      } else if (field == "read_noise") {
        spec.read_noise = v.get<double>();
      } else if (field == "saturation") {
        spec.saturation = v.get<double>();
      } else if (field == "description") {
        spec.description = v.get<std::string>();
      } else if (field == "dark_temperature_coefficient") {
        if (!v.is_null()) spec.dark_temperature_coefficient = v.get<double>();
      } else if (field == "dark_policy") {
        CALIBD_ASSIGN_OR_RETURN(spec.dark_policy, ParseDarkPolicy(v.get<std::string>()));
      } else if (field == "keys") {
        if (!v.is_object()) throw json::other_error::create(501, "keys must be an object", &v);
        for (auto k = v.begin(); k != v.end(); ++k) {
          const std::string& name = k.key();
          std::string value = k.value().get<std::string>();
          HeaderKeyMap& m = spec.keys;
          if (name == "exposure") m.exposure = value;
          else if (name == "time") m.time = value;
          else if (name == "filter") m.filter = value;
          else if (name == "readout_mode") m.readout_mode = value;
          else if (name == "binning") m.binning = value;
          else if (name == "gain_setting") m.gain_setting = value;
          else if (name == "temperature") m.temperature = value;
          else if (name == "em_gain") m.em_gain = value;
          else {
            return absl::InvalidArgumentError(absl::StrCat(
                "detector spec: unknown key mapping '", name,
                "' (known: exposure, time, filter, readout_mode, binning, gain_setting, "
                "temperature, em_gain)"));
          }
        }
      } else if (field == "configuration_keys") {
        spec.configuration_keys = v.get<std::map<std::string, std::vector<std::string>>>();
      } else if (field == "tolerances") {
        spec.tolerances = v.get<std::map<std::string, double>>();
      } else if (field == "dq_bits") {
        if (!v.is_array()) throw json::other_error::create(501, "dq_bits must be an array", &v);
        for (const json& b : v) {
          DetectorDqBit bit;
          for (auto k = b.begin(); k != b.end(); ++k) {
            if (k.key() == "bit") bit.bit = k.value().get<uint16_t>();
            else if (k.key() == "name") bit.name = k.value().get<std::string>();
            else if (k.key() == "description") bit.description = k.value().get<std::string>();
            else {
              return absl::InvalidArgumentError(
                  absl::StrCat("detector spec: unknown dq_bits field '", k.key(), "'"));
            }
          }
          spec.dq_bits.push_back(std::move(bit));
        }
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("detector spec: unknown field '", field,
                         "' (check its spelling; see core/store/detector.h)"));
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("detector spec: field '", field, "' has the wrong type: ", e.what()));
  }
  CALIBD_RETURN_IF_ERROR(ValidateDetectorSpec(spec));
  return spec;
}

}  // namespace calibd::store
