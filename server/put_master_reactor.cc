// Store.PutMaster: the client-streaming reactor. The server checks only the transport — the
// declared size (not above --max-master-bytes, never exceeded, reached exactly) and the sha256
// in transit (computed once, while spooling) — and hands the spooled file to StoreImpl, whose
// core store validates the content. Spooling (write + hash) and the store call run on the store
// executor; the gRPC thread only starts the next read.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/reactor_base.h"
#include "server/spool.h"

namespace calibd::server {
namespace {

class PutMasterReactor final : public grpc::ServerReadReactor<v1::PutMasterRequest> {
 public:
  PutMasterReactor(ServiceEnv* env, v1::PutMasterResponse* response, StreamStart start)
      : env_(env), response_(response), start_(std::move(start)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (!have_header_) {
        Done(absl::InvalidArgumentError("PutMaster needs a PutMasterHeader, then the FITS bytes"));
        return;
      }
      env_->backend->store_pool->Schedule([this] { Done(Store()); });
      return;
    }
    env_->backend->store_pool->Schedule([this] {
      absl::Status s = Handle();
      if (!s.ok()) {
        Done(s);
        return;
      }
      StartRead(&request_);
    });
  }

  void OnDone() override {
    if (env_->backend->metrics) env_->backend->metrics->AddBytesIn("PutMaster", received_);
    delete this;
  }

 private:
  absl::Status Handle() {
    if (request_.msg_case() == v1::PutMasterRequest::kHeader) {
      if (have_header_) return absl::InvalidArgumentError("a second PutMasterHeader");
      const v1::PutMasterHeader& h = request_.header();
      if (absl::Status s = CheckDetector(start_.who, h.detector()); !s.ok()) return s;
      if (h.total_bytes() <= 0) {
        return absl::InvalidArgumentError("total_bytes must be the size of the FITS file (> 0)");
      }
      if (h.total_bytes() > env_->backend->limits.max_master_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the master is ", h.total_bytes(), " bytes; the server accepts at most ",
            env_->backend->limits.max_master_bytes, " (--max-master-bytes)"));
      }
      absl::StatusOr<PutMasterInput> in = PutMasterInputFromProto(h);
      if (!in.ok()) return in.status();
      input_ = *std::move(in);
      input_.actor = start_.who.name;
      absl::StatusOr<std::unique_ptr<SpoolFile>> f =
          SpoolFile::Create(env_->backend->spool_dir, "calibd-put-", ".fits");
      if (!f.ok()) return f.status();
      spool_ = *std::move(f);
      have_header_ = true;
      return absl::OkStatus();
    }
    if (request_.msg_case() == v1::PutMasterRequest::kChunk) {
      if (!have_header_) {
        return absl::InvalidArgumentError("a chunk arrived before the PutMasterHeader");
      }
      const std::string& data = request_.chunk();
      if (received_ + static_cast<int64_t>(data.size()) > input_.declared_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "more bytes than the declared total_bytes (", input_.declared_bytes, ")"));
      }
      received_ += static_cast<int64_t>(data.size());
      return spool_->Append(data);
    }
    return absl::InvalidArgumentError("an empty PutMasterRequest");
  }

  // After the last chunk: the transport checks, then the store.
  absl::Status Store() {
    if (received_ != input_.declared_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "received ", received_, " bytes but the header declared ", input_.declared_bytes,
          "; send exactly total_bytes"));
    }
    if (absl::Status s = spool_->Close(); !s.ok()) return s;
    input_.received_bytes = received_;
    input_.received_sha256 = spool_->Sha256Hex();
    input_.spooled_path = spool_->path();
    if (!input_.client_sha256.empty() && input_.client_sha256 != input_.received_sha256) {
      return absl::DataLossError(absl::StrCat(
          "sha256 of the received bytes is ", input_.received_sha256, " but the client sent ",
          input_.client_sha256, ": the upload was damaged on the way; retry it"));
    }
    absl::StatusOr<store::MasterVersion> v = env_->store->PutMaster(input_);
    if (!v.ok()) return v.status();
    absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(*v);
    MasterVersionToProto(*v, m.ok() ? m->certifications : std::vector<store::Certification>{},
                         response_->mutable_version());
    response_->set_already_existed(!v->created);
    LogEvent("put_master", {{"detector", v->detector}, {"kind", v->kind},
                            {"version", absl::StrCat(v->version)}, {"sha256", v->sha256},
                            {"created", v->created ? "true" : "false"},
                            {"actor", start_.who.name},
                            {"request_id", start_.call->request_id()}});
    return absl::OkStatus();
  }

  void Done(const absl::Status& s) {
    spool_.reset();  // the spooled copy is not needed once the store has it (or refused it)
    Finish(start_.Conclude(s));
  }

  ServiceEnv* const env_;
  v1::PutMasterResponse* const response_;
  StreamStart start_;
  v1::PutMasterRequest request_;
  PutMasterInput input_;
  bool have_header_ = false;
  std::unique_ptr<SpoolFile> spool_;
  int64_t received_ = 0;
};

}  // namespace

grpc::ServerReadReactor<v1::PutMasterRequest>* StoreService::PutMaster(
    grpc::CallbackServerContext* context, v1::PutMasterResponse* response) {
  return OpenStream<FailedRead<v1::PutMasterRequest>>(
      env_, context, "PutMaster", Scope::kWrite,
      [&](StreamStart s) { return new PutMasterReactor(env_, response, std::move(s)); });
}

}  // namespace calibd::server
