#include "core/store/selection.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace calibd::store {
namespace {

constexpr int kMaxTrailRejections = 10;

std::string Range(const Certification& c) {
  return absl::StrCat("[", FormatTime(c.begin), ", ", c.end ? FormatTime(*c.end) : "open", ")");
}

std::string Config(const Configuration& c) {
  if (c.empty()) return "{}";
  return absl::StrCat("{", absl::StrJoin(c, ", ", absl::PairFormatter("=")), "}");
}

struct Match {
  const SeriesCandidate* series;
  double distance;
};

// The series matching the frame, best configuration first (ties: lower series id); the
// rejected ones explained into `out` (a few) and counted (the rest).
std::vector<Match> MatchSeries(const DetectorSpec& spec, const SelectionCandidates& candidates,
                               const KindRequest& req, KindSelection* out) {
  std::vector<Match> matches;
  int rejected = 0;
  for (const SeriesCandidate& s : candidates.series) {
    std::string why;
    double distance = 0;
    if (ConfigurationMatches(spec, req.kind, s.configuration, req.configuration, &why,
                             &distance)) {
      matches.push_back(Match{&s, distance});
      continue;
    }
    if (out == nullptr) continue;
    if (rejected++ < kMaxTrailRejections) {
      TrailEntry e;
      e.series_id = s.series_id;
      e.configuration = s.configuration;
      e.reason = absl::StrCat("rejected: ", why);
      out->trail.push_back(std::move(e));
    } else {
      ++out->candidates_omitted;
    }
  }
  if (out != nullptr) out->candidates_omitted += candidates.series_omitted;
  std::stable_sort(matches.begin(), matches.end(),
                   [](const Match& a, const Match& b) { return a.distance < b.distance; });
  return matches;
}

const MasterVersion* FindVersion(const SeriesCandidate& s, int64_t version) {
  for (const MasterVersion& v : s.versions) {
    if (v.version == version) return &v;
  }
  return nullptr;
}

void Choose(KindSelection* out, MasterVersion v, SelectionMethod how) {
  out->chosen = std::move(v);
  out->chosen_by = how;
  out->method = std::string(SelectionMethodName(how));
  out->status = absl::OkStatus();
}

KindSelection Fail(KindSelection out, absl::Status s) {
  out.status = std::move(s);
  out.chosen.reset();
  out.chosen_by.reset();
  out.method.clear();
  return out;
}

KindSelection SelectPinned(const DetectorSpec& spec, const SelectionCandidates& candidates,
                           const KindRequest& req, const std::vector<Match>& matches,
                           KindSelection out) {
  const PinnedVersion& pin = *req.pin;
  std::optional<MasterVersion> chosen;
  if (!pin.sha256.empty()) {
    for (const MasterVersion& v : candidates.sha_matches) {
      if (v.detector != req.detector || v.kind != req.kind || v.sha256 != pin.sha256) continue;
      const bool in_match = std::any_of(matches.begin(), matches.end(), [&](const Match& m) {
        return m.series->series_id == v.series_id;
      });
      if (!chosen || in_match) chosen = v;
      if (in_match) break;
    }
    if (!chosen) {
      return Fail(std::move(out), absl::NotFoundError(absl::StrCat(
                                      "pinned ", req.kind, " sha256 ", pin.sha256,
                                      " is not a stored ", req.kind, " of ", req.detector)));
    }
  } else {
    const int64_t series_id = PinnedSeries(spec, candidates, req);
    if (series_id == 0) {
      return Fail(std::move(out),
                  absl::NotFoundError(absl::StrCat(
                      "pinned ", req.kind, " version ", pin.version, ": no ", req.kind,
                      " series of ", req.detector, " matches configuration ",
                      Config(req.configuration))));
    }
    const std::optional<MasterVersion>& v = candidates.pinned_version;
    if (!v || v->series_id != series_id || v->version != pin.version) {
      return Fail(std::move(out),
                  absl::NotFoundError(absl::StrCat("pinned ", req.kind, " version ", pin.version,
                                                   " does not exist: series ", series_id,
                                                   " has no version ", pin.version)));
    }
    if (v->detector != req.detector || v->kind != req.kind) {
      return Fail(std::move(out), absl::InvalidArgumentError(absl::StrCat(
                                      "pinned series ", series_id, " holds ", v->detector, " ",
                                      v->kind, ", not ", req.detector, " ", req.kind)));
    }
    chosen = *v;
  }
  TrailEntry e;
  e.series_id = chosen->series_id;
  e.version = chosen->version;
  e.sha256 = chosen->sha256;
  e.configuration = chosen->configuration;
  e.chosen = true;
  std::string why;
  const bool ok =
      ConfigurationMatches(spec, req.kind, chosen->configuration, req.configuration, &why, nullptr);
  e.reason = absl::StrCat("chosen: pinned by the request",
                          ok ? "" : absl::StrCat(" (note: ", why, ")"));
  out.trail.push_back(std::move(e));
  Choose(&out, *std::move(chosen), SelectionMethod::kPinned);
  return out;
}

}  // namespace

