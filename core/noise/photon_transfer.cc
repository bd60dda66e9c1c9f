// gain: the photon transfer curve from flat pairs at several levels, per section, and a
// per-pixel gain map from each level's per-pixel mean and variance (noise.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "core/image/dq.h"
#include "core/image/section.h"
#include "core/noise/noise.h"
#include "core/noise/stack.h"
#include "core/status/macros.h"

namespace calibd::noise {

namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();

// Sums over one section of one level (or of the biases).
struct SectionSums {
  double n = 0, sum_mean = 0;      // valid pixels, Σ (F1 + F2)/2
  double sum_d = 0, sum_d2 = 0;    // Σ (F1 − F2), Σ (F1 − F2)²
  double saturated = 0, seen = 0;  // pixels at/above saturation (either frame), pixels looked at
  double Mean() const { return sum_mean / n; }
  double DiffVarHalf() const {  // var(F1 − F2)/2, ddof 1
    const double m = sum_d / n;
    return (sum_d2 - n * m * m) / (n - 1) / 2;
  }
};

void Merge(const std::vector<SectionSums>& local, std::vector<SectionSums>* total,
           absl::Mutex* mu) {
  absl::MutexLock lock(mu);
  for (size_t s = 0; s < local.size(); ++s) {
    SectionSums& t = (*total)[s];
    t.n += local[s].n;
    t.sum_mean += local[s].sum_mean;
    t.sum_d += local[s].sum_d;
    t.sum_d2 += local[s].sum_d2;
    t.saturated += local[s].saturated;
    t.seen += local[s].seen;
  }
}

struct Band {
  std::vector<float> data;
  std::vector<uint16_t> dq;
  bool has_dq = false;
};

absl::Status ReadBand(combine::FrameSource* f, int y0, int rows, Band* b) {
  const size_t n = size_t(rows) * f->width();
  b->data.resize(n);
  b->has_dq = f->has_dq();
  if (b->has_dq) b->dq.resize(n);
  absl::Status s =
      f->ReadRows(y0, rows, b->data.data(), nullptr, b->has_dq ? b->dq.data() : nullptr);
  if (!s.ok())
    return absl::Status(s.code(), absl::StrCat("reading ", f->name(), ": ", s.message()));
  return absl::OkStatus();
}

struct LinearFit {
  double a = 0, b = 0;               // var = a + b·mean
  double caa = 0, cab = 0, cbb = 0;  // covariance
};

bool FitLine(const std::vector<double>& x, const std::vector<double>& y,
             const std::vector<double>& w, LinearFit* fit) {
  std::vector<double> design;
  for (double v : x) design.insert(design.end(), {1.0, v});
  double beta[2], cov[4], chi2;
  if (!internal::SolveWls(2, static_cast<int>(x.size()), design.data(), y.data(), w.data(), beta,
                          cov, &chi2)) {
    return false;
  }
  *fit = LinearFit{beta[0], beta[1], cov[0], cov[1], cov[3]};
  return true;
}

}  // namespace

