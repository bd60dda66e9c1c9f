// calibctl put, ls, history, get, certify, decertify: the stored masters and their validity.
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/command.h"
#include "client/convert.h"
#include "client/format.h"
#include "client/requests.h"

namespace calibd::client {
namespace {

int Put(Context& c) {
  if (c.args.positional().size() != 1) return c.Usage("put takes one FITS file");
  const std::string path = c.args.positional()[0];
  absl::StatusOr<PutMasterOptions> o = PutMasterOptionsFromFlags(c.args);
  if (!o.ok()) return c.Usage(o.status());
  if (int rc = c.Connect(); rc >= 0) return rc;
  std::error_code ec;
  const int64_t size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  ProgressBar bar(absl::StrCat("upload ", std::filesystem::path(path).filename().string()), size,
                  ProgressBar::Enabled(c.json));
  absl::StatusOr<v1::PutMasterResponse> r =
      c.client->PutMaster(path, *o, [&](int64_t done, int64_t) { bar.Update(done); });
  bar.Finish();
  if (!r.ok()) return Fail(absl::StrCat("put ", path), r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
  } else {
    const v1::MasterVersion& v = r->version();
    std::cout << v.detector() << " " << v.kind() << " version " << v.version()
              << (r->already_existed() ? " (identical bytes were already stored)" : "")
              << "  sha256 " << v.sha256() << "\n";
  }
  return 0;
}

int Ls(Context& c) {
  absl::StatusOr<PageRequest> page = PageFromFlags(c.args);
  if (!page.ok()) return c.Usage(page.status());
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<v1::ListMastersResponse> r =
      c.client->ListMasters(c.args.Value("detector"), c.args.Value("kind"), *page);
  if (!r.ok()) return Fail("ls", r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  Table t({"DETECTOR", "KIND", "CONFIGURATION", "VERSION", "SHAPE", "SIZE", "SHA256", "STORED",
           "CERTIFIED"});
  for (const v1::MasterVersion& v : r->versions()) {
    std::vector<std::string> certs;
    for (const v1::Certification& cert : v.certifications())
      certs.push_back(CertificationText(cert));
    t.AddRow({v.detector(), v.kind(), MapText(v.configuration()), absl::StrCat(v.version()),
              absl::StrCat(v.width(), "x", v.height()), FormatBytes(v.size_bytes()),
              ShortSha(v.sha256()), TimeText(v.has_created_at(), v.created_at()),
              certs.empty() ? "-" : absl::StrJoin(certs, " ")});
  }
  std::cout << t.Render();
  PrintNextPage(NextPageToken(*r), c.json);
  return 0;
}

int History(Context& c) {
  absl::StatusOr<std::string> detector = RequiredFlag(c.args, "detector");
  if (!detector.ok()) return c.Usage(detector.status());
  absl::StatusOr<std::string> kind = RequiredFlag(c.args, "kind");
  if (!kind.ok()) return c.Usage(kind.status());
  absl::StatusOr<PageRequest> page = PageFromFlags(c.args);
  if (!page.ok()) return c.Usage(page.status());
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<v1::HistoryResponse> r = c.client->History(*detector, *kind, *page);
  if (!r.ok()) return Fail("history", r.status());
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
    return 0;
  }
  Table t({"TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"});
  for (const v1::HistoryEvent& e : r->events()) {
    t.AddRow({TimeText(e.has_time(), e.time()), e.actor().empty() ? "-" : e.actor(), e.action(),
              e.subject(), OneLine(e.details())});
  }
  std::cout << t.Render();
  PrintNextPage(NextPageToken(*r), c.json);
  return 0;
}

int Get(Context& c) {
  absl::StatusOr<std::string> detector = RequiredFlag(c.args, "detector");
  if (!detector.ok()) return c.Usage(detector.status());
  absl::StatusOr<std::string> kind = RequiredFlag(c.args, "kind");
  if (!kind.ok()) return c.Usage(kind.status());
  absl::StatusOr<std::string> out = RequiredFlag(c.args, "output");
  if (!out.ok()) return c.Usage(out.status());
  absl::StatusOr<VersionChoice> which = VersionChoiceFromFlags(c.args);
  if (!which.ok()) return c.Usage(which.status());
  if (int rc = c.Connect(); rc >= 0) return rc;
  ProgressBar bar(absl::StrCat("download ", *kind), 0, ProgressBar::Enabled(c.json));
  absl::StatusOr<v1::MasterVersion> v =
      c.client->GetMaster(*detector, *kind, *which, *out, [&](int64_t done, int64_t total) {
        bar.SetTotal(total);
        bar.Update(done);
      });
  bar.Finish();
  if (!v.ok()) return Fail(absl::StrCat("get ", *detector, " ", *kind), v.status());
  if (c.json) {
    std::cout << ProtoJson(*v) << "\n";
  } else {
    std::cout << "wrote " << *out << ": " << v->detector() << " " << v->kind() << " version "
              << v->version() << ", " << FormatBytes(v->size_bytes()) << ", sha256 " << v->sha256()
              << "\n";
  }
  return 0;
}

int Certify(Context& c) {
  absl::StatusOr<v1::CertifyRequest> req = CertifyRequestFromFlags(c.args);
  if (!req.ok()) return c.Usage(req.status());
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<v1::CertifyResponse> r = c.client->Certify(*req);
  if (!r.ok()) {
    return Fail(absl::StrCat("certify ", req->detector(), " ", req->kind(), " v", req->version()),
                r.status());
  }
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
  } else {
    std::cout << "certified " << req->detector() << " " << req->kind() << " version "
              << req->version() << " for " << CertificationText(r->certification()) << "\n";
  }
  return 0;
}

int Decertify(Context& c) {
  absl::StatusOr<v1::DecertifyRequest> req = DecertifyRequestFromFlags(c.args);
  if (!req.ok()) return c.Usage(req.status());
  if (int rc = c.Connect(); rc >= 0) return rc;
  absl::StatusOr<v1::DecertifyResponse> r = c.client->Decertify(*req);
  if (!r.ok()) {
    return Fail(absl::StrCat("decertify ", req->detector(), " ", req->kind(), " v", req->version()),
                r.status());
  }
  if (c.json) {
    std::cout << ProtoJson(*r) << "\n";
  } else {
    std::vector<std::string> left;
    for (const v1::Certification& cert : r->version().certifications()) {
      left.push_back(CertificationText(cert));
    }
    std::cout << "decertified " << req->detector() << " " << req->kind() << " version "
              << req->version()
              << "; remaining: " << (left.empty() ? "none" : absl::StrJoin(left, " ")) << "\n";
  }
  return 0;
}

}  // namespace

