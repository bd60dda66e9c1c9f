#include "core/store/errors.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/store/store.h"

namespace calibd::store {

std::string InternalDetail(const absl::Status& status) {
  auto p = status.GetPayload(kInternalDetailPayload);
  return p ? std::string(*p) : std::string();
}

namespace internal {

absl::Status WithDetail(absl::StatusCode code, absl::string_view message,
                        absl::string_view detail) {
  absl::Status s(code, message);
  if (!detail.empty()) s.SetPayload(kInternalDetailPayload, absl::Cord(detail));
  return s;
}

absl::Status Context(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

absl::Status Redact(const absl::Status& status, absl::string_view secret,
                    absl::string_view shown) {
  if (status.ok() || secret.empty() || status.message().find(secret) == absl::string_view::npos) {
    return status;
  }
  absl::Status out(status.code(),
                   absl::StrReplaceAll(status.message(), {{secret, shown}}));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  std::string detail = InternalDetail(status);
  absl::StrAppend(&detail, detail.empty() ? "" : "; ", status.message());
  out.SetPayload(kInternalDetailPayload, absl::Cord(detail));
  return out;
}

absl::Status FileError(int err, absl::string_view what, const std::string& path) {
  const std::string message = absl::StrCat("store file system: ", what, ": ", std::strerror(err));
  const std::string detail = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  absl::StatusCode code = absl::StatusCode::kUnavailable;
  if (err == ENOENT) code = absl::StatusCode::kNotFound;
  if (err == ENOSPC || err == EDQUOT) code = absl::StatusCode::kResourceExhausted;
  return WithDetail(code, message, detail);
}

}  // namespace internal
}  // namespace calibd::store
