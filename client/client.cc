#include "client/client.h"

#include <arpa/inet.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/convert.h"
#include "proto/wire.h"
#include "core/fits/fits.h"
#include "core/hash/sha256.h"
#include "core/status/macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"

namespace calibd::client {
namespace {


absl::StatusOr<std::string> ReadTextFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The page fields of a list request (AIP-158).
template <typename Request>
void SetPage(const PageRequest& page, Request* req) {
  req->set_page_size(page.page_size);
  req->set_page_token(page.page_token);
}

}  // namespace

CalibdClient::CalibdClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      store_(v1::Store::NewStub(channel_)),
      calibrator_(v1::Calibrator::NewStub(channel_)),
      builder_(v1::Builder::NewStub(channel_)),
      noise_(v1::Noise::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

absl::StatusOr<std::string> ChannelTarget(const std::string& server, bool* round_robin) {
  *round_robin = false;
  if (absl::StartsWith(server, "dns:")) {
    *round_robin = true;
    return server;
  }
  if (server.find(',') == std::string::npos) return server;
  // A list: gRPC's ipv4:/ipv6: resolvers take comma-separated literal addresses.
  std::vector<std::string> parts = absl::StrSplit(server, ',');
  bool v4 = false, v6 = false;
  for (const std::string& p : parts) {
    const size_t colon = p.rfind(':');
    if (p.empty() || colon == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--server ", server, ": each entry of a list is IP:PORT"));
    }
    const std::string host = p.substr(0, colon);
    in6_addr a6;
    in_addr a4;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
        inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6) == 1) {
      v6 = true;
    } else if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
      v4 = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--server ", server, ": '", p,
          "' is not an IP:PORT; a list takes IP literals, a name takes dns:///NAME:PORT"));
    }
  }
  if (v4 && v6) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server ", server, ": a list is all IPv4 or all IPv6"));
  }
  *round_robin = true;
  return absl::StrCat(v6 ? "ipv6:" : "ipv4:", server);
}

absl::StatusOr<std::unique_ptr<CalibdClient>> CalibdClient::Connect(const ClientOptions& options) {
  if (options.server.empty()) {
    return absl::InvalidArgumentError("no server address; give --server HOST:PORT");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_ca.empty() && options.tls_cert.empty() && options.tls_key.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      CALIBD_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadTextFile(options.tls_ca, "--tls-ca"));
    }
    if (options.tls_cert.empty() != options.tls_key.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key go together; give both");
    }
    if (!options.tls_cert.empty()) {
      CALIBD_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadTextFile(options.tls_cert, "--tls-cert"));
      CALIBD_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadTextFile(options.tls_key, "--tls-key"));
    }
    creds = grpc::SslCredentials(ssl);
  }
  bool round_robin = false;
  CALIBD_ASSIGN_OR_RETURN(std::string target, ChannelTarget(options.server, &round_robin));
  grpc::ChannelArguments args;
  // Never raise the 4 MiB default; results of up to 1 MiB per message fit well. Retries are
  // ours (counted, and Calibrate re-sends only the frames without a result).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Reconnect to a restarted or failed-over replica within our retry budget (gRPC's default
  // backoff grows from 1 s to 120 s, and calls fail fast meanwhile).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (round_robin) {
    args.SetServiceConfigJSON(R"({"loadBalancingConfig": [{"round_robin": {}}]})");
  }
  auto channel = grpc::CreateCustomChannel(target, creds, args);
  return std::unique_ptr<CalibdClient>(new CalibdClient(options, std::move(channel)));
}

void CalibdClient::Backoff(int attempt) {
  absl::Duration d = options_.retry_backoff;
  for (int i = 1; i < attempt && d < absl::Seconds(2); ++i) d *= 2;
  // Wait for the channel to be READY again (a replica back, another one picked), at most the
  // backoff: the next attempt then does not fail fast on a channel still in backoff.
  const absl::Time deadline = absl::Now() + std::min(d, absl::Seconds(2));
  if (!channel_->WaitForConnected(absl::ToChronoTime(deadline))) return;
}

template <typename T>
absl::StatusOr<T> CalibdClient::WithRetry(const std::function<absl::StatusOr<T>()>& call) {
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<T> r = call();
    if (r.ok() || r.status().code() != absl::StatusCode::kUnavailable ||
        attempt >= options_.max_attempts) {
      return r;
    }
    ++retries_;
    Backoff(attempt);
  }
}

