// Store service: the unary methods. Each authorises and runs its body on the store executor
// (RunUnary, server/reactor_base.h): convert, call StoreImpl, convert back.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/log.h"
#include "server/reactor_base.h"

namespace calibd::server {
namespace {

// A request's optional time field `begin` or `end` (unset = nullopt).
template <typename Request>
absl::StatusOr<std::optional<store::TimeMicros>> OptionalTime(const Request& r,
                                                              absl::string_view field) {
  const bool is_begin = field == "begin";
  if (is_begin ? !r.has_begin() : !r.has_end()) return std::optional<store::TimeMicros>();
  absl::StatusOr<store::TimeMicros> t =
      TimeMicrosFromProto(is_begin ? r.begin() : r.end(), field);
  if (!t.ok()) return t.status();
  return std::optional<store::TimeMicros>(*t);
}

// The AIP-158 fields of a list request.
template <typename Request>
store::PageRequest PageOf(const Request& r) {
  store::PageRequest p;
  p.page_size = r.page_size();
  p.page_token = r.page_token();
  return p;
}

}  // namespace

grpc::ServerUnaryReactor* StoreService::ListMasters(grpc::CallbackServerContext* context,
                                                    const v1::ListMastersRequest* request,
                                                    v1::ListMastersResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "ListMasters", Scope::kRead,
                  [=](const Principal& who) -> absl::Status {
    if (!request->detector().empty()) {
      if (absl::Status s = CheckDetector(who, request->detector()); !s.ok()) return s;
    }
    absl::StatusOr<MasterPage> list = store->ListMasters(
        request->detector(), request->kind(), PageOf(*request));
    if (!list.ok()) return list.status();
    response->set_next_page_token(list->next_page_token);
    for (const MasterWithCerts& m : list->masters) {
      if (!who.MayUse(m.version.detector)) continue;  // lists show only what it may read
      MasterVersionToProto(m.version, m.certifications, response->add_versions());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::History(grpc::CallbackServerContext* context,
                                                const v1::HistoryRequest* request,
                                                v1::HistoryResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "History", Scope::kRead, [=](const Principal& who) -> absl::Status {
    if (absl::Status s = CheckDetector(who, request->detector()); !s.ok()) return s;
    absl::StatusOr<HistoryResult> h = store->History(
        SeriesKeyFromProto(request->detector(), request->kind(), request->configuration()),
        PageOf(*request));
    if (!h.ok()) return h.status();
    response->set_next_page_token(h->next_page_token);
    for (const MasterWithCerts& m : h->versions) {
      MasterVersionToProto(m.version, m.certifications, response->add_versions());
    }
    for (const store::AuditEntry& e : h->events) AuditEntryToProto(e, response->add_events());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::Certify(grpc::CallbackServerContext* context,
                                                const v1::CertifyRequest* request,
                                                v1::CertifyResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "Certify", Scope::kAdmin, [=](const Principal& who) -> absl::Status {
    if (absl::Status s = CheckDetector(who, request->detector()); !s.ok()) return s;
    if (!request->has_begin()) {
      return absl::InvalidArgumentError("certify needs begin (the first instant of validity)");
    }
    absl::StatusOr<store::TimeMicros> begin = TimeMicrosFromProto(request->begin(), "begin");
    if (!begin.ok()) return begin.status();
    absl::StatusOr<std::optional<store::TimeMicros>> end = OptionalTime(*request, "end");
    if (!end.ok()) return end.status();
    absl::StatusOr<store::Certification> c = store->Certify(
        SeriesKeyFromProto(request->detector(), request->kind(), request->configuration()),
        request->version(), *begin, *end, request->replace(), who.name, request->reason());
    if (!c.ok()) return c.status();
    CertificationToProto(*c, response->mutable_certification());
    LogEvent("certify", {{"detector", request->detector()}, {"kind", request->kind()},
                         {"version", absl::StrCat(request->version())},
                         {"begin", store::FormatTime(c->begin)}, {"actor", who.name}});
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::Decertify(grpc::CallbackServerContext* context,
                                                  const v1::DecertifyRequest* request,
                                                  v1::DecertifyResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "Decertify", Scope::kAdmin,
                  [=](const Principal& who) -> absl::Status {
    if (absl::Status s = CheckDetector(who, request->detector()); !s.ok()) return s;
    absl::StatusOr<std::optional<store::TimeMicros>> begin = OptionalTime(*request, "begin");
    if (!begin.ok()) return begin.status();
    absl::StatusOr<std::optional<store::TimeMicros>> end = OptionalTime(*request, "end");
    if (!end.ok()) return end.status();
    absl::StatusOr<MasterWithCerts> m = store->Decertify(
        SeriesKeyFromProto(request->detector(), request->kind(), request->configuration()),
        request->version(), *begin, *end, who.name, request->reason());
    if (!m.ok()) return m.status();
    MasterVersionToProto(m->version, m->certifications, response->mutable_version());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::Select(grpc::CallbackServerContext* context,
                                               const v1::SelectRequest* request,
                                               v1::SelectResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "Select", Scope::kRead, [=](const Principal& who) -> absl::Status {
    if (absl::Status s = CheckDetector(who, request->detector()); !s.ok()) return s;
    absl::StatusOr<SelectionSpec> sel = SelectionFromProto(request->selection());
    if (!sel.ok()) return sel.status();
    absl::StatusOr<store::SelectionResult> r = store->Select(
        request->detector(), HeaderFromProto(request->cards()), *sel,
        std::vector<std::string>(request->kinds().begin(), request->kinds().end()),
        RecipeOverridesFromProto(request->recipe()));
    if (!r.ok()) return r.status();
    SelectionResultToProto(*r, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::PutDetector(grpc::CallbackServerContext* context,
                                                    const v1::PutDetectorRequest* request,
                                                    v1::PutDetectorResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "PutDetector", Scope::kAdmin,
                  [=](const Principal& who) -> absl::Status {
    if (absl::Status s = CheckDetector(who, request->spec().name()); !s.ok()) return s;
    absl::StatusOr<store::DetectorRecord> r =
        store->PutDetector(DetectorSpecFromProto(request->spec()), who.name);
    if (!r.ok()) return r.status();
    DetectorRecordToProto(*r, response->mutable_spec());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::GetDetector(grpc::CallbackServerContext* context,
                                                    const v1::GetDetectorRequest* request,
                                                    v1::DetectorSpec* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "GetDetector", Scope::kRead,
                  [=](const Principal& who) -> absl::Status {
    if (absl::Status s = CheckDetector(who, request->name()); !s.ok()) return s;
    absl::StatusOr<store::DetectorRecord> r = store->GetDetector(request->name(), request->version());
    if (!r.ok()) return r.status();
    DetectorRecordToProto(*r, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::ListDetectors(grpc::CallbackServerContext* context,
                                                      const v1::ListDetectorsRequest* request,
                                                      v1::ListDetectorsResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "ListDetectors", Scope::kRead,
                  [=](const Principal& who) -> absl::Status {
    absl::StatusOr<store::Page<store::DetectorRecord>> r = store->ListDetectors(PageOf(*request));
    if (!r.ok()) return r.status();
    response->set_next_page_token(r->next_page_token);
    for (const store::DetectorRecord& d : r->items) {
      if (who.MayUse(d.spec.name)) DetectorRecordToProto(d, response->add_detectors());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StoreService::GetDqBits(grpc::CallbackServerContext* context,
                                                  const v1::GetDqBitsRequest* request,
                                                  v1::GetDqBitsResponse* response) {
  const StoreImpl* store = env_->store;
  return RunUnary(env_, context, "GetDqBits", Scope::kRead, [=](const Principal& who) -> absl::Status {
    if (!request->detector().empty()) {  // "" = the global registry
      if (absl::Status s = CheckDetector(who, request->detector()); !s.ok()) return s;
    }
    absl::StatusOr<std::vector<DqBitEntry>> bits = store->DqBits(request->detector());
    if (!bits.ok()) return bits.status();
    DqBitsToProto(*bits, response);
    return absl::OkStatus();
  });
}

}  // namespace calibd::server
