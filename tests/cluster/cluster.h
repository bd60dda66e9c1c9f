// Cluster: a cluster in a box for tests — a real PostgreSQL (tests/testing/postgres_server, a
// private server so the test may stop and restart it), N real calibd replicas on one database
// of it (tests/testing/calibd_process, each on free 127.0.0.1 ports), optionally Debian's
// Prometheus scraping their metrics ports (prometheus_process.h).
//
//   ClusterOptions o;
//   o.prometheus_rules = ReplicaDownRuleForTest(absl::Seconds(2));
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cluster> c, Cluster::Start(o));
//   ClientOptions co;
//   co.server = c->Endpoints();              // "127.0.0.1:a,127.0.0.1:b,127.0.0.1:c"
//   c->replica(2).Kill();
//   ASSERT_OK(c->postgres().Restart());
//
// Replicas start one after the other (the first creates the schema). Their store probe runs
// every `store_check_seconds`, so readiness follows the database within that.
//
// Thread safety: a Cluster belongs to the test's main thread (the children die with the
// thread that started them: Restart() replicas from it).
#ifndef CALIBD_TESTS_CLUSTER_CLUSTER_H_
#define CALIBD_TESTS_CLUSTER_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/cluster/prometheus_process.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/postgres_server.h"

namespace calibd::cluster {

struct ClusterOptions {
  int replicas = 3;
  double store_check_seconds = 0.2;
  std::vector<std::string> extra_args;  // for every replica
  // Non-empty: start Prometheus with this rule file scraping every replica.
  std::string prometheus_rules;
};

class Cluster {
 public:
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const ClusterOptions& options);

  testing::PostgresServer& postgres() { return *postgres_; }
  const std::string& store_url() const { return url_; }
  int size() const { return static_cast<int>(replicas_.size()); }
  testing::CalibdProcess& replica(int i) { return *replicas_[i]; }
  // Every replica's gRPC address, comma-separated: a client's endpoint list.
  std::string Endpoints() const;
  // "127.0.0.1:<metrics port>" of replica i: its Prometheus `instance` label.
  std::string MetricsTarget(int i) const;
  PrometheusProcess* prometheus() { return prometheus_.get(); }
  // The replicas' logs (for failure messages).
  std::string Logs() const;

 private:
  Cluster() = default;

  std::unique_ptr<testing::PostgresServer> postgres_;
  std::string url_;
  std::vector<std::unique_ptr<testing::CalibdProcess>> replicas_;
  std::unique_ptr<PrometheusProcess> prometheus_;
};

// deploy/monitoring/calibd-rules.yaml as it is, but for the `for:` of CalibdReplicaDown, set
// to `hold` (the rule's own 2 minutes would make the test wait that long). INTERNAL when the
// file or the rule is not found.
absl::StatusOr<std::string> ReplicaDownRuleForTest(absl::Duration hold);

}  // namespace calibd::cluster

#endif  // CALIBD_TESTS_CLUSTER_CLUSTER_H_
