#include "server/status_util.h"

#include <string>

namespace calibd::server {

std::string CapMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  static constexpr absl::string_view kEllipsis = "\xE2\x80\xA6";  // "…"
  size_t cut = kMaxStatusMessageBytes - kEllipsis.size();
  // Step back over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  std::string out(message.substr(0, cut));
  out.append(kEllipsis.data(), kEllipsis.size());
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.raw_code()),
                      CapMessage(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace calibd::server
