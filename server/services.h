// The gRPC services of calibd on the callback API: Calibrator (bidi stream of frames), Store
// (masters, certification, selection, detectors, DQ bits) and Builder (client stream of raw
// frames → a new master). Each RPC method is thin: authorise, convert (server/convert.h), call
// the transport-free implementation (calibrate_impl, store_impl, build_impl), map the status
// (server/status_util.h), finish — the shared parts are in server/reactor_base.h, each
// streaming reactor has its own file (calibrate_reactor.cc, put_master_reactor.cc,
// get_master_reactor.cc, build_reactor.cc), the unary Store methods are store_service.cc.
// Streaming methods are reactors with at most one read and one write in flight; `ok == false`
// ends the call; OnDone frees the reactor. Nothing slow runs on gRPC's callback threads: store
// calls go to Backend::store_pool, downloads to blob_pool, preparation and pixels to pool.
//
//   ServiceEnv env{&backend, &auth, &calibrate, &store_impl};
//   CalibratorService calibrator(&env);
//   builder.RegisterService(&calibrator);
//
// Calibrate's pipeline: a frame's header is prepared (selection, masters) on the worker pool
// as it arrives (no further message is read meanwhile), its chunks are copied into a pooled
// RawImage, and the full frame is computed on the worker pool
// while the next frame is read. At most one complete frame waits for the pool per stream:
// when one is waiting the stream stops reading (back-pressure). Results go back in order,
// header first, then ≤ 1 MiB chunks of each plane; OnCancel (client cancel, deadline) drops
// queued work and finishes once the running computation and write have returned.
//
// Thread safety: the services are shared by all calls; per-call state lives in the reactors
// and is guarded by their mutex.
#ifndef CALIBD_SERVER_SERVICES_H_
#define CALIBD_SERVER_SERVICES_H_

#include <atomic>

#include "calibd/v1/builder.grpc.pb.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "calibd/v1/store.grpc.pb.h"
#include "server/auth.h"
#include "server/backend.h"
#include "server/calibrate_impl.h"
#include "server/store_impl.h"

namespace calibd::server {

// What the services share.
struct ServiceEnv {
  Backend* backend = nullptr;
  const TokenAuth* auth = nullptr;
  const CalibrateImpl* calibrate = nullptr;
  const StoreImpl* store = nullptr;
  std::atomic<int> streams{0};  // streaming calls in progress (for max_concurrent_streams)
};

// Calibrate over raw ByteBuffers: the same wire format, decoded and encoded by proto/wire.h so
// pixels are not copied through protobuf strings on either side.
class CalibratorService final
    : public v1::Calibrator::WithRawCallbackMethod_Calibrate<v1::Calibrator::Service> {
 public:
  explicit CalibratorService(ServiceEnv* env) : env_(env) {}
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Calibrate(
      grpc::CallbackServerContext* context) override;

 private:
  ServiceEnv* env_;
};

class StoreService final : public v1::Store::CallbackService {
 public:
  explicit StoreService(ServiceEnv* env) : env_(env) {}
  grpc::ServerReadReactor<v1::PutMasterRequest>* PutMaster(
      grpc::CallbackServerContext* context, v1::PutMasterResponse* response) override;
  grpc::ServerWriteReactor<v1::GetMasterResponse>* GetMaster(
      grpc::CallbackServerContext* context, const v1::GetMasterRequest* request) override;
  grpc::ServerUnaryReactor* ListMasters(grpc::CallbackServerContext* context,
                                        const v1::ListMastersRequest* request,
                                        v1::ListMastersResponse* response) override;
  grpc::ServerUnaryReactor* History(grpc::CallbackServerContext* context,
                                    const v1::HistoryRequest* request,
                                    v1::HistoryResponse* response) override;
  grpc::ServerUnaryReactor* Certify(grpc::CallbackServerContext* context,
                                    const v1::CertifyRequest* request,
                                    v1::CertifyResponse* response) override;
  grpc::ServerUnaryReactor* Decertify(grpc::CallbackServerContext* context,
                                      const v1::DecertifyRequest* request,
                                      v1::DecertifyResponse* response) override;
  grpc::ServerUnaryReactor* Select(grpc::CallbackServerContext* context,
                                   const v1::SelectRequest* request,
                                   v1::SelectResponse* response) override;
  grpc::ServerUnaryReactor* PutDetector(grpc::CallbackServerContext* context,
                                        const v1::PutDetectorRequest* request,
                                        v1::PutDetectorResponse* response) override;
  grpc::ServerUnaryReactor* GetDetector(grpc::CallbackServerContext* context,
                                        const v1::GetDetectorRequest* request,
                                        v1::DetectorSpec* response) override;
  grpc::ServerUnaryReactor* ListDetectors(grpc::CallbackServerContext* context,
                                          const v1::ListDetectorsRequest* request,
                                          v1::ListDetectorsResponse* response) override;
  grpc::ServerUnaryReactor* GetDqBits(grpc::CallbackServerContext* context,
                                      const v1::GetDqBitsRequest* request,
                                      v1::GetDqBitsResponse* response) override;

 private:
  ServiceEnv* env_;
};

// BuildMaster over raw ByteBuffers, as Calibrate: the input frames' chunks are copied once, from
// gRPC's slices into the frames' pooled buffers (proto/wire.h); the response is serialized once.
class BuilderService final
    : public v1::Builder::WithRawCallbackMethod_BuildMaster<v1::Builder::CallbackService> {
 public:
  explicit BuilderService(ServiceEnv* env) : env_(env) {}
  grpc::ServerReadReactor<grpc::ByteBuffer>* BuildMaster(grpc::CallbackServerContext* context,
                                                         grpc::ByteBuffer* response) override;

 private:
  ServiceEnv* env_;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_SERVICES_H_
