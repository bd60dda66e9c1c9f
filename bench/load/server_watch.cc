#include "bench/load/server_watch.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace calibd::load {

using Clock = std::chrono::steady_clock;

ProcSample ReadProc(int pid) {
  ProcSample out;
  if (pid <= 0) return out;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the ")" that closes the command name: state is field 3; utime 14, stime 15.
    size_t close = line.rfind(')');
    if (close != std::string::npos) {
      std::vector<std::string> f = absl::StrSplit(line.substr(close + 2), ' ');
      uint64_t ut = 0, st = 0;
      if (f.size() > 13 && absl::SimpleAtoi(f[11], &ut) && absl::SimpleAtoi(f[12], &st)) {
        out.cpu_seconds = static_cast<double>(ut + st) / sysconf(_SC_CLK_TCK);
      }
    }
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  while (std::getline(status, line)) {
    int64_t kb = 0;
    auto value_kb = [&](absl::string_view prefix) {
      if (!absl::StartsWith(line, prefix)) return false;
      std::string rest(absl::StripAsciiWhitespace(line.substr(prefix.size())));
      rest = rest.substr(0, rest.find(' '));
      return absl::SimpleAtoi(rest, &kb);
    };
    if (value_kb("VmRSS:")) out.rss_mb = kb * 1024 / 1e6;
    if (value_kb("VmHWM:")) out.hwm_mb = kb * 1024 / 1e6;
  }
  return out;
}

RssSampler::RssSampler(int pid) : pid_(pid) {
  if (pid_ > 0) thread_ = std::thread([this] { Run(); });
}

RssSampler::~RssSampler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void RssSampler::Run() {
  while (!stop_) {
    double rss = ReadProc(pid_).rss_mb;
    double p = peak_.load();
    while (rss > p && !peak_.compare_exchange_weak(p, rss)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

HealthProber::HealthProber(const std::string& server) {
  channel_ = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  thread_ = std::thread([this] { Run(); });
}

void HealthProber::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void HealthProber::Run() {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  while (!stop_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    auto t0 = Clock::now();
    grpc::Status s = stub->Check(&ctx, req, &resp);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    ++checks;
    if (!s.ok() || resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) ++failures;
    max_ms = std::max(max_ms, ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace calibd::load
