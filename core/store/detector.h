// DetectorSpec: everything calibd knows about one sensor ("instrument/detector"): geometry,
// defaults, which header keywords carry exposure/time/filter/…, which of them form the
// configuration of each kind of master, the matching tolerances and the instrument's DQ bits.
// Specs are stored in the catalog, versioned like masters (CalibrationStore::PutDetector).
//
//   DetectorSpec spec;
//   spec.name = "lfc/chip0";
//   spec.width = 2080; spec.height = 2048;
//   spec.overscan_section = "[2049:2080,*]"; spec.trim_section = "[1:2048,*]";
//   spec.gain = 1.5; spec.read_noise = 4.2; spec.saturation = 65000;
//   RETURN_IF_ERROR(ValidateDetectorSpec(spec));
//   std::string json = DetectorSpecToJson(spec);           // what calibctl reads as SPEC.json
//   ASSIGN_OR_RETURN(DetectorSpec back, DetectorSpecFromJson(json));
//   ASSIGN_OR_RETURN(Configuration c, ExtractConfiguration(spec, "dark", raw.header));
//   // c == {"binning": "1x1", "exposure": "30", "gain_setting": "high", ...}
//
// Configuration entries are named by *logical* key ("exposure", "temperature", "filter",
// "readout_mode", "binning", "gain_setting", "em_gain"), mapped to header keywords by `keys`; any other
// name in `configuration_keys` is taken as a header keyword itself (e.g. "AMPNAME").
//
// JSON form (every field optional except name/width/height; defaults as below):
//   {"name": "lfc/chip0", "width": 2080, "height": 2048,
//    "overscan_section": "[2049:2080,*]", "trim_section": "[1:2048,*]", "data_section": "",
//    "statistics_section": "", "gain": 1.5, "read_noise": 4.2, "saturation": 65000,
//    "keys": {"exposure": "EXPTIME", "time": "DATE-OBS", "filter": "FILTER", ...},
//    "configuration_keys": {"default": ["readout_mode","binning","gain_setting"],
//                           "flat": [..., "filter"], "dark": [..., "exposure","temperature"]},
//    "tolerances": {"exposure": 1.0, "temperature": 0.5},
//    "dq_bits": [{"bit": 512, "name": "bleed", "description": "charge bleed trail"}],
//    "dark_temperature_coefficient": 0.08, "dark_policy": "measured_else_synthesized",
//    "description": "…"}
//
// Thread safety: value types and pure functions.
#ifndef CALIBD_CORE_STORE_DETECTOR_H_
#define CALIBD_CORE_STORE_DETECTOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/image/header.h"
#include "core/store/time.h"

namespace calibd::store {

// Logical key → value as text ("30", "1x1", "high"). Ordered, so equal maps compare and
// serialise identically. Numeric header values are written with up to 10 significant digits
// ("30", "30.9", "-10.5"), so 30, 30.0 and 3.0E1 give the same configuration.
using Configuration = std::map<std::string, std::string>;

// Logical key names (the keys of HeaderKeyMap and of Configuration).
inline constexpr absl::string_view kKeyExposure = "exposure";
inline constexpr absl::string_view kKeyTime = "time";
inline constexpr absl::string_view kKeyFilter = "filter";
inline constexpr absl::string_view kKeyReadoutMode = "readout_mode";
inline constexpr absl::string_view kKeyBinning = "binning";
inline constexpr absl::string_view kKeyGainSetting = "gain_setting";
inline constexpr absl::string_view kKeyTemperature = "temperature";
inline constexpr absl::string_view kKeyEmGain = "em_gain";

// Which header keyword carries each logical value.
struct HeaderKeyMap {
  std::string exposure = "EXPTIME";
  std::string time = "DATE-OBS";
  std::string filter = "FILTER";
  std::string readout_mode = "READMODE";
  std::string binning = "BINNING";
  std::string gain_setting = "GAINMODE";
  std::string temperature = "CCD-TEMP";
  std::string em_gain = "EMGAIN";  // EM gain g; a frame without it has g = 1

