#include "server/server.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/status/macros.h"
#include "core/store/store.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "server/calibrate_impl.h"
#include "server/frame_memory.h"
#include "server/health.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/services.h"
#include "server/store_impl.h"
#include "server/synth_dark_service.h"

namespace calibd::server {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read the ", what, " ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CalibdServer>> CalibdServer::Start(ServerOptions options,
                                                                  BufferPool* buffers) {
  std::unique_ptr<CalibdServer> s(new CalibdServer());
  s->options_ = std::move(options);
  s->metrics_ = std::make_unique<Metrics>();
  s->pool_ = std::make_unique<ThreadPool>(s->options_.workers);
  s->backend_ = std::make_unique<Backend>();
  s->store_pool_ = std::make_unique<ThreadPool>(std::max(1, s->options_.store_workers));
  s->blob_pool_ = std::make_unique<ThreadPool>(std::max(1, s->options_.blob_workers));
  s->backend_->pool = s->pool_.get();
  s->backend_->store_pool = s->store_pool_.get();
  s->backend_->blob_pool = s->blob_pool_.get();
  s->backend_->buffers = buffers;
  s->backend_->metrics = s->metrics_.get();
  s->backend_->limits = s->options_.limits;
  if (s->backend_->limits.chunk_bytes == 0 || s->backend_->limits.chunk_bytes > (size_t{1} << 20)) {
    s->backend_->limits.chunk_bytes = size_t{1} << 20;
  }
  s->backend_->spool_dir = s->options_.spool_dir;
  s->frame_memory_ =
      std::make_unique<FrameMemory>(s->options_.frame_memory_bytes, s->metrics_.get());
  s->backend_->frame_memory = s->frame_memory_.get();
  CALIBD_RETURN_IF_ERROR(s->Build());
  return s;
}

absl::Status CalibdServer::Build() {
  calibrate_ = std::make_unique<CalibrateImpl>(backend_.get());
  store_impl_ = std::make_unique<StoreImpl>(backend_.get());
  env_ = std::make_unique<ServiceEnv>();
  env_->backend = backend_.get();
  env_->auth = &options_.auth;
  env_->calibrate = calibrate_.get();
  env_->store = store_impl_.get();
  calibrator_ = std::make_unique<CalibratorService>(env_.get());
  store_service_ = std::make_unique<StoreService>(env_.get());
  builder_ = std::make_unique<BuilderService>(env_.get());
  noise_service_ = std::make_unique<NoiseService>(env_.get());

  health_ = std::make_unique<HealthReporter>(metrics_.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (options_.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(
                                   std::min(options_.max_connection_age, absl::Hours(24 * 20)))));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(std::min(
                                   options_.max_connection_age_grace, absl::Hours(24 * 20)))));
  }
  if (!options_.listen.empty()) {
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (!options_.tls_cert.empty() || !options_.tls_key.empty()) {
      if (options_.tls_cert.empty() || options_.tls_key.empty()) {
        return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
      }
      grpc::SslServerCredentialsOptions ssl;
      CALIBD_ASSIGN_OR_RETURN(std::string cert, ReadPem(options_.tls_cert, "TLS certificate"));
      CALIBD_ASSIGN_OR_RETURN(std::string key, ReadPem(options_.tls_key, "TLS key"));
      ssl.pem_key_cert_pairs.push_back({key, cert});
      if (!options_.tls_ca.empty()) {
        CALIBD_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem(options_.tls_ca, "TLS CA"));
        ssl.client_certificate_request =
            GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
      }
      creds = grpc::SslServerCredentials(ssl);
    } else {
      creds = grpc::InsecureServerCredentials();
    }
    builder.AddListeningPort(options_.listen, creds, &port_);
  }
  builder.RegisterService(calibrator_.get());
  builder.RegisterService(store_service_.get());
  builder.RegisterService(builder_.get());
  builder.RegisterService(noise_service_.get());
  // No SO_REUSEPORT: a second calibd on the same port must fail ("address in use"), not
  // silently share the port and split the traffic between two stores.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // The 4 MiB message cap is gRPC's default and is kept on purpose (chunks are ≤ 1 MiB).
  builder.SetMaxReceiveMessageSize(4 << 20);
  if (options_.stream_window_bytes > 0) {
    builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    builder.AddChannelArgument(
        GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
        static_cast<int>(std::min<int64_t>(options_.stream_window_bytes, int64_t{1} << 30)));
  }
  if (options_.max_streams_per_connection > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options_.max_streams_per_connection);
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || (!options_.listen.empty() && port_ == 0)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen,
                                               " (address in use or invalid?)"));
  }
  health_->AddServer(server_.get());
  if (!options_.health_listen.empty()) {
    grpc::ServerBuilder hb;
    hb.AddListeningPort(options_.health_listen, grpc::InsecureServerCredentials(), &health_port_);
    hb.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    health_server_ = hb.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.health_listen,
                                                 " (--health-listen; address in use or invalid?)"));
    }
    health_->AddServer(health_server_.get());
  }

  if (!options_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen, 1);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("cannot serve metrics on ",
                                                 options_.metrics_listen, ": ", e.what()));
    }
    exposer_->RegisterCollectable(metrics_->registry());
  }
  LogEvent("listening", {{"address", options_.listen.empty() ? "in-process" : options_.listen},
                         {"port", absl::StrCat(port_)},
                         {"health", options_.health_listen.empty()
                                        ? std::string("api port")
                                        : absl::StrCat(options_.health_listen, " port ",
                                                       health_port_)},
                         {"metrics", options_.metrics_listen},
                         {"workers", absl::StrCat(pool_->num_threads())},
                         {"frame_memory_bytes", absl::StrCat(frame_memory_->budget())},
                         {"max_streams_per_connection",
                          absl::StrCat(options_.max_streams_per_connection)},
                         {"auth", options_.auth.enabled() ? "tokens" : "none"},
                         {"tls", options_.tls_cert.empty() ? "off"
                                 : options_.tls_ca.empty() ? "tls" : "mtls"}});
  return absl::OkStatus();
}

