// What every calibctl subcommand shares: the Command table entry, the Context a command runs
// with (parsed flags, connection options, the lazily connected client), and the one way to
// report a failure (a line on stderr and the exit code of its class, client/exit_codes.h).
//
//   int Ls(Context& c) {
//     absl::StatusOr<PageRequest> page = PageFromFlags(c.args);
//     if (!page.ok()) return c.Usage(page.status());             // exit 64
//     if (int rc = c.Connect(); rc >= 0) return rc;
//     absl::StatusOr<v1::ListMastersResponse> r = c.client->ListMasters("", "", *page);
//     if (!r.ok()) return Fail("ls", r.status());                // "calibctl: ls: NOT_FOUND: ..."
//     ...
//   }
//   std::vector<Command> MasterCommands() { return {{"ls", "ls [--detector D]", "...", {}, Ls}}; }
//
// Thread safety: a Context belongs to the command's thread.
#ifndef CALIBD_CLIENT_COMMAND_H_
#define CALIBD_CLIENT_COMMAND_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "calibd/v1/types.pb.h"
#include "client/args.h"
#include "client/client.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace calibd::client {

struct Context {
  std::string command;  // e.g. "detector put"
  ParsedArgs args;
  ClientOptions client_options;
  bool json = false;
  std::unique_ptr<CalibdClient> client;  // set by Connect()

  // Prints "calibctl COMMAND: message (see calibctl COMMAND --help)"; returns kExitUsage.
  int Usage(absl::string_view message);
  int Usage(const absl::Status& status) { return Usage(status.message()); }
  // Connects once: -1 when ready, else the exit code (the error printed).
  int Connect();
};

using CommandFn = std::function<int(Context&)>;

struct Command {
  std::string name;      // "detector put"
  std::string synopsis;  // "detector put SPEC.json"
  std::string summary;   // one line for `calibctl --help`
  std::vector<FlagSpec> flags;
  CommandFn run;
};

// The command groups, one file each (cmd_*.cc).
std::vector<Command> DetectorCommands();   // detector put/get/ls, dq-bits
std::vector<Command> MasterCommands();     // put, ls, history, get, certify, decertify
std::vector<Command> BuildCommands();      // build
std::vector<Command> CalibrateCommands();  // select, calibrate
std::vector<Command> SampleCommands();     // make-samples
std::vector<Command> HealthCommands();     // health
std::vector<Command> NoiseCommands();      // synth-dark

// "calibctl: <what>: <CODE>: <message>" on stderr; calibd's messages end "[request id ID]", and
// " (request id ID)" is appended when the message does not name the id. Returns the exit code of
// the status's class.
int Fail(absl::string_view what, const absl::Status& status);
void PrintError(absl::string_view what, const absl::Status& status);

// Newlines folded so that one failure is one line.
std::string OneLine(absl::string_view text);
// A message in protobuf's JSON mapping with the .proto field names (for --json).
std::string ProtoJson(const google::protobuf::Message& m);
// RFC 3339 UTC, or "-" for an unset field (presence is the caller's has_xxx()).
std::string TimeText(bool present, const google::protobuf::Timestamp& t);
// "[2026-03-01T00:00:00Z, open)".
std::string CertificationText(const v1::Certification& c);
// "k1=v1,k2=v2" sorted by key, or "-".
std::string MapText(const google::protobuf::Map<std::string, std::string>& m);
// After a page of a list command: "next page: --page-token TOKEN" on stderr when there is one.
void PrintNextPage(const std::string& next_page_token, bool json);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_COMMAND_H_