absl::string_view SelectionPolicyName(SelectionPolicy policy) {
  return policy == SelectionPolicy::kNearest ? "nearest" : "strict";
}

absl::StatusOr<SelectionPolicy> ParseSelectionPolicy(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "strict" || n.empty()) return SelectionPolicy::kStrict;
  if (n == "nearest") return SelectionPolicy::kNearest;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown selection policy '", name, "'; use strict or nearest"));
}

absl::string_view SelectionMethodName(SelectionMethod method) {
  switch (method) {
    case SelectionMethod::kPinned:
      return "pinned";
    case SelectionMethod::kCertified:
      return "certified";
    case SelectionMethod::kNearest:
      return "nearest";
  }
  return "unknown";
}

int64_t PinnedSeries(const DetectorSpec& spec, const SelectionCandidates& candidates,
                     const KindRequest& request) {
  if (!request.pin) return 0;
  if (request.pin->series_id != 0) return request.pin->series_id;
  std::vector<Match> matches = MatchSeries(spec, candidates, request, nullptr);
  return matches.empty() ? 0 : matches.front().series->series_id;
}

KindSelection SelectKind(const DetectorSpec& spec, const SelectionCandidates& candidates,
                         const KindRequest& req) {
  KindSelection out;
  out.kind = req.kind;
  const std::vector<Match> matches = MatchSeries(spec, candidates, req, &out);

  // 1. Pins.
  if (req.pin) return SelectPinned(spec, candidates, req, matches, std::move(out));

  if (!req.time) return Fail(std::move(out), absl::InvalidArgumentError("the frame's time is unknown"));
  const TimeMicros t = *req.time;
  if (matches.empty()) {
    return Fail(std::move(out), absl::FailedPreconditionError(absl::StrCat(
                                    "no ", req.kind, " of ", req.detector,
                                    " matches configuration ", Config(req.configuration),
                                    "; put and certify one")));
  }

  // 2. Certifications holding the time.
  struct Holding {
    const Certification* cert;
    const SeriesCandidate* series;
    double distance;
  };
  std::vector<Holding> holding;
  std::vector<TrailEntry> misses;
  for (const Match& m : matches) {
    std::vector<const Certification*> before;
    const Certification* after = nullptr;
    for (const Certification& c : m.series->certifications) {
      if (c.begin <= t) {
        before.push_back(&c);
      } else if (after == nullptr || c.begin < after->begin) {
        after = &c;
      }
    }
    std::stable_sort(before.begin(), before.end(), [](const Certification* a, const Certification* b) {
      return a->begin > b->begin;
    });
    if (before.size() > 2) before.resize(2);  // the latest may hold t; the one before explains
    for (const Certification* c : before) {
      if (c->Holds(t)) {
        holding.push_back(Holding{c, m.series, m.distance});
        continue;
      }
      TrailEntry e;
      e.series_id = c->series_id;
      e.version = c->version;
      e.configuration = m.series->configuration;
      e.reason = absl::StrCat("rejected: certified ", Range(*c), " ended before the frame time ",
                              FormatTime(t));
      e.certification = *c;
      misses.push_back(std::move(e));
    }
    if (after != nullptr) {
      TrailEntry e;
      e.series_id = after->series_id;
      e.version = after->version;
      e.configuration = m.series->configuration;
      e.reason = absl::StrCat("rejected: certified ", Range(*after),
                              " starts after the frame time ", FormatTime(t));
      e.certification = *after;
      misses.push_back(std::move(e));
    }
    if (before.empty() && after == nullptr) {
      TrailEntry e;
      e.series_id = m.series->series_id;
      e.configuration = m.series->configuration;
      e.reason = "rejected: configuration matches but no version of this series is certified";
      misses.push_back(std::move(e));
    }
  }
  if (!holding.empty()) {
    // Closest configuration → latest certification → highest version.
    std::stable_sort(holding.begin(), holding.end(), [](const Holding& a, const Holding& b) {
      if (a.distance != b.distance) return a.distance < b.distance;
      if (a.cert->begin != b.cert->begin) return a.cert->begin > b.cert->begin;
      return a.cert->version > b.cert->version;
    });
    std::optional<MasterVersion> winner;
    for (size_t i = 0; i < holding.size(); ++i) {
      const Certification& c = *holding[i].cert;
      const MasterVersion* v = FindVersion(*holding[i].series, c.version);
      if (v == nullptr) {
        return Fail(std::move(out),
                    absl::InternalError(absl::StrCat("selection: the catalog did not supply "
                                                     "version ", c.version, " of series ",
                                                     c.series_id)));
      }
      TrailEntry e;
      e.series_id = c.series_id;
      e.version = c.version;
      e.sha256 = v->sha256;
      e.configuration = v->configuration;
      e.certification = c;
      if (i == 0) {
        e.chosen = true;
        e.reason = absl::StrCat("chosen: certified ", Range(c), " holds the frame time ",
                                FormatTime(t),
                                holding.size() > 1 ? " and its configuration is the closest" : "");
        winner = *v;
      } else {
        e.reason = absl::StrCat("rejected: certified ", Range(c),
                                " holds the frame time too, but another series' configuration "
                                "is closer or its certification newer");
      }
      out.trail.push_back(std::move(e));
    }
    for (TrailEntry& e : misses) out.trail.push_back(std::move(e));
    Choose(&out, *std::move(winner), SelectionMethod::kCertified);
    return out;
  }
  for (TrailEntry& e : misses) out.trail.push_back(std::move(e));
  if (req.policy == SelectionPolicy::kStrict) {
    return Fail(std::move(out), absl::FailedPreconditionError(absl::StrCat(
                                    "no certified ", req.kind, " of ", req.detector,
                                    " for configuration ", Config(req.configuration), " at ",
                                    FormatTime(t),
                                    "; certify one, pin a version, or use the nearest policy")));
  }

  // 3. Nearest in time among matching, not decertified versions (per series: the nearest at or
  //    before t and the nearest after; the highest version on equal obs_time).
  struct Near {
    const MasterVersion* v;
    TimeMicros dt;
    double distance;
  };
  std::vector<Near> near;
  for (const Match& m : matches) {
    const MasterVersion* before = nullptr;
    const MasterVersion* after = nullptr;
    for (const MasterVersion& v : m.series->versions) {
      if (v.decertified_at) continue;
      if (v.obs_time <= t) {
        if (before == nullptr || v.obs_time > before->obs_time ||
            (v.obs_time == before->obs_time && v.version > before->version)) {
          before = &v;
        }
      } else if (after == nullptr || v.obs_time < after->obs_time ||
                 (v.obs_time == after->obs_time && v.version > after->version)) {
        after = &v;
      }
    }
    for (const MasterVersion* v : {before, after}) {
      if (v == nullptr) continue;
      near.push_back(Near{v, v->obs_time > t ? v->obs_time - t : t - v->obs_time, m.distance});
    }
  }
  std::stable_sort(near.begin(), near.end(), [](const Near& a, const Near& b) {
    if (a.dt != b.dt) return a.dt < b.dt;
    if (a.distance != b.distance) return a.distance < b.distance;
    return a.v->version > b.v->version;
  });
  std::optional<MasterVersion> winner;
  for (const Near& n : near) {
    TrailEntry e;
    e.series_id = n.v->series_id;
    e.version = n.v->version;
    e.sha256 = n.v->sha256;
    e.configuration = n.v->configuration;
    const std::string age = absl::StrCat(static_cast<double>(n.dt) / kMicrosPerSecond, " s");
    if (req.max_age > 0 && n.dt > req.max_age) {
      e.reason = absl::StrCat("rejected: nearest in time but ", age,
                              " from the frame, more than max_age ",
                              static_cast<double>(req.max_age) / kMicrosPerSecond, " s");
    } else if (!winner) {
      e.chosen = true;
      e.reason = absl::StrCat("chosen: nearest in time (", age,
                              " from the frame) with no certification holding the frame time");
      winner = *n.v;
    } else {
      e.reason = absl::StrCat("rejected: ", age, " from the frame, farther than the chosen one");
    }
    out.trail.push_back(std::move(e));
  }
  if (!winner) {
    return Fail(std::move(out), absl::FailedPreconditionError(absl::StrCat(
                                    "no ", req.kind, " of ", req.detector, " for configuration ",
                                    Config(req.configuration), " is certified at ", FormatTime(t),
                                    " or within max_age of it",
                                    "; certify one, pin a version, or widen max_age")));
  }
  Choose(&out, *std::move(winner), SelectionMethod::kNearest);
  return out;
}

