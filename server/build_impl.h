// BuildSession: the transport-free logic behind Builder.BuildMaster — one session per call.
// Raw inputs are pre-processed by the build's recipe (the same code path as Calibrate, with
// the defaults of the kind being built: biases overscan+trim, darks also bias-subtracted, flats
// also dark-subtracted) and spooled to temporary FITS files; stored versions are used from
// their blobs; Finish() combines everything in row bands with bounded memory
// (combine::Combine over FitsSource), stores the result as a new version with statistics and
// provenance, and certifies it when asked.
//
//   BuildSession session(&backend, &calibrate, std::move(options));
//   RETURN_IF_ERROR(session.Begin());
//   PreparedFrame prep;
//   RETURN_IF_ERROR(session.PrepareRaw(std::move(frame_request), prep));
//   RETURN_IF_ERROR(session.AddRaw(prep, std::move(pixels), sha256_of_pixel_bytes));
//   RETURN_IF_ERROR(session.AddStored({"lfc/chip0", "bias", {}}, 3));
//   ASSIGN_OR_RETURN(BuildResult result, session.Finish());
//
// Thread safety: a session is used by one thread at a time (the reactor serialises calls).
#ifndef CALIBD_SERVER_BUILD_IMPL_H_
#define CALIBD_SERVER_BUILD_IMPL_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/combine/combine.h"
#include "core/store/store.h"
#include "server/backend.h"
#include "server/calibrate_impl.h"
#include "server/recipe_options.h"
#include "server/requests.h"
#include "server/store_impl.h"

namespace calibd::server {

struct BuildRequest {
  std::string detector;
  std::string kind;
  combine::CombineOptions combine;
  RecipeOverrides preprocess;
  SelectionSpec selection;
  store::Configuration configuration;  // empty = from the first input's header
  std::map<std::string, std::string> attributes;
  std::optional<store::TimeMicros> certify_begin;
  std::optional<store::TimeMicros> certify_end;
  bool certify_replace = false;
  std::string actor;
  std::map<std::string, std::string> options_text;  // the request as sent (provenance)
};

// The options a build actually ran with, for its stored provenance: every combine option with
// its effective value (defaults included, e.g. the 3σ clipping that runs unless switched off),
// the pre-processing overrides and the request as sent (`request.*`).
std::map<std::string, std::string> EffectiveBuildOptions(const BuildRequest& request,
                                                         const combine::CombineOptions& combine);

struct BuildResult {
  store::MasterVersion version;
  int inputs = 0;
  double rejected_fraction = 0;
  double noise = 0;
  double combine_seconds = 0;
  std::optional<store::Certification> certification;
  std::vector<std::string> input_sha256;
};

class BuildSession {
 public:
  BuildSession(const Backend* backend, const CalibrateImpl* calibrate, BuildRequest request);
  ~BuildSession();  // removes the spool directory
  BuildSession(const BuildSession&) = delete;
  BuildSession& operator=(const BuildSession&) = delete;

  // Checks the detector and kind; creates the spool directory.
  absl::Status Begin();
  // Prepares a raw input (selection of its pre-processing masters); the caller then fills the
  // pixels of a RawImage of the request's shape and calls AddRaw.
  absl::Status PrepareRaw(FrameRequest request, PreparedFrame& prepared) const;
  absl::Status AddRaw(const PreparedFrame& prepared, RawImage pixels, std::string sha256);
  absl::Status AddStored(const SeriesKey& key, int64_t version);
  int num_inputs() const { return static_cast<int>(paths_.size()); }
  absl::StatusOr<BuildResult> Finish();

 private:
  const Backend* backend_;
  const CalibrateImpl* calibrate_;
  BuildRequest request_;
  std::string dir_;
  std::vector<std::string> paths_;
  std::vector<std::string> sha256_;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_BUILD_IMPL_H_
