#include "server/build_impl.h"

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/fits/fits.h"
#include "core/status/macros.h"
#include "server/noise_build.h"
#include "server/spool.h"
#include "server/version.h"

namespace calibd::server {
namespace {

std::string Join(const std::vector<double>& v) {
  if (v.empty()) return "none";
  return absl::StrJoin(v, ",");
}

std::string Optional(const std::optional<double>& v) {
  return v.has_value() ? absl::StrCat(*v) : "none";
}

}  // namespace

std::map<std::string, std::string> EffectiveBuildOptions(const BuildRequest& request,
                                                         const combine::CombineOptions& o) {
  using Opts = combine::CombineOptions;
  std::map<std::string, std::string> out;
  out["combine.method"] = std::string(combine::MethodName(o.method));
  out["combine.min_value"] = Optional(o.min_value);
  out["combine.max_value"] = Optional(o.max_value);
  out["combine.nlow"] = absl::StrCat(o.nlow);
  out["combine.nhigh"] = absl::StrCat(o.nhigh);
  if (o.sigma_clip.enabled) {
    out["combine.sigma_clip"] = absl::StrCat(
        "low=", o.sigma_clip.low, " high=", o.sigma_clip.high,
        " center=", o.sigma_clip.center == Opts::Center::kMedian ? "median" : "mean",
        " spread=", o.sigma_clip.spread == Opts::Spread::kStd ? "std" : "mad_std",
        " max_iters=", o.sigma_clip.max_iters == 0 ? std::string("until_stable")
                                                  : absl::StrCat(o.sigma_clip.max_iters));
  } else {
    out["combine.sigma_clip"] = "off";
  }
  out["combine.scale"] = std::string(combine::ScaleName(o.scale));
  if (o.scale == Opts::Scale::kGiven) out["combine.scale_factors"] = Join(o.scale_factors);
  if (!o.scale_section.empty()) out["combine.scale_section"] = o.scale_section;
  if (o.scale == Opts::Scale::kExposure) {
    out["combine.exposure_key"] = o.exposure_key;
    out["combine.exposure_reference"] =
        o.exposure_reference == 0 ? "first_input" : absl::StrCat(o.exposure_reference);
  }
  out["combine.weights"] = o.weights.empty() ? "equal" : Join(o.weights);
  out["combine.variance"] = o.variance == Opts::Variance::kCcdproc      ? "ccdproc"
                            : o.variance == Opts::Variance::kPropagated ? "propagated"
                                                                        : "none";
  out["combine.dq_mask"] = absl::StrFormat("0x%04x", o.dq_mask);
  out["combine.memory_budget_bytes"] = absl::StrCat(o.memory_budget_bytes);
  const std::vector<std::string> steps = NeededKinds(Header(), request.preprocess, request.kind);
  out["preprocess.masters"] = steps.empty() ? "none" : absl::StrJoin(steps, ",");
  out["preprocess.selection"] = std::string(store::SelectionPolicyName(request.selection.policy));
  for (const auto& [key, text] : request.options_text) {
    out[absl::StrCat("request.", key)] = text.empty() ? "{}" : text;
  }
  return out;
}

BuildSession::BuildSession(const Backend* backend, const CalibrateImpl* calibrate,
                           BuildRequest request)
    : backend_(backend), calibrate_(calibrate), request_(std::move(request)) {}

BuildSession::~BuildSession() {
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

absl::Status BuildSession::Begin() {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  if (request_.detector.empty() || request_.kind.empty()) {
    return absl::InvalidArgumentError("build options need a detector and a kind");
  }
  absl::StatusOr<store::DetectorRecord> det = st->GetDetector(request_.detector);
  if (!det.ok()) {
    if (absl::IsNotFound(det.status())) {
      return absl::NotFoundError(absl::StrCat("unknown detector '", request_.detector,
                                              "'; register it with PutDetector first"));
    }
    return det.status();
  }
  CALIBD_ASSIGN_OR_RETURN(dir_, MakeSpoolDirectory(backend_->spool_dir, "calibd-build-"));
  return absl::OkStatus();
}

absl::Status BuildSession::PrepareRaw(FrameRequest request, PreparedFrame& prepared) const {
  if (request.detector.empty()) request.detector = request_.detector;
  if (request.detector != request_.detector) {
    return absl::InvalidArgumentError(absl::StrCat("input frame '", request.frame_id,
                                                   "' is for detector ", request.detector,
                                                   ", the build for ", request_.detector));
  }
  request.recipe = request_.preprocess;
  request.selection = request_.selection;
  request.unit = calib::RecipeOptions::Unit::kAdu;
  request.want_variance = request_.combine.variance == combine::CombineOptions::Variance::kPropagated ||
                          NoiseKindWantsVariance(request_.kind);
  return calibrate_->Prepare(std::move(request), prepared, PreprocessKindFor(request_.kind));
}

void AsIfSpooled(CalibratedFrame& frame) {
  if (frame.has_variance()) {
    // The spool file stores sigma = sqrt(variance) as float32; FitsSource squares it back.
    float* v = frame.variance.data();
    const int64_t n = frame.variance.num_pixels();
    for (int64_t i = 0; i < n; ++i) {
      const float sigma = std::sqrt(v[i]);
      v[i] = sigma * sigma;
    }
  }
  frame.header.Erase("BUNIT");
  frame.header.Set("BUNIT", frame.unit, "physical unit of the data");
}

absl::StatusOr<std::vector<std::unique_ptr<combine::FrameSource>>> OpenBuildInputs(
    const std::vector<BuildInput>& inputs, const std::atomic<bool>* cancelled) {
  std::vector<std::unique_ptr<combine::FrameSource>> sources;
  sources.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::unique_ptr<combine::FrameSource> s;
    if (inputs[i].frame != nullptr) {
      s = combine::MemorySource(inputs[i].frame, absl::StrCat("input frame ", i));
    } else {
      CALIBD_ASSIGN_OR_RETURN(s, combine::FitsSource(inputs[i].path));
    }
    if (cancelled != nullptr) s = combine::CancellableSource(std::move(s), cancelled);
    sources.push_back(std::move(s));
  }
  return sources;
}

int64_t BuildSession::budget() const {
  // BuildOptions carry no budget (the proto has no field; the request's CombineOptions hold
  // core's default): the server's --combine-memory-bytes is every build's budget.
  return backend_->limits.combine_memory_bytes;
}

int64_t BuildSession::memory_limit() const {
  // A third stays for Combine's band buffers of the inputs spooled beyond it (32 rows of each
  // at least: ~150 MB for 200 × 4096²) and the output planes (12 bytes per pixel).
  return budget() / 3 * 2;
}

absl::Status BuildSession::AddRaw(const PreparedFrame& prepared, RawImage pixels,
                                  std::string sha256) {
  if (num_inputs() >= backend_->limits.max_build_inputs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "more than ", backend_->limits.max_build_inputs, " inputs (--max-build-inputs)"));
  }
  FrameResult result;
  CALIBD_RETURN_IF_ERROR(calibrate_->Run(prepared, std::move(pixels), result));
  CalibratedFrame& f = result.frame;
  const int64_t bytes =
      f.data.num_pixels() * int64_t{sizeof(float)} +
      (f.has_variance() ? f.variance.num_pixels() * int64_t{sizeof(float)} : 0) +
      (f.has_dq() ? f.dq.num_pixels() * int64_t{sizeof(uint16_t)} : 0);
  BuildInput input;
  input.sha256 = std::move(sha256);
  if (memory_bytes_ + bytes <= memory_limit()) {
    AsIfSpooled(f);
    input.frame = std::make_shared<const CalibratedFrame>(std::move(f));
    memory_bytes_ += bytes;
    ++in_memory_;
  } else {  // beyond the budget: on disk, read back band by band by Combine
    input.path = absl::StrCat(dir_, "/input-", inputs_.size(), ".fits");
    CALIBD_RETURN_IF_ERROR(fits::WriteCalibratedFrame(input.path, f));
    ++spooled_;
  }
  inputs_.push_back(std::move(input));
  return absl::OkStatus();
}

