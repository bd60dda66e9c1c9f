#include "server/auth.h"

#include <fnmatch.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace calibd::server {
namespace {

bool LooksLikePattern(absl::string_view field) {
  return field.find_first_of("/*?[") != absl::string_view::npos;
}

}  // namespace

absl::string_view ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kRead: return "read";
    case Scope::kWrite: return "write";
    case Scope::kAdmin: return "admin";
  }
  return "read";
}

bool Principal::MayUse(absl::string_view detector) const {
  if (detector_patterns.empty()) return true;
  const std::string d(detector);
  for (const std::string& p : detector_patterns) {
    if (::fnmatch(p.c_str(), d.c_str(), 0) == 0) return true;
    // An instrument name allows its detectors.
    if (p.find('/') == std::string::npos && absl::StartsWith(d, p + "/")) return true;
  }
  return false;
}

absl::Status CheckDetector(const Principal& who, absl::string_view detector) {
  if (who.MayUse(detector)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("token '", who.name,
                                                  "' is not allowed detector '", detector, "'"));
}

absl::StatusOr<TokenAuth> TokenAuth::Parse(absl::string_view text) {
  TokenAuth auth;
  auth.enabled_ = true;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 2 || (f[1] != "read" && f[1] != "write" && f[1] != "admin")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file line ", line_no,
          ": expected '<token> read|write|admin [name] [detector-pattern ...]'"));
    }
    Principal p;
    p.scope = f[1] == "admin" ? Scope::kAdmin : f[1] == "write" ? Scope::kWrite : Scope::kRead;
    size_t next = 2;
    if (f.size() > 2 && !LooksLikePattern(f[2])) {
      p.name = std::string(f[2]);
      next = 3;
    } else {
      p.name = absl::StrCat("token#", line_no);
    }
    for (size_t i = next; i < f.size(); ++i) p.detector_patterns.emplace_back(f[i]);
    if (!auth.tokens_.emplace(std::string(f[0]), p).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file line ", line_no, ": the token appears twice"));
    }
  }
  return auth;
}

absl::StatusOr<TokenAuth> TokenAuth::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the token file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<TokenAuth> auth = Parse(ss.str());
  if (!auth.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", auth.status().message()));
  }
  return auth;
}

absl::StatusOr<Principal> TokenAuth::Authorize(absl::string_view authorization,
                                               Scope needed) const {
  if (!enabled_) return Principal{"anonymous", Scope::kAdmin};
  absl::string_view v = absl::StripAsciiWhitespace(authorization);
  if (v.empty()) {
    return absl::UnauthenticatedError(
        "no bearer token: send metadata 'authorization: Bearer <token>' (calibctl --token)");
  }
  if (!absl::StartsWithIgnoreCase(v, "bearer ")) {
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer <token>'");
  }
  v = absl::StripAsciiWhitespace(v.substr(7));
  auto it = tokens_.find(v);
  if (it == tokens_.end()) return absl::UnauthenticatedError("the bearer token is not valid");
  if (static_cast<int>(it->second.scope) < static_cast<int>(needed)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token '", it->second.name, "' has ", ScopeName(it->second.scope),
        " scope; this call needs ", ScopeName(needed),
        needed == Scope::kWrite ? " (uploading or building masters)"
                                : " (certifying or registering detectors)"));
  }
  return it->second;
}

}  // namespace calibd::server
