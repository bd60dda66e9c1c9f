// NoiseProduct: one detector-characterisation product in memory — named float maps (each with
// its BUNIT; a map "X" may have its standard error in "X_ERR"), one DQ plane and header cards —
// and its FITS form, which astropy reads with nothing but astropy.io.fits.
//
//   NoiseProduct p = NoiseProduct::Create("read_noise", width, height);
//   Image<float>& rn = p.AddMap("READ_NOISE", "electron");
//   Image<float>& err = p.AddMap("READ_NOISE_ERR", "electron");
//   p.header.Set("RDNOISE", 4.2, "median read noise [e-]");
//   RETURN_IF_ERROR(noise::WriteNoiseProduct("/data/rn.fits", p, /*overwrite=*/false));
//   ASSIGN_OR_RETURN(NoiseProduct back, noise::ReadNoiseProduct("/data/rn.fits"));
//   const Image<float>* m = back.Find("READ_NOISE");
//
// FITS layout:
//   HDU 0          no data; the product's header cards, PRODUCT = kind, NMAPS, MAPn = names
//   HDU 1..NMAPS   float32 image, EXTNAME = the map's name, BUNIT = its unit
//   DQ             uint16 data-quality bits (core/image/dq.h)
// every HDU with CHECKSUM/DATASUM. In Python:
//   with fits.open(path) as f: rn = f["READ_NOISE"].data; dq = f["DQ"].data
//
// Thread safety: a value type (move-only through its images); the functions are reentrant.
#ifndef CALIBD_CORE_NOISE_NOISE_PRODUCT_H_
#define CALIBD_CORE_NOISE_NOISE_PRODUCT_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/image/header.h"
#include "core/image/image.h"

namespace calibd::noise {

// Product kinds (also the PRODUCT header value and the store's kind names).
inline constexpr absl::string_view kKindReadNoise = "read_noise";
inline constexpr absl::string_view kKindGain = "gain";
inline constexpr absl::string_view kKindDarkCurrent = "dark_current";
inline constexpr absl::string_view kKindBadPixels = "bad_pixels";
inline constexpr absl::string_view kKindNoiseModel = "noise_model";
inline constexpr absl::string_view kKindGainNormalisation = "gain_normalisation";

struct NoiseMap {
  std::string name;  // EXTNAME: upper case, e.g. "DARK_CURRENT", "DARK_CURRENT_ERR"
  std::string unit;  // BUNIT: "electron", "electron/s", "electron/adu", "" (dimensionless)
  Image<float> data;
};

struct NoiseProduct {
  std::string kind;
  int width = 0;
  int height = 0;
  std::deque<NoiseMap> maps;  // a deque: AddMap keeps references to earlier maps valid
  Image<uint16_t> dq;         // width × height (Create fills it with 0)
  Header header;

  static NoiseProduct Create(absl::string_view kind, int width, int height);

  // Appends a map of the product's shape (filled with 0) and returns it; the reference stays
  // valid while the product lives (later AddMaps do not move it).
  Image<float>& AddMap(absl::string_view name, absl::string_view unit);
  // The same with a plane of the product's shape, moved in (no copy).
  Image<float>& AddMap(absl::string_view name, absl::string_view unit, Image<float> data);
  // The map with this name (exact), or nullptr.
  const Image<float>* Find(absl::string_view name) const;
  Image<float>* FindMutable(absl::string_view name);
  const NoiseMap* FindMap(absl::string_view name) const;
};

// Writes the layout above. ALREADY_EXISTS when the file exists and !overwrite;
// INVALID_ARGUMENT for a map of another shape than the product, an empty or duplicate name.
absl::Status WriteNoiseProduct(const std::string& path, const NoiseProduct& product,
                               bool overwrite = false);

// Reads a file written by WriteNoiseProduct (or any file with an empty primary HDU followed
// by named 2-D float images and an optional DQ). INVALID_ARGUMENT for images of different
// shapes, missing EXTNAMEs or no PRODUCT card; errors of the FITS layer as they are.
absl::StatusOr<NoiseProduct> ReadNoiseProduct(const std::string& path);

}  // namespace calibd::noise

#endif  // CALIBD_CORE_NOISE_NOISE_PRODUCT_H_