std::vector<Command> MasterCommands() {
  const FlagSpec version{"version", 0, FlagKind::kValue, "version number", "N"};
  const FlagSpec reason{"reason", 0, FlagKind::kValue, "why, for the audit log", "TEXT"};
  std::vector<FlagSpec> ls_flags = {DetectorFlag(), KindFlag()};
  std::vector<FlagSpec> page = PageFlags();
  ls_flags.insert(ls_flags.end(), page.begin(), page.end());
  return {
      {"put",
       "put --detector D --kind K [--attr KEY=VALUE]... FILE.fits",
       "upload a master FITS file; prints the new version",
       {DetectorFlag(), KindFlag(), ConfigFlag(), AttrFlag()},
       Put},
      {"ls", "ls [--detector D] [--kind K] [--limit N] [--page-token T]",
       "list stored masters and their certifications", ls_flags, Ls},
      {"history", "history --detector D --kind K [--limit N] [--page-token T]",
       "audit log of a detector's series of a kind", ls_flags, History},
      {"get",
       "get --detector D --kind K (--version N | --at TIME) -o OUT.fits",
       "download a master (checked against its sha256)",
       {DetectorFlag(),
        KindFlag(),
        version,
        {"at", 0, FlagKind::kValue, "the version certified at this time", "TIME"},
        {"output", 'o', FlagKind::kValue, "output file", "FILE"}},
       Get},
      {"certify",
       "certify --detector D --kind K --version N --begin TIME [--end TIME] [--replace]",
       "certify a version for frames taken in [begin, end)",
       {DetectorFlag(),
        KindFlag(),
        ConfigFlag(),
        version,
        {"begin", 0, FlagKind::kValue, "first valid time (RFC 3339, date, or now)", "TIME"},
        {"end", 0, FlagKind::kValue, "end of validity, exclusive (default open)", "TIME"},
        {"replace", 0, FlagKind::kBool, "trim overlapping certifications instead of refusing"},
        reason},
       Certify},
      {"decertify",
       "decertify --detector D --kind K --version N [--begin TIME --end TIME]",
       "remove a version's certification (all of it, or [begin, end))",
       {DetectorFlag(),
        KindFlag(),
        ConfigFlag(),
        version,
        {"begin", 0, FlagKind::kValue, "only from this time", "TIME"},
        {"end", 0, FlagKind::kValue, "only until this time", "TIME"},
        reason},
       Decertify},
  };
}

}  // namespace calibd::client
