// Service tests of BuildMaster through the real services: a median master equals core's
// Combine of the same pre-processed frames; the errors carry their exact codes.
#include "tests/server/server_fixture.h"

namespace calibd::server {
namespace {

TEST_F(ServerTest, BuildMasterCombinesPreprocessedFrames) {
  ASSERT_GRPC_OK(PutDetector(ccd_));
  std::vector<RawFrame> raws;
  for (int i = 0; i < 3; ++i) raws.push_back(SimulateFrame(ccd_, FrameKind::kBias, 100 + i));
  grpc::ClientContext ctx;
  v1::BuildMasterResponse resp;
  auto w = builder_->BuildMaster(&ctx, &resp);
  v1::BuildMasterRequest req;
  v1::BuildOptions* o = req.mutable_options();
  o->set_detector(kDetector);
  o->set_kind("bias");
  o->mutable_combine()->set_method("mean");
  o->mutable_combine()->mutable_sigma_clip()->set_enabled(false);
  *o->mutable_certify_begin() = Ts("2026-01-01T00:00:00");
  ASSERT_TRUE(w->Write(req));
  for (size_t i = 0; i < raws.size(); ++i) {
    v1::CalibrateRequest h = HeaderRequest(raws[i], "bias" + std::to_string(i));
    req.Clear();
    *req.mutable_frame() = h.header();
    ASSERT_TRUE(w->Write(req));
    const char* p = static_cast<const char*>(raws[i].pixels.data());
    const size_t n = raws[i].pixels.size_bytes();
    for (size_t off = 0; off < n; off += kChunk) {
      req.Clear();
      req.mutable_chunk()->set_data(p + off, std::min(kChunk, n - off));
      ASSERT_TRUE(w->Write(req));
      if (i == 1 && off == 0) {  // an empty chunk: parsed by protobuf, not taken in place
        req.Clear();
        req.mutable_chunk();
        ASSERT_TRUE(w->Write(req));
      }
    }
  }
  w->WritesDone();
  grpc::Status s = w->Finish();
  ASSERT_GRPC_OK(s);
  EXPECT_EQ(resp.version().version(), 1);
  EXPECT_EQ(resp.statistics().inputs(), 3);
  EXPECT_EQ(resp.input_sha256_size(), 3);
  EXPECT_TRUE(resp.has_certification());
  // The stored provenance records the options that ran (no clipping here: it was switched off).
  const auto& prov = resp.version().provenance().options();
  ASSERT_EQ(prov.count("combine.method"), 1u);
  EXPECT_EQ(prov.at("combine.method"), "mean");
  EXPECT_EQ(prov.at("combine.sigma_clip"), "off");
  EXPECT_EQ(prov.at("preprocess.masters"), "none");
  EXPECT_THAT(resp.version().provenance().software_version(), ::testing::StartsWith("calibd "));

  // Oracle: overscan-subtract and trim each frame with core, then combine::Combine (mean).
  std::vector<std::unique_ptr<combine::FrameSource>> sources;
  for (const RawFrame& raw : raws) {
    calib::RecipeOptions opt = OracleOptions(calib::RecipeOptions::Unit::kAdu);
    opt.compute_variance = false;
    ASSERT_OK_AND_ASSIGN(CalibratedFrame f, calib::Calibrate(raw, calib::Masters{}, opt));
    sources.push_back(combine::MemorySource(std::make_shared<CalibratedFrame>(std::move(f))));
  }
  combine::CombineOptions co;
  co.method = combine::CombineOptions::Method::kMean;
  co.sigma_clip.enabled = false;
  ASSERT_OK_AND_ASSIGN(combine::CombineResult want, combine::Combine(std::move(sources), co));

  // The stored master, read back through GetMaster.
  grpc::ClientContext gctx;
  v1::GetMasterRequest get;
  get.set_detector(kDetector);
  get.set_kind("bias");
  *get.mutable_at() = Ts("2026-03-01T00:00:00");
  auto reader = store_->GetMaster(&gctx, get);
  v1::GetMasterResponse part;
  std::string bytes;
  while (reader->Read(&part)) {
    if (part.has_metadata()) continue;
    bytes += part.chunk();
  }
  ASSERT_GRPC_OK(reader->Finish());
  const std::string path = dir_.File("built.fits");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  ASSERT_OK_AND_ASSIGN(CalibratedFrame got, fits::ReadCalibratedFrame(path));
  ASSERT_EQ(got.width(), want.frame.width());
  ASSERT_EQ(got.height(), want.frame.height());
  for (int y = 0; y < got.height(); ++y) {
    for (int x = 0; x < got.width(); ++x) {
      ASSERT_EQ(got.data.at(x, y), want.frame.data.at(x, y)) << x << "," << y;
    }
  }
}

TEST_F(ServerTest, BuildMasterErrors) {
  {  // Unknown detector.
    grpc::ClientContext ctx;
    v1::BuildMasterResponse resp;
    auto w = builder_->BuildMaster(&ctx, &resp);
    v1::BuildMasterRequest req;
    req.mutable_options()->set_detector("nosuch/detector");
    req.mutable_options()->set_kind("bias");
    w->Write(req);
    w->WritesDone();
    EXPECT_THAT(w->Finish(), GrpcIs(grpc::StatusCode::NOT_FOUND));
  }
  ASSERT_GRPC_OK(PutDetector(ccd_));
  // No inputs, and protocol errors in the pixel stream: the exact code, a message naming the
  // fault, and no version stored.
  const RawFrame raw = SimulateFrame(ccd_, FrameKind::kBias, 7);
  const char* pixels = static_cast<const char*>(raw.pixels.data());
  const size_t n = raw.pixels.size_bytes();
  struct Case {
    const char* name;
    std::vector<size_t> chunks;  // the sizes of the chunks sent (after the header, if any)
    bool header = true;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"no inputs", {}, false, "at least one input frame"},
      {"a chunk before any frame header", {16}, false, "without a frame header"},
      {"more bytes than the header declared", {n - 8, 16}, true, "more bytes than its header"},
      {"one chunk larger than the frame", {n + 2}, true, "more bytes than its header"},
      {"a chunk after the frame was complete", {n, 2}, true, "without a frame header"},
      {"the stream ends mid-frame", {n / 2}, true, "middle of input frame"},
  };
  std::string extra(n + 64, '\0');  // the pixels, then zeros for the extra bytes
  std::memcpy(extra.data(), pixels, n);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    grpc::ClientContext ctx;
    v1::BuildMasterResponse resp;
    auto w = builder_->BuildMaster(&ctx, &resp);
    v1::BuildMasterRequest req;
    req.mutable_options()->set_detector(kDetector);
    req.mutable_options()->set_kind("bias");
    ASSERT_TRUE(w->Write(req));
    if (c.header) {
      req.Clear();
      *req.mutable_frame() = HeaderRequest(raw, "bias-bad").header();
      ASSERT_TRUE(w->Write(req));
    }
    size_t off = 0;
    for (size_t len : c.chunks) {
      req.Clear();
      req.mutable_chunk()->set_data(extra.data() + std::min(off, n), len);
      if (!w->Write(req)) break;  // the server may have ended the call already
      off += len;
    }
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_THAT(s, GrpcIs(grpc::StatusCode::INVALID_ARGUMENT));
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr(c.message));
  }
  grpc::ClientContext lctx;
  v1::ListMastersRequest list;
  list.set_detector(kDetector);
  v1::ListMastersResponse listed;
  ASSERT_GRPC_OK(store_->ListMasters(&lctx, list, &listed));
  EXPECT_EQ(listed.versions_size(), 0);
}

}  // namespace
}  // namespace calibd::server
