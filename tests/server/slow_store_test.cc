// Slow work stays off gRPC's callback threads: with a store whose calls for one detector (and
// ListDetectors) take seconds, health checks, other unary calls and other Calibrate streams
// still answer within 100 ms, and the slow calls finish with their own result.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "calibd/v1/calibrator.grpc.pb.h"
#include "calibd/v1/store.grpc.pb.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "core/store/forwarding_store.h"
#include "tests/testing/grpc_matchers.h"
#include "tests/testing/temp_dir.h"

namespace calibd::server {
namespace {

using ::calibd::testing::GrpcIs;
using Clock = std::chrono::steady_clock;

constexpr char kSlowDetector[] = "slow/ccd";
constexpr auto kDelay = std::chrono::milliseconds(1500);
constexpr double kDelayMs = 1500;

// A store whose GetDetector(kSlowDetector) and ListDetectors sleep kDelay first.
class SlowStore final : public store::ForwardingStore {
 public:
  using store::ForwardingStore::ForwardingStore;
  absl::StatusOr<store::DetectorRecord> GetDetector(const std::string& name,
                                                    int64_t version) override {
    if (name == kSlowDetector) std::this_thread::sleep_for(kDelay);
    return inner().GetDetector(name, version);
  }
  absl::StatusOr<store::Page<store::DetectorRecord>> ListDetectors(
      const store::PageRequest& page) override {
    std::this_thread::sleep_for(kDelay);
    return inner().ListDetectors(page);
  }
};

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

using Stream = grpc::ClientReaderWriter<v1::CalibrateRequest, v1::CalibrateResponse>;

// Sends one 8×4 uint16 frame for `detector` on `stream`.
void SendTinyFrame(Stream* stream, const std::string& detector, const std::string& id) {
  v1::CalibrateRequest req;
  v1::FrameHeader* h = req.mutable_header();
  h->set_frame_id(id);
  h->set_detector(detector);
  h->set_width(8);
  h->set_height(4);
  h->set_pixel_type(v1::PIXEL_TYPE_UINT16);
  ASSERT_TRUE(stream->Write(req));
  v1::CalibrateRequest chunk;
  chunk.mutable_chunk()->set_data(std::string(8 * 4 * 2, '\0'));
  ASSERT_TRUE(stream->Write(chunk));
}

TEST(SlowStoreTest, HealthAndOtherCallsAnswerWhileTheStoreIsSlow) {
  calibd::testing::TempDir dir;
  BufferPool buffers(size_t{64} << 20);
  ServerOptions options;
  options.listen = "";
  options.metrics_listen = "";
  options.workers = 2;
  options.spool_dir = dir.path();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdServer> server,
                       CalibdServer::Start(std::move(options), &buffers));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::CalibrationStore> real,
                       store::OpenStore(dir.File("store")));
  server->SetStore(std::make_shared<SlowStore>(std::move(real)));
  std::shared_ptr<grpc::Channel> channel = server->InProcessChannel();
  auto health = grpc::health::v1::Health::NewStub(channel);
  auto store = v1::Store::NewStub(channel);
  auto calibrator = v1::Calibrator::NewStub(channel);

  auto check_health = [&] {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, req, &resp);
    EXPECT_GRPC_OK(s);
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  };
  auto get_dq_bits = [&] {
    grpc::ClientContext ctx;
    v1::GetDqBitsResponse resp;
    EXPECT_GRPC_OK(store->GetDqBits(&ctx, {}, &resp));
  };
  // A frame for an unknown (fast) detector: its result header says NOT_FOUND.
  auto fast_frame = [&] {
    grpc::ClientContext ctx;
    std::unique_ptr<Stream> s = calibrator->Calibrate(&ctx);
    SendTinyFrame(s.get(), "fast/none", "fast");
    s->WritesDone();
    v1::CalibrateResponse r;
    ASSERT_TRUE(s->Read(&r));
    EXPECT_EQ(r.header().status().code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_GRPC_OK(s->Finish());
  };
  // Warm up the channel and every path once.
  check_health();
  get_dq_bits();
  fast_frame();

  // The slow calls: a Calibrate stream whose Prepare waits in GetDetector, a ListDetectors.
  const Clock::time_point slow_start = Clock::now();
  grpc::ClientContext slow_ctx;
  std::unique_ptr<Stream> slow = calibrator->Calibrate(&slow_ctx);
  // Written from its own thread: the server reads no further while the header is prepared,
  // so the chunk's Write waits (flow control).
  std::future<void> slow_writes = std::async(std::launch::async, [&] {
    SendTinyFrame(slow.get(), kSlowDetector, "slow");
    slow->WritesDone();
  });
  std::future<grpc::Status> slow_list = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    v1::ListDetectorsResponse resp;
    return store->ListDetectors(&ctx, {}, &resp);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both are now in the store

  for (int i = 0; i < 3; ++i) {
    Clock::time_point t = Clock::now();
    check_health();
    EXPECT_LT(MsSince(t), 100) << "health check " << i;
    t = Clock::now();
    get_dq_bits();
    EXPECT_LT(MsSince(t), 100) << "GetDqBits " << i;
    t = Clock::now();
    fast_frame();
    EXPECT_LT(MsSince(t), 100) << "another Calibrate stream " << i;
  }
  EXPECT_LT(MsSince(slow_start), kDelayMs)
      << "the fast calls must have run while the slow ones were still waiting";

  // The slow ones finish with their own answers.
  slow_writes.get();
  v1::CalibrateResponse r;
  ASSERT_TRUE(slow->Read(&r));
  EXPECT_EQ(r.header().frame_id(), "slow");
  EXPECT_EQ(r.header().status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_GRPC_OK(slow->Finish());
  EXPECT_GRPC_OK(slow_list.get());
  EXPECT_GE(MsSince(slow_start), kDelayMs);
}

}  // namespace
}  // namespace calibd::server
