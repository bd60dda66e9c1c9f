// NoiseProduct and its multi-HDU FITS form (noise_product.h), through core/fits's FitsFile and
// header card I/O.
#include "core/noise/noise_product.h"

#include <fitsio.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/fits/fits_file.h"
#include "core/fits/header_io.h"
#include "core/status/macros.h"

namespace calibd::noise {

NoiseProduct NoiseProduct::Create(absl::string_view kind, int width, int height) {
  NoiseProduct p;
  p.kind = std::string(kind);
  p.width = width;
  p.height = height;
  p.dq = Image<uint16_t>::Filled(width, height, 0);
  p.header.Set("PRODUCT", std::string(kind), "calibd noise product kind");
  return p;
}

Image<float>& NoiseProduct::AddMap(absl::string_view name, absl::string_view unit) {
  maps.push_back(
      NoiseMap{std::string(name), std::string(unit), Image<float>::Filled(width, height, 0.0f)});
  return maps.back().data;
}

Image<float>& NoiseProduct::AddMap(absl::string_view name, absl::string_view unit,
                                   Image<float> data) {
  maps.push_back(NoiseMap{std::string(name), std::string(unit), std::move(data)});
  return maps.back().data;
}

const NoiseMap* NoiseProduct::FindMap(absl::string_view name) const {
  for (const NoiseMap& m : maps) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const Image<float>* NoiseProduct::Find(absl::string_view name) const {
  const NoiseMap* m = FindMap(name);
  return m == nullptr ? nullptr : &m->data;
}

Image<float>* NoiseProduct::FindMutable(absl::string_view name) {
  for (NoiseMap& m : maps) {
    if (m.name == name) return &m.data;
  }
  return nullptr;
}

namespace {

using fits::FitsFile;

absl::Status WriteString(const FitsFile& file, const char* key, const std::string& value,
                         const char* comment) {
  int status = 0;
  fits_update_key_str(file.get(), key, value.c_str(), comment, &status);
  return file.Check(status, absl::StrCat("writing ", key), absl::StatusCode::kInternal);
}

absl::Status CreateImage(const FitsFile& file, int bitpix, int w, int h) {
  int status = 0;
  long naxes[2] = {w, h};
  fits_create_img(file.get(), bitpix, 2, naxes, &status);
  return file.Check(status, "creating an image HDU", absl::StatusCode::kInternal);
}

absl::Status WritePixelsAndSum(const FitsFile& file, int datatype, int64_t n, const void* pixels) {
  int status = 0;
  fits_write_img(file.get(), datatype, 1, n, const_cast<void*>(pixels), &status);
  fits_write_chksum(file.get(), &status);
  return file.Check(status, "writing pixels", absl::StatusCode::kInternal);
}

absl::Status WriteBody(const FitsFile& file, const NoiseProduct& p) {
  int status = 0;
  fits_create_img(file.get(), BYTE_IMG, 0, nullptr, &status);
  CALIBD_RETURN_IF_ERROR(
      file.Check(status, "creating the primary HDU", absl::StatusCode::kInternal));
  Header header = p.header;
  header.Set("PRODUCT", p.kind, "calibd noise product kind");
  header.Set("NMAPS", static_cast<int64_t>(p.maps.size()), "image HDUs after this one (+ DQ)");
  for (size_t i = 0; i < p.maps.size(); ++i) {
    header.Set(absl::StrCat("MAP", i + 1), p.maps[i].name, "EXTNAME of a map");
  }
  CALIBD_RETURN_IF_ERROR(fits::WriteHeaderCards(file, header));
  fits_write_chksum(file.get(), &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "writing checksums", absl::StatusCode::kInternal));
  const int64_t n = int64_t{p.width} * p.height;
  for (const NoiseMap& m : p.maps) {
    CALIBD_RETURN_IF_ERROR(CreateImage(file, FLOAT_IMG, p.width, p.height));
    CALIBD_RETURN_IF_ERROR(WriteString(file, "EXTNAME", m.name, "map name"));
    CALIBD_RETURN_IF_ERROR(WriteString(file, "BUNIT", m.unit, "physical unit of the map"));
    CALIBD_RETURN_IF_ERROR(WritePixelsAndSum(file, TFLOAT, n, m.data.data()));
  }
  CALIBD_RETURN_IF_ERROR(CreateImage(file, USHORT_IMG, p.width, p.height));
  CALIBD_RETURN_IF_ERROR(WriteString(file, "EXTNAME", "DQ", "data-quality bits"));
  return WritePixelsAndSum(file, TUSHORT, n, p.dq.data());
}

}  // namespace

absl::Status WriteNoiseProduct(const std::string& path, const NoiseProduct& product,
                               bool overwrite) {
  if (product.width <= 0 || product.height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the product has no pixels"));
  }
  if (product.kind.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the product has no kind"));
  }
  std::set<std::string> names = {"DQ"};
  for (const NoiseMap& m : product.maps) {
    if (m.name.empty() || !names.insert(m.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("cannot write '", path, "': map name '",
                                                     m.name, "' is empty, DQ or a duplicate"));
    }
    if (m.data.width() != product.width || m.data.height() != product.height) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot write '", path, "': map ", m.name, " is ", m.data.width(), "x",
                       m.data.height(), ", the product ", product.width, "x", product.height));
    }
  }
  if (product.dq.width() != product.width || product.dq.height() != product.height) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the DQ plane has another shape"));
  }
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::Create(path, overwrite));
  absl::Status status = WriteBody(file, product);
  if (status.ok()) status = file.Close();
  if (!status.ok()) file.CloseAndDelete();
  return status;
}

