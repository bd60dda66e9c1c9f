// Conversion between the calibd.v1 proto messages and the transport-free types of core/ and
// the server's implementation classes. The ONLY file that knows both (architecture §2); the
// services call these, the implementations never see a proto.
//
//   ASSIGN_OR_RETURN(FrameRequest req, FrameRequestFromProto(request.header()));
//   ...
//   ResultHeaderToProto(result, response.mutable_header());
//
// Conversions from the wire validate what the wire can get wrong (unknown enum values, bad
// names) and return INVALID_ARGUMENT naming the field.
//
// Thread safety: pure functions.
#ifndef CALIBD_SERVER_CONVERT_H_
#define CALIBD_SERVER_CONVERT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "calibd/v1/builder.pb.h"
#include "calibd/v1/calibrator.pb.h"
#include "calibd/v1/store.pb.h"
#include "calibd/v1/types.pb.h"
#include "core/combine/combine.h"
#include "core/image/header.h"
#include "core/store/store.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/build_impl.h"
#include "server/calibrate_impl.h"
#include "server/recipe_options.h"
#include "server/requests.h"
#include "server/store_impl.h"

#include "proto/api_convert.h"

namespace calibd::server {

// The shared API types convert in proto/api_convert (the client uses the same functions).
using api::DetectorSpecFromProto;
using api::HeaderFromProto;
using api::HeaderToProto;
using api::PixelTypeFromProto;
using api::PixelTypeToProto;
using api::TimeMicrosFromProto;
using api::TimeMicrosToProto;

RecipeOverrides RecipeOverridesFromProto(const v1::RecipeOverrides& r);
// INVALID_ARGUMENT for what RecipeOverridesFromProto cannot represent (an unknown dark_policy).
absl::Status CheckRecipeOverrides(const v1::RecipeOverrides& r);
absl::StatusOr<SelectionSpec> SelectionFromProto(const v1::SelectionOptions& s);
absl::StatusOr<FrameRequest> FrameRequestFromProto(const v1::FrameHeader& h);

store::Configuration ConfigurationFromProto(const google::protobuf::Map<std::string, std::string>& m);
void ConfigurationToProto(const store::Configuration& c,
                          google::protobuf::Map<std::string, std::string>* m);
SeriesKey SeriesKeyFromProto(const std::string& detector, const std::string& kind,
                             const google::protobuf::Map<std::string, std::string>& configuration);

void DetectorRecordToProto(const store::DetectorRecord& r, v1::DetectorSpec* p);

void CertificationToProto(const store::Certification& c, v1::Certification* p);
void MasterVersionToProto(const store::MasterVersion& v,
                          const std::vector<store::Certification>& certifications,
                          v1::MasterVersion* p);
void AuditEntryToProto(const store::AuditEntry& e, v1::HistoryEvent* p);

void TrailToProto(const store::SelectionResult& r,
                  google::protobuf::RepeatedPtrField<v1::SelectionTrailEntry>* trail);
// The chosen masters of a selection (kinds that failed are left out).
void SelectedMastersToProto(const store::SelectionResult& r,
                            google::protobuf::RepeatedPtrField<v1::AppliedMaster>* masters);
void AppliedMasterToProto(const AppliedMaster& a, v1::AppliedMaster* p);

// The result header of one frame (status, provenance, trail, statistics, header cards).
void ResultHeaderToProto(const FrameResult& result, v1::ResultHeader* p);

// A Select call's answer: chosen masters, the trail, frame time and configuration.
void SelectionResultToProto(const store::SelectionResult& r, v1::SelectResponse* p);
void DqBitsToProto(const std::vector<DqBitEntry>& bits, v1::GetDqBitsResponse* p);

// The metadata of an upload (transfer fields of PutMasterInput are filled while spooling).
absl::StatusOr<PutMasterInput> PutMasterInputFromProto(const v1::PutMasterHeader& h);

absl::StatusOr<combine::CombineOptions> CombineOptionsFromProto(const v1::CombineOptions& c);
// The noise kinds' options (BuildOptions.noise) as `noise.*` entries of `options_text` (what
// server/noise_build.cc reads; NoiseOptionsText). INVALID_ARGUMENT for options given to a kind
// that is not a noise kind, or an option the kind does not read (naming the kind's options).
absl::Status AddNoiseBuildOptions(const std::string& kind, const v1::NoiseBuildOptions& noise,
                                  std::map<std::string, std::string>& options_text);
absl::StatusOr<BuildRequest> BuildRequestFromProto(const v1::BuildOptions& o);
void BuildResultToProto(const BuildResult& r,
                        const std::vector<store::Certification>& certifications,
                        v1::BuildMasterResponse* p);

}  // namespace calibd::server

#endif  // CALIBD_SERVER_CONVERT_H_