void CalibdClient::Prepare(grpc::ClientContext* context, bool stream) const {
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
  const absl::Duration timeout = stream ? options_.stream_timeout : options_.timeout;
  if (timeout > absl::ZeroDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CalibdClient::Health(
    const std::string& service) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = health_->Check(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp.status();
}

absl::StatusOr<v1::DetectorSpec> CalibdClient::PutDetector(const v1::DetectorSpec& spec) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::PutDetectorRequest req;
  *req.mutable_spec() = spec;
  v1::PutDetectorResponse resp;
  grpc::Status s = store_->PutDetector(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp.spec();
}

absl::StatusOr<v1::DetectorSpec> CalibdClient::GetDetector(const std::string& name,
                                                           int64_t version) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<v1::DetectorSpec>([&]() -> absl::StatusOr<v1::DetectorSpec> {
    grpc::ClientContext ctx;
    Prepare(&ctx, false);
    v1::GetDetectorRequest req;
    req.set_name(name);
    req.set_version(version);
    v1::DetectorSpec resp;
    grpc::Status s = store_->GetDetector(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, ctx);
    return resp;
  });
}

absl::StatusOr<v1::ListDetectorsResponse> CalibdClient::ListDetectors(const PageRequest& page) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<v1::ListDetectorsResponse>([&]() -> absl::StatusOr<v1::ListDetectorsResponse> {
    grpc::ClientContext ctx;
    Prepare(&ctx, false);
    v1::ListDetectorsRequest req;
    SetPage(page, &req);
    v1::ListDetectorsResponse resp;
    grpc::Status s = store_->ListDetectors(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, ctx);
    return resp;
  });
}

absl::StatusOr<v1::GetDqBitsResponse> CalibdClient::GetDqBits(const std::string& detector) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<v1::GetDqBitsResponse>([&]() -> absl::StatusOr<v1::GetDqBitsResponse> {
    grpc::ClientContext ctx;
    Prepare(&ctx, false);
    v1::GetDqBitsRequest req;
    req.set_detector(detector);
    v1::GetDqBitsResponse resp;
    grpc::Status s = store_->GetDqBits(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, ctx);
    return resp;
  });
}

absl::StatusOr<v1::PutMasterResponse> CalibdClient::PutMaster(const std::string& path,
                                                              const PutMasterOptions& options,
                                                              ProgressFn progress) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ec.message()));
  CALIBD_ASSIGN_OR_RETURN(std::string sha, hash::Sha256File(path));

  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  v1::PutMasterResponse resp;
  std::unique_ptr<grpc::ClientWriter<v1::PutMasterRequest>> writer = store_->PutMaster(&ctx, &resp);
  v1::PutMasterRequest req;
  v1::PutMasterHeader* h = req.mutable_header();
  h->set_detector(options.detector);
  h->set_kind(options.kind);
  for (const auto& [k, v] : options.attributes) (*h->mutable_attributes())[k] = v;
  for (const auto& [k, v] : options.configuration) (*h->mutable_configuration())[k] = v;
  h->set_total_bytes(static_cast<int64_t>(size));
  h->set_sha256(sha);
  bool ok = writer->Write(req);

  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  absl::Cleanup closer = [f] { std::fclose(f); };
  hash::Sha256 again;
  int64_t sent = 0;
  std::string* chunk = req.mutable_chunk();
  while (ok) {
    chunk->resize(kMaxChunkBytes);
    const size_t n = std::fread(chunk->data(), 1, kMaxChunkBytes, f);
    if (n == 0) break;
    chunk->resize(n);
    again.Update(chunk->data(), n);
    ok = writer->Write(req);
    sent += static_cast<int64_t>(n);
    if (progress) progress(sent, static_cast<int64_t>(size));
  }
  if (ok && (again.HexDigest() != sha || sent != static_cast<int64_t>(size))) {
    ctx.TryCancel();
    (void)writer->Finish();
    return absl::AbortedError(
        absl::StrCat(path, " changed while it was uploaded; upload it again when it is complete"));
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
}

absl::StatusOr<v1::ListMastersResponse> CalibdClient::ListMasters(const std::string& detector,
                                                                  const std::string& kind,
                                                                  const PageRequest& page) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<v1::ListMastersResponse>([&]() -> absl::StatusOr<v1::ListMastersResponse> {
    grpc::ClientContext ctx;
    Prepare(&ctx, false);
    v1::ListMastersRequest req;
    req.set_detector(detector);
    req.set_kind(kind);
    SetPage(page, &req);
    v1::ListMastersResponse resp;
    grpc::Status s = store_->ListMasters(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, ctx);
    return resp;
  });
}

