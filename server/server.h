// CalibdServer: the whole calibd service in one object — gRPC server (Calibrator, Store,
// Builder, standard health, reflection), the worker pool, the store, metrics (prometheus-cpp
// Exposer on its own port) and authentication. main.cc parses flags into ServerOptions; tests
// build one with no port and talk to it over InProcessChannel().
//
//   BufferPool buffers(size_t{2} << 30);                 // process-wide, owned by main
//   ServerOptions options;
//   options.listen = "127.0.0.1:50051";
//   options.store_url = "var/calibd";
//   ASSIGN_OR_RETURN(std::unique_ptr<CalibdServer> server, CalibdServer::Start(options, &buffers));
//   // readiness: NOT_SERVING, liveness: SERVING (server/health.h)
//   RETURN_IF_ERROR(server->OpenStore());                 // readiness: SERVING while pings pass
//   ...
//   server->Shutdown(absl::Seconds(30));                 // NOT_SERVING, drain, stop
//
// Thread safety: Start/OpenStore/Shutdown are called from one thread (main); the server's own
// callbacks run on gRPC's threads and the worker pool.
#ifndef CALIBD_SERVER_SERVER_H_
#define CALIBD_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/image/buffer_pool.h"
#include "core/parallel/thread_pool.h"
#include "grpcpp/grpcpp.h"
#include "server/auth.h"
#include "server/backend.h"

namespace prometheus {
class Exposer;
}

namespace calibd::server {

class Metrics;
class HealthReporter;
class FrameMemory;
class CalibrateImpl;
class StoreImpl;
struct ServiceEnv;
class CalibratorService;
class StoreService;
class BuilderService;
class NoiseService;

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // "" = no port (in-process channel only)
  std::string metrics_listen;              // "" = no metrics endpoint
  std::string store_url = "var/calibd";
  TokenAuth auth = TokenAuth::Open();
  std::string tls_cert, tls_key, tls_ca;   // PEM file paths; cert+key = TLS, + ca = mTLS
  int workers = 0;                         // pixel-work threads; 0 = hardware concurrency
  int store_workers = 4;                   // unary store calls and uploads
  int blob_workers = 4;                    // GetMaster downloads at once
  ServerLimits limits;
  size_t cache_bytes = size_t{2} << 30;    // decoded-master cache
  std::string spool_dir;                   // "" = $TMPDIR
  // A plaintext port serving only grpc.health.v1 (kubelet probes when `listen` uses TLS);
  // "" = none.
  std::string health_listen;
  // Bytes of frames in flight (raw buffers and result planes) across all Calibrate streams;
  // 0 = DefaultFrameMemoryBytes() (half the cgroup limit or of physical memory).
  int64_t frame_memory_bytes = 0;
  // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of each connection: a client opening more streams on
  // one connection queues them on its side, so they hold no server memory. Each stream that
  // waits here for frame memory keeps gRPC's receive buffers (measured ≈ 29 MiB per 4096²
  // stream with adaptive windows), which the frame budget does not count. 0 = gRPC's default.
  int max_streams_per_connection = 16;
  // The HTTP/2 receive window of each stream, fixed (BDP probing off): the most gRPC buffers for
  // a stream the server is not reading (one waiting for frame memory), which the frame budget
  // does not count; adaptive windows grew to ≈ 29 MiB per waiting 4096² stream. 0 = adaptive.
  int64_t stream_window_bytes = int64_t{4} << 20;
  // Connections older than this are closed (GOAWAY) so clients reconnect and rebalance across
  // replicas; in-flight calls get max_connection_age_grace to finish. Zero = never.
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(60);
  // How often the store is pinged for readiness.
  absl::Duration store_check_period = absl::Seconds(2);
};

class CalibdServer {
 public:
  // Builds and starts the gRPC server with health NOT_SERVING (the store is not open yet).
  // INVALID_ARGUMENT for unusable TLS files; UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<CalibdServer>> Start(ServerOptions options,
                                                             BufferPool* buffers);
  ~CalibdServer();

  // Opens the store and sets health SERVING.
  absl::Status OpenStore();
  // Or use an already open store (tests).
  void SetStore(std::shared_ptr<store::CalibrationStore> store);

  int port() const { return port_; }
  int health_port() const { return health_port_; }
  // The readiness state (see server/health.h).
  bool ready() const;
  std::shared_ptr<grpc::Channel> InProcessChannel(const grpc::ChannelArguments& args = {});
  Metrics* metrics() const { return metrics_.get(); }
  const Backend& backend() const { return *backend_; }
  FrameMemory* frame_memory() const { return frame_memory_.get(); }

  // Health NOT_SERVING, stop accepting calls, let in-flight calls finish for at most `grace`
  // (then they are cancelled), stop the workers.
  void Shutdown(absl::Duration grace);

 private:
  CalibdServer() = default;
  absl::Status Build();

  ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ThreadPool> store_pool_;
  std::unique_ptr<ThreadPool> blob_pool_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<CalibrateImpl> calibrate_;
  std::unique_ptr<StoreImpl> store_impl_;
  std::unique_ptr<ServiceEnv> env_;
  std::unique_ptr<CalibratorService> calibrator_;
  std::unique_ptr<StoreService> store_service_;
  std::unique_ptr<BuilderService> builder_;
  std::unique_ptr<NoiseService> noise_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  std::unique_ptr<HealthReporter> health_;
  std::unique_ptr<FrameMemory> frame_memory_;
  int port_ = 0;
  int health_port_ = 0;
  bool probing_ = false;
  bool shut_down_ = false;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_SERVER_H_