absl::StatusOr<NoiseProduct> ReadNoiseProduct(const std::string& path) {
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::OpenForRead(path));
  int status = 0;
  int num_hdus = 0;
  fits_get_num_hdus(file.get(), &num_hdus, &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "counting HDUs"));
  NoiseProduct p;
  CALIBD_ASSIGN_OR_RETURN(p.header, fits::ReadHeaderCards(file, /*compressed=*/false));
  absl::StatusOr<std::string> kind = p.header.GetString("PRODUCT");
  if (!kind.ok()) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      "no PRODUCT card in the primary header: not a calibd noise product");
  }
  p.kind = *kind;
  p.header.Erase("NMAPS");
  for (int i = 1; i < num_hdus + 1; ++i) p.header.Erase(absl::StrCat("MAP", i));
  for (int hdu = 2; hdu <= num_hdus; ++hdu) {
    int type = 0;
    fits_movabs_hdu(file.get(), hdu, &type, &status);
    CALIBD_RETURN_IF_ERROR(file.Check(status, "moving to the next HDU"));
    if (type != IMAGE_HDU) continue;
    int naxis = 0;
    long naxes[2] = {0, 0};
    fits_get_img_dim(file.get(), &naxis, &status);
    if (status == 0 && naxis == 2) fits_get_img_size(file.get(), 2, naxes, &status);
    CALIBD_RETURN_IF_ERROR(file.Check(status, "reading the image size"));
    if (naxis != 2) {
      return file.Error(absl::StatusCode::kInvalidArgument, "a map is not a 2-D image");
    }
    if (p.width == 0) {
      if (naxes[0] <= 0 || naxes[1] <= 0 || naxes[0] * naxes[1] > (int64_t{1} << 28)) {
        return file.Error(absl::StatusCode::kInvalidArgument, "a map of an unusable size");
      }
      p.width = static_cast<int>(naxes[0]);
      p.height = static_cast<int>(naxes[1]);
    } else if (naxes[0] != p.width || naxes[1] != p.height) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("maps of different shapes (", naxes[0], "x", naxes[1], " and ",
                                     p.width, "x", p.height, ")"));
    }
    CALIBD_ASSIGN_OR_RETURN(Header h, fits::ReadHeaderCards(file, false));
    absl::StatusOr<std::string> name = h.GetString("EXTNAME");
    if (!name.ok()) return file.Error(absl::StatusCode::kInvalidArgument, "a map has no EXTNAME");
    const int64_t n = int64_t{p.width} * p.height;
    int anynul = 0;
    if (*name == "DQ") {
      p.dq = Image<uint16_t>::Allocate(p.width, p.height);
      fits_read_img(file.get(), TUSHORT, 1, n, nullptr, p.dq.data(), &anynul, &status);
    } else {
      absl::StatusOr<std::string> unit = h.GetString("BUNIT");
      NoiseMap m{*name, unit.ok() ? *unit : "", Image<float>::Allocate(p.width, p.height)};
      fits_read_img(file.get(), TFLOAT, 1, n, nullptr, m.data.data(), &anynul, &status);
      p.maps.push_back(std::move(m));
    }
    CALIBD_RETURN_IF_ERROR(file.Check(status, "reading pixels"));
  }
  if (p.width == 0) {
    return file.Error(absl::StatusCode::kInvalidArgument, "no maps and no DQ in the file");
  }
  if (p.dq.empty()) p.dq = Image<uint16_t>::Filled(p.width, p.height, 0);
  return p;
}

}  // namespace calibd::noise
