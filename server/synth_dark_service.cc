// Noise.SynthesizeDark: the server-streaming reactor (synth_dark_service.h).
#include "server/synth_dark_service.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/convert.h"
#include "server/frame_memory.h"
#include "server/metrics.h"
#include "server/reactor_base.h"
#include "server/write_reactor.h"

namespace calibd::server {

absl::StatusOr<SynthDarkQuery> SynthDarkQueryFromProto(const v1::SynthesizeDarkRequest& r,
                                                       const store::DetectorSpec& spec) {
  SynthDarkQuery q;
  q.detector = r.detector();
  if (!std::isfinite(r.exptime()) || r.exptime() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("exptime must be a number of seconds > 0, got ", r.exptime()));
  }
  q.exptime = r.exptime();
  if (!std::isfinite(r.em_gain()) || r.em_gain() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("em_gain must be > 0 (0 or unset = 1), got ", r.em_gain()));
  }
  q.em_gain = r.em_gain() == 0 ? 1.0 : r.em_gain();
  q.configuration = ConfigurationFromProto(r.configuration());
  if (r.version_choice_case() == v1::SynthesizeDarkRequest::kVersion) {
    if (r.version() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("version must be 1 or more, got ", r.version()));
    }
    q.version = r.version();
  } else if (r.version_choice_case() == v1::SynthesizeDarkRequest::kAt) {
    absl::StatusOr<store::TimeMicros> t = TimeMicrosFromProto(r.at(), "at");
    if (!t.ok()) return t.status();
    q.at = *t;
  }
  if (r.has_temperature()) {
    if (!std::isfinite(r.temperature())) {
      return absl::InvalidArgumentError("temperature must be a finite number of °C");
    }
    const std::optional<double> c = spec.dark_temperature_coefficient;
    if (!c.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "detector ", r.detector(),
          " has no dark temperature coefficient in its spec; put one in the spec "
          "(dark_temperature_coefficient, 1/K) or leave the temperature out"));
    }
    q.temperature = r.temperature();
    q.temperature_coefficient = *c;
  }
  for (int p : r.planes()) {
    if (p != v1::PLANE_DATA && p != v1::PLANE_VARIANCE && p != v1::PLANE_DQ) {
      return absl::InvalidArgumentError(absl::StrCat("planes: unknown plane ", p));
    }
  }
  return q;
}

int64_t SynthDarkBytes(int width, int height) {
  // Result: 4 (data) + 4 (variance) + 2 (dq); the noise model read: 11 float maps + dq.
  return int64_t{width} * height * (10 + 11 * 4 + 2);
}

namespace {

// Statistics of the data plane over pixels with dq == 0 (median from a grid sample).
calib::FrameStats DarkStats(const CalibratedFrame& f) {
  calib::FrameStats s;
  s.width = f.width();
  s.height = f.height();
  s.pixels = f.data.num_pixels();
  const float* d = f.data.data();
  const uint16_t* q = f.has_dq() ? f.dq.data() : nullptr;
  const int64_t n = s.pixels;
  const int64_t step = std::max<int64_t>(1, n / 65536);
  std::vector<float> sample;
  double sum = 0, sum2 = 0;
  int64_t good = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (q != nullptr && q[i] != 0) {
      ++s.flagged;
      continue;
    }
    sum += d[i];
    sum2 += double(d[i]) * d[i];
    ++good;
    if (i % step == 0) sample.push_back(d[i]);
  }
  if (good > 0) {
    s.mean = sum / double(good);
    s.stddev = good > 1 ? std::sqrt(std::max(0.0, (sum2 - sum * s.mean) / double(good - 1))) : 0;
  }
  if (!sample.empty()) {
    std::nth_element(sample.begin(), sample.begin() + sample.size() / 2, sample.end());
    s.median = sample[sample.size() / 2];
  }
  s.flagged_fraction = n > 0 ? double(s.flagged) / double(n) : 0;
  return s;
}

class SynthDarkReactor final : public WriteStreamReactor<v1::SynthesizeDarkResponse> {
 public:
  SynthDarkReactor(ServiceEnv* env, const v1::SynthesizeDarkRequest* request, StreamStart start)
      : WriteStreamReactor(std::move(start)), env_(env), request_(*request) {
    {
      absl::MutexLock lock(&mu_);
      busy_ = true;
    }
    env_->backend->store_pool->Schedule([this] { Check(); });
  }

