// What calibd_load watches on the server while it loads it: the process's CPU time and
// resident memory from /proc (ReadProc, and RssSampler's peak sampled every 50 ms), and health
// answers (HealthProber: grpc.health.v1 Check every 200 ms on a channel of its own, as a
// kubelet probe would).
//
//   RssSampler rss(pid);
//   HealthProber health("127.0.0.1:50051");
//   ...                                   // the load
//   health.Stop();
//   double peak_mb = rss.Peak();          // MB = 1e6 bytes
//   int failed = health.failures;
//
// Thread safety: each object belongs to the thread that made it; its own thread samples.
#ifndef CALIBD_BENCH_LOAD_SERVER_WATCH_H_
#define CALIBD_BENCH_LOAD_SERVER_WATCH_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/grpcpp.h"

namespace calibd::load {

struct ProcSample {
  double cpu_seconds = 0;  // utime + stime
  double rss_mb = 0;
  double hwm_mb = 0;  // VmHWM: peak RSS since start
};

// /proc/<pid>/stat and status; zeros when pid <= 0 or unreadable.
ProcSample ReadProc(int pid);

// Samples the server's RSS every 50 ms while alive; Peak() is the largest seen.
class RssSampler {
 public:
  explicit RssSampler(int pid);
  ~RssSampler();
  double Peak() const { return peak_.load(); }

 private:
  void Run();
  int pid_;
  std::atomic<bool> stop_{false};
  std::atomic<double> peak_{0};
  std::thread thread_;
};

// grpc.health.v1 Check every 200 ms, 2 s deadline, until Stop(): how many, how many failed
// (an error or not SERVING), the slowest answer. Read the counts after Stop().
class HealthProber {
 public:
  explicit HealthProber(const std::string& server);
  ~HealthProber() { Stop(); }
  void Stop();
  int checks = 0, failures = 0;
  double max_ms = 0;

 private:
  void Run();
  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace calibd::load

#endif  // CALIBD_BENCH_LOAD_SERVER_WATCH_H_
