// Command-line parsing for calibctl: subcommands ("detector put", "calibrate", ...) with their
// own flags plus global flags that may appear anywhere, and the small value parsers the
// subcommands share (times, KEY=VALUE pairs, "LOW,HIGH" pairs, enums).
//
//   static const std::vector<FlagSpec> kFlags = {
//       {"detector", 'd', FlagKind::kValue, "detector name, instrument/detector"},
//       {"attr", 0, FlagKind::kRepeated, "KEY=VALUE attribute"},
//       {"replace", 0, FlagKind::kBool, "replace overlapping certifications"}};
//   ASSIGN_OR_RETURN(ParsedArgs args, ParseFlags(tokens, kFlags));
//   std::string detector = args.Value("detector");
//   for (const std::string& a : args.Values("attr")) ...
//   absl::Time begin = ParseTime(args.Value("begin")).value();
//
// Accepted spellings: --name=value, --name value, -x value, -xvalue (short flags), --flag for
// booleans (and --flag=true/false), "--" ends the flags. Unknown flags, missing values and a
// value-taking flag given twice are INVALID_ARGUMENT with a message naming the flag.
//
// Thread safety: pure functions and value types.
#ifndef CALIBD_CLIENT_ARGS_H_
#define CALIBD_CLIENT_ARGS_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace calibd::client {

enum class FlagKind {
  kBool,      // present or not
  kValue,     // one value; given twice is an error
  kRepeated,  // any number of values, in order
};

struct FlagSpec {
  std::string name;        // long name without dashes, e.g. "detector"
  char short_name = 0;     // e.g. 'o' for -o; 0 = none
  FlagKind kind = FlagKind::kValue;
  std::string help;        // one line for --help
  std::string value_name = "VALUE";  // shown in --help: --detector NAME
};

class ParsedArgs {
 public:
  bool Has(absl::string_view name) const { return values_.count(std::string(name)) > 0; }
  // The value of a kValue flag, or `fallback` if it was not given.
  std::string Value(absl::string_view name, absl::string_view fallback = "") const;
  // Every value of a kRepeated flag (empty if none).
  const std::vector<std::string>& Values(absl::string_view name) const;
  bool Bool(absl::string_view name) const;
  const std::vector<std::string>& positional() const { return positional_; }

  void Add(const std::string& name, std::string value) { values_[name].push_back(std::move(value)); }
  void AddPositional(std::string value) { positional_.push_back(std::move(value)); }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Parses `args` (no program name) against `specs`.
absl::StatusOr<ParsedArgs> ParseFlags(absl::Span<const std::string> args,
                                      absl::Span<const FlagSpec> specs);

// "--detector NAME   detector name" lines for --help, aligned.
std::string FlagsHelp(absl::Span<const FlagSpec> specs);

// Splits argv into the subcommand words and the rest: the first one or two non-flag tokens
// that name a known command (`commands` lists them, e.g. "detector put", "ls"), skipping flags
// that take values (`value_flags`, e.g. "--server"). The remaining tokens keep their order.
struct CommandLine {
  std::string command;  // e.g. "detector put"; empty if none was found
  std::vector<std::string> rest;
};
absl::StatusOr<CommandLine> SplitCommand(absl::Span<const std::string> argv,
                                         absl::Span<const std::string> commands,
                                         absl::Span<const FlagSpec> global_flags);

// Times: RFC 3339 ("2026-03-01T02:03:04Z", "...+02:00", fractional seconds), a FITS
// DATE-OBS without zone ("2026-03-01T02:03:04.5", read as UTC), a date ("2026-03-01" =
// midnight UTC), or "now".
absl::StatusOr<absl::Time> ParseTime(absl::string_view text);
// RFC 3339 in UTC with the seconds' fraction only when there is one.
std::string FormatUtc(absl::Time t);

// "KEY=VALUE" → {KEY, VALUE}; the key must be non-empty.
absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view text);
// "3,3" / "2.5,4" → {low, high}; both must be numbers ≥ 0.
absl::StatusOr<std::pair<double, double>> ParseDoublePair(absl::string_view text);
absl::StatusOr<std::pair<int, int>> ParseIntPair(absl::string_view text);
absl::StatusOr<int64_t> ParseInt(absl::string_view flag, absl::string_view text);
absl::StatusOr<double> ParseDouble(absl::string_view flag, absl::string_view text);
// `text` must be one of `choices`; the error lists them.
absl::Status CheckChoice(absl::string_view flag, absl::string_view text,
                         absl::Span<const std::string> choices);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_ARGS_H_
