// SynthesizeDarkFor: the transport-free logic under the synthesized-dark RPC (and the dark
// policies `synthesized` / `measured_else_synthesized` of Calibrate): the detector's noise_model
// — else its dark_current product — selected like a master (a given version, else the one
// certified at `at`, else the latest), read from its blob, and turned into a dark for
// (exptime, em_gain) by noise::SynthesizeDark.
//
//   SynthDarkQuery q{.detector = "roman/excam", .exptime = 45, .em_gain = 300};
//   ASSIGN_OR_RETURN(SynthDark d, SynthesizeDarkFor(&backend, q));
//   // d.frame: data (e⁻), variance, DQ; d.model: the version used (for the provenance).
//
// Errors: NOT_FOUND when the detector has neither product (saying what to build),
// INVALID_ARGUMENT for a bad (t, g), FAILED_PRECONDITION for temperature scaling without the
// model's temperature; the store's errors as they are.
//
// Thread safety: reentrant; the pixel work runs on the calling thread and backend->pool (call
// it from a worker, never a gRPC callback thread).
#ifndef CALIBD_SERVER_SYNTH_DARK_IMPL_H_
#define CALIBD_SERVER_SYNTH_DARK_IMPL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/image/frame.h"
#include "core/store/store.h"
#include "server/backend.h"

namespace calibd::server {

struct SynthDarkQuery {
  std::string detector;
  double exptime = 0;
  double em_gain = 1;
  store::Configuration configuration;  // empty = the only series of the kind
  int64_t version = 0;                 // 0 = certified at `at`, else the latest
  std::optional<store::TimeMicros> at;
  std::optional<double> temperature;  // with temperature_coefficient: exp(c·ΔT) scaling
  std::optional<double> temperature_coefficient;
};

struct SynthDark {
  CalibratedFrame frame;
  store::MasterVersion model;  // the noise_model or dark_current version used
};

absl::StatusOr<SynthDark> SynthesizeDarkFor(const Backend* backend, const SynthDarkQuery& query);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_SYNTH_DARK_IMPL_H_
