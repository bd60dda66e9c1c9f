#include "client/args.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace calibd::client {
namespace {

const FlagSpec* FindLong(absl::Span<const FlagSpec> specs, absl::string_view name) {
  for (const FlagSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const FlagSpec* FindShort(absl::Span<const FlagSpec> specs, char c) {
  for (const FlagSpec& s : specs) {
    if (s.short_name != 0 && s.short_name == c) return &s;
  }
  return nullptr;
}

absl::Status Store(const FlagSpec& spec, std::string value, ParsedArgs* out) {
  if (spec.kind == FlagKind::kValue && out->Has(spec.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", spec.name, " given twice; give it once"));
  }
  if (spec.kind == FlagKind::kBool) {
    std::string lower = absl::AsciiStrToLower(value);
    if (lower != "true" && lower != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat("--", spec.name, " is a switch; it takes no value (or =true/=false), got '",
                       value, "'"));
    }
    value = lower;
  }
  out->Add(spec.name, std::move(value));
  return absl::OkStatus();
}

}  // namespace

std::string ParsedArgs::Value(absl::string_view name, absl::string_view fallback) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end() || it->second.empty()) return std::string(fallback);
  return it->second.back();
}

const std::vector<std::string>& ParsedArgs::Values(absl::string_view name) const {
  static const std::vector<std::string>* const kEmpty = new std::vector<std::string>();
  auto it = values_.find(std::string(name));
  return it == values_.end() ? *kEmpty : it->second;
}

bool ParsedArgs::Bool(absl::string_view name) const { return Value(name) == "true"; }

absl::StatusOr<ParsedArgs> ParseFlags(absl::Span<const std::string> args,
                                      absl::Span<const FlagSpec> specs) {
  ParsedArgs out;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (flags_done || a == "-" || a.size() < 2 || a[0] != '-') {
      out.AddPositional(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    const FlagSpec* spec = nullptr;
    std::string value;
    bool has_value = false;
    if (a[1] == '-') {
      absl::string_view body = absl::string_view(a).substr(2);
      const size_t eq = body.find('=');
      absl::string_view name = body.substr(0, eq);
      spec = FindLong(specs, name);
      if (spec == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag --", name, "; see --help for the flags of this command"));
      }
      if (eq != absl::string_view::npos) {
        value = std::string(body.substr(eq + 1));
        has_value = true;
      }
    } else {
      spec = FindShort(specs, a[1]);
      if (spec == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag ", a.substr(0, 2), "; see --help for the flags of this command"));
      }
      if (a.size() > 2) {
        if (spec->kind == FlagKind::kBool) {
          return absl::InvalidArgumentError(absl::StrCat("-", std::string(1, a[1]),
                                                         " is a switch; it takes no value"));
        }
        value = a.substr(2);
        has_value = true;
      }
    }
    if (spec->kind == FlagKind::kBool) {
      if (!has_value) value = "true";
    } else if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", spec->name, " needs a value (", spec->value_name, ")"));
      }
      value = args[++i];
    }
    absl::Status s = Store(*spec, std::move(value), &out);
    if (!s.ok()) return s;
  }
  return out;
}

std::string FlagsHelp(absl::Span<const FlagSpec> specs) {
  std::vector<std::pair<std::string, std::string>> lines;
  size_t width = 0;
  for (const FlagSpec& s : specs) {
    std::string left = "  ";
    if (s.short_name != 0) absl::StrAppend(&left, "-", std::string(1, s.short_name), ", ");
    absl::StrAppend(&left, "--", s.name);
    if (s.kind != FlagKind::kBool) absl::StrAppend(&left, " ", s.value_name);
    width = std::max(width, left.size());
    lines.emplace_back(std::move(left),
                       s.help + (s.kind == FlagKind::kRepeated ? " (repeatable)" : ""));
  }
  std::string out;
  for (auto& [left, help] : lines) {
    absl::StrAppend(&out, left, std::string(width + 2 - left.size(), ' '), help, "\n");
  }
  return out;
}

