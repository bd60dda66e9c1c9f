#include "bench/load/setup.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "calibd/v1/store.grpc.pb.h"
#include "core/fits/fits.h"
#include "core/hash/sha256.h"
#include "core/image/frame.h"
#include "core/status/macros.h"

namespace calibd::load {
namespace {

namespace v1 = ::calibd::v1;
constexpr int kChunkBytes = 1 << 20;  // the API's chunk cap

}  // namespace

void AddBenchCards(Header* h) {
  h->Set("READMODE", "fast");
  h->Set("BINNING", "1x1");
  h->Set("GAINMODE", "high");
  h->Set("FILTER", "r");
  h->Set("CCD-TEMP", -100.0);
  h->Set("EXPTIME", 30.0);
  h->Set("DATE-OBS", "2026-03-01T02:03:04.5");
}

namespace {

void AddToken(const BenchDetector& o, grpc::ClientContext* ctx) {
  if (!o.token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + o.token);
  }
}

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<int64_t> PutMaster(const BenchDetector& o, v1::Store::Stub* store,
                                  const std::string& kind, const std::string& path) {
  CALIBD_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  grpc::ClientContext ctx;
  AddToken(o, &ctx);
  v1::PutMasterResponse resp;
  auto writer = store->PutMaster(&ctx, &resp);
  v1::PutMasterRequest req;
  v1::PutMasterHeader* h = req.mutable_header();
  h->set_detector(o.detector);
  h->set_kind(kind);
  h->set_total_bytes(static_cast<int64_t>(bytes.size()));
  h->set_sha256(hash::Sha256Hex(bytes));
  (*h->mutable_attributes())["source"] = "calibd_load";
  bool ok = writer->Write(req);
  for (size_t off = 0; ok && off < bytes.size(); off += kChunkBytes) {
    v1::PutMasterRequest c;
    c.set_chunk(bytes.substr(off, kChunkBytes));
    ok = writer->Write(c);
  }
  writer->WritesDone();
  CALIBD_RETURN_IF_ERROR(FromGrpc(writer->Finish(), absl::StrCat("PutMaster ", kind)));
  return resp.version().version();
}

}  // namespace

absl::Status SetUpBenchDetector(const std::shared_ptr<grpc::Channel>& channel,
                                const BenchDetector& o) {
  const int w = o.width, h = o.height;
  const int os = o.overscan;
  const int dw = w - os;
  auto store = v1::Store::NewStub(channel);
  {
    v1::PutDetectorRequest req;
    v1::DetectorSpec* spec = req.mutable_spec();
    spec->set_name(o.detector);
    spec->set_width(w);
    spec->set_height(h);
    spec->set_overscan_section(absl::StrFormat("[%d:%d,1:%d]", dw + 1, w, h));
    spec->set_trim_section(absl::StrFormat("[1:%d,1:%d]", dw, h));
    spec->set_gain(1.5);
    spec->set_read_noise(5.0);
    spec->set_saturation(65000);
    spec->set_description("calibd_load benchmark detector");
    v1::PutDetectorResponse resp;
    grpc::ClientContext ctx;
    AddToken(o, &ctx);
    CALIBD_RETURN_IF_ERROR(FromGrpc(store->PutDetector(&ctx, req, &resp), "PutDetector"));
  }
  char tmpl[] = "/tmp/calibd_load.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = tmpl;
  struct Kind {
    const char* name;
    float base, amplitude;
  };
  for (const Kind& k :
       {Kind{"bias", 0.0f, 2.0f}, Kind{"dark", 1.0f, 1.0f}, Kind{"flat", 20000.0f, 2000.0f}}) {
    CalibratedFrame m;
    m.data = Image<float>::Allocate(dw, h);
    for (int y = 0; y < h; ++y) {
      float* row = m.data.row(y);
      for (int x = 0; x < dw; ++x) {
        row[x] = k.base + k.amplitude * static_cast<float>(((x * 31 + y * 17) % 101) / 101.0);
      }
    }
    AddBenchCards(&m.header);
    m.header.Set("IMAGETYP", k.name);
    if (std::string(k.name) == "bias") m.header.Set("EXPTIME", 0.0);
    const std::string path = absl::StrCat(dir, "/", k.name, ".fits");
    CALIBD_RETURN_IF_ERROR(fits::WriteCalibratedFrame(path, m, {.overwrite = true}));
    absl::StatusOr<int64_t> version = PutMaster(o, store.get(), k.name, path);
    std::remove(path.c_str());
    if (!version.ok()) {
      rmdir(dir.c_str());
      return version.status();
    }
    v1::CertifyRequest req;
    req.set_detector(o.detector);
    req.set_kind(k.name);
    req.set_version(*version);
    req.mutable_begin()->set_seconds(946684800);  // 2000-01-01T00:00:00Z
    req.set_reason("calibd_load setup");
    v1::CertifyResponse resp;
    grpc::ClientContext ctx;
    AddToken(o, &ctx);
    grpc::Status s = store->Certify(&ctx, req, &resp);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      rmdir(dir.c_str());
      return FromGrpc(s, absl::StrCat("Certify ", k.name));
    }
    std::cerr << "setup: " << k.name << " v" << *version << " certified\n";
  }
  rmdir(dir.c_str());
  return absl::OkStatus();
}

}  // namespace calibd::load
