// Names, validation and the one-line summary of CombineOptions (combine.h).
#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/combine/combine.h"
#include "core/status/macros.h"

namespace calibd::combine {
namespace {

using Method = CombineOptions::Method;
using Scale = CombineOptions::Scale;
using Variance = CombineOptions::Variance;

constexpr int kMaxInputs = 65535;  // the count plane is uint16

absl::Status CheckFinite(double v, absl::string_view what) {
  if (!std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be finite, got ", v));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CombineOptions::Method> ParseMethod(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "mean" || n == "average") return Method::kMean;
  if (n == "median") return Method::kMedian;
  if (n == "sum") return Method::kSum;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown combine method '", name, "'; use mean, median or sum"));
}

absl::string_view MethodName(CombineOptions::Method method) {
  switch (method) {
    case Method::kMean: return "mean";
    case Method::kMedian: return "median";
    case Method::kSum: return "sum";
  }
  return "unknown";
}

absl::StatusOr<CombineOptions::Scale> ParseScale(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "none" || n.empty()) return Scale::kNone;
  if (n == "given") return Scale::kGiven;
  if (n == "median") return Scale::kInverseMedian;
  if (n == "mean") return Scale::kInverseMean;
  if (n == "exposure") return Scale::kExposure;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown scaling '", name, "'; use none, given, median, mean or exposure"));
}

absl::string_view ScaleName(CombineOptions::Scale scale) {
  switch (scale) {
    case Scale::kNone: return "none";
    case Scale::kGiven: return "given";
    case Scale::kInverseMedian: return "median";
    case Scale::kInverseMean: return "mean";
    case Scale::kExposure: return "exposure";
  }
  return "unknown";
}

absl::Status ValidateOptions(const CombineOptions& o, int n) {
  if (n <= 0) {
    return absl::InvalidArgumentError("no input frames to combine; give at least one");
  }
  if (n > kMaxInputs) {
    return absl::InvalidArgumentError(
        absl::StrCat(n, " input frames; at most ", kMaxInputs, " can be combined at once"));
  }
  switch (o.method) {
    case Method::kMean: case Method::kMedian: case Method::kSum: break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown combine method ", static_cast<int>(o.method)));
  }
  switch (o.scale) {
    case Scale::kNone: case Scale::kGiven: case Scale::kInverseMedian: case Scale::kInverseMean:
    case Scale::kExposure: break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown scaling ", static_cast<int>(o.scale)));
  }
  switch (o.variance) {
    case Variance::kCcdproc: case Variance::kPropagated: case Variance::kNone: break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown variance estimator ", static_cast<int>(o.variance)));
  }
  if (o.min_value) CALIBD_RETURN_IF_ERROR(CheckFinite(*o.min_value, "min_value"));
  if (o.max_value) CALIBD_RETURN_IF_ERROR(CheckFinite(*o.max_value, "max_value"));
  if (o.min_value && o.max_value && *o.min_value > *o.max_value) {
    return absl::InvalidArgumentError(absl::StrCat("min_value ", *o.min_value,
                                                   " is above max_value ", *o.max_value));
  }
  if (o.nlow < 0 || o.nhigh < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("nlow (", o.nlow, ") and nhigh (", o.nhigh, ") must be >= 0"));
  }
  if (int64_t{o.nlow} + o.nhigh >= n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "extrema clipping nlow + nhigh = ", o.nlow + o.nhigh, " would reject all ", n,
        " frames; it must be below the number of frames"));
  }
  if (o.sigma_clip.enabled) {
    const auto& s = o.sigma_clip;
    if (!(s.low > 0) || !(s.high > 0) || !std::isfinite(s.low) || !std::isfinite(s.high)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sigma-clip thresholds must be finite and > 0, got low ", s.low, " high ", s.high));
    }
    if (s.max_iters < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sigma-clip max_iters must be >= 0 (0 = until stable), got ", s.max_iters));
    }
    if (s.center != CombineOptions::Center::kMean && s.center != CombineOptions::Center::kMedian) {
      return absl::InvalidArgumentError("unknown sigma-clip centre; use mean or median");
    }
    if (s.spread != CombineOptions::Spread::kStd && s.spread != CombineOptions::Spread::kMadStd) {
      return absl::InvalidArgumentError("unknown sigma-clip spread; use std or mad_std");
    }
  }
  if (o.scale == Scale::kGiven) {
    if (static_cast<int>(o.scale_factors.size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat("scaling 'given' needs one factor per frame: ",
                                                     o.scale_factors.size(), " for ", n,
                                                     " frames"));
    }
    for (size_t i = 0; i < o.scale_factors.size(); ++i) {
      if (!(o.scale_factors[i] > 0) || !std::isfinite(o.scale_factors[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "scale factor ", i, " is ", o.scale_factors[i], "; factors must be finite and > 0"));
      }
    }
  } else if (!o.scale_factors.empty()) {
    return absl::InvalidArgumentError(
        "scale_factors are given but scaling is not 'given'; set scale = kGiven or drop them");
  }
  if (o.scale == Scale::kExposure) {
    if (o.exposure_key.empty()) {
      return absl::InvalidArgumentError("scaling by exposure needs an exposure_key");
    }
    if (o.exposure_reference < 0 || !std::isfinite(o.exposure_reference)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "exposure_reference must be >= 0 (0 = the first frame's), got ", o.exposure_reference));
    }
  }
  if (!o.weights.empty()) {
    if (static_cast<int>(o.weights.size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "one weight per frame is needed: ", o.weights.size(), " weights for ", n, " frames"));
    }
    bool any_positive = false;
    for (size_t i = 0; i < o.weights.size(); ++i) {
      if (!(o.weights[i] >= 0) || !std::isfinite(o.weights[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight ", i, " is ", o.weights[i], "; weights must be finite and >= 0"));
      }
      any_positive |= o.weights[i] > 0;
    }
    if (!any_positive) return absl::InvalidArgumentError("every weight is 0; give a positive one");
  }
  if (!std::isfinite(o.empty_value)) {
    return absl::InvalidArgumentError("empty_value must be finite (masters are checked finite)");
  }
  if (o.memory_budget_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_budget_bytes must be > 0, got ", o.memory_budget_bytes));
  }
  return absl::OkStatus();
}

std::string OptionsSummary(const CombineOptions& o) {
  std::string s = absl::StrCat("method=", MethodName(o.method));
  if (o.min_value) absl::StrAppend(&s, " min=", *o.min_value);
  if (o.max_value) absl::StrAppend(&s, " max=", *o.max_value);
  if (o.nlow || o.nhigh) absl::StrAppend(&s, " nlow=", o.nlow, " nhigh=", o.nhigh);
  if (o.sigma_clip.enabled) {
    absl::StrAppend(&s, " sigma=", o.sigma_clip.low, "/", o.sigma_clip.high, " cen=",
                    o.sigma_clip.center == CombineOptions::Center::kMedian ? "median" : "mean",
                    " dev=",
                    o.sigma_clip.spread == CombineOptions::Spread::kStd ? "std" : "mad_std",
                    " iters=", o.sigma_clip.max_iters);
  }
  absl::StrAppend(&s, " scale=", ScaleName(o.scale));
  if (!o.weights.empty()) absl::StrAppend(&s, " weighted");
  return s;
}


}  // namespace calibd::combine
