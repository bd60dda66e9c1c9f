// calibd: the calibration service. Flags (each also read from CALIBD_<NAME> in the
// environment, e.g. CALIBD_LISTEN, CALIBD_MAX_FRAME_PIXELS; the command line wins):
//
//   calibd --listen 127.0.0.1:50051 --metrics-listen 127.0.0.1:9464 --store var/calibd \
//          [--tokens FILE] [--tls-cert F --tls-key F [--tls-ca F]] [--workers N] [limits]
//   calibd --help        # every flag with its CALIBD_* variable and default
//   calibd --version     # "calibd <version> (commit <git hash>)"
//
// Start-up: health NOT_SERVING until the store opens (retried while it is UNAVAILABLE), then
// SERVING. SIGTERM/SIGINT: health NOT_SERVING, stop accepting, in-flight calls finish within
// --grace-seconds, exit 0.
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "core/image/buffer_pool.h"
#include "server/auth.h"
#include "server/log.h"
#include "server/server.h"
#include "server/version.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC address to listen on");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "address of the Prometheus /metrics endpoint; empty = none");
ABSL_FLAG(std::string, store, "./var/calibd",
          "store: a directory (embedded SQLite store) or postgresql://… (shared store)");
ABSL_FLAG(std::string, tokens, "",
          "bearer-token file, lines '<token> read|write|admin [name] [detector-pattern ...]'; "
          "empty = no authentication");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate (TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM server key (TLS)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA for client certificates (mutual TLS)");
ABSL_FLAG(int, workers, 0, "pixel-work threads; 0 = one per core");
ABSL_FLAG(int64_t, max_frame_pixels, int64_t{1} << 26, "largest raw frame, in pixels");
ABSL_FLAG(int64_t, max_stream_bytes, int64_t{1} << 40, "most bytes one stream may send");
ABSL_FLAG(int, max_concurrent_streams, 64, "streaming calls served at once");
ABSL_FLAG(int64_t, max_master_bytes, int64_t{2} << 30, "largest PutMaster upload, in bytes");
ABSL_FLAG(int, max_build_inputs, 512, "most input frames of one BuildMaster");
ABSL_FLAG(int64_t, combine_memory_bytes, int64_t{256} << 20, "combine working-buffer budget");
ABSL_FLAG(int64_t, cache_bytes, int64_t{2} << 30, "decoded-master cache budget, in bytes");
ABSL_FLAG(int64_t, buffer_pool_bytes, int64_t{1} << 30, "idle frame buffers kept for reuse");
ABSL_FLAG(std::string, spool_dir, "", "where uploads and build inputs are spooled; empty = TMPDIR");
ABSL_FLAG(double, grace_seconds, 30, "how long in-flight calls may run after SIGTERM");
ABSL_FLAG(std::string, health_listen, "",
          "plaintext address serving only grpc.health.v1 (kubelet probes when --listen uses "
          "TLS); empty = health on the API port only");
ABSL_FLAG(double, max_connection_age_seconds, 0,
          "close connections older than this so clients rebalance across replicas; 0 = never");
ABSL_FLAG(double, max_connection_age_grace_seconds, 60,
          "how long calls on an aged-out connection may still run");
ABSL_FLAG(int64_t, frame_memory_bytes, 0,
          "bytes of frames in flight (raw + result planes) over all streams; beyond it frames "
          "wait, then RESOURCE_EXHAUSTED; 0 = half the cgroup memory limit (or of RAM)");
ABSL_FLAG(int, max_streams_per_connection, 16,
          "HTTP/2 concurrent streams per connection; a client's further streams wait on its side "
          "without server memory; 0 = gRPC's default");
ABSL_FLAG(int64_t, stream_window_bytes, int64_t{4} << 20,
          "HTTP/2 receive window per stream, fixed: the most gRPC buffers for a stream waiting "
          "for frame memory; 0 = gRPC's adaptive window (BDP probing)");
ABSL_FLAG(double, frame_memory_wait_seconds, 60,
          "longest wait for frame memory (capped by the call's deadline)");
ABSL_FLAG(double, store_check_seconds, 2,
          "how often the store is pinged for readiness (health service \"\" / \"readiness\")");

namespace {

// SIGTERM/SIGINT are turned into a byte on this pipe (a handler, not sigwait: libraries may
// start threads before main that would otherwise receive the signal with its default action).
int g_signal_pipe[2] = {-1, -1};

void OnSignal(int signo) {
  const char b = static_cast<char>(signo);
  ssize_t unused = ::write(g_signal_pipe[1], &b, 1);
  (void)unused;
}

void InstallSignalHandlers() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int signo : {SIGTERM, SIGINT}) {
    struct sigaction current = {};
    sigaction(signo, nullptr, &current);
    if (current.sa_handler != OnSignal) sigaction(signo, &sa, nullptr);
  }
}

