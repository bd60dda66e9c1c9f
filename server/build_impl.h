// BuildSession: the transport-free logic behind Builder.BuildMaster — one session per call.
// Raw inputs are pre-processed by the build's recipe (the same code path as Calibrate, with
// the defaults of the kind being built: biases overscan+trim, darks also bias-subtracted, flats
// also dark-subtracted) and kept in memory (pooled buffers) while the pre-processed stack fits
// two thirds of the build's memory budget (--combine-memory-bytes, which also bounds Combine;
// the last third is for Combine's band buffers of spooled inputs and the output planes); beyond it each further input is spooled to a temporary FITS file. A 20 × 2048² bias
// stack is ~500 MB pre-processed (data + DQ), a 200 × 4096² one ~19 GB (mostly spooled).
// Stored versions are used from their blobs. Finish() combines everything in row bands with
// bounded memory (combine::Combine over MemorySource / FitsSource; frames in memory are read
// in place) — or builds a noise product from the same inputs (server/noise_build.h) — stores
// the result as a new version with statistics and provenance, and certifies it when asked.
// Where an input lives never changes the result: a frame kept in memory holds exactly what
// the spool file would give back (UNCERT is sqrt(variance) on disk, so its variance is
// rounded through the float sigma the same way; BUNIT is in its header).
//
//   BuildSession session(&backend, &calibrate, std::move(options));
//   RETURN_IF_ERROR(session.Begin());
//   PreparedFrame prep;
//   RETURN_IF_ERROR(session.PrepareRaw(std::move(frame_request), prep));
//   RETURN_IF_ERROR(session.AddRaw(prep, std::move(pixels), sha256_of_pixel_bytes));
//   RETURN_IF_ERROR(session.AddStored({"lfc/chip0", "bias", {}}, 3));
//   ASSIGN_OR_RETURN(BuildResult result, session.Finish());
//
// Thread safety: a session is used by one thread at a time (the reactor serialises calls),
// except PrepareRaw, which is const and may run while another thread is in AddRaw.
#ifndef CALIBD_SERVER_BUILD_IMPL_H_
#define CALIBD_SERVER_BUILD_IMPL_H_

#include <atomic>
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

// One input of a build, in order: a pre-processed frame in memory, or a file (a spooled input
// beyond the memory budget, or a stored version's blob).
struct BuildInput {
  std::shared_ptr<const CalibratedFrame> frame;  // in memory, when set
  std::string path;                              // else this file
  std::string sha256;                            // of the raw bytes sent, or of the blob
};

// The inputs as frame sources, in order (MemorySource or FitsSource); with `cancelled`, each
// wrapped in combine::CancellableSource (for readers that are not Combine, which checks the
// flag itself).
absl::StatusOr<std::vector<std::unique_ptr<combine::FrameSource>>> OpenBuildInputs(
    const std::vector<BuildInput>& inputs, const std::atomic<bool>* cancelled = nullptr);

// What a frame kept in memory must hold to equal its spool file read back (see above).
void AsIfSpooled(CalibratedFrame& frame);

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
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  // Inputs held in memory and their bytes (the rest are files).
  int inputs_in_memory() const { return in_memory_; }
  int64_t memory_bytes() const { return memory_bytes_; }
  // The build's memory budget (--combine-memory-bytes), and the bytes of pre-processed inputs
  // the session keeps in memory before it spools to disk (2/3 of it).
  int64_t budget() const;
  int64_t memory_limit() const;
  // Combines and stores. `cancelled` (set by the reactor when the client goes away or the
  // deadline passes) stops the combine (or a noise product's reading of its inputs) between
  // row bands with CANCELLED, and nothing is stored.
  absl::StatusOr<BuildResult> Finish(const std::atomic<bool>* cancelled = nullptr);

 private:
  const Backend* backend_;
  const CalibrateImpl* calibrate_;
  BuildRequest request_;
  std::string dir_;
  std::vector<BuildInput> inputs_;
  int in_memory_ = 0;
  int64_t memory_bytes_ = 0;
  int spooled_ = 0;
};

}  // namespace calibd::server

#endif  // CALIBD_SERVER_BUILD_IMPL_H_