absl::StatusOr<NoiseProduct> BuildGain(Sources flats, Sources biases, const GainOptions& options,
                                       ThreadPool* pool) {
  internal::Group flat_group, bias_group;
  for (auto& s : flats) flat_group.push_back(s.get());
  for (auto& s : biases) bias_group.push_back(s.get());
  CALIBD_RETURN_IF_ERROR(
      internal::CheckStack(flat_group, "flats for the photon transfer curve", 2));
  CALIBD_RETURN_IF_ERROR(
      internal::CheckStack(bias_group, "biases for the photon transfer curve", 2));
  const int w = flat_group[0]->width(), h = flat_group[0]->height();
  if (bias_group[0]->width() != w || bias_group[0]->height() != h) {
    return absl::InvalidArgumentError(absl::StrCat(
        "biases and flats of different shapes: ", bias_group[0]->name(), " is ",
        bias_group[0]->width(), "x", bias_group[0]->height(), ", the flats ", w, "x", h));
  }
  // Levels.
  std::vector<internal::Group> levels;
  {
    std::vector<int> sizes = options.level_sizes;
    if (sizes.empty()) sizes.assign(flat_group.size() / 2, 2);
    size_t at = 0;
    for (int n : sizes) {
      if (n < 2) return absl::InvalidArgumentError("every flat level needs >= 2 frames");
      if (at + n > flat_group.size()) {
        return absl::InvalidArgumentError(absl::StrCat("level_sizes add up to more than the ",
                                                       flat_group.size(), " flats given"));
      }
      levels.emplace_back(flat_group.begin() + at, flat_group.begin() + at + n);
      at += n;
    }
    if (at != flat_group.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flat_group.size() - at,
                       " flat(s) left over: flats come in pairs (or as level_sizes "
                       "says), supply the missing frame or drop the extra one"));
    }
  }
  const int num_levels = static_cast<int>(levels.size());
  if (num_levels < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("the photon transfer curve needs flat pairs at >= 3 illumination levels, got ",
                     num_levels, ": supply pairs of flats at more levels"));
  }
  std::vector<Section> sections;
  if (options.sections.empty()) {
    sections.push_back(FullSection(w, h));
  } else {
    for (const std::string& s : options.sections) {
      CALIBD_ASSIGN_OR_RETURN(Section sec, ParseFitsSection(s, w, h));
      sections.push_back(sec);
    }
  }
  const int num_sections = static_cast<int>(sections.size());
  // Which section each pixel belongs to (the first that contains it; −1: none).
  auto section_of = [&](int x, int y) {
    for (int s = 0; s < num_sections; ++s) {
      const Section& sec = sections[s];
      if (x >= sec.x0 && x < sec.x1 && y >= sec.y0 && y < sec.y1) return s;
    }
    return -1;
  };

  std::vector<std::vector<SectionSums>> sums(num_levels, std::vector<SectionSums>(num_sections));
  std::vector<SectionSums> bias_sums(num_sections);
  std::vector<Image<float>> pix_mean, pix_var;
  for (int l = 0; l < num_levels; ++l) {
    pix_mean.push_back(Image<float>::Filled(w, h, kNaNf));
    pix_var.push_back(Image<float>::Filled(w, h, kNaNf));
  }
  Image<float> bias_mean = Image<float>::Filled(w, h, kNaNf);
  const double sat = options.saturation;
  const uint16_t mask = options.dq_mask;
  int max_frames = static_cast<int>(bias_group.size());
  for (const auto& l : levels) max_frames = std::max<int>(max_frames, l.size());
  const int band_rows =
      internal::PlanBandRows(options.memory_budget_bytes, w, h, 6 * int64_t{max_frames} + 24);
  std::vector<Band> bands(max_frames);
  absl::Mutex mu;
  for (int y0 = 0; y0 < h; y0 += band_rows) {
    const int rows = std::min(band_rows, h - y0);
    // Biases: per-pixel mean of all, pair difference of the first two.
    for (size_t k = 0; k < bias_group.size(); ++k) {
      CALIBD_RETURN_IF_ERROR(ReadBand(bias_group[k], y0, rows, &bands[k]));
    }
    ParallelFor(pool, rows, 8, [&](int64_t r0, int64_t r1) {
      std::vector<SectionSums> local(num_sections);
      for (int r = static_cast<int>(r0); r < r1; ++r) {
        for (int x = 0; x < w; ++x) {
          const size_t i = size_t(r) * w + x;
          double s = 0;
          int n = 0;
          bool pair_ok = true;
          for (size_t k = 0; k < bias_group.size(); ++k) {
            const float v = bands[k].data[i];
            const bool ok = std::isfinite(v) && !(bands[k].has_dq && (bands[k].dq[i] & mask));
            if (ok) {
              s += v;
              ++n;
            } else if (k < 2) {
              pair_ok = false;
            }
          }
          if (n > 0) bias_mean.at(x, y0 + r) = static_cast<float>(s / n);
          const int sec = section_of(x, y0 + r);
          if (sec >= 0 && pair_ok) {
            const double d = double(bands[0].data[i]) - bands[1].data[i];
            SectionSums& b = local[sec];
            b.n += 1;
            b.sum_mean += s / n;
            b.sum_d += d;
            b.sum_d2 += d * d;
          }
        }
      }
      Merge(local, &bias_sums, &mu);
    });
    for (int l = 0; l < num_levels; ++l) {
      const internal::Group& level = levels[l];
      for (size_t k = 0; k < level.size(); ++k) {
        CALIBD_RETURN_IF_ERROR(ReadBand(level[k], y0, rows, &bands[k]));
      }
      ParallelFor(pool, rows, 8, [&](int64_t r0, int64_t r1) {
        std::vector<SectionSums> local(num_sections);
        for (int r = static_cast<int>(r0); r < r1; ++r) {
          for (int x = 0; x < w; ++x) {
            const size_t i = size_t(r) * w + x;
            const int sec = section_of(x, y0 + r);
            bool pair_ok = true, pair_sat = false;
            double mean = 0, m2 = 0;
            int n = 0;
            for (size_t k = 0; k < level.size(); ++k) {
              const float v = bands[k].data[i];
              const uint16_t dq = bands[k].has_dq ? bands[k].dq[i] : 0;
              const bool saturated = (sat > 0 && v >= sat) || (dq & kDqSaturated);
              const bool ok = std::isfinite(v) && !(dq & mask) && !saturated;
              if (k < 2) {
                pair_sat = pair_sat || saturated;
                pair_ok = pair_ok && ok;
              }
              if (!ok) continue;
              ++n;
              const double d = v - mean;
              mean += d / n;
              m2 += d * (v - mean);
            }
            if (n >= 2) {
              pix_mean[l].at(x, y0 + r) = static_cast<float>(mean - bias_mean.at(x, y0 + r));
              pix_var[l].at(x, y0 + r) = static_cast<float>(m2 / (n - 1));
            }
            if (sec < 0) continue;
            SectionSums& s = local[sec];
            s.seen += 1;
            if (pair_sat) s.saturated += 1;
            if (!pair_ok) continue;
            const double a = bands[0].data[i], b = bands[1].data[i];
            s.n += 1;
            s.sum_mean += (a + b) / 2 - bias_mean.at(x, y0 + r);
            s.sum_d += a - b;
            s.sum_d2 += (a - b) * (a - b);
          }
        }
        Merge(local, &sums[l], &mu);
      });
    }
  }

  NoiseProduct p = NoiseProduct::Create(kKindGain, w, h);
  Image<float>& gain_map = p.AddMap("GAIN", "electron/adu");
  Image<float>& gain_err = p.AddMap("GAIN_ERR", "electron/adu");
  gain_map.Fill(kNaNf);
  gain_err.Fill(kNaNf);
  std::vector<LinearFit> fits(num_sections);
  std::vector<std::vector<bool>> used(num_sections, std::vector<bool>(num_levels, false));
  for (int sec = 0; sec < num_sections; ++sec) {
    std::vector<std::string> why(num_levels);
    for (int l = 0; l < num_levels; ++l) {
      const SectionSums& s = sums[l][sec];
      if (s.seen > 0 && s.saturated / s.seen > options.max_saturated_fraction) {
        why[l] = absl::StrCat("saturated (", s.saturated, " of ", s.seen, " pixels)");
      } else if (s.n < 3) {
        why[l] = "no valid pixels";
      } else if (sat > 0 && s.Mean() > options.saturation_fraction * sat) {
        why[l] = absl::StrCat("near saturation (mean ", s.Mean(), " > ",
                              options.saturation_fraction, " x ", sat, ")");
      } else if (!(s.DiffVarHalf() > 0)) {
        why[l] = "no variance";
      }
    }
    // Fit, dropping the worst outlier while it exceeds nonlinearity_sigma.
    while (true) {
      std::vector<double> x, y, wt;
      std::vector<int> which;
      for (int l = 0; l < num_levels; ++l) {
        if (!why[l].empty()) continue;
        const SectionSums& s = sums[l][sec];
        const double v = s.DiffVarHalf();
        x.push_back(s.Mean());
        y.push_back(v);
        wt.push_back((s.n - 1) / (2 * v * v));
        which.push_back(l);
      }
      if (x.size() < 3) {
        std::vector<std::string> parts;
        for (int l = 0; l < num_levels; ++l) {
          parts.push_back(absl::StrCat("level ", l + 1, " (", levels[l][0]->name(),
                                       "): ", why[l].empty() ? "usable" : why[l]));
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "the photon transfer curve of section ", FormatFitsSection(sections[sec]), " has ",
            x.size(), " usable levels, needs >= 3: ", absl::StrJoin(parts, "; "),
            ". Supply flat pairs at more unsaturated levels in the linear range"));
      }
      LinearFit fit;
      if (!FitLine(x, y, wt, &fit)) {
        return absl::InvalidArgumentError("flat levels with one mean: supply different levels");
      }
      int worst = -1;
      double worst_r = 0;
      for (size_t k = 0; k < x.size(); ++k) {
        const double r = std::abs(y[k] - fit.a - fit.b * x[k]) * std::sqrt(wt[k]);
        if (r > worst_r) {
          worst_r = r;
          worst = which[k];
        }
      }
      if (worst_r > options.nonlinearity_sigma && x.size() > 3) {
        why[worst] = absl::StrCat("outside the linear range (residual ", worst_r, " sigma)");
        continue;
      }
      fits[sec] = fit;
      for (int l : which) used[sec][l] = true;
      break;
    }
    const LinearFit& f = fits[sec];
    if (!(f.b > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the photon transfer curve of section ", FormatFitsSection(sections[sec]),
                       " has a slope <= 0: the flats' variance does not grow with the level"));
    }
    const double g = 1 / f.b;
    const double g_err = std::sqrt(f.cbb) / (f.b * f.b);
    const double rn = f.a > 0 ? g * std::sqrt(f.a) : 0.0;
    // RN = sqrt(a)/b: relative error² = (σa/2a)² + (σb/b)² − cab/(a b).
    const double rn_err =
        f.a > 0 ? rn * std::sqrt(std::max(0.0, f.caa / (4 * f.a * f.a) + f.cbb / (f.b * f.b) -
                                                   f.cab / (f.a * f.b)))
                : 0.0;
    const double rn_bias =
        bias_sums[sec].n > 2 ? g * std::sqrt(std::max(0.0, bias_sums[sec].DiffVarHalf())) : 0.0;
    const std::string suffix = sec == 0 ? "" : absl::StrCat(sec + 1);
    p.header.Set(absl::StrCat("GAIN", suffix), g, "photon-transfer gain [e-/adu]");
    p.header.Set(absl::StrCat("GAINERR", suffix), g_err, "its standard error [e-/adu]");
    p.header.Set(absl::StrCat("RDNOISE", suffix), rn, "fitted read noise g*sqrt(a) [e-]");
    p.header.Set(absl::StrCat("RDNOISEE", suffix), rn_err, "its standard error [e-]");
    p.header.Set(absl::StrCat("RDNOISEB", suffix), rn_bias, "read noise from a bias pair [e-]");
    p.header.Set(absl::StrCat("PTCA", suffix), f.a, "fit var = PTCA + PTCB*mean [adu2]");
    p.header.Set(absl::StrCat("PTCB", suffix), f.b, "fit slope 1/gain [adu/e-]");
    if (num_sections > 1) {
      p.header.Set(absl::StrCat("SECT", sec + 1), FormatFitsSection(sections[sec]), "section");
    }
    int excluded = 0;
    for (int l = 0; l < num_levels; ++l) {
      if (sec == 0) {
        p.header.Set(absl::StrCat("LEV", l + 1, "_MEAN"), sums[l][0].Mean(), "mean [adu]");
        p.header.Set(absl::StrCat("LEV", l + 1, "_VAR"), sums[l][0].DiffVarHalf(),
                     "var(F1-F2)/2 [adu2]");
        p.header.Set(absl::StrCat("LEV", l + 1, "_USE"), bool(used[0][l]), "used in the fit");
      }
      if (!why[l].empty()) {
        ++excluded;
        p.header.Set(absl::StrCat("EXCL", suffix, "_", excluded),
                     absl::StrCat("level ", l + 1, " ", levels[l][0]->name(), ": ", why[l]),
                     "excluded level");
      }
    }
  }
  p.header.Set("NLEVELS", num_levels, "flat levels given");
  // Per-pixel gain: var = a + b·mean over the used levels, weighted with the section's curve.
  ParallelFor(pool, h, 8, [&](int64_t y0, int64_t y1) {
    std::vector<double> x, y, wt;
    for (int yy = static_cast<int>(y0); yy < y1; ++yy) {
      for (int xx = 0; xx < w; ++xx) {
        const int sec = section_of(xx, yy);
        if (sec < 0) continue;
        x.clear();
        y.clear();
        wt.clear();
        for (int l = 0; l < num_levels; ++l) {
          const float m = pix_mean[l].at(xx, yy), v = pix_var[l].at(xx, yy);
          if (!used[sec][l] || !std::isfinite(m) || !std::isfinite(v)) continue;
          const double model = fits[sec].a + fits[sec].b * m;
          if (!(model > 0)) continue;
          x.push_back(m);
          y.push_back(v);
          wt.push_back((levels[l].size() - 1) / (2 * model * model));
        }
        LinearFit f;
        if (x.size() < 3 || !FitLine(x, y, wt, &f) || !(f.b > 0)) continue;
        gain_map.at(xx, yy) = static_cast<float>(1 / f.b);
        gain_err.at(xx, yy) = static_cast<float>(std::sqrt(f.cbb) / (f.b * f.b));
      }
    }
  });
  for (int64_t i = 0; i < gain_map.num_pixels(); ++i) {
    if (!std::isfinite(gain_map.data()[i])) p.dq.data()[i] |= kDqBad;
  }
  internal::ZeroNonFinite(&p);
  p.header.AddHistory("gain: photon transfer var(F1-F2)/2 = a + mean/g, weighted least squares");
  return p;
}

}  // namespace calibd::noise
