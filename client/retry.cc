#include "client/retry.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace calibd::client {

absl::Status CalibrateWithRetries(CalibdClient& client, const std::vector<std::string>& paths,
                                  const CalibrateOptions& options,
                                  const std::function<void(CalibrateResult)>& on_result,
                                  const FrameRetryPolicy& policy, CalibrateRetryReport* report) {
  CalibrateRetryReport local;
  CalibrateRetryReport& rep = report != nullptr ? *report : local;
  const int attempts = std::max(1, policy.max_attempts);
  std::vector<std::string> todo = paths;
  absl::Duration backoff = policy.backoff;
  absl::Status last = absl::OkStatus();
  int64_t unavailable = 0;  // frames delivered UNAVAILABLE (in the last round only)
  for (int round = 1; !todo.empty(); ++round) {
    const bool final_round = round >= attempts;
    std::vector<std::string> again;
    CalibrateOptions o = options;
    CalibrateStats stats;
    o.stats = &stats;
    o.progress = RoundProgress(options.progress, paths, todo);  // the batch's, every round
    ++rep.rounds;
    last = client.Calibrate(todo, o, [&](CalibrateResult r) {
      if (r.status.code() == absl::StatusCode::kUnavailable && !final_round) {
        again.push_back(r.path);
        return;
      }
      if (!r.status.ok()) ++rep.frames_failed;
      if (r.status.code() == absl::StatusCode::kUnavailable) ++unavailable;
      on_result(std::move(r));
    });
    rep.stats.read_seconds += stats.read_seconds;
    rep.stats.send_seconds += stats.send_seconds;
    rep.stats.receive_seconds += stats.receive_seconds;
    rep.stats.deliver_seconds += stats.deliver_seconds;
    rep.stats.frames += stats.frames;
    rep.stats.bytes_sent += stats.bytes_sent;
    rep.stats.bytes_received += stats.bytes_received;
    rep.stats.streams += stats.streams;
    rep.stats.frames_resent += stats.frames_resent;
    if (again.empty()) break;
    rep.frames_retried += static_cast<int64_t>(again.size());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, policy.max_backoff);
    todo = std::move(again);
  }
  if (unavailable == 0) return absl::OkStatus();
  return last.code() == absl::StatusCode::kUnavailable
             ? last
             : absl::UnavailableError(
                   "frames were still UNAVAILABLE after the last round of retries");
}

}  // namespace calibd::client
