// Internal to core/store: what a master's content must be for PutMaster to accept it (the one
// validator; the rule is documented in store.h), and its pixel digest ("identical content").
//
//   ASSIGN_OR_RETURN(CalibratedFrame f, internal::ReadMasterFile(path, pool));
//   ASSIGN_OR_RETURN(std::pair<int, int> bin, internal::MasterBinning(configuration));
//   RETURN_IF_ERROR(internal::CheckMasterContent(spec, f, bin));
//   std::string content = internal::PixelDigest(f);
//
// Thread safety: pure functions (ReadMasterFile reads the file).
#ifndef CALIBD_CORE_STORE_MASTER_CONTENT_H_
#define CALIBD_CORE_STORE_MASTER_CONTENT_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/image/buffer_pool.h"
#include "core/image/frame.h"
#include "core/store/detector.h"

namespace calibd::store::internal {

// Reads a master FITS file with CHECKSUM/DATASUM verification. INVALID_ARGUMENT when it is not
// a calibrated FITS image, DATA_LOSS when a checksum does not match, NOT_FOUND when the file is
// missing. Messages never name the path (it goes to the detail payload).
absl::StatusOr<CalibratedFrame> ReadMasterFile(const std::string& path, BufferPool* pool);

// The binning of a master's configuration: its "binning" value "NxM" (or "N"), 1..8 per axis;
// 1x1 when it has none. INVALID_ARGUMENT for a value that is not a binning.
absl::StatusOr<std::pair<int, int>> MasterBinning(const Configuration& configuration);

// Shape (the detector's raw or trimmed shape divided by the binning; planes of the data's
// shape) and values (data and variance finite wherever DQ is 0) → INVALID_ARGUMENT naming the
// first offence.
absl::Status CheckMasterContent(const DetectorSpec& spec, const CalibratedFrame& f,
                                std::pair<int, int> binning);

// sha256 of shape, unit, data, variance and dq: equal for equal pixels whatever the header
// cards (CHECKSUM's timestamped comment, …).
std::string PixelDigest(const CalibratedFrame& f);

}  // namespace calibd::store::internal

#endif  // CALIBD_CORE_STORE_MASTER_CONTENT_H_
