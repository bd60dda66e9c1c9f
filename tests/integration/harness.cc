#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/fits/fits.h"
#include "core/image/frame.h"
#include "core/hash/sha256.h"
#include "core/store/store.h"
#include "gtest/gtest.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::integration {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

Client::Client(const std::string& address, const std::string& token) : token_(token) {
  grpc::ChannelArguments args;
  // Each Client gets its own connection, so one test's streams do not share flow control
  // with another's unless they share the Client.
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  args.SetMaxReceiveMessageSize(8 << 20);
  channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  calibrator_ = v1::Calibrator::NewStub(channel_);
  store_ = v1::Store::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Client::Context(double seconds) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  return ctx;
}

absl::Status Client::PutDetector(const std::string& name, int width, int height, int overscan) {
  v1::PutDetectorRequest req;
  v1::DetectorSpec* spec = req.mutable_spec();
  spec->set_name(name);
  spec->set_width(width);
  spec->set_height(height);
  if (overscan > 0) {
    spec->set_overscan_section(
        absl::StrCat("[", width - overscan + 1, ":", width, ",1:", height, "]"));
    spec->set_trim_section(absl::StrCat("[1:", width - overscan, ",1:", height, "]"));
  }
  spec->set_gain(2.0);
  spec->set_read_noise(4.0);
  spec->set_saturation(60000);
  // Only the readout mode forms the configuration, so a frame without EXPTIME reaches the dark
  // step (and fails there) rather than failing selection.
  (*spec->mutable_configuration_keys())["default"].add_keys("readout_mode");
  spec->set_description("integration-test detector");
  v1::PutDetectorResponse resp;
  auto ctx = Context();
  return FromGrpc(store_->PutDetector(ctx.get(), req, &resp));
}

