#include "client/command.h"

#include <cstdio>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "client/convert.h"
#include "client/exit_codes.h"
#include "client/format.h"
#include "google/protobuf/util/json_util.h"

namespace calibd::client {

int Context::Usage(absl::string_view message) {
  std::fprintf(stderr, "calibctl %s: %s (see calibctl %s --help)\n", command.c_str(),
               std::string(message).c_str(), command.c_str());
  return kExitUsage;
}

int Context::Connect() {
  if (client != nullptr) return -1;
  absl::StatusOr<std::unique_ptr<CalibdClient>> c = CalibdClient::Connect(client_options);
  if (!c.ok()) {
    // Local option problems (a missing TLS file, an empty address) are the caller's to fix.
    return c.status().code() == absl::StatusCode::kInvalidArgument ? Usage(c.status())
                                                                   : Fail("connect", c.status());
  }
  client = std::move(*c);
  return -1;
}

void PrintError(absl::string_view what, const absl::Status& status) {
  // The server's message already ends with "[request id ID]" (for clients that do not read
  // the metadata); the id is added only when it is not there.
  const std::string id = RequestIdOf(status);
  const bool named = !id.empty() && absl::StrContains(status.message(), id);
  std::fprintf(stderr, "calibctl: %s: %s: %s%s\n", std::string(what).c_str(),
               absl::StatusCodeToString(status.code()).c_str(), OneLine(status.message()).c_str(),
               id.empty() || named ? "" : absl::StrCat(" (request id ", id, ")").c_str());
}

int Fail(absl::string_view what, const absl::Status& status) {
  PrintError(what, status);
  return ExitCodeFor(status.code());
}

std::string OneLine(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\r\n", "; "}, {"\n", "; "}, {"\r", " "}});
}

std::string ProtoJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string TimeText(bool present, const google::protobuf::Timestamp& t) {
  return present ? FormatUtc(TimeFromProto(t)) : "-";
}

std::string CertificationText(const v1::Certification& c) {
  return absl::StrCat("[", TimeText(c.has_begin(), c.begin()), ", ",
                      c.has_end() ? FormatUtc(TimeFromProto(c.end())) : "open", ")");
}

std::string MapText(const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  if (sorted.empty()) return "-";
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

void PrintNextPage(const std::string& next_page_token, bool json) {
  // With --json the token is in the response document (next_page_token).
  if (json || next_page_token.empty()) return;
  std::fprintf(stderr, "more: continue with --page-token %s\n", next_page_token.c_str());
}

}  // namespace calibd::client