// Waits up to `timeout_ms` (-1 = forever) for a signal; its number, or 0. Libraries linked in
// may install handlers of their own (CFITSIO calls signal()), so while waiting forever ours are
// checked and put back every second.
int WaitSignal(int timeout_ms) {
  if (timeout_ms < 0) {
    for (;;) {
      InstallSignalHandlers();
      if (int signo = WaitSignal(1000); signo != 0) return signo;
    }
  }
  pollfd p{g_signal_pipe[0], POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    char b = 0;
    if (::read(g_signal_pipe[0], &b, 1) == 1) return b;
    return 0;
  }
}

// calibd's own flags (defined in this file), by name: the one list --help and the
// environment use.
std::vector<absl::CommandLineFlag*> CalibdFlags() {
  std::vector<absl::CommandLineFlag*> out;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), "server/main.cc")) out.push_back(flag);
  }
  std::sort(out.begin(), out.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  return out;
}

// "max_frame_pixels" → "CALIBD_MAX_FRAME_PIXELS".
std::string EnvName(absl::string_view flag) {
  std::string env = "CALIBD_";
  for (char c : flag) env.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return env;
}

void PrintHelp() {
  std::string out =
      "calibd: calibrates astronomical CCD/CMOS frames over gRPC\n\n"
      "usage: calibd [--flag=value ...]\n"
      "Each flag may also be set by its environment variable; the command line wins.\n\n";
  for (const absl::CommandLineFlag* f : CalibdFlags()) {
    const std::string dashed = absl::StrReplaceAll(f->Name(), {{"_", "-"}});
    absl::StrAppend(&out, "  --", dashed, "  [", EnvName(f->Name()), "]\n      ", f->Help(),
                    " (default: \"", f->DefaultValue(), "\")\n");
  }
  absl::StrAppend(&out, "\n  --help       this list\n  --version    version and build commit\n");
  std::fputs(out.c_str(), stdout);
}

void PrintVersion() { std::printf("%s\n", calibd::server::VersionString().c_str()); }

// CALIBD_<FLAG> environment variables set flags that the command line does not.
void ApplyEnvironment() {
  for (absl::CommandLineFlag* flag : CalibdFlags()) {
    const std::string env = EnvName(flag->Name());
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      calibd::server::LogEvent("bad_env", {{"variable", env}, {"error", error}});
      std::exit(2);
    }
  }
}

