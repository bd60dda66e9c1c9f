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
  if (frame.ok()) return frame;
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

absl::Status CheckMasterContent(const DetectorSpec& spec, const CalibratedFrame& f,
                                std::pair<int, int> binning) {
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
