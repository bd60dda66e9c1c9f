// CalibdProcess: the real `calibd` binary started as a child process on a free 127.0.0.1 port
// with its own temporary store, for end-to-end and fault tests. Start() returns once the
// standard gRPC health service answers SERVING; the destructor stops the process (SIGTERM,
// then SIGKILL after a grace period) and removes the temporary store.
//
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start());
//   auto channel = grpc::CreateChannel(calibd->address(), grpc::InsecureChannelCredentials());
//   ...                                               // talk to it
//   calibd->Kill();                                   // SIGKILL, e.g. mid-upload
//   ASSERT_OK(calibd->Restart());                     // same port, same store
//   ASSERT_OK_AND_ASSIGN(int code, calibd->Terminate());   // SIGTERM, wait: the exit code
//
// The child's stdout and stderr go to log_path() (read it with Log() when a test fails); it
// gets SIGKILL if the test process dies (PR_SET_PDEATHSIG), so no server outlives its test.
// Health is checked with a hand-encoded grpc.health.v1 request over a generic stub, so this
// library does not depend on calibd's own proto.
//
// Thread safety: a CalibdProcess belongs to one test thread; CheckHealth() and PickFreePort()
// may be called from any thread.
#ifndef CALIBD_TESTS_TESTING_CALIBD_PROCESS_H_
#define CALIBD_TESTS_TESTING_CALIBD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/temp_dir.h"

namespace grpc {
class ChannelCredentials;
}

namespace calibd::testing {

struct CalibdProcessOptions {
  // The server binary; empty → ${CALIBD_BINARY_DIR}/server/calibd (env CALIBD_BINARY overrides).
  std::string binary;
  // --store: empty → "<temp dir>/store" (embedded store, removed with the process object).
  // May be a postgresql:// URL or a directory that outlives this object.
  std::string store;
  // 0 → a free port is picked. The gRPC port and the metrics port.
  int port = 0;
  int metrics_port = 0;
  // Further flags, e.g. {"--tokens=/tmp/t", "--max-frame-pixels=1000"}.
  std::vector<std::string> extra_args;
  // Extra environment variables for the child (the parent's environment is inherited).
  std::vector<std::pair<std::string, std::string>> env;
  // How long Start()/Restart() waits for SERVING.
  absl::Duration startup_timeout = absl::Seconds(60);
  // Credentials and bearer token for the health probe (defaults: insecure, no token).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string token;
};

enum class HealthState { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

// One grpc.health.v1.Health/Check call for `service` ("" = the whole server). Errors are the
// call's own (UNAVAILABLE when nothing listens, DEADLINE_EXCEEDED, ...).
absl::StatusOr<HealthState> CheckHealth(const std::string& address, absl::Duration timeout,
                                        const std::string& service = "",
                                        std::shared_ptr<grpc::ChannelCredentials> creds = nullptr,
                                        const std::string& token = "");

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
absl::StatusOr<int> PickFreePort();

class CalibdProcess {
 public:
  static absl::StatusOr<std::unique_ptr<CalibdProcess>> Start(CalibdProcessOptions options = {});
  ~CalibdProcess();
  CalibdProcess(const CalibdProcess&) = delete;
  CalibdProcess& operator=(const CalibdProcess&) = delete;

  // "127.0.0.1:<port>": what clients connect to (and what calibctl's --server takes).
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  std::string metrics_url() const;  // http://127.0.0.1:<metrics port>/metrics
  const std::string& store() const { return options_.store; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string Log() const;  // the child's output so far

  // True while the child has not exited (reaps it if it has).
  bool Running();
  // Polls health until SERVING or the timeout: DEADLINE_EXCEEDED with the log's tail, or
  // INTERNAL if the process exited meanwhile.
  absl::Status WaitServing(absl::Duration timeout);
  // Sends a signal (SIGTERM, SIGKILL, SIGSTOP, ...) without waiting.
  absl::Status Signal(int signo);
  // Waits for the child to exit: its exit code (128 + signal when killed); DEADLINE_EXCEEDED
  // if it is still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // SIGTERM and wait (SIGKILL after `timeout`): the exit code.
  absl::StatusOr<int> Terminate(absl::Duration timeout = absl::Seconds(30));
  // SIGKILL and reap.
  void Kill();
  // Starts the binary again with the same options, port and store; waits for SERVING.
  absl::Status Restart();

 private:
  explicit CalibdProcess(CalibdProcessOptions options);
  absl::Status Spawn();

  CalibdProcessOptions options_;
  std::unique_ptr<TempDir> dir_;
  std::string address_;
  std::string log_path_;
  int port_ = 0;
  int metrics_port_ = 0;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace calibd::testing

#endif  // CALIBD_TESTS_TESTING_CALIBD_PROCESS_H_
