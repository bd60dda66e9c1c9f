// PrometheusProcess: Debian's `prometheus` binary as a child process for the cluster test — a
// generated configuration scraping the given calibd metrics targets (job `calibd`, as
// docker/prometheus.yml names it) every second, a rule file, its TSDB in a temporary
// directory, its web API on a free 127.0.0.1 port. Start() returns once /-/ready answers 200.
// Also HttpGet (plain HTTP/1.0 GET on 127.0.0.1) and JSON parsing into google.protobuf.Value
// (protobuf's own JSON parser), for Prometheus's HTTP API and calibd's /metrics.
//
//   ASSERT_OK_AND_ASSIGN(auto prom, PrometheusProcess::Start({"127.0.0.1:9464"}, rules_yaml));
//   ASSERT_OK_AND_ASSIGN(google::protobuf::Value targets, prom->Api("/api/v1/targets"));
//
// The child gets SIGKILL when the thread that started it dies (PR_SET_PDEATHSIG); the
// destructor stops it (SIGTERM, SIGKILL after 5 s) and removes its directory.
//
// Thread safety: a PrometheusProcess belongs to one thread; Api() and HttpGet() may be
// called from any thread.
#ifndef CALIBD_TESTS_CLUSTER_PROMETHEUS_PROCESS_H_
#define CALIBD_TESTS_CLUSTER_PROMETHEUS_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "tests/testing/temp_dir.h"

namespace calibd::cluster {

// GET http://127.0.0.1:<port><path>: the body of a 200 answer; UNAVAILABLE when nothing
// listens, INTERNAL for another status.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// A JSON document as a google.protobuf.Value; INVALID_ARGUMENT when it does not parse.
absl::StatusOr<google::protobuf::Value> ParseJson(const std::string& json);

// The sum of every sample of the metric `name` in a Prometheus text exposition whose line
// contains `filter` (e.g. `method="ListDetectors"`; "" = any labels); NOT_FOUND when none.
absl::StatusOr<double> SumSamples(const std::string& exposition, const std::string& name,
                                  const std::string& filter = "");

class PrometheusProcess {
 public:
  // `targets`: "127.0.0.1:<metrics port>" each; `rules_yaml`: the text of one rule file.
  static absl::StatusOr<std::unique_ptr<PrometheusProcess>> Start(
      const std::vector<std::string>& targets, const std::string& rules_yaml,
      absl::Duration timeout = absl::Seconds(30));
  ~PrometheusProcess();
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  int port() const { return port_; }
  // GET of an HTTP API path, parsed; FAILED_PRECONDITION when its "status" is not "success".
  absl::StatusOr<google::protobuf::Value> Api(const std::string& path) const;
  std::string Log() const;

 private:
  PrometheusProcess() = default;

  std::unique_ptr<testing::TempDir> dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace calibd::cluster

#endif  // CALIBD_TESTS_CLUSTER_PROMETHEUS_PROCESS_H_
