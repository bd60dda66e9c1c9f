#include "tests/cluster/cluster.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace calibd::cluster {

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options) {
  std::unique_ptr<Cluster> c(new Cluster());
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> pg = testing::PostgresServer::Start();
  if (!pg.ok()) return pg.status();
  c->postgres_ = *std::move(pg);
  absl::StatusOr<std::string> url = c->postgres_->CreateDatabase("cluster");
  if (!url.ok()) return url.status();
  c->url_ = *url;
  for (int i = 0; i < options.replicas; ++i) {
    testing::CalibdProcessOptions o;
    o.store = c->url_;
    o.extra_args = {absl::StrCat("--store-check-seconds=", options.store_check_seconds),
                    "--workers=1", "--cache-bytes=67108864", "--buffer-pool-bytes=33554432",
                    "--grace-seconds=2"};
    o.extra_args.insert(o.extra_args.end(), options.extra_args.begin(), options.extra_args.end());
    absl::StatusOr<std::unique_ptr<testing::CalibdProcess>> r = testing::CalibdProcess::Start(o);
    if (!r.ok()) return r.status();
    c->replicas_.push_back(*std::move(r));
  }
  if (!options.prometheus_rules.empty()) {
    std::vector<std::string> targets;
    for (int i = 0; i < c->size(); ++i) targets.push_back(c->MetricsTarget(i));
    absl::StatusOr<std::unique_ptr<PrometheusProcess>> p =
        PrometheusProcess::Start(targets, options.prometheus_rules);
    if (!p.ok()) return p.status();
    c->prometheus_ = *std::move(p);
  }
  return c;
}

std::string Cluster::Endpoints() const {
  std::vector<std::string> a;
  for (const auto& r : replicas_) a.push_back(r->address());
  return absl::StrJoin(a, ",");
}

std::string Cluster::MetricsTarget(int i) const {
  return absl::StrCat("127.0.0.1:", replicas_[i]->metrics_port());
}

std::string Cluster::Logs() const {
  std::string out;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    std::string log = replicas_[i]->Log();
    if (log.size() > 3000) log = log.substr(log.size() - 3000);
    absl::StrAppend(&out, "--- replica ", i, " ---\n", log, "\n");
  }
  return out;
}

absl::StatusOr<std::string> ReplicaDownRuleForTest(absl::Duration hold) {
  const std::string path = absl::StrCat(CALIBD_SOURCE_DIR, "/deploy/monitoring/calibd-rules.yaml");
  std::ifstream in(path);
  if (!in) return absl::InternalError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const size_t alert = text.find("alert: CalibdReplicaDown");
  if (alert == std::string::npos) return absl::InternalError("no CalibdReplicaDown rule");
  const size_t next_alert = text.find("alert:", alert + 1);
  const size_t for_key = text.find("for: ", alert);
  if (for_key == std::string::npos || for_key > next_alert) {
    return absl::InternalError("CalibdReplicaDown has no `for:`");
  }
  const size_t end = text.find('\n', for_key);
  text.replace(for_key, end - for_key,
               absl::StrCat("for: ", absl::ToInt64Milliseconds(hold), "ms"));
  return text;
}

}  // namespace calibd::cluster