absl::StatusOr<CommandLine> SplitCommand(absl::Span<const std::string> argv,
                                         absl::Span<const std::string> commands,
                                         absl::Span<const FlagSpec> global_flags) {
  CommandLine out;
  std::vector<size_t> words;  // indices of the non-flag tokens before the command is known
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") break;
    if (a.size() >= 2 && a[0] == '-') {
      // Skip the value of a global value flag given as a separate token.
      const FlagSpec* spec = nullptr;
      if (a[1] == '-' && a.find('=') == std::string::npos) {
        spec = FindLong(global_flags, absl::string_view(a).substr(2));
      } else if (a[1] != '-' && a.size() == 2) {
        spec = FindShort(global_flags, a[1]);
      }
      if (spec != nullptr && spec->kind != FlagKind::kBool) ++i;
      continue;
    }
    words.push_back(i);
    if (words.size() == 2) break;
  }
  size_t used = 0;
  if (words.size() >= 2) {
    const std::string two = argv[words[0]] + " " + argv[words[1]];
    if (std::find(commands.begin(), commands.end(), two) != commands.end()) {
      out.command = two;
      used = 2;
    }
  }
  if (used == 0 && !words.empty()) {
    const std::string& one = argv[words[0]];
    if (std::find(commands.begin(), commands.end(), one) != commands.end()) {
      out.command = one;
      used = 1;
    } else {
      // A group word ("detector") without a valid second word names the group's commands.
      std::vector<std::string> group;
      for (const std::string& c : commands) {
        if (absl::StartsWith(c, one + " ")) group.push_back(c);
      }
      if (!group.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", one, "' needs a subcommand: ", absl::StrJoin(group, ", ")));
      }
      return absl::InvalidArgumentError(absl::StrCat("unknown command '", one,
                                                     "'; run calibctl --help for the list"));
    }
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    if (used >= 1 && i == words[0]) continue;
    if (used >= 2 && i == words[1]) continue;
    out.rest.push_back(argv[i]);
  }
  return out;
}

absl::StatusOr<absl::Time> ParseTime(absl::string_view text) {
  const std::string t(absl::StripAsciiWhitespace(text));
  if (t.empty()) return absl::InvalidArgumentError("empty time; give e.g. 2026-03-01T00:00:00Z");
  if (t == "now") return absl::Now();
  absl::Time out;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, t, &out, &err)) return out;
  // A FITS DATE-OBS has no zone: UTC.
  if (absl::ParseTime("%Y-%m-%dT%H:%M:%E*S", t, absl::UTCTimeZone(), &out, &err)) return out;
  if (absl::ParseTime("%Y-%m-%d %H:%M:%E*S", t, absl::UTCTimeZone(), &out, &err)) return out;
  if (absl::ParseTime("%Y-%m-%dT%H:%M", t, absl::UTCTimeZone(), &out, &err)) return out;
  if (absl::ParseTime("%Y-%m-%d", t, absl::UTCTimeZone(), &out, &err)) return out;
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot read time '", t,
      "'; use RFC 3339 (2026-03-01T02:03:04Z), a UTC date-time (2026-03-01T02:03:04), a date "
      "(2026-03-01) or 'now'"));
}

std::string FormatUtc(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return "-";
  const absl::Duration frac = (t - absl::UnixEpoch()) % absl::Seconds(1);
  if (frac == absl::ZeroDuration()) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
  }
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view text) {
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected KEY=VALUE, got '", text, "'"));
  }
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

absl::StatusOr<std::pair<double, double>> ParseDoublePair(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  double a = 0, b = 0;
  if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &a) || !absl::SimpleAtod(parts[1], &b) ||
      !std::isfinite(a) || !std::isfinite(b) || a < 0 || b < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected two numbers >= 0 as LOW,HIGH (e.g. 3,3), got '", text, "'"));
  }
  return std::make_pair(a, b);
}

absl::StatusOr<std::pair<int, int>> ParseIntPair(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  int a = 0, b = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &a) || !absl::SimpleAtoi(parts[1], &b) ||
      a < 0 || b < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected two integers >= 0 as NLOW,NHIGH (e.g. 1,1), got '", text, "'"));
  }
  return std::make_pair(a, b);
}

absl::StatusOr<int64_t> ParseInt(absl::string_view flag, absl::string_view text) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " needs an integer, got '", text, "'"));
  }
  return v;
}

absl::StatusOr<double> ParseDouble(absl::string_view flag, absl::string_view text) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " needs a number, got '", text, "'"));
  }
  return v;
}

absl::Status CheckChoice(absl::string_view flag, absl::string_view text,
                         absl::Span<const std::string> choices) {
  if (std::find(choices.begin(), choices.end(), text) != choices.end()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be one of ",
                                                 absl::StrJoin(choices, ", "), "; got '", text,
                                                 "'"));
}

}  // namespace calibd::client
