#include "core/store/master_content.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/fits/fits.h"
#include "core/hash/sha256.h"
#include "core/image/section.h"
#include "core/store/errors.h"

namespace calibd::store::internal {
namespace {

// The first pixel of `plane` that is not finite while its DQ is 0, or false.
bool FirstUnflaggedNonFinite(const Image<float>& plane, const CalibratedFrame& f, int* fx,
                             int* fy) {
  const int w = plane.width(), h = plane.height();
  for (int y = 0; y < h; ++y) {
    const float* row = plane.data() + int64_t{y} * w;
    bool finite = true;
    for (int x = 0; x < w; ++x) finite &= std::isfinite(row[x]);
    if (finite) continue;
    const uint16_t* q = f.has_dq() ? f.dq.data() + int64_t{y} * w : nullptr;
    for (int x = 0; x < w; ++x) {
      if (!std::isfinite(row[x]) && (q == nullptr || q[x] == 0)) {
        *fx = x;
        *fy = y;
        return true;
      }
    }
  }
  return false;
}

// The table of a gain_normalisation product (master_content.h).
absl::Status CheckGainNormalisationTable(const CalibratedFrame& f) {
  if (f.width() != 1 || f.height() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a gain_normalisation product is a table (a 1x1 image with the rows in header cards), "
        "not a ", f.width(), "x", f.height(), " image"));
  }
  const Header& h = f.header;
  absl::StatusOr<int64_t> n = h.GetInt("NSETTING");
  if (!n.ok() || *n < 2 || *n > 999) {
    return absl::InvalidArgumentError(
        "a gain_normalisation table needs NSETTING = the number of gain settings (2 to 999)");
  }
  std::vector<std::string> seen;
  int references = 0;
  for (int64_t i = 1; i <= *n; ++i) {
    auto number = [&](const char* key, bool positive) -> absl::StatusOr<double> {
      const std::string k = absl::StrCat(key, i);
      absl::StatusOr<double> v = h.GetDouble(k);
      if (!v.ok() || !std::isfinite(*v) || (positive ? *v <= 0 : *v < 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "gain_normalisation row ", i, ": ", k, " must be a finite number ",
            positive ? "> 0" : ">= 0"));
      }
      return *v;
    };
    absl::StatusOr<std::string> setting = h.GetText(absl::StrCat("SET", i));
    if (!setting.ok() || setting->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("gain_normalisation row ", i, ": SET", i, " (the setting) is missing"));
    }
    if (std::find(seen.begin(), seen.end(), *setting) != seen.end()) {
      return absl::InvalidArgumentError(absl::StrCat("gain_normalisation row ", i, ": setting '",
                                                     *setting, "' appears twice"));
    }
    seen.push_back(*setting);
    for (const char* key : {"RESP", "RATIO"}) {
      if (absl::Status s = number(key, true).status(); !s.ok()) return s;
    }
    for (const char* key : {"RESPE", "RATIOE"}) {
      if (absl::Status s = number(key, false).status(); !s.ok()) return s;
    }
    absl::StatusOr<int64_t> frames = h.GetInt(absl::StrCat("NFRAME", i));
    if (!frames.ok() || *frames < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("gain_normalisation row ", i, ": NFRAME", i, " must be 1 or more"));
    }
    if (std::abs(*h.GetDouble(absl::StrCat("RATIO", i)) - 1.0) <= 1e-9) ++references;
  }
  if (references == 0) {
    return absl::InvalidArgumentError(
        "a gain_normalisation table needs a reference setting (a row with RATIO = 1)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CalibratedFrame> ReadMasterFile(const std::string& path, BufferPool* pool) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return FileError(errno, "the master file cannot be read", path);
  }
  fits::ReadOptions ro;
  ro.verify_checksum = true;
  ro.pool = pool;
  absl::StatusOr<CalibratedFrame> frame = fits::ReadCalibratedFrame(path, ro);
  if (frame.ok()) {
    // A noise product: its cards are in the (empty) primary HDU.
    fits::ReadOptions primary;
    primary.hdu_index = 0;
    absl::StatusOr<Header> h = fits::ReadHeader(path, primary);
    if (h.ok() && h->Find("PRODUCT") != nullptr && frame->header.Find("PRODUCT") == nullptr) {
      for (const HeaderCard& c : h->cards()) {
        if (c.key.empty() || c.key == "COMMENT" || c.key == "HISTORY") continue;
        if (frame->header.Find(c.key) == nullptr) frame->header.Append(c);
      }
    }
    return frame;
  }
  absl::Status s = frame.status();
  if (!absl::IsDataLoss(s) && !absl::IsResourceExhausted(s)) {
    s = absl::Status(absl::StatusCode::kInvalidArgument, s.message());
  }
  return Redact(Context(s, "the master is not a valid calibrated FITS file"), path, "the master");
}