absl::Status BuildSession::AddStored(const SeriesKey& key, int64_t version) {
  if (num_inputs() >= backend_->limits.max_build_inputs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "more than ", backend_->limits.max_build_inputs, " inputs (--max-build-inputs)"));
  }
  StoreImpl store(backend_);
  CALIBD_ASSIGN_OR_RETURN(store::MasterVersion v, store.ResolveMaster(key, version, std::nullopt));
  CALIBD_ASSIGN_OR_RETURN(std::string path, store.BlobPath(v.sha256));
  BuildInput input;
  input.path = std::move(path);
  input.sha256 = v.sha256;
  inputs_.push_back(std::move(input));
  return absl::OkStatus();
}

absl::StatusOr<BuildResult> BuildSession::Finish(const std::atomic<bool>* cancelled) {
  if (IsNoiseKind(request_.kind)) {  // noise products: server/noise_build.cc
    return FinishNoiseBuild(backend_, request_, inputs_, dir_, cancelled);
  }
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend_->store.Get());
  if (inputs_.empty()) {
    return absl::InvalidArgumentError("a build needs at least one input frame");
  }
  combine::CombineOptions options = request_.combine;
  options.memory_budget_bytes = budget();
  CALIBD_RETURN_IF_ERROR(combine::ValidateOptions(options, num_inputs()));
  CALIBD_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<combine::FrameSource>> sources,
                          OpenBuildInputs(inputs_));
  const auto start = std::chrono::steady_clock::now();
  CALIBD_ASSIGN_OR_RETURN(combine::CombineResult combined,
                          combine::Combine(std::move(sources), options, backend_->pool,
                                           backend_->buffers, cancelled));
  for (BuildInput& in : inputs_) in.frame.reset();  // the stack goes back to the pool
  BuildResult out;
  out.combine_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.inputs = num_inputs();
  out.rejected_fraction = combined.rejected_fraction;
  for (const BuildInput& in : inputs_) out.input_sha256.push_back(in.sha256);

  // Mean and standard deviation of the good pixels: the master's noise.
  const CalibratedFrame& f = combined.frame;
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  for (int y = 0; y < f.height(); ++y) {
    const float* d = f.data.row(y);
    const uint16_t* q = f.has_dq() ? f.dq.row(y) : nullptr;
    for (int x = 0; x < f.width(); ++x) {
      if ((q == nullptr || q[x] == 0) && std::isfinite(d[x])) {
        sum += d[x];
        sum2 += double(d[x]) * d[x];
        ++n;
      }
    }
  }
  const double mean = n > 0 ? sum / n : 0;
  out.noise = n > 1 ? std::sqrt(std::max(0.0, (sum2 - n * mean * mean) / (n - 1))) : 0;

  store::PutMasterRequest put;
  put.detector = request_.detector;
  put.kind = request_.kind;
  put.configuration = request_.configuration;
  put.attributes = request_.attributes;
  put.attributes.emplace("source", "build");
  put.header = f.header;
  put.frame = &combined.frame;
  put.provenance.input_sha256 = out.input_sha256;
  put.provenance.options = EffectiveBuildOptions(request_, options);
  put.provenance.software_version = VersionString();
  put.statistics = {{"inputs", double(out.inputs)},
                    {"rejected_fraction", combined.rejected_fraction},
                    {"masked_fraction", combined.masked_fraction},
                    {"mean", mean},
                    {"noise", out.noise}};
  CALIBD_ASSIGN_OR_RETURN(out.version, st->PutMaster(put, request_.actor));
  if (request_.certify_begin.has_value()) {
    store::CertifyRequest c;
    c.series_id = out.version.series_id;
    c.version = out.version.version;
    c.begin = *request_.certify_begin;
    c.end = request_.certify_end;
    c.replace = request_.certify_replace;
    c.actor = request_.actor;
    c.reason = "certified by BuildMaster";
    CALIBD_ASSIGN_OR_RETURN(store::Certification cert, st->Certify(c));
    out.certification = std::move(cert);
  }
  return out;
}

}  // namespace calibd::server