// "--metrics-listen=x" → "--metrics_listen=x": the documented dashed spelling.
std::vector<char*> NormaliseArgs(int argc, char** argv, std::vector<std::string>& storage) {
  storage.reserve(argc);
  std::vector<char*> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && a.size() > 2 && a[0] == '-' && a[1] == '-') {
      size_t end = a.find('=');
      if (end == std::string::npos) end = a.size();
      for (size_t j = 2; j < end; ++j) {
        if (a[j] == '-') a[j] = '_';
      }
    }
    storage.push_back(std::move(a));
  }
  for (std::string& s : storage) out.push_back(s.data());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using calibd::server::LogEvent;
  // Keep large frame buffers in the process (PERFORMANCE.md fact 1): glibc would otherwise
  // mmap blocks over its threshold and unmap them on free, paying first-touch again each frame.
  // But bound what glibc keeps beyond the budgets (frame buffers are reused through the
  // BufferPool anyway): free memory at the top of a heap is returned past 128 MiB, and at most
  // 4 arenas hold such heaps (glibc's default is 8 per core, each trimmed only past the
  // threshold). The 64-stream 4096² run of bench/load/run_load.sh (1.5 GiB frame budget)
  // peaked at 4203 MiB RSS with a 1 GiB threshold and default arenas, 3635 MiB with these.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  mallopt(M_ARENA_MAX, 4);

  absl::SetProgramUsageMessage("calibd: calibrates astronomical CCD/CMOS frames over gRPC");
  for (int i = 1; i < argc; ++i) {
    const absl::string_view a = argv[i];
    if (a == "--help" || a == "-h" || a == "-help") {
      PrintHelp();
      return 0;
    }
    if (a == "--version" || a == "-version") {
      PrintVersion();
      return 0;
    }
  }
  ApplyEnvironment();
  std::vector<std::string> storage;
  std::vector<char*> args = NormaliseArgs(argc, argv, storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());

  if (::pipe(g_signal_pipe) != 0) {
    LogEvent("fatal", {{"error", "cannot create the signal pipe"}});
    return 1;
  }
  InstallSignalHandlers();

  calibd::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.store_url = absl::GetFlag(FLAGS_store);
  const std::string tokens = absl::GetFlag(FLAGS_tokens);
  if (!tokens.empty()) {
    absl::StatusOr<calibd::server::TokenAuth> auth = calibd::server::TokenAuth::LoadFile(tokens);
    if (!auth.ok()) {
      LogEvent("fatal", {{"error", std::string(auth.status().message())}});
      return 2;
    }
    options.auth = *std::move(auth);
  }
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  options.workers = absl::GetFlag(FLAGS_workers);
  options.limits.max_frame_pixels = absl::GetFlag(FLAGS_max_frame_pixels);
  options.limits.max_stream_bytes = absl::GetFlag(FLAGS_max_stream_bytes);
  options.limits.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.limits.max_master_bytes = absl::GetFlag(FLAGS_max_master_bytes);
  options.limits.max_build_inputs = absl::GetFlag(FLAGS_max_build_inputs);
  options.limits.combine_memory_bytes = absl::GetFlag(FLAGS_combine_memory_bytes);
  options.cache_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_cache_bytes));
  options.spool_dir = absl::GetFlag(FLAGS_spool_dir);
  if (!options.spool_dir.empty()) {
    // A missing spool directory is made here, once: otherwise the first upload would fail with
    // INTERNAL on a fresh volume. One that cannot be made is a startup error, not a runtime one.
    std::error_code ec;
    std::filesystem::create_directories(options.spool_dir, ec);
    if (ec || access(options.spool_dir.c_str(), W_OK | X_OK) != 0) {
      LogEvent("fatal", {{"error", absl::StrCat("--spool_dir ", options.spool_dir,
                                                " is not a writable directory",
                                                ec ? absl::StrCat(": ", ec.message()) : "")}});
      return 2;
    }
  }
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.frame_memory_bytes = absl::GetFlag(FLAGS_frame_memory_bytes);
  options.max_streams_per_connection = absl::GetFlag(FLAGS_max_streams_per_connection);
  options.stream_window_bytes = absl::GetFlag(FLAGS_stream_window_bytes);
  options.limits.frame_memory_wait_ms =
      static_cast<int64_t>(absl::GetFlag(FLAGS_frame_memory_wait_seconds) * 1000);
  options.max_connection_age = absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_seconds));
  options.max_connection_age_grace =
      absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_grace_seconds));
  options.store_check_period = absl::Seconds(absl::GetFlag(FLAGS_store_check_seconds));
  const absl::Duration grace = absl::Seconds(absl::GetFlag(FLAGS_grace_seconds));

  // The process-wide frame-buffer pool: owned here, lent to the server.
  calibd::BufferPool buffers(static_cast<size_t>(absl::GetFlag(FLAGS_buffer_pool_bytes)));

  absl::StatusOr<std::unique_ptr<calibd::server::CalibdServer>> server =
      calibd::server::CalibdServer::Start(std::move(options), &buffers);
  if (!server.ok()) {
    LogEvent("fatal", {{"error", std::string(server.status().message())}});
    return 1;
  }

  // Open the store; retry while it is unavailable (e.g. PostgreSQL still starting).
  bool stop = false;
  for (;;) {
    absl::Status s = (*server)->OpenStore();
    if (s.ok()) break;
    if (!absl::IsUnavailable(s)) {
      LogEvent("fatal", {{"error", std::string(s.message())}});
      (*server)->Shutdown(absl::ZeroDuration());
      return 1;
    }
    if (WaitSignal(2000) != 0) {
      stop = true;
      break;
    }
  }
  if (!stop) {
    const int signo = WaitSignal(-1);
    LogEvent("signal", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
  }
  (*server)->Shutdown(grace);
  server->reset();
  return 0;
}
