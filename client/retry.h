// CalibrateWithRetries: CalibdClient::Calibrate plus the retry of single frames whose result
// is UNAVAILABLE — what a batch needs to ride out a store outage. CalibdClient::Calibrate
// already re-sends the frames of a stream that broke (a replica died); but when the replica
// lives and its store does not (PostgreSQL restarting, failing over), the stream carries on
// and the frames it could not select masters for come back one by one with UNAVAILABLE. Those
// are sent again here, in rounds, `backoff` apart (doubling up to `max_backoff`), up to
// `max_attempts` rounds in all; calibrating a frame changes nothing on the server, so sending
// it again is safe. A frame still UNAVAILABLE after the last round is delivered as it is.
//
//   CalibrateRetryReport report;
//   absl::Status s = CalibrateWithRetries(*client, paths, options,
//                                         [&](CalibrateResult r) { ... }, {}, &report);
//   // report.frames_retried: per-frame UNAVAILABLE results sent again;
//   // report.stats.frames_resent (and client->retries()): frames re-sent after a broken
//   // stream.
//
// Every path gets exactly one on_result: OK, a per-frame failure other than UNAVAILABLE (at
// once; never retried), or UNAVAILABLE after the last round. Results come in path order
// within a round; retried frames come after the others. Returns OK when no frame ended
// UNAVAILABLE, else UNAVAILABLE (the last round's status when the stream itself failed).
//
// Thread safety: as CalibdClient::Calibrate (on_result runs on the calling thread); several
// batches may run on one client at once (round-robin spreads their streams over replicas).
#ifndef CALIBD_CLIENT_RETRY_H_
#define CALIBD_CLIENT_RETRY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace calibd::client {

struct FrameRetryPolicy {
  int max_attempts = 5;  // rounds in all (1 = no per-frame retry)
  absl::Duration backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(2);
};

struct CalibrateRetryReport {
  int rounds = 0;              // Calibrate calls made
  int64_t frames_retried = 0;  // per-frame UNAVAILABLE results sent again
  int64_t frames_failed = 0;   // frames that ended with a non-OK status (any code)
  CalibrateStats stats;        // summed over rounds (streams, frames_resent, ...)
};

absl::Status CalibrateWithRetries(CalibdClient& client, const std::vector<std::string>& paths,
                                  const CalibrateOptions& options,
                                  const std::function<void(CalibrateResult)>& on_result,
                                  const FrameRetryPolicy& policy = {},
                                  CalibrateRetryReport* report = nullptr);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_RETRY_H_