absl::StatusOr<v1::HistoryResponse> CalibdClient::History(const std::string& detector,
                                                          const std::string& kind,
                                                          const PageRequest& page) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<v1::HistoryResponse>([&]() -> absl::StatusOr<v1::HistoryResponse> {
    grpc::ClientContext ctx;
    Prepare(&ctx, false);
    v1::HistoryRequest req;
    req.set_detector(detector);
    req.set_kind(kind);
    SetPage(page, &req);
    v1::HistoryResponse resp;
    grpc::Status s = store_->History(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, ctx);
    return resp;
  });
}

absl::StatusOr<v1::MasterVersion> CalibdClient::GetMaster(const std::string& detector,
                                                          const std::string& kind,
                                                          const VersionChoice& which,
                                                          const std::string& out_path,
                                                          ProgressFn progress) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<v1::MasterVersion>([&]() -> absl::StatusOr<v1::MasterVersion> {
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    v1::GetMasterRequest req;
    req.set_detector(detector);
    req.set_kind(kind);
    if (which.version > 0) {
      req.set_version(which.version);
    } else {
      *req.mutable_at() = TimeToProto(which.at);
    }
    std::unique_ptr<grpc::ClientReader<v1::GetMasterResponse>> reader =
        store_->GetMaster(&ctx, req);
    const std::string part = out_path + ".part";
    std::FILE* f = std::fopen(part.c_str(), "wb");
    if (f == nullptr) {
      ctx.TryCancel();
      (void)reader->Finish();
      return absl::InvalidArgumentError(absl::StrCat("cannot write ", part));
    }
    bool closed = false;
    absl::Cleanup cleanup = [&] {
      if (!closed) std::fclose(f);
      std::remove(part.c_str());
    };
    v1::GetMasterResponse resp;
    v1::MasterVersion meta;
    bool have_meta = false;
    hash::Sha256 h;
    int64_t got = 0;
    while (reader->Read(&resp)) {
      if (resp.has_metadata()) {
        meta = resp.metadata();
        have_meta = true;
        continue;
      }
      const std::string& c = resp.chunk();
      h.Update(c.data(), c.size());
      if (std::fwrite(c.data(), 1, c.size(), f) != c.size()) {
        ctx.TryCancel();
        (void)reader->Finish();
        return absl::InternalError(absl::StrCat("cannot write ", part, " (disk full?)"));
      }
      got += static_cast<int64_t>(c.size());
      if (progress) progress(got, meta.size_bytes());
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return FromGrpc(s, ctx);
    closed = true;
    if (std::fclose(f) != 0) return absl::InternalError(absl::StrCat("cannot write ", part));
    if (!have_meta) return absl::InternalError("the server sent no metadata for the master");
    const std::string digest = h.HexDigest();
    if (digest != meta.sha256()) {
      return absl::DataLossError(absl::StrCat("downloaded bytes hash to ", digest, ", not ",
                                              meta.sha256(), "; retry the download"));
    }
    std::error_code ec;
    std::filesystem::rename(part, out_path, ec);
    if (ec)
      return absl::InternalError(absl::StrCat("cannot rename to ", out_path, ": ", ec.message()));
    return meta;
  });
}

absl::StatusOr<SynthesizedDark> CalibdClient::SynthesizeDark(
    const v1::SynthesizeDarkRequest& request) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<SynthesizedDark>([&]() -> absl::StatusOr<SynthesizedDark> {
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    std::unique_ptr<grpc::ClientReader<v1::SynthesizeDarkResponse>> reader =
        noise_->SynthesizeDark(&ctx, request);
    SynthesizedDark out;
    ResultAssembler assembler;
    bool have_header = false;
    absl::Status protocol;
    v1::SynthesizeDarkResponse resp;
    while (protocol.ok() && reader->Read(&resp)) {
      if (resp.has_header()) {
        out.header = resp.header();
        have_header = true;
        protocol = assembler.Start(out.header.result());
      } else if (!have_header) {
        protocol = absl::InternalError("the server sent pixels before the synthesized dark's header");
      } else {
        protocol = assembler.AddChunk(resp.chunk());
      }
    }
    if (!protocol.ok()) {
      ctx.TryCancel();
      (void)reader->Finish();
      return protocol;
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return FromGrpc(s, ctx);
    if (!have_header) return absl::InternalError("the server sent no synthesized dark");
    if (!assembler.complete()) {
      return absl::InternalError("the synthesized dark's planes ended early");
    }
    out.frame = assembler.Take();
    return out;
  });
}

