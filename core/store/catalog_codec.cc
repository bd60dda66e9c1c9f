#include "core/store/catalog_codec.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace calibd::store::internal {

using nlohmann::json;

std::string ConfigKey(const Configuration& c) { return json(c).dump(); }

Configuration ParseConfig(const std::string& text) {
  Configuration out;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

std::string StringMapJson(const std::map<std::string, std::string>& m) { return json(m).dump(); }

std::string StatsJson(const std::map<std::string, double>& m) {
  json j = json::object();
  for (const auto& [k, v] : m) {
    if (std::isfinite(v)) {
      j[k] = v;
    } else {
      j[k] = nullptr;
    }
  }
  return j.dump();
}

std::map<std::string, double> ParseStats(const std::string& text) {
  std::map<std::string, double> out;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    out[it.key()] = it.value().is_number() ? it.value().get<double>()
                                           : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

std::string ProvenanceJson(const Provenance& p) {
  json j;
  j["inputs"] = p.input_sha256;
  j["options"] = p.options;
  j["software_version"] = p.software_version;
  return j.dump();
}

Provenance ParseProvenance(const std::string& text) {
  Provenance p;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return p;
  if (j.contains("inputs") && j["inputs"].is_array()) {
    for (const json& s : j["inputs"]) {
      if (s.is_string()) p.input_sha256.push_back(s.get<std::string>());
    }
  }
  if (j.contains("options") && j["options"].is_object()) {
    p.options = ParseConfig(j["options"].dump());
  }
  if (j.contains("software_version") && j["software_version"].is_string()) {
    p.software_version = j["software_version"].get<std::string>();
  }
  return p;
}

std::string FormatRange(TimeMicros begin, std::optional<TimeMicros> end) {
  return absl::StrCat("[", FormatTime(begin), ", ", end ? FormatTime(*end) : "open", ")");
}

std::string FormatConfig(const Configuration& c) {
  if (c.empty()) return "{}";
  return absl::StrCat("{", absl::StrJoin(c, ", ", absl::PairFormatter("=")), "}");
}

bool ValidKind(absl::string_view kind) {
  if (kind.empty() || kind.size() > 64) return false;
  for (char c : kind) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_')) return false;
  }
  return true;
}

MasterVersion RowToVersion(const SqlRow& r) {
  MasterVersion v;
  v.series_id = r.Int(1);
  v.detector = r.Text(2);
  v.kind = r.Text(3);
  v.configuration = ParseConfig(r.Text(4));
  v.version = r.Int(5);
  v.sha256 = r.Text(6);
  v.size_bytes = r.Int(7);
  v.width = static_cast<int>(r.Int(8));
  v.height = static_cast<int>(r.Int(9));
  v.created_at = r.Int(10);
  v.obs_time = r.Int(11);
  v.detector_version = r.Int(12);
  v.actor = r.Text(13);
  v.attributes = ParseConfig(r.Text(14));
  v.provenance = ParseProvenance(r.Text(15));
  v.statistics = ParseStats(r.Text(16));
  v.decertified_at = r.OptInt(17);
  v.superseded_at = r.OptInt(18);
  return v;
}

Certification RowToCert(const SqlRow& r) {
  Certification c;
  c.id = r.Int(0);
  c.series_id = r.Int(1);
  c.version = r.Int(2);
  c.begin = r.Int(3);
  c.end = r.OptInt(4);
  c.created_at = r.Int(5);
  c.actor = r.Text(6);
  c.reason = r.Text(7);
  return c;
}

AuditEntry RowToAudit(const SqlRow& r) {
  AuditEntry e;
  e.id = r.Int(0);
  e.time = r.Int(1);
  e.actor = r.Text(2);
  e.action = r.Text(3);
  e.subject = r.Text(4);
  e.details = r.Text(5);
  e.series_id = r.Int(6);
  e.version = r.Int(7);
  return e;
}

}  // namespace calibd::store::internal