bool ConfigurationMatches(const DetectorSpec& spec, absl::string_view kind,
                          const Configuration& series, const Configuration& frame,
                          std::string* why, double* distance) {
  const std::map<std::string, double> tolerances = TolerancesOf(spec);
  double dist = 0;
  for (const auto& [key, want] : series) {
    auto it = frame.find(key);
    if (it == frame.end()) {
      if (why) *why = absl::StrCat("frame has no ", key, " (", spec.keys.KeywordFor(key), ")");
      return false;
    }
    const std::string& have = it->second;
    double a = 0, b = 0;
    const bool numeric = absl::SimpleAtod(want, &a) && absl::SimpleAtod(have, &b) &&
                         std::isfinite(a) && std::isfinite(b);
    if (numeric) {
      auto tol_it = tolerances.find(key);
      const double tol = tol_it == tolerances.end() ? 0.0 : tol_it->second;
      const double diff = std::fabs(a - b);
      if (diff > tol * (1 + 1e-12)) {
        if (why) {
          *why = tol > 0 ? absl::StrCat(key, " ", want, " differs from frame's ", have,
                                        " by more than ", tol)
                         : absl::StrCat(key, " ", want, " differs from frame's ", have);
        }
        return false;
      }
      if (tol > 0) dist += diff / tol;
    } else if (want != have) {
      if (why) *why = absl::StrCat(key, " '", want, "' differs from frame's '", have, "'");
      return false;
    }
  }
  if (distance) *distance = dist;
  return true;
}

}  // namespace calibd::store