  void OnDone() override {
    if (env_->backend->metrics) env_->backend->metrics->AddBytesOut("SynthesizeDark", sent_);
    delete this;
  }

 private:
  struct PlaneBytes {
    v1::Plane plane;
    const char* data;
    size_t size;
  };

  // On the store executor: the request, the caller's scope, the detector.
  void Check() {
    absl::StatusOr<SynthDarkQuery> q = [&]() -> absl::StatusOr<SynthDarkQuery> {
      if (absl::Status s = CheckDetector(start_.who, request_.detector()); !s.ok()) return s;
      absl::StatusOr<store::DetectorRecord> det = env_->store->GetDetector(request_.detector(), 0);
      if (!det.ok()) return det.status();
      width_ = det->spec.width;
      height_ = det->spec.height;
      return SynthDarkQueryFromProto(request_, det->spec);
    }();
    if (!q.ok()) return Done(q.status());
    query_ = *std::move(q);
    FrameMemory* memory = env_->backend->frame_memory;
    if (memory == nullptr) {
      env_->backend->pool->Schedule([this] { Compute(); });
      return;
    }
    const int64_t bytes = SynthDarkBytes(width_, height_);
    // Refuse a little before the client's deadline, so it gets RESOURCE_EXHAUSTED rather than
    // DEADLINE_EXCEEDED (as Calibrate does).
    const absl::Time client = start_.call->deadline();
    absl::Time deadline =
        absl::Now() + absl::Milliseconds(env_->backend->limits.frame_memory_wait_ms);
    if (client != absl::InfiniteFuture()) {
      deadline = std::min(
          deadline, client - std::min(absl::Milliseconds(500), (client - absl::Now()) / 10));
    }
    const uint64_t ticket = memory->Acquire(bytes, deadline, [this, bytes](absl::Status s) {
      env_->backend->pool->Schedule([this, bytes, s = std::move(s)]() mutable {
        {
          absl::MutexLock lock(&mu_);
          memory_ticket_ = 0;
        }
        if (!s.ok()) return Done(std::move(s));
        lease_ = FrameMemory::Lease(env_->backend->frame_memory, bytes);
        Compute();
      });
    });
    if (ticket == 0) return;  // answered already
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      memory_ticket_ = ticket;
      cancel = cancelled_;
    }
    if (cancel) memory->Cancel(ticket);
  }

  // On the worker pool: selection, blob, pixels.
  void Compute() {
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      cancelled = cancelled_;
    }
    if (cancelled) return Done(absl::CancelledError("cancelled"));
    SynthDarkQuery q = query_;
    store::SelectionMethod method = store::SelectionMethod::kCertified;
    if (q.version > 0) {
      method = store::SelectionMethod::kPinned;
    } else if (!q.at.has_value()) {
      q.at = absl::ToUnixMicros(absl::Now());
    }
    absl::StatusOr<SynthDark> dark = SynthesizeDarkFor(env_->backend, q);
    if (!dark.ok() && absl::IsNotFound(dark.status()) && !query_.at.has_value() &&
        query_.version == 0) {
      // Nothing certified now: the latest version.
      q.at.reset();
      method = store::SelectionMethod::kNearest;
      dark = SynthesizeDarkFor(env_->backend, q);
    }
    if (!dark.ok()) return Done(dark.status());
    absl::StatusOr<MasterWithCerts> m = env_->store->WithCertifications(dark->model);
    if (!m.ok()) return Done(m.status());

    v1::SynthesizeDarkResponse header;
    v1::SynthesizeDarkHeader* h = header.mutable_header();
    MasterVersionToProto(dark->model, m->certifications, h->mutable_model());
    result_.frame_id = absl::StrCat("synthesized dark t=", query_.exptime, " g=", q.em_gain);
    result_.frame = std::move(dark->frame);
    result_.frame.unit = "electron";
    result_.frame.header.Set("BUNIT", std::string("electron"), "unit of the data");
    result_.stats = DarkStats(result_.frame);
    AppliedMaster applied;
    applied.kind = dark->model.kind;
    applied.version = dark->model.version;
    applied.sha256 = dark->model.sha256;
    applied.method = method;
    result_.applied.push_back(applied);
    bool want[4] = {false, request_.planes().empty(), request_.planes().empty(),
                    request_.planes().empty()};
    for (int p : request_.planes()) want[p] = true;
    result_.want_data = want[v1::PLANE_DATA];
    result_.want_variance = want[v1::PLANE_VARIANCE];
    result_.want_dq = want[v1::PLANE_DQ];
    ResultHeaderToProto(result_, h->mutable_result());
    const CalibratedFrame& f = result_.frame;
    if (result_.want_data) {
      planes_.push_back({v1::PLANE_DATA, reinterpret_cast<const char*>(f.data.data()),
                         size_t(f.data.num_pixels()) * sizeof(float)});
    }
    if (result_.want_variance && f.has_variance()) {
      planes_.push_back({v1::PLANE_VARIANCE, reinterpret_cast<const char*>(f.variance.data()),
                         size_t(f.variance.num_pixels()) * sizeof(float)});
    }
    if (result_.want_dq && f.has_dq()) {
      planes_.push_back({v1::PLANE_DQ, reinterpret_cast<const char*>(f.dq.data()),
                         size_t(f.dq.num_pixels()) * sizeof(uint16_t)});
    }
    EndWork(absl::OkStatus(), [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      pending_header_ = std::move(header);
      busy_ = false;
      ready_ = true;
    });
  }

  // Ends the call with `s` once nothing else refers to the reactor (called by async work).
  void Done(absl::Status s) {
    EndWork(std::move(s), [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { busy_ = false; });
  }

  // The next message once the dark is ready; false when everything was sent.
  bool NextLocked(v1::SynthesizeDarkResponse* out) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!status_.ok() || !ready_) return false;
    if (pending_header_.has_value()) {
      *out = *std::move(pending_header_);
      pending_header_.reset();
      return true;
    }
    while (plane_ < planes_.size() && offset_ >= planes_[plane_].size) {
      ++plane_;
      offset_ = 0;
    }
    if (plane_ >= planes_.size()) return false;
    const PlaneBytes& p = planes_[plane_];
    const size_t n = std::min(env_->backend->limits.chunk_bytes, p.size - offset_);
    v1::ResultChunk* chunk = out->mutable_chunk();
    chunk->set_plane(p.plane);
    chunk->mutable_data()->assign(p.data + offset_, n);
    offset_ += n;
    sent_ += static_cast<int64_t>(n);
    return true;
  }

  // The selection and computation on the pools refer to the reactor until they end.
  bool WorkPendingLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return busy_; }

  void OnCancelled() override {
    uint64_t ticket;
    {
      absl::MutexLock lock(&mu_);
      ticket = memory_ticket_;
    }
    if (ticket != 0) env_->backend->frame_memory->Cancel(ticket);  // answers CANCELLED
  }

  void BeforeFinish() override { lease_.Reset(); }

  ServiceEnv* const env_;
  const v1::SynthesizeDarkRequest request_;
  // Set by the async work before `ready_` (then only read).
  int width_ = 0, height_ = 0;
  SynthDarkQuery query_;
  FrameResult result_;
  std::vector<PlaneBytes> planes_;
  FrameMemory::Lease lease_;

  std::optional<v1::SynthesizeDarkResponse> pending_header_ ABSL_GUARDED_BY(mu_);
  size_t plane_ ABSL_GUARDED_BY(mu_) = 0;
  size_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t memory_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // async work refers to the reactor
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  int64_t sent_ = 0;  // under mu_ while streaming, read in OnDone
};

}  // namespace

grpc::ServerWriteReactor<v1::SynthesizeDarkResponse>* NoiseService::SynthesizeDark(
    grpc::CallbackServerContext* context, const v1::SynthesizeDarkRequest* request) {
  return OpenStream<FailedWrite<v1::SynthesizeDarkResponse>>(
      env_, context, "SynthesizeDark", Scope::kRead,
      [&](StreamStart s) { return new SynthDarkReactor(env_, request, std::move(s)); });
}

}  // namespace calibd::server
