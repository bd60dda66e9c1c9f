#include "client/client.h"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/convert.h"
#include "core/fits/fits.h"
#include "core/hash/sha256.h"
#include "core/status/macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

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
  if constexpr (requires { req->set_page_size(0); req->set_page_token(""); }) {
    req->set_page_size(page.page_size);
    req->set_page_token(page.page_token);
  } else if (page.page_size != 0 || !page.page_token.empty()) {
    (void)req;  // the server's API has no paging on this call yet: one response holds all
  }
}

}  // namespace

CalibdClient::CalibdClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      store_(v1::Store::NewStub(channel_)),
      calibrator_(v1::Calibrator::NewStub(channel_)),
      builder_(v1::Builder::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

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
  grpc::ChannelArguments args;
  // Never raise the 4 MiB default; results of up to 1 MiB per message fit well.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  auto channel = grpc::CreateCustomChannel(options.server, creds, args);
  return std::unique_ptr<CalibdClient>(new CalibdClient(options, std::move(channel)));
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
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::GetDetectorRequest req;
  req.set_name(name);
  req.set_version(version);
  v1::DetectorSpec resp;
  grpc::Status s = store_->GetDetector(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
}

absl::StatusOr<v1::ListDetectorsResponse> CalibdClient::ListDetectors(const PageRequest& page) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::ListDetectorsRequest req;
  SetPage(page, &req);
  v1::ListDetectorsResponse resp;
  grpc::Status s = store_->ListDetectors(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
}

absl::StatusOr<v1::GetDqBitsResponse> CalibdClient::GetDqBits(const std::string& detector) {
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::GetDqBitsRequest req;
  req.set_detector(detector);
  v1::GetDqBitsResponse resp;
  grpc::Status s = store_->GetDqBits(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
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
  std::unique_ptr<grpc::ClientWriter<v1::PutMasterRequest>> writer =
      store_->PutMaster(&ctx, &resp);
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
}

absl::StatusOr<v1::HistoryResponse> CalibdClient::History(const std::string& detector,
                                                          const std::string& kind,
                                                          const PageRequest& page) {
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
}

absl::StatusOr<v1::MasterVersion> CalibdClient::GetMaster(const std::string& detector,
                                                          const std::string& kind,
                                                          const VersionChoice& which,
                                                          const std::string& out_path,
                                                          ProgressFn progress) {
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
  std::unique_ptr<grpc::ClientReader<v1::GetMasterResponse>> reader = store_->GetMaster(&ctx, req);
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
  if (ec) return absl::InternalError(absl::StrCat("cannot rename to ", out_path, ": ", ec.message()));
  return meta;
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
  grpc::ClientContext ctx;
  Prepare(&ctx, false);
  v1::SelectResponse resp;
  grpc::Status s = store_->Select(&ctx, request, &resp);
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
}

absl::StatusOr<v1::BuildMasterResponse> CalibdClient::BuildMaster(
    const v1::BuildOptions& options, const std::vector<std::string>& paths, ProgressFn progress) {
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
  v1::BuildMasterResponse resp;
  std::unique_ptr<grpc::ClientWriter<v1::BuildMasterRequest>> writer =
      builder_->BuildMaster(&ctx, &resp);
  v1::BuildMasterRequest req;
  *req.mutable_options() = options;
  bool ok = writer->Write(req);
  BufferPool pool(size_t{1} << 28);
  int64_t done = 0;
  for (size_t i = 0; ok && i < paths.size(); ++i) {
    fits::ReadOptions ro;
    ro.pool = &pool;
    absl::StatusOr<RawFrame> raw = fits::ReadRawFrame(paths[i], ro);
    if (!raw.ok()) {
      ctx.TryCancel();
      (void)writer->Finish();
      return raw.status();
    }
    req.Clear();
    FillFrameHeader(*raw, options.detector(), std::filesystem::path(paths[i]).filename().string(),
                    req.mutable_frame());
    ok = writer->Write(req);
    const char* bytes = static_cast<const char*>(raw->pixels.data());
    const size_t n = raw->pixels.size_bytes();
    for (size_t off = 0; ok && off < n; off += kMaxChunkBytes) {
      const size_t len = std::min(kMaxChunkBytes, n - off);
      req.mutable_chunk()->set_data(bytes + off, len);
      ok = writer->Write(req);
    }
    std::error_code ec;
    done += static_cast<int64_t>(std::filesystem::file_size(paths[i], ec));
    if (progress) progress(done, total);
  }
  if (ok) writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s, ctx);
  return resp;
}

absl::Status CalibdClient::Calibrate(const std::vector<std::string>& paths,
                                     const CalibrateOptions& options,
                                     const std::function<void(CalibrateResult)>& on_result) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  std::unique_ptr<grpc::ClientReaderWriter<v1::CalibrateRequest, v1::CalibrateResponse>> stream =
      calibrator_->Calibrate(&ctx);

  // What the writer did with each path, in order: sent (a result will come back) or failed
  // locally (reported without a server round trip).
  struct Item {
    std::string path;
    absl::Status local;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> items;
  bool writer_done = false;
  bool stop = false;  // the reader gave up: the writer stops too

  int64_t total = 0;
  for (const std::string& p : paths) {
    std::error_code ec;
    total += static_cast<int64_t>(std::filesystem::file_size(p, ec));
  }
  BufferPool pool(size_t{1} << 30);

  std::thread writer([&] {
    v1::CalibrateRequest req;
    bool ok = true;
    int64_t done = 0;
    for (size_t i = 0; ok && i < paths.size(); ++i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) break;
      }
      fits::ReadOptions ro;
      ro.pool = &pool;
      absl::StatusOr<RawFrame> raw = fits::ReadRawFrame(paths[i], ro);
      if (!raw.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        items.push_back({paths[i], raw.status()});
        cv.notify_all();
        continue;
      }
      req.Clear();
      v1::FrameHeader* h = req.mutable_header();
      FillFrameHeader(*raw, options.detector, paths[i], h);
      *h->mutable_recipe() = options.recipe;
      *h->mutable_selection() = options.selection;
      h->set_unit(options.unit);
      for (v1::Plane p : options.planes) h->add_planes(p);
      {
        std::lock_guard<std::mutex> lock(mu);
        items.push_back({paths[i], absl::OkStatus()});
        cv.notify_all();
      }
      ok = stream->Write(req);
      std::error_code ec;
      const double file_bytes = static_cast<double>(std::filesystem::file_size(paths[i], ec));
      const char* bytes = static_cast<const char*>(raw->pixels.data());
      const size_t n = raw->pixels.size_bytes();
      for (size_t off = 0; ok && off < n; off += kMaxChunkBytes) {
        const size_t len = std::min(kMaxChunkBytes, n - off);
        req.mutable_chunk()->set_data(bytes + off, len);
        ok = stream->Write(req);
        // Progress in file bytes (what the user sees on disk), pro rata of the pixels sent.
        if (options.progress && !ec) {
          options.progress(done + static_cast<int64_t>((off + len) * file_bytes / n), total);
        }
      }
      if (!ec) done += static_cast<int64_t>(file_bytes);
    }
    if (ok) stream->WritesDone();
    std::lock_guard<std::mutex> lock(mu);
    writer_done = true;
    cv.notify_all();
  });

  ResultAssembler assembler(&pool);
  v1::CalibrateResponse resp;
  std::vector<Item> unfinished;  // items without a result when the stream broke
  absl::Status protocol_error;
  while (true) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !items.empty() || writer_done; });
      if (items.empty()) break;
      item = std::move(items.front());
      items.pop_front();
    }
    CalibrateResult result;
    result.path = item.path;
    if (!item.local.ok()) {
      result.status = item.local;
      on_result(std::move(result));
      continue;
    }
    // Read this frame's result header and its planes.
    bool started = false, broken = false;
    while (true) {
      if (!stream->Read(&resp)) {
        broken = true;
        break;
      }
      if (resp.has_header()) {
        if (started) {
          protocol_error = absl::InternalError(
              "protocol error from the server: a result header arrived before the previous "
              "result was complete");
          broken = true;
          break;
        }
        started = true;
        absl::Status s = assembler.Start(resp.header());
        if (!s.ok()) {
          result.header = resp.header();
          result.status = s;
          break;
        }
      } else if (resp.has_chunk()) {
        absl::Status s = assembler.AddChunk(resp.chunk());
        if (!s.ok()) {
          protocol_error = Annotate(s, "protocol error from the server");
          broken = true;
          break;
        }
      }
      if (started && assembler.complete()) {
        result.header = assembler.header();
        result.frame = assembler.Take();
        break;
      }
    }
    if (broken) {
      unfinished.push_back(std::move(item));
      break;
    }
    on_result(std::move(result));
  }
  if (!unfinished.empty()) {
    // Stop the writer (its writes fail once the call is over), then learn why it ended.
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    if (!protocol_error.ok()) ctx.TryCancel();
  }
  writer.join();
  while (stream->Read(&resp)) {
  }
  absl::Status final_status = FromGrpc(stream->Finish(), ctx);
  if (!protocol_error.ok()) final_status = protocol_error;
  if (!unfinished.empty() && final_status.ok()) {
    final_status = absl::UnavailableError("the stream ended before every result came back");
  }
  for (Item& item : items) unfinished.push_back(std::move(item));
  for (Item& item : unfinished) {
    CalibrateResult result;
    result.path = item.path;
    result.status = item.local.ok() ? final_status : item.local;
    on_result(std::move(result));
  }
  return final_status;
}

}  // namespace calibd::client
