// Internal to core/store: what a master's content must be for PutMaster to accept it (the one
// validator; the rule is documented in store.h), and its pixel digest ("identical content").
//
//   ASSIGN_OR_RETURN(CalibratedFrame f, internal::ReadMasterFile(path, pool));
//   ASSIGN_OR_RETURN(std::pair<int, int> bin, internal::MasterBinning(configuration));
//   RETURN_IF_ERROR(internal::CheckMasterContent(spec, "flat", f, bin));
//   std::string content = internal::PixelDigest(f);
//
// Thread safety: pure functions (ReadMasterFile reads the file).
#ifndef CALIBD_CORE_STORE_MASTER_CONTENT_H_
#define CALIBD_CORE_STORE_MASTER_CONTENT_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/image/buffer_pool.h"
#include "core/image/frame.h"
#include "core/store/detector.h"

namespace calibd::store::internal {

// Reads a master FITS file with CHECKSUM/DATASUM verification. INVALID_ARGUMENT when it is not
// a calibrated FITS image, DATA_LOSS when a checksum does not match, NOT_FOUND when the file is
// missing. Messages never name the path (it goes to the detail payload). A noise product
// (core/noise/noise_product.h: an empty primary HDU with a PRODUCT card) gets the primary
// header's cards added to the frame's header (its table and summary cards live there).
absl::StatusOr<CalibratedFrame> ReadMasterFile(const std::string& path, BufferPool* pool);

// The binning of a master's configuration: its "binning" value "NxM" (or "N"), 1..8 per axis;
// 1x1 when it has none. INVALID_ARGUMENT for a value that is not a binning.
absl::StatusOr<std::pair<int, int>> MasterBinning(const Configuration& configuration);

// By kind, INVALID_ARGUMENT naming the first offence:
// - every kind: a PRODUCT card (a noise product's file), when present, equal to the kind;
// - "gain_normalisation" (a table: one row per gain setting, in header cards): a 1×1 carrier
//   image and a table of NSETTING ≥ 2 rows n = 1..NSETTING with SETn a distinct non-empty
//   setting, RESPn > 0, RESPEn ≥ 0, RATIOn > 0, RATIOEn ≥ 0 (finite), NFRAMEn ≥ 1, and one
//   reference row whose RATIO is 1;
// - every other kind: shape (the detector's raw or trimmed shape divided by the binning; planes
//   of the data's shape) and values (data and variance finite wherever DQ is 0).
absl::Status CheckMasterContent(const DetectorSpec& spec, absl::string_view kind,
                                const CalibratedFrame& f, std::pair<int, int> binning);

// sha256 of shape, unit, data, variance and dq: equal for equal pixels whatever the header
// cards (CHECKSUM's timestamped comment, …).
std::string PixelDigest(const CalibratedFrame& f);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_MASTER_CONTENT_H_
