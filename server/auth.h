// TokenAuth: bearer-token authentication and the read/admin authorisation of calibd's calls.
// The token file (--tokens FILE) has one token per line, `<token> read|admin [name]`; blank
// lines and lines starting with '#' are ignored. Clients send `authorization: Bearer <token>`.
//
//   ASSIGN_OR_RETURN(TokenAuth auth, TokenAuth::LoadFile("/etc/calibd/tokens"));
//   absl::StatusOr<Principal> who = auth.Authorize(authorization_header, Scope::kAdmin);
//   // UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a read token on a write.
//
// Without a token file (TokenAuth::Open()) every call is allowed, as an anonymous admin.
//
// Thread safety: immutable after construction; Authorize may be called from any thread.
#ifndef CALIBD_SERVER_AUTH_H_
#define CALIBD_SERVER_AUTH_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace calibd::server {

enum class Scope { kRead = 0, kAdmin = 1 };

struct Principal {
  std::string name;  // the token's name ("anonymous" without a token file)
  Scope scope = Scope::kAdmin;
};

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
