// calibctl: the command-line client of calibd, for people (tables, progress bars) and scripts
// (--json, exit codes). `calibctl --help` lists the commands; docs/cli.md has an example of each.
// This file is the entry point: global flags, help, --version, dispatch. The commands live in
// cmd_*.cc, their flag → request mapping in requests.cc, the exit codes in exit_codes.h.
//
//   calibctl make-samples -o /tmp/night
//   calibctl detector put /tmp/night/SPEC.json
//   calibctl build --detector demo/ccd0 --kind bias --certify-from 2026-03-01
//   /tmp/night/bias/*.fits calibctl calibrate --detector demo/ccd0 -o /tmp/red
//   /tmp/night/light/*.fits
//
// Errors are one line on stderr: "calibctl: <what failed>: <CODE>: <message>".
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "client/build_info.h"
#include "client/command.h"
#include "client/exit_codes.h"

namespace calibd::client {
namespace {

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"server", 0, FlagKind::kValue, "calibd address (env CALIBD_SERVER; default 127.0.0.1:50051)",
       "HOST:PORT"},
      {"token", 0, FlagKind::kValue, "bearer token (env CALIBD_TOKEN)", "TOKEN"},
      {"json", 0, FlagKind::kBool, "machine-readable output on stdout"},
      {"tls-ca", 0, FlagKind::kValue, "PEM CA bundle: use TLS", "FILE"},
      {"tls-cert", 0, FlagKind::kValue, "PEM client certificate (mutual TLS)", "FILE"},
      {"tls-key", 0, FlagKind::kValue, "PEM client key (mutual TLS)", "FILE"},
      {"timeout", 0, FlagKind::kValue, "deadline of single calls in seconds (default 60)", "S"},
      {"help", 'h', FlagKind::kBool, "show help"},
  };
  return *flags;
}

std::vector<Command> Commands() {
  std::vector<Command> all;
  for (std::vector<Command> group : {DetectorCommands(), MasterCommands(), BuildCommands(),
                                     CalibrateCommands(), NoiseCommands(), HealthCommands(),
                                     SampleCommands()}) {
    for (Command& c : group) all.push_back(std::move(c));
  }
  return all;
}

std::string MainHelp(const std::vector<Command>& commands) {
  std::string out =
      "calibctl: the command-line client of calibd (calibration of CCD/CMOS frames).\n\n"
      "usage: calibctl [global flags] COMMAND [flags] [args]\n\ncommands:\n";
  size_t w = 0;
  for (const Command& c : commands) w = std::max(w, c.name.size());
  for (const Command& c : commands) {
    absl::StrAppend(&out, "  ", c.name, std::string(w + 2 - c.name.size(), ' '), c.summary, "\n");
  }
  // --version stands alone (`calibctl --version`): commands have their own --version N.
  absl::StrAppend(
      &out, "\nglobal flags:\n", FlagsHelp(GlobalFlags()),
      "  --version  print the version and the build's git commit (alone)\n",
      "\nTIME is RFC 3339 (2026-03-01T02:03:04Z), a UTC date-time, a date, or 'now'.\n"
      "`calibctl COMMAND --help` shows a command's flags; docs/cli.md has examples.\n\n",
      ExitCodesHelp());
  return out;
}

bool HasToken(const std::vector<std::string>& tokens, std::initializer_list<const char*> names) {
  for (const std::string& t : tokens) {
    if (t == "--") return false;
    for (const char* n : names) {
      if (t == n) return true;
    }
  }
  return false;
}

int Main(int argc, char** argv) {
  std::vector<std::string> tokens(argv + 1, argv + argc);
  const std::vector<Command> commands = Commands();
  std::vector<std::string> names;
  for (const Command& c : commands) names.push_back(c.name);
  absl::StatusOr<CommandLine> line = SplitCommand(tokens, names, GlobalFlags());
  if (!line.ok()) {
    std::fprintf(stderr, "calibctl: %s\n", std::string(line.status().message()).c_str());
    return kExitUsage;
  }
  if (line->command.empty()) {
    if (HasToken(tokens, {"--version"})) {
      std::printf("calibctl %s (commit %s)\n", build_info::Version(), build_info::GitCommit());
      return kExitOk;
    }
    const bool help = HasToken(tokens, {"--help", "-h"});
    std::fputs(MainHelp(commands).c_str(), help ? stdout : stderr);
    return help ? kExitOk : kExitUsage;
  }
  const Command* cmd = nullptr;
  for (const Command& c : commands) {
    if (c.name == line->command) cmd = &c;
  }
  std::vector<FlagSpec> specs = GlobalFlags();
  specs.insert(specs.end(), cmd->flags.begin(), cmd->flags.end());
  absl::StatusOr<ParsedArgs> args = ParseFlags(line->rest, specs);
  if (!args.ok()) {
    std::fprintf(stderr, "calibctl %s: %s\n", cmd->name.c_str(),
                 std::string(args.status().message()).c_str());
    return kExitUsage;
  }
  if (args->Bool("help")) {
    std::cout << "usage: calibctl " << cmd->synopsis << "\n\n"
              << cmd->summary << "\n\nflags:\n"
              << FlagsHelp(cmd->flags) << "\nglobal flags:\n"
              << FlagsHelp(GlobalFlags());
    return kExitOk;
  }
  Context ctx;
  ctx.command = cmd->name;
  ctx.args = *std::move(args);
  ctx.json = ctx.args.Bool("json");
  const char* env_server = std::getenv("CALIBD_SERVER");
  const char* env_token = std::getenv("CALIBD_TOKEN");
  ctx.client_options.server = ctx.args.Value(
      "server", env_server != nullptr && *env_server ? env_server : "127.0.0.1:50051");
  ctx.client_options.token = ctx.args.Value("token", env_token != nullptr ? env_token : "");
  ctx.client_options.tls_ca = ctx.args.Value("tls-ca");
  ctx.client_options.tls_cert = ctx.args.Value("tls-cert");
  ctx.client_options.tls_key = ctx.args.Value("tls-key");
  if (ctx.args.Has("timeout")) {
    absl::StatusOr<double> s = ParseDouble("timeout", ctx.args.Value("timeout"));
    if (!s.ok()) return ctx.Usage(s.status());
    if (*s <= 0) return ctx.Usage("--timeout must be > 0 seconds");
    ctx.client_options.timeout = absl::Seconds(*s);
  }
  return cmd->run(ctx);
}

}  // namespace
}  // namespace calibd::client

int main(int argc, char** argv) {
  // Keep freed frame-sized blocks in the process: first touch of fresh memory is slow (see
  // ../shared/PERFORMANCE.md), and gRPC's 1 MiB message buffers would otherwise be mmapped anew.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return calibd::client::Main(argc, argv);
}
