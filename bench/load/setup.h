// SetUpBenchDetector: calibd_load's --setup. Puts the benchmark detector (PutDetector), writes
// bias, dark and flat masters of the trimmed shape with the project's FITS writer, uploads them
// (PutMaster, 1 MiB chunks, sha256) and certifies each from 2000-01-01 on. Idempotent:
// identical masters return their existing versions and an existing certification is left
// alone.
//
//   CALIBD_RETURN_IF_ERROR(SetUpBenchDetector(channel, {"bench/cam4k", "", 4096, 4096, 32}));
//
// Thread safety: one call at a time per detector (it writes a temporary directory of its own).
#ifndef CALIBD_BENCH_LOAD_SETUP_H_
#define CALIBD_BENCH_LOAD_SETUP_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "core/image/header.h"
#include "grpcpp/grpcpp.h"

namespace calibd::load {

struct BenchDetector {
  std::string detector;  // e.g. "bench/cam4k"
  std::string token;     // bearer token; "" = none
  int width = 4096;      // raw, including the overscan strip on the right
  int height = 4096;
  int overscan = 32;     // columns
};

// The cards every master and frame of the benchmark carries (read mode, binning, gain mode,
// filter, temperature, EXPTIME, DATE-OBS), so selection has a configuration to match.
void AddBenchCards(Header* h);

absl::Status SetUpBenchDetector(const std::shared_ptr<grpc::Channel>& channel,
                                const BenchDetector& o);

}  // namespace calibd::load

#endif  // CALIBD_BENCH_LOAD_SETUP_H_
