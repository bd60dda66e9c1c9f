#include "server/auth.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace calibd::server {

absl::StatusOr<TokenAuth> TokenAuth::Parse(absl::string_view text) {
  TokenAuth auth;
  auth.enabled_ = true;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 2 || f.size() > 3 || (f[1] != "read" && f[1] != "admin")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file line ", line_no, ": expected '<token> read|admin [name]'"));
    }
    Principal p;
    p.scope = f[1] == "admin" ? Scope::kAdmin : Scope::kRead;
    p.name = f.size() == 3 ? std::string(f[2]) : absl::StrCat("token#", line_no);
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
  if (needed == Scope::kAdmin && it->second.scope != Scope::kAdmin) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token '", it->second.name, "' has read scope; this call changes the store and needs "
        "an admin token"));
  }
  return it->second;
}

}  // namespace calibd::server
