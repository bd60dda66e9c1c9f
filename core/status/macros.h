// Status-propagation macros for absl::Status / absl::StatusOr (Debian's Abseil 20220623 has none).
//
//   absl::StatusOr<Frame> LoadAndTrim(const std::string& path) {
//     CALIBD_ASSIGN_OR_RETURN(RawFrame raw, fits::ReadRawFrame(path));
//     CALIBD_RETURN_IF_ERROR(CheckShape(raw));
//     return Trim(raw);
//   }
//
// Both evaluate their argument exactly once. RETURN_IF_ERROR and ASSIGN_OR_RETURN are
// also defined (unprefixed) unless something else already defined them.
//
// Thread safety: macros only; nothing shared.
#ifndef CALIBD_CORE_STATUS_MACROS_H_
#define CALIBD_CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CALIBD_STATUS_CONCAT_INNER_(a, b) a##b
#define CALIBD_STATUS_CONCAT_(a, b) CALIBD_STATUS_CONCAT_INNER_(a, b)

#define CALIBD_RETURN_IF_ERROR(expr)                                   \
  do {                                                                 \
    ::absl::Status calibd_status_ = (expr);                            \
    if (ABSL_PREDICT_FALSE(!calibd_status_.ok())) return calibd_status_; \
  } while (false)

#define CALIBD_ASSIGN_OR_RETURN(lhs, rexpr) \
  CALIBD_ASSIGN_OR_RETURN_IMPL_(CALIBD_STATUS_CONCAT_(calibd_statusor_, __LINE__), lhs, rexpr)

#define CALIBD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)            \
  auto statusor = (rexpr);                                             \
  if (ABSL_PREDICT_FALSE(!statusor.ok())) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#ifndef RETURN_IF_ERROR
#define RETURN_IF_ERROR(expr) CALIBD_RETURN_IF_ERROR(expr)
#endif
#ifndef ASSIGN_OR_RETURN
#define ASSIGN_OR_RETURN(lhs, rexpr) CALIBD_ASSIGN_OR_RETURN(lhs, rexpr)
#endif

namespace calibd {

// Returns `status` with `context + ": "` put before its message; the code is kept.
// An OK status stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace calibd

#endif  // CALIBD_CORE_STATUS_MACROS_H_
