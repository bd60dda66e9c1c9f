#include "server/reactor_base.h"

#include "absl/strings/str_cat.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/status_util.h"

namespace calibd::server {
namespace {

std::string AuthorizationOf(const grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

Call::Call(ServiceEnv* env, grpc::CallbackServerContext* ctx, const char* method)
    : env_(env), ctx_(ctx), method_(method), start_(Clock::now()), request_id_(NewRequestId()) {}

grpc::Status Call::Conclude(const absl::Status& status) {
  const grpc::Status wire = ToGrpcStatus(status, request_id_);
  ctx_->AddTrailingMetadata(kRequestIdMetadata, request_id_);
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  if (env_->backend->metrics) {
    env_->backend->metrics->RecordRpc(method_, wire.error_code(), seconds);
  }
  if (status.ok()) {
    LogEvent("rpc", {{"method", method_}, {"code", "OK"}, {"ms", absl::StrCat(seconds * 1e3)},
                     {"peer", ctx_->peer()}, {"request_id", request_id_}});
  } else {
    LogEvent("rpc", {{"method", method_}, {"code", StatusCodeName(wire.error_code())},
                     {"ms", absl::StrCat(seconds * 1e3)}, {"peer", ctx_->peer()},
                     {"request_id", request_id_}, {"error", LogDetail(status)}});
  }
  return wire;
}

absl::Time Call::deadline() const {
  const auto d = ctx_->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

absl::StatusOr<Principal> Authorize(const ServiceEnv* env, const grpc::CallbackServerContext* ctx,
                                    Scope scope) {
  return env->auth->Authorize(AuthorizationOf(ctx), scope);
}

StreamSlot::StreamSlot(ServiceEnv* env, const char* method) : env_(env), method_(method) {
  const int n = env_->streams.fetch_add(1) + 1;
  if (n > env_->backend->limits.max_concurrent_streams) {
    env_->streams.fetch_sub(1);
    status_ = absl::ResourceExhaustedError(absl::StrCat(
        "the server already runs ", env_->backend->limits.max_concurrent_streams,
        " streams (--max-concurrent-streams); retry later"));
    return;
  }
  held_ = true;
  if (env_->backend->metrics) env_->backend->metrics->StreamStarted(method_);
}

void StreamSlot::Release() {
  if (!held_) return;
  held_ = false;
  env_->streams.fetch_sub(1);
  if (env_->backend->metrics) env_->backend->metrics->StreamEnded(method_);
}

}  // namespace calibd::server
