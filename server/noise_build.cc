// BuildMaster for the noise kinds (noise_build.h).
#include "server/noise_build.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/combine/combine.h"
#include "core/fits/fits.h"
#include "core/noise/noise.h"
#include "core/status/macros.h"
#include "server/version.h"

namespace calibd::server {

namespace {

std::string Option(const BuildRequest& r, const std::string& key) {
  auto it = r.options_text.find(key);
  return it == r.options_text.end() ? "" : it->second;
}

absl::Status NumberOption(const BuildRequest& r, const std::string& key, double* out) {
  const std::string v = Option(r, key);
  if (v.empty()) return absl::OkStatus();
  if (!absl::SimpleAtod(v, out)) {
    return absl::InvalidArgumentError(absl::StrCat("option ", key, " = '", v, "' is not a number"));
  }
  return absl::OkStatus();
}

std::vector<BuildInput> FileInputs(const std::vector<std::string>& paths,
                                   const std::vector<std::string>& sha256 = {}) {
  std::vector<BuildInput> out(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    out[i].path = paths[i];
    if (i < sha256.size()) out[i].sha256 = sha256[i];
  }
  return out;
}

std::string EmGainKeyword(const store::DetectorSpec& spec) {
  const std::string k = spec.keys.KeywordFor("em_gain");
  return k == "em_gain" ? "EMGAIN" : k;
}

bool IsBiasFrame(const combine::FrameSource& s) {
  absl::StatusOr<std::string> t = s.header().GetString("IMAGETYP");
  if (!t.ok()) return false;
  const std::string v = absl::AsciiStrToLower(*t);
  return v.find("bias") != std::string::npos || v.find("zero") != std::string::npos;
}

}  // namespace

bool IsNoiseKind(absl::string_view kind) {
  return kind == noise::kKindReadNoise || kind == noise::kKindGain ||
         kind == noise::kKindDarkCurrent || kind == noise::kKindNoiseModel ||
         kind == noise::kKindBadPixels || kind == noise::kKindGainNormalisation;
}

bool NoiseKindWantsVariance(absl::string_view kind) {
  return kind == noise::kKindDarkCurrent || kind == noise::kKindNoiseModel;
}

std::string PreprocessKindFor(absl::string_view kind) {
  if (kind == noise::kKindReadNoise || kind == noise::kKindGain ||
      kind == noise::kKindGainNormalisation) {
    return "bias";
  }
  if (kind == noise::kKindDarkCurrent || kind == noise::kKindNoiseModel) return "dark";
  return std::string(kind);
}

absl::StatusOr<noise::NoiseProduct> BuildNoiseProductFromFiles(
    const store::DetectorSpec& spec, const BuildRequest& request,
    const std::vector<std::string>& paths, int64_t memory_budget_bytes, ThreadPool* pool) {
  return BuildNoiseProduct(spec, request, FileInputs(paths), memory_budget_bytes, pool);
}

absl::StatusOr<noise::NoiseProduct> BuildNoiseProduct(
    const store::DetectorSpec& spec, const BuildRequest& request,
    const std::vector<BuildInput>& inputs, int64_t memory_budget_bytes, ThreadPool* pool,
    const std::atomic<bool>* cancelled) {
  const std::string& kind = request.kind;
  auto open_inputs = [&] { return OpenBuildInputs(inputs, cancelled); };
  if (kind == noise::kKindReadNoise) {
    noise::ReadNoiseOptions o;
    o.gain = spec.gain;
    o.memory_budget_bytes = memory_budget_bytes;
    double min_frames = o.min_frames;
    CALIBD_RETURN_IF_ERROR(NumberOption(request, "noise.min_frames", &min_frames));
    o.min_frames = static_cast<int>(min_frames);
    CALIBD_ASSIGN_OR_RETURN(noise::Sources s, open_inputs());
    return noise::BuildReadNoise(std::move(s), o, pool);
  }
  if (kind == noise::kKindDarkCurrent) {
    noise::DarkCurrentOptions o;
    o.gain = spec.gain;
    o.memory_budget_bytes = memory_budget_bytes;
    o.exposure_key = spec.keys.exposure;
    CALIBD_RETURN_IF_ERROR(NumberOption(request, "noise.hot_sigma", &o.hot_sigma));
    CALIBD_RETURN_IF_ERROR(NumberOption(request, "noise.hot_min_rate", &o.hot_min_rate));
    CALIBD_ASSIGN_OR_RETURN(noise::Sources s, open_inputs());
    return noise::BuildDarkCurrent(std::move(s), o, pool);
  }
  if (kind == noise::kKindNoiseModel) {
    noise::NoiseModelOptions o;
    o.gain = spec.gain;
    o.memory_budget_bytes = memory_budget_bytes;
    o.exposure_key = spec.keys.exposure;
    o.em_gain_key = EmGainKeyword(spec);
    o.prescan_section = Option(request, "noise.prescan_section");
    const std::string unweighted = Option(request, "noise.unweighted");
    if (unweighted == "true") o.weighted = false;
    CALIBD_ASSIGN_OR_RETURN(noise::Sources s, open_inputs());
    if (!s.empty()) {
      absl::StatusOr<double> t = s[0]->header().GetDouble(spec.keys.temperature);
      if (t.ok()) o.temperature = *t;
    }
    return noise::BuildNoiseModel(std::move(s), o, pool);
  }
  if (kind == noise::kKindGain) {
    noise::GainOptions o;
    o.memory_budget_bytes = memory_budget_bytes;
    o.saturation = spec.saturation;
    CALIBD_RETURN_IF_ERROR(
        NumberOption(request, "noise.saturation_fraction", &o.saturation_fraction));
    CALIBD_RETURN_IF_ERROR(
        NumberOption(request, "noise.max_saturated_fraction", &o.max_saturated_fraction));
    CALIBD_RETURN_IF_ERROR(
        NumberOption(request, "noise.nonlinearity_sigma", &o.nonlinearity_sigma));
    const std::string sections = Option(request, "noise.sections");
    if (!sections.empty()) o.sections = absl::StrSplit(sections, ';', absl::SkipEmpty());
    const std::string sizes = Option(request, "noise.level_sizes");
    for (absl::string_view part : absl::StrSplit(sizes, ',', absl::SkipEmpty())) {
      int n = 0;
      if (!absl::SimpleAtoi(part, &n)) {
        return absl::InvalidArgumentError(absl::StrCat("noise.level_sizes: '", part, "'"));
      }
      o.level_sizes.push_back(n);
    }
    CALIBD_ASSIGN_OR_RETURN(noise::Sources all, open_inputs());
    noise::Sources flats, biases;
    for (auto& s : all) (IsBiasFrame(*s) ? biases : flats).push_back(std::move(s));
    return noise::BuildGain(std::move(flats), std::move(biases), o, pool);
  }
  if (kind == noise::kKindBadPixels) {  // whole products, not bands: cancelled before or never
    CALIBD_RETURN_IF_ERROR(combine::CheckNotCancelled(cancelled));
    noise::BadPixelOptions o;
    CALIBD_RETURN_IF_ERROR(NumberOption(request, "noise.dead_fraction", &o.dead_fraction));
    CALIBD_RETURN_IF_ERROR(NumberOption(request, "noise.noisy_sigma", &o.noisy_sigma));
    double box = o.box;
    CALIBD_RETURN_IF_ERROR(NumberOption(request, "noise.box", &box));
    o.box = static_cast<int>(box);
    std::vector<noise::NoiseProduct> products;
    std::optional<CalibratedFrame> read_flat;
    const CalibratedFrame* flat = nullptr;
    for (const BuildInput& in : inputs) {
      const CalibratedFrame* f = in.frame.get();  // pre-processed here: a flat, not a product
      if (f == nullptr) {
        absl::StatusOr<noise::NoiseProduct> product = noise::ReadNoiseProduct(in.path);
        if (product.ok()) {
          products.push_back(std::move(*product));
          continue;
        }
        CALIBD_ASSIGN_OR_RETURN(CalibratedFrame from_file, fits::ReadCalibratedFrame(in.path));
        read_flat = std::move(from_file);
        f = &*read_flat;
      }
      if (flat != nullptr) {
        return absl::InvalidArgumentError(
            "bad_pixels takes at most one master flat (plus dark_current / read_noise products)");
      }
      flat = f;
    }
    noise::BadPixelInputs in;
    for (const noise::NoiseProduct& p : products) {
      if (p.kind == noise::kKindDarkCurrent) in.dark_current = &p;
      if (p.kind == noise::kKindReadNoise) in.read_noise = &p;
    }
    in.flat = flat;
    return noise::BuildBadPixels(in, o, pool);
  }
  if (kind == noise::kKindGainNormalisation) {
    // Flats at each gain setting, overscan-subtracted and trimmed (PreprocessKindFor): each
    // setting's mean response over the section, as ratios to the reference setting.
    noise::GainNormalisationOptions o;
    o.setting_key = Option(request, "noise.setting_key");
    if (o.setting_key.empty()) o.setting_key = spec.keys.KeywordFor(store::kKeyGainSetting);
    o.section = Option(request, "noise.section");
    o.reference = Option(request, "noise.reference");
    CALIBD_ASSIGN_OR_RETURN(noise::Sources s, open_inputs());
    CALIBD_ASSIGN_OR_RETURN(std::vector<noise::GainNormalisationRow> rows,
                            noise::BuildGainNormalisation(std::move(s), o));
    return noise::GainNormalisationProduct(rows, o.setting_key);
  }
  return absl::InvalidArgumentError(absl::StrCat("'", kind, "' is not a noise kind"));
}

absl::StatusOr<BuildResult> FinishNoiseBuild(const Backend* backend, const BuildRequest& request,
                                             const std::vector<std::string>& paths,
                                             const std::vector<std::string>& sha256,
                                             const std::string& spool_dir) {
  return FinishNoiseBuild(backend, request, FileInputs(paths, sha256), spool_dir);
}

absl::StatusOr<BuildResult> FinishNoiseBuild(const Backend* backend, const BuildRequest& request,
                                             const std::vector<BuildInput>& inputs,
                                             const std::string& spool_dir,
                                             const std::atomic<bool>* cancelled) {
  CALIBD_ASSIGN_OR_RETURN(std::shared_ptr<store::CalibrationStore> st, backend->store.Get());
  if (inputs.empty()) return absl::InvalidArgumentError("a build needs at least one input frame");
  CALIBD_ASSIGN_OR_RETURN(store::DetectorRecord det, st->GetDetector(request.detector));
  const auto start = std::chrono::steady_clock::now();
  CALIBD_ASSIGN_OR_RETURN(
      noise::NoiseProduct product,
      BuildNoiseProduct(det.spec, request, inputs, backend->limits.combine_memory_bytes,
                        backend->pool, cancelled));
  BuildResult out;
  out.combine_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.inputs = static_cast<int>(inputs.size());
  for (const BuildInput& in : inputs) out.input_sha256.push_back(in.sha256);
  const std::string path = absl::StrCat(spool_dir, "/product.fits");
  CALIBD_RETURN_IF_ERROR(noise::WriteNoiseProduct(path, product, /*overwrite=*/true));

  store::PutMasterRequest put;
  put.detector = request.detector;
  put.kind = request.kind;
  put.configuration = request.configuration;
  put.attributes = request.attributes;
  put.attributes.emplace("source", "build");
  // Cards for the configuration and time: the first input's, then the product's own.
  if (inputs[0].frame != nullptr) {
    put.header = inputs[0].frame->header;  // as fits::ReadHeader gives it from a spool file
  } else if (absl::StatusOr<Header> h = fits::ReadHeader(inputs[0].path); h.ok()) {
    put.header = *h;
  }
  for (const HeaderCard& c : product.header.cards()) {
    if (!std::holds_alternative<std::monostate>(c.value)) put.header.Set(c.key, c.value, c.comment);
  }
  put.fits_path = path;
  put.provenance.input_sha256 = out.input_sha256;
  put.provenance.options = request.options_text;
  put.provenance.options["kind"] = request.kind;
  put.provenance.software_version = VersionString();
  put.statistics = {{"inputs", double(out.inputs)}};
  for (const char* key : {"RDNOISE", "RDNOISEE", "GAIN", "GAINERR", "DARKCUR", "NHOT", "NDEAD",
                          "NNOISY", "FPNMEAN", "DCMEAN", "CICMEAN", "NFITTED"}) {
    if (absl::StatusOr<double> v = product.header.GetDouble(key); v.ok()) {
      put.statistics[absl::AsciiStrToLower(key)] = *v;
    }
  }
  CALIBD_RETURN_IF_ERROR(combine::CheckNotCancelled(cancelled));
  CALIBD_ASSIGN_OR_RETURN(out.version, st->PutMaster(put, request.actor));
  if (request.certify_begin.has_value()) {
    store::CertifyRequest c;
    c.series_id = out.version.series_id;
    c.version = out.version.version;
    c.begin = *request.certify_begin;
    c.end = request.certify_end;
    c.replace = request.certify_replace;
    c.actor = request.actor;
    c.reason = "certified by BuildMaster";
    CALIBD_ASSIGN_OR_RETURN(store::Certification cert, st->Certify(c));
    out.certification = std::move(cert);
  }
  return out;
}

}  // namespace calibd::server
