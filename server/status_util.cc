#include "server/status_util.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calibd::server {
namespace {

// The sentence a client gets for a code whose detail belongs to the log.
std::optional<absl::string_view> SentenceFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
      return "the calibration service or its store is unavailable; retry shortly";
    case absl::StatusCode::kInternal:
      return "internal error in the calibration service; the server log has the detail";
    case absl::StatusCode::kUnknown:
      return "unexpected error in the calibration service; the server log has the detail";
    case absl::StatusCode::kDataLoss:
      return "stored or transmitted data failed its integrity check (sha256 or checksum); "
             "the server log has the detail";
    default:
      return std::nullopt;
  }
}

// Characters that may precede a path or URL that starts a word.
bool IsWordStart(const std::string& s, size_t i) {
  if (i == 0) return true;
  const char c = s[i - 1];
  return c == ' ' || c == '\t' || c == '\'' || c == '"' || c == '(' || c == '[' || c == '=' ||
         c == ',' || c == ':' || c == '\n' || c == '<' || c == '`';
}

// Where a path or URL token ends.
bool EndsToken(char c) {
  return c == ' ' || c == '\t' || c == '\'' || c == '"' || c == ')' || c == ']' || c == ',' ||
         c == ';' || c == '\n' || c == '>' || c == '`';
}

size_t TokenEnd(const std::string& s, size_t i) {
  while (i < s.size() && !EndsToken(s[i])) ++i;
  // A sentence's full stop or colon after a path is not part of it.
  while (i > 0 && (s[i - 1] == '.' || s[i - 1] == ':')) --i;
  return i;
}

}  // namespace

std::string NewRequestId() {
  thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }());
  return absl::StrFormat("%016x", gen());
}

std::string CapMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  static constexpr absl::string_view kEllipsis = "\xE2\x80\xA6";  // "…"
  size_t cut = kMaxStatusMessageBytes - kEllipsis.size();
  // Step back over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  std::string out(message.substr(0, cut));
  out.append(kEllipsis.data(), kEllipsis.size());
  return out;
}

std::string ScrubMessage(absl::string_view message) {
  const std::string s(message);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    // scheme://… (connection strings, URLs): the whole token.
    if (IsWordStart(s, i) && absl::ascii_isalpha(static_cast<unsigned char>(s[i]))) {
      size_t j = i;
      while (j < s.size() && (absl::ascii_isalnum(static_cast<unsigned char>(s[j])) ||
                              s[j] == '+' || s[j] == '-' || s[j] == '.')) {
        ++j;
      }
      if (s.compare(j, 3, "://") == 0) {
        out += "<url>";
        i = TokenEnd(s, j + 3);
        continue;
      }
      // password=… (libpq keyword form).
      static constexpr absl::string_view kPassword = "password=";
      if (absl::StartsWithIgnoreCase(absl::string_view(s).substr(i), kPassword)) {
        out += "password=<hidden>";
        i = TokenEnd(s, i + kPassword.size());
        continue;
      }
    }
    // An absolute path: '/' starting a word, followed by a path character.
    if (s[i] == '/' && IsWordStart(s, i) && i + 1 < s.size() && !EndsToken(s[i + 1]) &&
        s[i + 1] != '/') {
      out += "<path>";
      i = TokenEnd(s, i + 1);
      continue;
    }
    out.push_back(s[i]);
    ++i;
  }
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view request_id) {
  if (status.ok()) return grpc::Status::OK;
  std::string message;
  if (std::optional<absl::string_view> sentence = SentenceFor(status.code())) {
    message = std::string(*sentence);
  } else {
    message = CapMessage(ScrubMessage(status.message()));
  }
  if (!request_id.empty()) absl::StrAppend(&message, " [request id ", request_id, "]");
  return grpc::Status(static_cast<grpc::StatusCode>(status.raw_code()), message);
}

std::string LogDetail(const absl::Status& status) {
  std::string detail(status.message());
  if (auto extra = status.GetPayload(kInternalDetailPayload)) {
    absl::StrAppend(&detail, " (detail: ", std::string(*extra), ")");
  }
  return detail;
}

std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

}  // namespace calibd::server