absl::StatusOr<v1::PutMasterResponse> Client::PutMasterBytes(const std::string& kind,
                                                             const std::string& bytes,
                                                             const std::string& detector,
                                                             std::string sha256, size_t chunk) {
  if (sha256.empty()) sha256 = hash::Sha256Hex(bytes);
  auto ctx = Context();
  v1::PutMasterResponse resp;
  auto writer = store_->PutMaster(ctx.get(), &resp);
  v1::PutMasterRequest req;
  req.mutable_header()->set_detector(detector);
  req.mutable_header()->set_kind(kind);
  req.mutable_header()->set_total_bytes(static_cast<int64_t>(bytes.size()));
  req.mutable_header()->set_sha256(sha256);
  bool ok = writer->Write(req);
  for (size_t off = 0; ok && off < bytes.size(); off += chunk) {
    v1::PutMasterRequest c;
    c.set_chunk(bytes.substr(off, chunk));
    ok = writer->Write(c);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(s);
  return resp;
}

absl::Status Client::Certify(const std::string& kind, int64_t version,
                             const std::string& detector) {
  v1::CertifyRequest req;
  req.set_detector(detector);
  req.set_kind(kind);
  req.set_version(version);
  req.mutable_begin()->set_seconds(kCertifyBegin);
  req.set_reason("integration test");
  v1::CertifyResponse resp;
  auto ctx = Context();
  return FromGrpc(store_->Certify(ctx.get(), req, &resp));
}

absl::Status Client::SetUpTestDetector(bool certify) {
  if (absl::Status s = PutDetector(); !s.ok()) return s;
  const std::pair<const char*, std::string> masters[] = {
      {"bias", BiasFits()}, {"dark", DarkFits()}, {"flat", FlatFits()}};
  for (const auto& [kind, bytes] : masters) {
    absl::StatusOr<v1::PutMasterResponse> r = PutMasterBytes(kind, bytes);
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat("put ", kind, ": ", r.status().message()));
    }
    if (certify) {
      if (absl::Status s = Certify(kind, r->version().version()); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

std::string MasterFits(const std::string& kind, double (*value)(int x, int y), double exptime,
                       int width, int height) {
  CalibratedFrame m;
  m.data = Image<float>::Allocate(width, height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) m.data.at(x, y) = static_cast<float>(value(x, y));
  }
  m.header.Set("IMAGETYP", kind);
  m.header.Set("READMODE", "fast");
  m.header.Set("DATE-OBS", kDateObs);
  if (exptime >= 0) m.header.Set("EXPTIME", exptime);
  calibd::testing::TempDir dir;
  const std::string path = dir.File("master.fits");
  absl::Status s = fits::WriteCalibratedFrame(path, m);
  EXPECT_TRUE(s.ok()) << s;
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string BiasFits() {
  return MasterFits("bias", [](int, int) { return 100.0; }, 0.0);
}
std::string DarkFits() {
  return MasterFits("dark", [](int, int) { return 10.0; }, 100.0);
}
std::string FlatFits() {
  return MasterFits("flat", [](int x, int) { return x % 2 == 0 ? 1.5 : 0.5; }, 1.0);
}

v1::FrameHeader LightHeader(const std::string& frame_id, double exptime,
                            const std::string& detector, int width, int height) {
  v1::FrameHeader h;
  h.set_frame_id(frame_id);
  h.set_detector(detector);
  h.set_width(width);
  h.set_height(height);
  h.set_pixel_type(v1::PIXEL_TYPE_UINT16);
  auto card = [&](const std::string& key, const std::string& v) {
    v1::HeaderCard* c = h.add_cards();
    c->set_key(key);
    c->set_string_value(v);
  };
  card("IMAGETYP", "object");
  card("READMODE", "fast");
  card("DATE-OBS", kDateObs);
  if (exptime >= 0) {
    v1::HeaderCard* c = h.add_cards();
    c->set_key("EXPTIME");
    c->set_double_value(exptime);
  }
  h.mutable_selection()->set_policy(v1::SELECTION_POLICY_STRICT);
  return h;
}

std::string LightPixels(int width, int height) {
  std::string bytes(static_cast<size_t>(width) * height * 2, '\0');
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      double flat = x % 2 == 0 ? 1.5 : 0.5;
      double v = x >= width - kOverscan ? 1000.0 : 1000.0 + 100.0 + 5.0 + kExpectedLight * flat;
      uint16_t u = static_cast<uint16_t>(v);
      size_t i = (static_cast<size_t>(y) * width + x) * 2;
      bytes[i] = static_cast<char>(u & 0xFF);
      bytes[i + 1] = static_cast<char>(u >> 8);
    }
  }
  return bytes;
}

CalibrateCall::CalibrateCall(Client* client, double deadline_seconds)
    : context_(client->Context(deadline_seconds)),
      stream_(client->calibrator()->Calibrate(context_.get())) {}

bool CalibrateCall::SendHeader(const v1::FrameHeader& header) {
  v1::CalibrateRequest req;
  *req.mutable_header() = header;
  return stream_->Write(req);
}

bool CalibrateCall::SendChunks(const std::string& bytes, size_t chunk) {
  for (size_t off = 0; off < bytes.size(); off += chunk) {
    v1::CalibrateRequest req;
    req.mutable_chunk()->set_data(bytes.substr(off, chunk));
    if (!stream_->Write(req)) return false;
  }
  return true;
}

FrameResult CalibrateCall::ReadResult() {
  FrameResult r;
  v1::CalibrateResponse msg;
  if (!stream_->Read(&msg) || !msg.has_header()) return r;
  r.header = msg.header();
  if (r.header.status().code() != 0) {
    r.ok = true;
    return r;
  }
  const int64_t n = int64_t{r.header.width()} * r.header.height();
  for (int plane : r.header.planes()) {
    std::string bytes;
    const int64_t want = plane == v1::PLANE_DQ ? 2 * n : 4 * n;
    while (static_cast<int64_t>(bytes.size()) < want) {
      if (!stream_->Read(&msg) || !msg.has_chunk()) return r;
      if (msg.chunk().plane() != plane) return r;
      bytes += msg.chunk().data();
    }
    if (static_cast<int64_t>(bytes.size()) != want) return r;
    if (plane == v1::PLANE_DQ) {
      r.dq.resize(n);
      std::memcpy(r.dq.data(), bytes.data(), bytes.size());
    } else {
      std::vector<float>& dst = plane == v1::PLANE_DATA ? r.data : r.variance;
      dst.resize(n);
      std::memcpy(dst.data(), bytes.data(), bytes.size());
    }
  }
  r.ok = true;
  return r;
}

grpc::Status CalibrateCall::Finish() {
  if (!writes_done_) {
    stream_->WritesDone();
    writes_done_ = true;
  }
  v1::CalibrateResponse msg;
  while (stream_->Read(&msg)) {
  }
  return stream_->Finish();
}

void ExpectStillServing(Client& client, const std::string& address) {
  absl::StatusOr<calibd::testing::HealthState> health =
      calibd::testing::CheckHealth(address, absl::Seconds(5));
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, calibd::testing::HealthState::kServing);
  CalibrateCall call(&client);
  ASSERT_TRUE(call.SendFrame(LightHeader("still-serving"), LightPixels()));
  FrameResult r = call.ReadResult();
  ASSERT_TRUE(r.ok) << "no result for a good frame after the fault";
  ASSERT_EQ(r.header.status().code(), 0) << r.header.status().message();
  ASSERT_EQ(r.header.width(), kWidth);
  ASSERT_EQ(r.header.height(), kHeight);
  ASSERT_EQ(r.data.size(), static_cast<size_t>(kWidth) * kHeight);
  int wrong = 0;
  for (float v : r.data) wrong += std::abs(v - kExpectedLight) > 1e-3;
  EXPECT_EQ(wrong, 0) << "pixels differing from " << kExpectedLight << ", e.g. " << r.data[0];
  EXPECT_TRUE(call.Finish().ok());
}

