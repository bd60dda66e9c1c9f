// The cluster in a box (ctest label `cluster`): a real PostgreSQL, three calibd replicas on
// one database of it, Debian's Prometheus scraping them, and the C++ client library (an
// endpoint list balanced round-robin, its retry policy: broken streams re-sent by
// CalibdClient::Calibrate, per-frame UNAVAILABLE re-sent by CalibrateWithRetries) spreading
// 60 sample frames over six concurrent streams.
//   - a replica SIGKILLed mid-batch: every frame calibrated exactly once, every plane
//     byte-identical to a single-node run, retries > 0; Prometheus had all three targets up
//     and fires CalibdReplicaDown (the rule file's own expression, `for:` shortened);
//   - PostgreSQL stopped and restarted mid-batch: readiness NOT_SERVING on every replica
//     while it is down and SERVING again within seconds, liveness SERVING throughout,
//     calibd_store_up 0 then 1, a direct call UNAVAILABLE without SQL in its message, and
//     the batch complete and identical within the retry budget;
//   - a master built and certified through one replica is what the others select on their
//     very next call (no wait: selection reads the shared catalog per frame, and the master
//     cache is keyed by content, so it cannot serve a superseded version).
// Figures (retries, time to readiness, alert latency) are printed as "cluster: ..." lines.
#include "tests/cluster/cluster.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/convert.h"
#include "client/retry.h"
#include "client/samples.h"
#include "core/status/status_matchers.h"
#include "core/store/detector.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace calibd::cluster {
namespace {

namespace v1 = ::calibd::v1;

using ::calibd::client::CalibdClient;
using ::calibd::client::CalibrateOptions;
using ::calibd::client::CalibrateResult;
using ::calibd::client::CalibrateRetryReport;
using ::calibd::client::ClientOptions;
using ::calibd::client::FrameRetryPolicy;
using ::calibd::testing::CheckHealth;
using ::calibd::testing::HealthState;
using ::calibd::testing::StatusIs;
using ::calibd::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kFrames = 60;
constexpr int kStreams = 6;

// One frame's outcome: its status, every plane's bytes, the bias version applied.
struct Outcome {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  std::string data, variance, dq;
  int64_t bias_version = 0;
};
using Outcomes = std::map<std::string, Outcome>;

template <typename T>
std::string Bytes(const Image<T>& image) {
  return std::string(reinterpret_cast<const char*>(image.data()),
                     sizeof(T) * size_t(image.width()) * size_t(image.height()));
}

class ClusterTest : public ::testing::Test {
 protected:
  void StartCluster(const ClusterOptions& options) {
    client::SampleOptions o;
    o.data_width = 64;
    o.height = 48;
    o.overscan_width = 8;
    o.n_bias = 4;
    o.n_dark = 3;
    o.n_flat = 3;
    o.n_light = kFrames;
    o.stars = 4;
    o.cosmic_rays = 2;
    ASSERT_OK_AND_ASSIGN(samples_, client::MakeSamples(dir_.File("night"), o));
    std::ifstream in(samples_.spec_path);
    std::stringstream ss;
    ss << in.rdbuf();
    ASSERT_OK_AND_ASSIGN(spec_, store::DetectorSpecFromJson(ss.str()));
    ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, samples_.certify_from, &certify_from_, nullptr))
        << samples_.certify_from;
    ASSERT_OK_AND_ASSIGN(cluster_, Cluster::Start(options));
    admin_ = Connect(cluster_->replica(0).address());
    ASSERT_NE(admin_, nullptr);
    ASSERT_OK(admin_->PutDetector(client::DetectorSpecToProto(spec_)).status());
    bias_v1_ = Build("bias", {samples_.bias[0], samples_.bias[1], samples_.bias[2]}, true);
    Build("dark", samples_.dark, true);
    Build("flat", samples_.flat, true);
    options_.detector = spec_.name;  // the default recipe: overscan, trim, bias, dark, flat
  }

  std::unique_ptr<CalibdClient> Connect(const std::string& server, int attempts = 8) {
    ClientOptions co;
    co.server = server;
    co.max_attempts = attempts;
    co.retry_backoff = absl::Milliseconds(100);
    co.timeout = absl::Seconds(20);
    co.stream_timeout = absl::Seconds(60);
    absl::StatusOr<std::unique_ptr<CalibdClient>> c = CalibdClient::Connect(co);
    EXPECT_OK(c.status());
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Builds a master through replica 0 (admin_); certified from the night's start if asked.
  int64_t Build(const std::string& kind, const std::vector<std::string>& paths, bool certify) {
    v1::BuildOptions b;
    b.set_detector(spec_.name);
    b.set_kind(kind);
    if (certify) {
      b.mutable_certify_begin()->set_seconds(absl::ToUnixSeconds(certify_from_));
      b.set_certify_replace(true);
    }
    absl::StatusOr<v1::BuildMasterResponse> r = admin_->BuildMaster(b, paths);
    EXPECT_OK(r.status()) << kind << "\n" << cluster_->Logs();
    return r.ok() ? r->version().version() : 0;
  }

  static Outcome ToOutcome(const CalibrateResult& r) {
    Outcome o;
    o.code = r.status.code();
    if (!r.status.ok()) return o;
    o.data = Bytes(r.frame.data);
    o.variance = Bytes(r.frame.variance);
    o.dq = Bytes(r.frame.dq);
    for (const v1::AppliedMaster& m : r.header.masters()) {
      if (m.kind() == "bias") o.bias_version = m.version();
    }
    return o;
  }

  // The single-node run: every light through replica `i` alone, one stream.
  Outcomes Reference(int i) {
    std::unique_ptr<CalibdClient> c = Connect(cluster_->replica(i).address());
    Outcomes out;
    if (c == nullptr) return out;
    EXPECT_OK(c->Calibrate(samples_.light, options_, [&](CalibrateResult r) {
      EXPECT_OK(r.status) << r.path;
      out[r.path] = ToOutcome(r);
    }));
    EXPECT_EQ(out.size(), samples_.light.size());
    return out;
  }

  // The batch: kStreams concurrent CalibrateWithRetries over `client` (round-robin puts each
  // stream on a replica), each sender pausing `pace` per frame so the batch is still running
  // when the test breaks something. `delivered` counts results as they arrive.
  struct Batch {
    Outcomes outcomes;
    std::vector<std::string> duplicates;  // paths delivered more than once
    CalibrateRetryReport report;          // summed over the streams
    absl::Status status;                  // the first non-OK stream status
  };
  Batch RunBatch(CalibdClient& client, absl::Duration pace, std::atomic<int>* delivered,
                 const FrameRetryPolicy& policy) {
    Batch batch;
    absl::Mutex mu;
    std::vector<std::thread> threads;
    for (int s = 0; s < kStreams; ++s) {
      threads.emplace_back([&, s] {
        std::vector<std::string> paths;
        for (int i = s; i < kFrames; i += kStreams) paths.push_back(samples_.light[i]);
        CalibrateOptions o = options_;
        o.progress = [pace](int64_t, int64_t) { absl::SleepFor(pace); };
        CalibrateRetryReport rep;
        absl::Status st = client::CalibrateWithRetries(
            client, paths, o,
            [&](CalibrateResult r) {
              Outcome out = ToOutcome(r);
              absl::MutexLock lock(&mu);
              if (!batch.outcomes.emplace(r.path, std::move(out)).second) {
                batch.duplicates.push_back(r.path);
              }
              if (delivered != nullptr) ++*delivered;
            },
            policy, &rep);
        absl::MutexLock lock(&mu);
        if (batch.status.ok()) batch.status = st;
        batch.report.rounds = std::max(batch.report.rounds, rep.rounds);
        batch.report.frames_retried += rep.frames_retried;
        batch.report.frames_failed += rep.frames_failed;
        batch.report.stats.streams += rep.stats.streams;
        batch.report.stats.frames_resent += rep.stats.frames_resent;
      });
    }
    for (std::thread& t : threads) t.join();
    return batch;
  }

  // Every light exactly once, OK, every plane identical to the reference.
  void ExpectSameAsReference(const Batch& batch, const Outcomes& reference) {
    EXPECT_THAT(batch.duplicates, ::testing::IsEmpty()) << "a frame delivered twice";
    ASSERT_EQ(batch.outcomes.size(), reference.size()) << "every frame once";
    int identical = 0;
    for (const auto& [path, want] : reference) {
      auto it = batch.outcomes.find(path);
      ASSERT_NE(it, batch.outcomes.end()) << path;
      EXPECT_EQ(it->second.code, absl::StatusCode::kOk) << path;
      if (it->second.code != absl::StatusCode::kOk) continue;
      const bool same = it->second.data == want.data && it->second.variance == want.variance &&
                        it->second.dq == want.dq;
      EXPECT_TRUE(same) << "planes differ from the single-node run: " << path;
      identical += same;
    }
    EXPECT_EQ(identical, kFrames);
  }

  // A fresh channel sends its first calls to whichever replica connected first; round-robin
  // spreads calls only over the subchannels that are READY. Unary calls until each replica has
  // served one: then all three are READY and the batch's streams spread over them.
  void WarmUp(CalibdClient& client) {
    double base[3];
    for (int i = 0; i < 3; ++i) base[i] = Counter(i, "calibd_rpcs_total", "ListDetectors");
    for (absl::Time until = absl::Now() + absl::Seconds(10); absl::Now() < until;) {
      EXPECT_OK(client.ListDetectors().status());
      bool all = true;
      for (int i = 0; i < 3; ++i) {
        all = all && Counter(i, "calibd_rpcs_total", "ListDetectors") > base[i];
      }
      if (all) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "the client's calls never reached all three replicas";
  }
  double Counter(int replica, const std::string& name, const std::string& filter) {
    absl::StatusOr<std::string> m = HttpGet(cluster_->replica(replica).metrics_port(), "/metrics");
    if (!m.ok()) return -1;
    absl::StatusOr<double> v = SumSamples(*m, name, filter);
    return v.ok() ? *v : 0;
  }
  double FramesCalibrated(int replica) {
    absl::StatusOr<std::string> m = HttpGet(cluster_->replica(replica).metrics_port(), "/metrics");
    if (!m.ok()) return -1;
    absl::StatusOr<double> v = SumSamples(*m, "calibd_frames_calibrated_total");
    return v.ok() ? *v : 0;
  }
  double StoreUp(int replica) {
    absl::StatusOr<std::string> m = HttpGet(cluster_->replica(replica).metrics_port(), "/metrics");
    if (!m.ok()) return -1;
    absl::StatusOr<double> v = SumSamples(*m, "calibd_store_up");
    return v.ok() ? *v : -1;
  }
  HealthState Health(int replica, const std::string& service) {
    absl::StatusOr<HealthState> h =
        CheckHealth(cluster_->replica(replica).address(), absl::Seconds(2), service);
    return h.ok() ? *h : HealthState::kUnknown;
  }

  TempDir dir_;
  client::SampleSet samples_;
  store::DetectorSpec spec_;
  absl::Time certify_from_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<CalibdClient> admin_;
  CalibrateOptions options_;
  int64_t bias_v1_ = 0;
};

// Field access on a parsed JSON document ("" when missing).
const google::protobuf::Value& Field(const google::protobuf::Value& v, const std::string& key) {
  static const google::protobuf::Value kNull;
  const auto& f = v.struct_value().fields();
  auto it = f.find(key);
  return it == f.end() ? kNull : it->second;
}

// instance → health of the `calibd` job's active targets.
std::map<std::string, std::string> TargetHealth(const PrometheusProcess& prom) {
  std::map<std::string, std::string> out;
  absl::StatusOr<google::protobuf::Value> v = prom.Api("/api/v1/targets?state=active");
  if (!v.ok()) return out;
  for (const auto& t : Field(Field(*v, "data"), "activeTargets").list_value().values()) {
    const auto& labels = Field(t, "labels");
    if (Field(labels, "job").string_value() != "calibd") continue;
    out[Field(labels, "instance").string_value()] = Field(t, "health").string_value();
  }
  return out;
}

// The state ("pending", "firing") of `alert` for `instance`; "" when there is none.
std::string AlertState(const PrometheusProcess& prom, const std::string& alert,
                       const std::string& instance) {
  absl::StatusOr<google::protobuf::Value> v = prom.Api("/api/v1/alerts");
  if (!v.ok()) return "";
  for (const auto& a : Field(Field(*v, "data"), "alerts").list_value().values()) {
    const auto& labels = Field(a, "labels");
    if (Field(labels, "alertname").string_value() == alert &&
        Field(labels, "instance").string_value() == instance) {
      return Field(a, "state").string_value();
    }
  }
  return "";
}

TEST_F(ClusterTest, ReplicaKilledMidBatchCostsRetriesNotFramesAndTheAlertFires) {
  ClusterOptions co;
  ASSERT_OK_AND_ASSIGN(co.prometheus_rules, ReplicaDownRuleForTest(absl::Seconds(2)));
  ASSERT_NO_FATAL_FAILURE(StartCluster(co));
  PrometheusProcess& prom = *cluster_->prometheus();

  // Prometheus scrapes all three replicas.
  std::map<std::string, std::string> health;
  for (absl::Time until = absl::Now() + absl::Seconds(20); absl::Now() < until;) {
    health = TargetHealth(prom);
    if (health.size() == 3 &&
        std::all_of(health.begin(), health.end(), [](const auto& h) { return h.second == "up"; })) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(health.size(), 3u) << prom.Log();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(health[cluster_->MetricsTarget(i)], "up") << i;

  const Outcomes reference = Reference(0);
  ASSERT_EQ(reference.size(), static_cast<size_t>(kFrames));
  const double before[3] = {FramesCalibrated(0), FramesCalibrated(1), FramesCalibrated(2)};

  // The batch over all three; replica 2 is SIGKILLed once it has calibrated two frames, with
  // its two streams' other frames still to come.
  std::unique_ptr<CalibdClient> client = Connect(cluster_->Endpoints());
  ASSERT_NE(client, nullptr);
  ASSERT_NO_FATAL_FAILURE(WarmUp(*client));
  std::atomic<int> delivered{0};
  Batch batch;
  std::thread runner(
      [&] { batch = RunBatch(*client, absl::Milliseconds(25), &delivered, FrameRetryPolicy{}); });
  bool killed = false;
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until;) {
    if (FramesCalibrated(2) - before[2] >= 2) {
      cluster_->replica(2).Kill();
      killed = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  const absl::Time killed_at = absl::Now();
  const int delivered_at_kill = delivered.load();
  runner.join();
  ASSERT_TRUE(killed) << "replica 2 never calibrated two frames";
  EXPECT_LT(delivered_at_kill, kFrames) << "the kill came after the batch";

  ASSERT_OK(batch.status) << cluster_->Logs();
  ASSERT_NO_FATAL_FAILURE(ExpectSameAsReference(batch, reference));
  // The live replicas calibrated the rest: both got frames (round-robin), the replica-2
  // frames cut off by the kill were re-sent to them.
  const double a = FramesCalibrated(0) - before[0], b = FramesCalibrated(1) - before[1];
  EXPECT_GT(a, 0);
  EXPECT_GT(b, 0);
  EXPECT_GE(a + b, kFrames - 20 + 1) << "replica 2 calibrated at most its 20 frames' worth";
  EXPECT_GT(batch.report.stats.frames_resent, 0) << "the killed replica's streams re-sent";
  EXPECT_GT(client->retries(), 0);
  EXPECT_EQ(client->retries(), batch.report.stats.frames_resent);
  std::cout << "cluster: SIGKILL mid-batch: " << delivered_at_kill << "/" << kFrames
            << " results before the kill; " << batch.report.stats.frames_resent
            << " frames re-sent on " << batch.report.stats.streams << " streams (6 first), "
            << batch.report.frames_retried << " per-frame retries; all " << kFrames
            << " identical to the single-node run\n";

  // The dead replica's alert: the rule file's expression, `for: 2s` instead of 2m.
  std::string state;
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until;) {
    state = AlertState(prom, "CalibdReplicaDown", cluster_->MetricsTarget(2));
    if (state == "firing") break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(state, "firing") << prom.Log();
  std::cout << "cluster: CalibdReplicaDown firing "
            << absl::ToDoubleSeconds(absl::Now() - killed_at)
            << " s after the kill (scrape 1 s, for: 2s)\n";
  EXPECT_EQ(TargetHealth(prom)[cluster_->MetricsTarget(2)], "down");
  EXPECT_EQ(AlertState(prom, "CalibdReplicaDown", cluster_->MetricsTarget(0)), "");
}

TEST_F(ClusterTest, PostgresRestartedMidBatchFlipsReadinessAndCostsNoFrames) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(ClusterOptions{}));
  const Outcomes reference = Reference(0);
  ASSERT_EQ(reference.size(), static_cast<size_t>(kFrames));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Health(i, ""), HealthState::kServing);
    EXPECT_EQ(StoreUp(i), 1);
  }

  std::unique_ptr<CalibdClient> client = Connect(cluster_->Endpoints());
  ASSERT_NE(client, nullptr);
  ASSERT_NO_FATAL_FAILURE(WarmUp(*client));
  std::atomic<int> delivered{0};
  Batch batch;
  FrameRetryPolicy policy;
  policy.max_attempts = 8;  // rounds: 0.2 + 0.4 + 0.8 + 1.6 + 2 + 2 + 2 s of backoff
  std::thread runner(
      [&] { batch = RunBatch(*client, absl::Milliseconds(40), &delivered, policy); });
  for (absl::Time until = absl::Now() + absl::Seconds(30);
       delivered.load() < 6 && absl::Now() < until;) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  const int delivered_at_stop = delivered.load();
  bool live = true;  // liveness SERVING at every look
  auto all = [&](const std::string& service, HealthState want) {
    bool ok = true;
    for (int i = 0; i < 3; ++i) {
      ok = ok && Health(i, service) == want;
      live = live && Health(i, "liveness") == HealthState::kServing;
    }
    return ok;
  };

  ASSERT_OK(cluster_->postgres().Stop());
  const absl::Time stopped = absl::Now();
  bool not_ready = false;
  while (!(not_ready = all("readiness", HealthState::kNotServing)) &&
         absl::Now() < stopped + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration to_not_ready = absl::Now() - stopped;
  EXPECT_TRUE(not_ready) << "readiness still SERVING with the store down\n" << cluster_->Logs();
  EXPECT_TRUE(all("", HealthState::kNotServing));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(StoreUp(i), 0) << i;
  {  // A direct call while the store is down: UNAVAILABLE, a sentence, no SQL, no URL.
    std::unique_ptr<CalibdClient> once = Connect(cluster_->replica(1).address(), 1);
    ASSERT_NE(once, nullptr);
    absl::StatusOr<v1::ListDetectorsResponse> r = once->ListDetectors();
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_THAT(std::string(r.status().message()),
                Not(::testing::AnyOf(HasSubstr("SELECT"), HasSubstr("postgresql://"),
                                     HasSubstr("127.0.0.1"))));
  }
  absl::SleepFor(absl::Milliseconds(500));  // frames keep arriving at a storeless cluster
  const absl::Duration down = absl::Now() - stopped;
  ASSERT_OK(cluster_->postgres().Restart());
  const absl::Time restarted = absl::Now();
  bool ready = false;
  while (!(ready = all("readiness", HealthState::kServing)) &&
         absl::Now() < restarted + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration to_ready = absl::Now() - restarted;
  EXPECT_TRUE(ready) << "readiness not back within 10 s\n" << cluster_->Logs();
  EXPECT_LT(to_ready, absl::Seconds(5));
  EXPECT_TRUE(all("", HealthState::kServing));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(StoreUp(i), 1) << i;
  runner.join();
  EXPECT_TRUE(live) << "liveness left SERVING";

  ASSERT_OK(batch.status) << cluster_->Logs();
  ASSERT_NO_FATAL_FAILURE(ExpectSameAsReference(batch, reference));
  EXPECT_EQ(batch.report.frames_failed, 0);
  // The outage hit frames in flight (the senders pace 40 ms a frame, 10 frames a stream):
  // they came back UNAVAILABLE and were sent again.
  EXPECT_GT(batch.report.frames_retried + batch.report.stats.frames_resent, 0);
  EXPECT_LT(delivered_at_stop, kFrames) << "the outage came after the batch";
  std::cout << "cluster: PostgreSQL down " << absl::ToDoubleSeconds(down) << " s with "
            << delivered_at_stop << "/" << kFrames << " results in: readiness NOT_SERVING on all "
            << "3 after " << absl::ToDoubleSeconds(to_not_ready) << " s, SERVING again "
            << absl::ToDoubleSeconds(to_ready) << " s after the restart; "
            << batch.report.frames_retried << " per-frame UNAVAILABLE retried, "
            << batch.report.stats.frames_resent << " re-sent after broken streams, "
            << batch.report.rounds << " rounds at most; all " << kFrames << " identical\n";
}

TEST_F(ClusterTest, MasterCertifiedThroughOneReplicaIsSelectedByTheOthersAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(ClusterOptions{}));
  std::vector<std::unique_ptr<CalibdClient>> at;
  for (int i = 0; i < 3; ++i) {
    at.push_back(Connect(cluster_->replica(i).address()));
    ASSERT_NE(at.back(), nullptr);
  }
  const std::vector<std::string> one = {samples_.light[0]};
  auto bias_on = [&](int i) {
    int64_t v = -1;
    EXPECT_OK(at[i]->Calibrate(one, options_, [&](CalibrateResult r) {
      EXPECT_OK(r.status);
      v = ToOutcome(r).bias_version;
    }));
    return v;
  };
  // Every replica applies v1 (and has it in its master cache).
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bias_on(i), bias_v1_) << i;

  // A new bias from other frames, stored through replica 0, then certified through it over
  // the same interval (replacing v1).
  const int64_t v2 = Build("bias", {samples_.bias[1], samples_.bias[2], samples_.bias[3]}, false);
  ASSERT_GT(v2, bias_v1_);
  for (int i = 1; i < 3; ++i) EXPECT_EQ(bias_on(i), bias_v1_) << "stored, not yet certified";
  v1::CertifyRequest cert;
  cert.set_detector(spec_.name);
  cert.set_kind("bias");
  cert.set_version(v2);
  cert.mutable_begin()->set_seconds(absl::ToUnixSeconds(certify_from_));
  cert.set_replace(true);
  ASSERT_OK(at[0]->Certify(cert).status());
  const absl::Time certified = absl::Now();
  // The very next call on each other replica, no wait: the bound is zero.
  EXPECT_EQ(bias_on(1), v2);
  EXPECT_EQ(bias_on(2), v2);
  std::cout << "cluster: bias v" << v2 << " certified through replica 0 applied by replicas 1 "
            << "and 2 on their next call, " << absl::ToDoubleMilliseconds(absl::Now() - certified)
            << " ms after Certify returned\n";
}

}  // namespace
}  // namespace calibd::cluster