absl::StatusOr<std::pair<int, int>> MasterBinning(const Configuration& configuration) {
  auto it = configuration.find(std::string(kKeyBinning));
  if (it == configuration.end()) return std::make_pair(1, 1);
  std::vector<std::string> parts = absl::StrSplit(absl::AsciiStrToLower(it->second),
                                                  absl::ByAnyChar("x* "), absl::SkipEmpty());
  int bx = 0, by = 0;
  if (parts.size() == 1 && absl::SimpleAtoi(parts[0], &bx)) by = bx;
  if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &bx)) (void)absl::SimpleAtoi(parts[1], &by);
  if (bx < 1 || bx > 8 || by < 1 || by > 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "binning '", it->second, "' is not NxM with N and M in 1..8"));
  }
  return std::make_pair(bx, by);
}

absl::Status CheckMasterContent(const DetectorSpec& spec, absl::string_view kind,
                                const CalibratedFrame& f, std::pair<int, int> binning) {
  if (absl::StatusOr<std::string> product = f.header.GetText("PRODUCT");
      product.ok() && *product != kind) {
    return absl::InvalidArgumentError(absl::StrCat("the file is a ", *product,
                                                   " product; store it as kind ", *product,
                                                   ", not ", kind));
  }
  if (kind == "gain_normalisation") return CheckGainNormalisationTable(f);
  const int w = f.width(), h = f.height();
  const auto [bx, by] = binning;
  std::vector<std::pair<int, int>> shapes = {{spec.width / bx, spec.height / by}};
  std::string names = absl::StrCat(shapes[0].first, "x", shapes[0].second);
  if (!spec.trim_section.empty()) {
    absl::StatusOr<Section> t = ParseFitsSection(spec.trim_section, spec.width, spec.height);
    if (t.ok()) {
      shapes.push_back({t->width() / bx, t->height() / by});
      absl::StrAppend(&names, " or ", shapes.back().first, "x", shapes.back().second,
                      " (trimmed)");
    }
  }
  const bool ok = w > 0 && std::find(shapes.begin(), shapes.end(), std::make_pair(w, h)) !=
                               shapes.end();
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the master is ", w, "x", h, " but detector ", spec.name, " masters binned ", bx, "x", by,
        " are ", names));
  }
  if ((f.has_variance() && (f.variance.width() != w || f.variance.height() != h)) ||
      (f.has_dq() && (f.dq.width() != w || f.dq.height() != h))) {
    return absl::InvalidArgumentError("the master's variance/dq planes do not match its data");
  }
  int x = 0, y = 0;
  if (FirstUnflaggedNonFinite(f.data, f, &x, &y)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the master's data pixel (", x + 1, ", ", y + 1, ") is ", f.data.data()[int64_t{y} * w + x],
        " and not flagged in DQ; masters must be finite where DQ is 0 (flag bad pixels in DQ)"));
  }
  if (f.has_variance() && FirstUnflaggedNonFinite(f.variance, f, &x, &y)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the master's variance pixel (", x + 1, ", ", y + 1, ") is ",
        f.variance.data()[int64_t{y} * w + x],
        " and not flagged in DQ; masters must be finite where DQ is 0 (flag bad pixels in DQ)"));
  }
  return absl::OkStatus();
}

std::string PixelDigest(const CalibratedFrame& f) {
  hash::Sha256 h;
  h.Update(absl::StrCat(f.width(), "x", f.height(), ":", f.unit, ":", f.has_variance(),
                        f.has_dq(), ":"));
  h.Update(f.data.data(), f.data.num_pixels() * sizeof(float));
  if (f.has_variance()) h.Update(f.variance.data(), f.variance.num_pixels() * sizeof(float));
  if (f.has_dq()) h.Update(f.dq.data(), f.dq.num_pixels() * sizeof(uint16_t));
  return h.HexDigest();
}

}  // namespace calibd::store::internal
