#include "tests/testing/calibd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"

#ifndef CALIBD_BINARY_DIR
#define CALIBD_BINARY_DIR "."
#endif

extern char** environ;

namespace calibd::testing {
namespace {

absl::StatusCode FromGrpc(grpc::StatusCode code) { return static_cast<absl::StatusCode>(code); }

std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

// grpc.health.v1.HealthCheckResponse is { ServingStatus status = 1; }: one varint field.
HealthState DecodeHealth(const std::string& bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const uint8_t tag = static_cast<uint8_t>(bytes[i++]);
    if (tag == 0x08) {
      uint64_t v = 0;
      int shift = 0;
      while (i < bytes.size()) {
        const uint8_t b = static_cast<uint8_t>(bytes[i++]);
        v |= uint64_t{b & 0x7fu} << shift;
        shift += 7;
        if ((b & 0x80) == 0) break;
      }
      return v <= 3 ? static_cast<HealthState>(v) : HealthState::kUnknown;
    }
    break;  // nothing else is defined in the message
  }
  return HealthState::kUnknown;  // an absent field is the default: UNKNOWN
}

}  // namespace

absl::StatusOr<HealthState> CheckHealth(const std::string& address, absl::Duration timeout,
                                        const std::string& service,
                                        std::shared_ptr<grpc::ChannelCredentials> creds,
                                        const std::string& token) {
  if (creds == nullptr) creds = grpc::InsecureChannelCredentials();
  auto channel = grpc::CreateChannel(address, creds);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  // HealthCheckRequest { string service = 1; }
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back(0x0a);
    size_t n = service.size();
    while (n >= 0x80) {
      request_bytes.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    request_bytes.push_back(static_cast<char>(n));
    request_bytes += service;
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return absl::Status(FromGrpc(status.error_code()),
                        absl::StrCat("health check of ", address, ": ", status.error_message()));
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return DecodeHealth(bytes);
}

absl::StatusOr<int> PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", std::strerror(err)));
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

CalibdProcess::CalibdProcess(CalibdProcessOptions options) : options_(std::move(options)) {}

CalibdProcess::~CalibdProcess() {
  if (pid_ > 0 && Running()) {
    (void)Terminate(absl::Seconds(10));
  }
}

std::string CalibdProcess::metrics_url() const {
  return absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics");
}

std::string CalibdProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::unique_ptr<CalibdProcess>> CalibdProcess::Start(CalibdProcessOptions options) {
  std::unique_ptr<CalibdProcess> p(new CalibdProcess(std::move(options)));
  p->dir_ = std::make_unique<TempDir>();
  p->log_path_ = p->dir_->File("calibd.log");
  if (p->options_.binary.empty()) {
    const char* env = std::getenv("CALIBD_BINARY");
    p->options_.binary = env != nullptr ? env : CALIBD_BINARY_DIR "/server/calibd";
  }
  if (access(p->options_.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("calibd binary ", p->options_.binary,
                                            " is missing: build the `calibd` target first"));
  }
  if (p->options_.store.empty()) p->options_.store = p->dir_->File("store");
  const bool fixed_ports = p->options_.port != 0;
  // A picked port can be taken by someone else before calibd binds it: try a few times.
  absl::Status last;
  for (int attempt = 0; attempt < (fixed_ports ? 1 : 4); ++attempt) {
    if (fixed_ports) {
      p->port_ = p->options_.port;
      p->metrics_port_ = p->options_.metrics_port;
    } else {
      absl::StatusOr<int> a = PickFreePort();
      if (!a.ok()) return a.status();
      absl::StatusOr<int> b = PickFreePort();
      for (int i = 0; b.ok() && *b == *a && i < 10; ++i) b = PickFreePort();
      if (!b.ok()) return b.status();
      p->port_ = *a;
      p->metrics_port_ = p->options_.metrics_port != 0 ? p->options_.metrics_port : *b;
    }
    p->address_ = absl::StrCat("127.0.0.1:", p->port_);
    last = p->Spawn();
    if (last.ok()) last = p->WaitServing(p->options_.startup_timeout);
    if (last.ok()) {
      // From now on Restart() reuses these ports.
      p->options_.port = p->port_;
      p->options_.metrics_port = p->metrics_port_;
      return p;
    }
    if (p->pid_ > 0) p->Kill();
  }
  return last;
}

absl::Status CalibdProcess::Spawn() {
  std::vector<std::string> args = {
      options_.binary,
      absl::StrCat("--listen=127.0.0.1:", port_),
      absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port_),
      absl::StrCat("--store=", options_.store),
  };
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& [k, v] : options_.env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("open ", log_path_, ": ", std::strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;
  exit_code_ = -1;
  return absl::OkStatus();
}

bool CalibdProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
  }
  return false;
}

absl::Status CalibdProcess::WaitServing(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::UnavailableError("not asked yet");
  while (absl::Now() < deadline) {
    if (!Running()) {
      return absl::InternalError(absl::StrCat("calibd exited with code ", exit_code_,
                                              " before serving; its log:\n", Tail(Log())));
    }
    absl::StatusOr<HealthState> h =
        CheckHealth(address_, absl::Seconds(2), "", options_.credentials, options_.token);
    if (h.ok() && *h == HealthState::kServing) return absl::OkStatus();
    last = h.ok() ? absl::UnavailableError(absl::StrCat("health ", static_cast<int>(*h)))
                  : h.status();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("calibd at ", address_, " not SERVING after ",
                                                  absl::FormatDuration(timeout), " (last: ",
                                                  last.ToString(), "); its log:\n", Tail(Log())));
}

absl::Status CalibdProcess::Signal(int signo) {
  if (pid_ <= 0) return absl::FailedPreconditionError("calibd is not running");
  if (kill(pid_, signo) != 0) {
    return absl::InternalError(absl::StrCat("kill ", pid_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> CalibdProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (Running()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("calibd (pid ", pid_, ") still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return exit_code_;
}

absl::StatusOr<int> CalibdProcess::Terminate(absl::Duration timeout) {
  if (!Running()) return exit_code_;
  (void)Signal(SIGTERM);
  absl::StatusOr<int> code = Wait(timeout);
  if (code.ok()) return code;
  Kill();
  return code.status();
}

void CalibdProcess::Kill() {
  if (!Running()) return;
  kill(pid_, SIGKILL);
  int status = 0;
  if (waitpid(pid_, &status, 0) == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_ = -1;
}

absl::Status CalibdProcess::Restart() {
  if (Running()) {
    absl::StatusOr<int> code = Terminate();
    if (!code.ok()) return code.status();
  }
  // The old socket may linger briefly; retry a few times on an early exit.
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    last = Spawn();
    if (!last.ok()) return last;
    last = WaitServing(options_.startup_timeout);
    if (last.ok()) return last;
    if (Running()) return last;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return last;
}

}  // namespace calibd::testing