absl::StatusOr<std::string> ScrapeMetrics(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to metrics port ", port, ": ",
                                               std::strerror(errno)));
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return absl::InternalError("write to the metrics port failed");
  }
  std::string response;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) response.append(buf, n);
  close(fd);
  if (!absl::StartsWith(response, "HTTP/1.") || response.find(" 200") == std::string::npos) {
    return absl::InternalError(absl::StrCat("metrics answered: ", response.substr(0, 200)));
  }
  size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? response : response.substr(body + 4);
}

absl::StatusOr<double> MetricValue(const std::string& exposition, const std::string& name,
                                   const std::vector<std::pair<std::string, std::string>>& labels) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    absl::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != '{' && rest[0] != ' ')) continue;
    absl::string_view label_part;
    if (rest[0] == '{') {
      size_t close = rest.find('}');
      if (close == absl::string_view::npos) continue;
      label_part = rest.substr(1, close - 1);
      rest = rest.substr(close + 1);
    }
    bool all = true;
    for (const auto& [k, v] : labels) {
      all &= absl::StrContains(label_part, absl::StrCat(k, "=\"", v, "\""));
    }
    if (!all) continue;
    double value = 0;
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::StripAsciiWhitespace(rest), ' ', absl::SkipEmpty());
    if (!parts.empty() && absl::SimpleAtod(parts[0], &value)) return value;
  }
  return absl::NotFoundError(absl::StrCat("no sample of ", name, " with those labels"));
}

absl::StatusOr<int64_t> ResidentBytes(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      std::vector<std::string> parts =
          absl::StrSplit(line.substr(6), absl::ByAnyChar(" \t"), absl::SkipEmpty());
      int64_t kb = 0;
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &kb)) return kb * 1024;
    }
  }
  return absl::NotFoundError(absl::StrCat("no VmRSS for pid ", pid));
}

}  // namespace calibd::integration
