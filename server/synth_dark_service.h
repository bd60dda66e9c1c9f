// NoiseService: the calibd.v1.Noise gRPC service (proto/calibd/v1/noise.proto) —
// SynthesizeDark, a server-streaming call that answers with the synthesized dark as a
// Calibrate-style result: a SynthesizeDarkHeader (status, shape, unit electron, the model's
// provenance, header cards), then the data, variance and dq planes in ≤ 1 MiB ResultChunks.
//
//   ServiceEnv env{&backend, &auth, &calibrate, &store_impl};
//   NoiseService noise(&env);
//   builder.RegisterService(&noise);
//
// The work runs off gRPC's callback threads: the request is checked and the detector read on
// the store executor, the dark's bytes (its planes and the model's maps) are reserved in the
// frame-memory budget (RESOURCE_EXHAUSTED when there is no room before the deadline), then
// server::SynthesizeDarkFor (selection, blob read, pixels) runs on the worker pool. One write is
// in flight at a time; chunks are cut from the frame's planes as the previous write completes,
// so a slow reader holds the server back instead of making it buffer. Errors: see noise.proto;
// the call needs a read token scoped to the detector's instrument.
//
// Thread safety: the service is shared by all calls; per-call state lives in the reactor and
// is guarded by its mutex.
#ifndef CALIBD_SERVER_SYNTH_DARK_SERVICE_H_
#define CALIBD_SERVER_SYNTH_DARK_SERVICE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "calibd/v1/noise.grpc.pb.h"
#include "core/store/detector.h"
#include "server/services.h"
#include "server/synth_dark_impl.h"

namespace calibd::server {

class NoiseService final : public v1::Noise::CallbackService {
 public:
  explicit NoiseService(ServiceEnv* env) : env_(env) {}
  grpc::ServerWriteReactor<v1::SynthesizeDarkResponse>* SynthesizeDark(
      grpc::CallbackServerContext* context, const v1::SynthesizeDarkRequest* request) override;

 private:
  ServiceEnv* env_;
};

// The request as a query, checked (INVALID_ARGUMENT naming the field): exptime > 0 and finite,
// em_gain ≥ 0 and finite (0 = 1), known planes. `spec` supplies the temperature coefficient;
// a temperature without one is FAILED_PRECONDITION. Pure (exposed for tests).
absl::StatusOr<SynthDarkQuery> SynthDarkQueryFromProto(const v1::SynthesizeDarkRequest& request,
                                                       const store::DetectorSpec& spec);

// Bytes reserved in the frame-memory budget for a synthesized dark of a detector with this raw
// shape: its planes (float32 data and variance, uint16 dq) plus the noise model's maps read
// to make it.
int64_t SynthDarkBytes(int width, int height);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_SYNTH_DARK_SERVICE_H_