absl::StatusOr<v1::CertifyResponse> CalibdClient::Certify(const v1::CertifyRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::CertifyResponse resp;
  grpc::Status s = store_->Certify(&ctx, request, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
}

absl::StatusOr<v1::DecertifyResponse> CalibdClient::Decertify(const v1::DecertifyRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::DecertifyResponse resp;
  grpc::Status s = store_->Decertify(&ctx, request, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
}

absl::StatusOr<v1::SelectResponse> CalibdClient::Select(const v1::SelectRequest& request) {
  // Read-only: safe to try again after UNAVAILABLE.
  return WithRetry<v1::SelectResponse>([&]() -> absl::StatusOr<v1::SelectResponse> {
    grpc::ClientContext ctx;
    Prepare(&ctx, false);
    v1::SelectResponse resp;
    grpc::Status s = store_->Select(&ctx, request, &resp);
    if (!s.ok()) return FromGrpc(s, ctx);
    return resp;
  });
}

absl::StatusOr<v1::BuildMasterResponse> CalibdClient::BuildMaster(
    const v1::BuildOptions& options, const std::vector<std::string>& paths, ProgressFn progress,
    const std::vector<v1::StoredFrameRef>& stored) {
  // Read every input first: a local problem must not leave a half-sent build behind.
  int64_t total = 0;
  for (const std::string& p : paths) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(p, ec);
    if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", p, ": ", ec.message()));
    total += static_cast<int64_t>(size);
  }
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  // Over ByteBuffers, as Calibrate: chunks go out over the frames' pooled memory (proto/wire.h).
  grpc::ByteBuffer response;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
          channel_.get(),
          grpc::internal::RpcMethod(wire::kBuildMasterMethod,
                                    grpc::internal::RpcMethod::CLIENT_STREAMING),
          &ctx, &response));
  v1::BuildMasterRequest req;
  *req.mutable_options() = options;
  bool ok = writer->Write(wire::SerializeMessage(req));
  for (size_t i = 0; ok && i < stored.size(); ++i) {
    req.Clear();
    *req.mutable_stored() = stored[i];
    ok = writer->Write(wire::SerializeMessage(req));
  }
  BufferPool pool(size_t{1} << 28);
  auto read = [&pool, &paths](size_t i) -> absl::StatusOr<std::shared_ptr<RawFrame>> {
    fits::ReadOptions ro;
    ro.pool = &pool;
    CALIBD_ASSIGN_OR_RETURN(RawFrame raw, fits::ReadRawFrame(paths[i], ro));
    return std::make_shared<RawFrame>(std::move(raw));
  };
  // The next file is read while this one is sent.
  std::future<absl::StatusOr<std::shared_ptr<RawFrame>>> next;
  if (!paths.empty()) next = std::async(std::launch::async, read, 0);
  int64_t done = 0;
  for (size_t i = 0; ok && i < paths.size(); ++i) {
    absl::StatusOr<std::shared_ptr<RawFrame>> raw = next.get();
    if (i + 1 < paths.size()) next = std::async(std::launch::async, read, i + 1);
    if (!raw.ok()) {
      ctx.TryCancel();
      (void)writer->Finish();
      if (next.valid()) next.wait();
      return raw.status();
    }
    req.Clear();
    FillFrameHeader(**raw, options.detector(), std::filesystem::path(paths[i]).filename().string(),
                    req.mutable_frame());
    ok = writer->Write(wire::SerializeMessage(req));
    const char* bytes = static_cast<const char*>((*raw)->pixels.data());
    const size_t n = (*raw)->pixels.size_bytes();
    for (size_t off = 0; ok && off < n; off += kMaxChunkBytes) {
      const size_t len = std::min(kMaxChunkBytes, n - off);
      ok = writer->Write(wire::EncodeChunk(wire::kBuildRequestChunk, 0, bytes + off, len, *raw));
    }
    std::error_code ec;
    done += static_cast<int64_t>(std::filesystem::file_size(paths[i], ec));
    if (progress) progress(done, total);
  }
  if (next.valid()) next.wait();
  if (ok) writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s, ctx);
  v1::BuildMasterResponse resp;
  CALIBD_RETURN_IF_ERROR(wire::ParseMessage(response, &resp));
  return resp;
}

}  // namespace calibd::client
