// TokenAuth: bearer-token authentication and the authorisation of calibd's calls, optionally
// scoped to instruments. The token file (--tokens FILE) has one token per line:
//
//   <token> read|write|admin [name] [detector-pattern ...]
//
// blank lines and lines starting with '#' are ignored. Scopes nest: `read` may calibrate and
// read the store; `write` also uploads and builds masters (PutMaster, BuildMaster); `admin`
// also certifies, decertifies and registers detectors. `name` (default "token#<line>") names
// the token in logs and the audit trail; the third field is taken as a pattern instead when it
// contains '/', '*', '?' or '['. Patterns are shell globs over detector names (fnmatch, '*'
// crosses '/'); a pattern without '/' also names a whole instrument ("lfc" allows "lfc" and
// "lfc/…"). No pattern: every detector. Clients send `authorization: Bearer <token>`.
//
//   ASSIGN_OR_RETURN(TokenAuth auth, TokenAuth::Parse("s3cr3t write pipeline lfc/*\n"));
//   absl::StatusOr<Principal> who = auth.Authorize("Bearer s3cr3t", Scope::kWrite);
//   // UNAUTHENTICATED without a valid token, PERMISSION_DENIED for too small a scope.
//   absl::Status s = CheckDetector(*who, "hsc/ccd12");   // PERMISSION_DENIED: not lfc
//   bool listed = who->MayUse("lfc/chip0");                // true: lists filter with this
//
// Without a token file (TokenAuth::Open()) every call is allowed, as an anonymous admin.
//
// Thread safety: immutable after construction; Authorize may be called from any thread.
#ifndef CALIBD_SERVER_AUTH_H_
#define CALIBD_SERVER_AUTH_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd::server {

enum class Scope { kRead = 0, kWrite = 1, kAdmin = 2 };

absl::string_view ScopeName(Scope scope);  // "read", "write", "admin"

struct Principal {
  std::string name;  // the token's name ("anonymous" without a token file)
  Scope scope = Scope::kAdmin;
  std::vector<std::string> detector_patterns;  // empty = every detector

  // Whether this principal may touch `detector` (read or change, as its scope allows).
  bool MayUse(absl::string_view detector) const;
};

// OK when `who` may use `detector`; PERMISSION_DENIED naming both otherwise.
absl::Status CheckDetector(const Principal& who, absl::string_view detector);

class TokenAuth {
 public:
  // No authentication.
  static TokenAuth Open() { return TokenAuth(); }
  // Parses the token-file format; INVALID_ARGUMENT naming the bad line.
  static absl::StatusOr<TokenAuth> Parse(absl::string_view text);
  static absl::StatusOr<TokenAuth> LoadFile(const std::string& path);

  bool enabled() const { return enabled_; }
  // `authorization`: the request's authorization metadata value ("" when absent).
  absl::StatusOr<Principal> Authorize(absl::string_view authorization, Scope needed) const;

 private:
  bool enabled_ = false;
  std::map<std::string, Principal, std::less<>> tokens_;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_AUTH_H_