absl::Status CalibdServer::OpenStore() {
  store::StoreOptions so;
  so.cache_bytes = options_.cache_bytes;
  so.pool = backend_->buffers;
  so.max_blob_bytes = options_.limits.max_master_bytes;
  absl::StatusOr<std::unique_ptr<store::CalibrationStore>> st =
      store::OpenStore(options_.store_url, so);
  if (!st.ok()) {
    LogEvent("store_error", {{"store", options_.store_url}, {"error", std::string(st.status().message())}});
    return st.status();
  }
  SetStore(std::shared_ptr<store::CalibrationStore>(std::move(*st)));
  return absl::OkStatus();
}

void CalibdServer::SetStore(std::shared_ptr<store::CalibrationStore> store) {
  const std::string described = store->Describe();
  backend_->store.Set(std::move(store));
  store_impl_->UpdateVersionMetrics();
  if (!shut_down_) {
    health_->SetStoreOpen();
    if (!probing_) {
      probing_ = true;
      const Backend* backend = backend_.get();
      health_->StartStoreProbe(
          [backend]() -> absl::Status {
            absl::StatusOr<std::shared_ptr<store::CalibrationStore>> st = backend->store.Get();
            if (!st.ok()) return st.status();
            return (*st)->Ping();
          },
          options_.store_check_period);
    }
  }
  LogEvent("serving", {{"store", described}});
}

bool CalibdServer::ready() const { return health_->ready(); }

std::shared_ptr<grpc::Channel> CalibdServer::InProcessChannel(const grpc::ChannelArguments& args) {
  return server_->InProcessChannel(args);
}

void CalibdServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  health_->SetDraining();
  LogEvent("draining", {{"grace_s", absl::StrCat(absl::ToDoubleSeconds(grace))}});
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  if (health_server_ != nullptr) {
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    health_server_->Wait();
  }
  LogEvent("stopped", {});
}

CalibdServer::~CalibdServer() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
  health_.reset();  // joins the store probe
  exposer_.reset();
  // Run queued tasks and join the workers; the store executors first (their tasks may still
  // schedule pixel work).
  blob_pool_.reset();
  store_pool_.reset();
  pool_.reset();
  frame_memory_.reset();  // after every reactor and task that could hold a lease
}

}  // namespace calibd::server