  // The keyword for a logical name; any other name is returned unchanged (a literal keyword).
  std::string KeywordFor(absl::string_view logical) const;
  bool operator==(const HeaderKeyMap&) const = default;
};

// Where the dark subtracted from a frame comes from (proto calibd.v1.DarkPolicy).
//   kMeasured                 a master dark, selected like any master (the default)
//   kSynthesized              synthesized for the frame's (exptime, EM gain, temperature) from
//                             the noise_model product, else the dark_current product
//   kMeasuredElseSynthesized  the measured master when one is selectable, else synthesized
enum class DarkPolicy { kMeasured, kSynthesized, kMeasuredElseSynthesized };
// "measured", "synthesized", "measured_else_synthesized" (the JSON and CLI spelling).
absl::string_view DarkPolicyName(DarkPolicy policy);
// The inverse of DarkPolicyName; INVALID_ARGUMENT listing the names otherwise.
absl::StatusOr<DarkPolicy> ParseDarkPolicy(absl::string_view name);

// An instrument-specific DQ bit (core bits are in core/image/dq.h; these sit above them).
struct DetectorDqBit {
  uint16_t bit = 0;  // a single bit, > kDqLastCoreBit
  std::string name;
  std::string description;
  bool operator==(const DetectorDqBit&) const = default;
};

struct DetectorSpec {
  std::string name;  // "instrument/detector": [A-Za-z0-9_.-]+ "/" [A-Za-z0-9_.-]+
  int width = 0;     // raw frame shape (NAXIS1, NAXIS2)
  int height = 0;
  std::string overscan_section;    // BIASSEC, "" = none
  std::string trim_section;        // TRIMSEC, "" = no trimming
  std::string data_section;        // DATASEC, "" = same as trim
  std::string statistics_section;  // flat normalisation region (trimmed coords), "" = all
  double gain = 1.0;               // e⁻/ADU, > 0
  double read_noise = 0.0;         // e⁻, >= 0
  double saturation = 0.0;         // ADU, 0 = none
  HeaderKeyMap keys;
  // kind → logical keys (or literal keywords) forming that kind's configuration. The entry
  // "default" applies to every kind without its own entry. When the map is empty,
  // DefaultConfigurationKeys() is used.
  std::map<std::string, std::vector<std::string>> configuration_keys;
  // logical key → allowed absolute difference for numeric values (exposure in s, temperature
  // in °C). Keys without a tolerance must match exactly (as text). When the map is empty,
  // DefaultTolerances() is used (give {"exposure": 0} to demand exact matches).
  std::map<std::string, double> tolerances;
  std::vector<DetectorDqBit> dq_bits;
  std::string description;
  // Dark-current temperature coefficient c [1/K]: a synthesized dark's D is scaled by
  // exp(c·(T − TEMPMOD)). Unset = no temperature scaling.
  std::optional<double> dark_temperature_coefficient;
  // The dark policy of requests that do not give one.
  DarkPolicy dark_policy = DarkPolicy::kMeasured;

  bool operator==(const DetectorSpec&) const = default;
};

// readout_mode, binning, gain_setting for every kind; + filter for flat; + exposure and
// temperature for dark.
std::map<std::string, std::vector<std::string>> DefaultConfigurationKeys();
// exposure ±1 s, temperature ±0.5 °C.
std::map<std::string, double> DefaultTolerances();
// The spec's tolerances, or the defaults when it has none.
std::map<std::string, double> TolerancesOf(const DetectorSpec& spec);

// INVALID_ARGUMENT naming the first bad field: bad name, non-positive shape, sections that do
// not parse against the shape, gain <= 0, read noise < 0, a non-finite temperature coefficient, DQ bits that are not single bits
// above the core bits or repeat, a tolerance < 0.
absl::Status ValidateDetectorSpec(const DetectorSpec& spec);

// The configuration keys of `kind` (its own entry, else "default", else the defaults).
std::vector<std::string> ConfigurationKeysFor(const DetectorSpec& spec, absl::string_view kind);

// The configuration of a `kind` master/frame read from `header`. A key absent from the header
// is INVALID_ARGUMENT naming the keyword (a frame without e.g. its binning cannot be matched).
absl::StatusOr<Configuration> ExtractConfiguration(const DetectorSpec& spec, absl::string_view kind,
                                                   const Header& header);
// Every logical key known to the spec (all kinds' keys) that the header has; absent ones are
// left out. What the selection uses when the request gives a header.
Configuration ExtractAllConfiguration(const DetectorSpec& spec, const Header& header);

// The observation time from the spec's time keyword (ISO-8601, see time.h); MJD-OBS (float
// days) is accepted as a fallback. NOT_FOUND when neither is present, INVALID_ARGUMENT when
// unparseable.
absl::StatusOr<TimeMicros> ExtractTime(const DetectorSpec& spec, const Header& header);

// JSON codec. Unknown fields are INVALID_ARGUMENT (a typo must not silently drop a setting).
std::string DetectorSpecToJson(const DetectorSpec& spec);
absl::StatusOr<DetectorSpec> DetectorSpecFromJson(absl::string_view json);

// A stored spec with its catalog metadata.
struct DetectorRecord {
  DetectorSpec spec;
  int64_t version = 0;  // 1, 2, 3… per detector name
  TimeMicros created_at = 0;
  std::string actor;
};

}  // namespace calibd::store

#endif  // CALIBD_CORE_STORE_DETECTOR_H_
