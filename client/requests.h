// The flag → request mapping of calibctl: every subcommand's flags read into the proto request
// (or client-library options) it sends, with each flag's validation in one place. Pure: no
// connection, no files; a bad flag value is INVALID_ARGUMENT naming the flag (calibctl prints
// it as a usage error, exit 64). The shared flag specs live here too, next to their reading.
//
//   ASSIGN_OR_RETURN(ParsedArgs args, ParseFlags(tokens, {DetectorFlag(), KindFlag(), ...}));
//   ASSIGN_OR_RETURN(v1::CertifyRequest req, CertifyRequestFromFlags(args));
//   ASSIGN_OR_RETURN(v1::BuildOptions build, BuildOptionsFromFlags(args));
//   ASSIGN_OR_RETURN(PageRequest page, PageFromFlags(args));   // --limit, --page-token
//
// Thread safety: pure functions.
#ifndef CALIBD_CLIENT_REQUESTS_H_
#define CALIBD_CLIENT_REQUESTS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "calibd/v1/builder.pb.h"
#include "calibd/v1/noise.pb.h"
#include "calibd/v1/store.pb.h"
#include "calibd/v1/types.pb.h"
#include "client/args.h"
#include "client/client.h"
#include "client/noise_samples.h"
#include "client/samples.h"

namespace calibd::client {

// Flags that several commands share.
FlagSpec DetectorFlag();  // --detector/-d NAME
FlagSpec KindFlag();      // --kind/-k KIND
FlagSpec ConfigFlag();    // --config KEY=VALUE (repeated)
FlagSpec AttrFlag();      // --attr KEY=VALUE (repeated)
FlagSpec PolicyFlag();    // --policy strict|nearest
FlagSpec MaxAgeFlag();    // --max-age DAYS
FlagSpec PinFlag();       // --pin KIND=VERSION|KIND=SHA256 (repeated)
// --limit N, --page-token TOKEN of the list commands.
std::vector<FlagSpec> PageFlags();

// Every value of a repeated KEY=VALUE flag; a later key replaces an earlier one.
absl::StatusOr<std::map<std::string, std::string>> KeyValuesFromFlags(const ParsedArgs& args,
                                                                      const std::string& flag);
// The value of a required flag; INVALID_ARGUMENT "--flag is required" when absent or empty.
absl::StatusOr<std::string> RequiredFlag(const ParsedArgs& args, const std::string& flag);

// --policy (default strict), --max-age DAYS, --pin KIND=VERSION|KIND=SHA256.
absl::StatusOr<v1::SelectionOptions> SelectionFromFlags(const ParsedArgs& args);

// --detector, --kind, --attr, --config (put).
absl::StatusOr<PutMasterOptions> PutMasterOptionsFromFlags(const ParsedArgs& args);
// Exactly one of --version N (≥ 1) and --at TIME (get).
absl::StatusOr<VersionChoice> VersionChoiceFromFlags(const ParsedArgs& args);
// --detector --kind --version --begin [--end] [--config] [--replace] [--reason].
absl::StatusOr<v1::CertifyRequest> CertifyRequestFromFlags(const ParsedArgs& args);
// --detector --kind --version [--begin] [--end] [--config] [--reason].
absl::StatusOr<v1::DecertifyRequest> DecertifyRequestFromFlags(const ParsedArgs& args);
// --detector --kind, the combine flags (--method, --sigma-clip, --maxiters, --clip-center,
// --clip-spread, --no-clip, --clip-extrema, --min-value, --max-value, --scale), the selection
// flags, --attr, --config, --certify-from [--certify-until], --replace.
absl::StatusOr<v1::BuildOptions> BuildOptionsFromFlags(const ParsedArgs& args);
// The noise kinds' build flags (each applies to the kinds named in NoiseBuildFlags()'s help):
// --min-frames, --hot-sigma, --hot-min-rate, --dead-fraction, --box, --noisy-sigma,
// --amp-section (repeated), --level-sizes N,N,..., --saturation-fraction,
// --max-saturated-fraction, --nonlinearity-sigma, --prescan-section, --unweighted,
// --setting-key, --norm-section, --reference. A flag given for a kind it does not apply to is
// INVALID_ARGUMENT naming the kinds it does apply to. Called by BuildOptionsFromFlags.
absl::StatusOr<v1::NoiseBuildOptions> NoiseBuildOptionsFromFlags(const ParsedArgs& args,
                                                                 const std::string& kind);
std::vector<FlagSpec> NoiseBuildFlags();
// build --stored KIND=VERSION (repeated): stored versions of the build's detector used as
// inputs (e.g. --stored dark_current=1 --stored read_noise=2 for bad_pixels); the series with
// --config's configuration (empty = the only one).
absl::StatusOr<std::vector<v1::StoredFrameRef>> StoredInputsFromFlags(const ParsedArgs& args);
bool IsNoiseKind(const std::string& kind);
// synth-dark: --detector, --exptime T (> 0), --em-gain G (> 0, default 1), --temperature C,
// at most one of --version N / --at TIME, --config KEY=VALUE.
absl::StatusOr<v1::SynthesizeDarkRequest> SynthesizeDarkRequestFromFlags(const ParsedArgs& args);

// The noise side of a recipe (calibrate, select): --dark-policy
// measured|synthesized|measured_else_synthesized, --read-noise-map/--no-read-noise-map,
// --gain-product/--no-gain-product, --bad-pixels/--no-bad-pixels (absent = the server's
// default: use the product when one is selectable). Both forms of one switch is
// INVALID_ARGUMENT.
absl::Status NoiseRecipeFromFlags(const ParsedArgs& args, v1::RecipeOverrides* recipe);
std::vector<FlagSpec> NoiseRecipeFlags();

// --detector, the selection flags, --unit adu|electron, --planes data,variance,dq,
// --flat-norm, --skip STEP (repeated), the noise recipe flags above.
absl::StatusOr<CalibrateOptions> CalibrateOptionsFromFlags(const ParsedArgs& args);
// --small, --width, --height, --overscan, --frames, --lights, --detector, --seed, --night,
// --compress, --overwrite (make-samples).
absl::StatusOr<SampleOptions> SampleOptionsFromFlags(const ParsedArgs& args);

// make-samples --noise DIR: --size N (N×N illuminated pixels, default 64×48), --frames N (per
// exposure time / EM setting, default 4), --detector (default demo/emccd0), --seed, --night,
// --overwrite.
absl::StatusOr<NoiseSampleOptions> NoiseSampleOptionsFromFlags(const ParsedArgs& args);

// --limit N (≥ 1; absent = the server's default page size; the server may return fewer) and
// --page-token TOKEN, the next_page_token of the previous page (AIP-158).
absl::StatusOr<PageRequest> PageFromFlags(const ParsedArgs& args);

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_REQUESTS_H_
