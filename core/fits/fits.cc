#include "core/fits/fits.h"

#include <fitsio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/fits/fits_file.h"
#include "core/fits/header_io.h"
#include "core/fits/rice_check.h"
#include "core/image/dq.h"
#include "core/status/macros.h"

namespace calibd::fits {
namespace {

constexpr int kMaxAxes = 8;
constexpr int kBandRows = 64;  // rows per band when converting planes on write/read

// What we know about the image in the current HDU after validating it.
struct ImageInfo {
  int width = 0;
  int height = 0;
  int naxis = 0;
  int bitpix = 0;
  PixelType type = PixelType::kFloat32;  // the type ReadRawFrame gives
  bool compressed = false;
  // Uncompressed HDUs: where the pixels start, and what CFITSIO would apply to them.
  int64_t datastart = 0;
  double bscale = 1.0;
  double bzero = 0.0;
  bool has_blank = false;
};

int CfitsioDatatype(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return TBYTE;
    case PixelType::kInt16: return TSHORT;
    case PixelType::kUint16: return TUSHORT;
    case PixelType::kInt32: return TINT;
    case PixelType::kUint32: return TUINT;
    case PixelType::kInt64: return TLONGLONG;
    case PixelType::kFloat32: return TFLOAT;
    case PixelType::kFloat64: return TDOUBLE;
  }
  return TFLOAT;
}

int CfitsioImageType(PixelType type) {
  switch (type) {
    case PixelType::kUint8: return BYTE_IMG;
    case PixelType::kInt16: return SHORT_IMG;
    case PixelType::kUint16: return USHORT_IMG;
    case PixelType::kInt32: return LONG_IMG;
    case PixelType::kUint32: return ULONG_IMG;
    case PixelType::kInt64: return LONGLONG_IMG;
    case PixelType::kFloat32: return FLOAT_IMG;
    case PixelType::kFloat64: return DOUBLE_IMG;
  }
  return FLOAT_IMG;
}

// Reads an integer keyword of the current HDU; `fallback` if absent.
absl::StatusOr<int64_t> ReadIntKey(const FitsFile& file, const char* key, int64_t fallback) {
  int status = 0;
  LONGLONG value = 0;
  fits_read_key(file.get(), TLONGLONG, key, &value, nullptr, &status);
  if (status == KEY_NO_EXIST) {
    fits_clear_errmsg();
    return fallback;
  }
  if (status != 0) return file.Check(status, absl::StrCat("reading keyword ", key));
  return static_cast<int64_t>(value);
}

// What every per-codec tile check below walks: the tile table of a compressed image HDU.
struct TileTable {
  const FitsFile& file;
  const ImageInfo& info;
  const LONGLONG* naxes;
  const std::vector<int64_t>& tiles;
  int64_t nrows;
};

// The ZCMPTYPE of the current HDU.
absl::StatusOr<std::string> CompressionType(const FitsFile& file) {
  int status = 0;
  char ctype[FLEN_VALUE] = {0};
  fits_read_key(file.get(), TSTRING, "ZCMPTYPE", ctype, nullptr, &status);
  if (status != 0) return file.Check(status, "reading ZCMPTYPE");
  return std::string(ctype);
}

// The number of column `name`, or 0 when the table has no such column.
absl::StatusOr<int> FindColumn(const FitsFile& file, const char* name) {
  int status = 0, col = 0;
  fits_get_colnum(file.get(), CASEINSEN, const_cast<char*>(name), &col, &status);
  if (status == COL_NOT_FOUND) {
    fits_clear_errmsg();
    return 0;
  }
  if (status != 0) return file.Check(status, absl::StrCat("finding column ", name));
  return col;
}

// Calls fn(row, length, pixels) for every non-empty tile of column `col`: `length` is the
// tile's element count in the column, `pixels` the image pixels it covers (tiles at the far
// edges are cut by the image). An empty tile is stored in another column.
absl::Status ForEachTile(
    const TileTable& t, int col,
    absl::FunctionRef<absl::Status(int64_t row, LONGLONG length, int64_t pixels)> fn) {
  std::vector<int64_t> ntiles(t.info.naxis);
  for (int i = 0; i < t.info.naxis; ++i) ntiles[i] = (t.naxes[i] + t.tiles[i] - 1) / t.tiles[i];
  for (int64_t row = 1; row <= t.nrows; ++row) {
    int status = 0;
    LONGLONG length = 0, offset = 0;
    fits_read_descriptll(t.file.get(), col, row, &length, &offset, &status);
    if (status != 0) return t.file.Check(status, absl::StrCat("reading tile ", row));
    if (length == 0) continue;
    int64_t rest = row - 1, pixels = 1;
    for (int i = 0; i < t.info.naxis; ++i) {
      const int64_t index = rest % ntiles[i];
      rest /= ntiles[i];
      pixels *= std::min<int64_t>(t.tiles[i], t.naxes[i] - index * t.tiles[i]);
    }
    CALIBD_RETURN_IF_ERROR(fn(row, length, pixels));
  }
  return absl::OkStatus();
}

// Reads the first `n` elements of tile `row` of column `col` as `datatype` into `out`.
absl::Status ReadTile(const FitsFile& file, int col, int64_t row, int datatype, LONGLONG n,
                      void* out) {
  int status = 0, anynul = 0;
  fits_read_col(file.get(), datatype, col, row, 1, n, nullptr, out, &anynul, &status);
  if (status != 0) return file.Check(status, absl::StrCat("reading tile ", row));
  return absl::OkStatus();
}

absl::Status CorruptTile(const FitsFile& file, absl::string_view codec, int64_t row,
                         absl::string_view what) {
  return file.Error(absl::StatusCode::kInvalidArgument,
                    absl::StrCat(codec, " tile ", row, " ", what, " (corrupt compressed image)"));
}

// Every GZIP tile (GZIP_1/GZIP_2 images, and the GZIP_COMPRESSED_DATA fallback column of
// other codecs) must inflate completely into at most 8 bytes per tile pixel. CFITSIO 4.2
// inflates tiles into a buffer it keeps doubling while zlib asks for room, so a corrupt
// stream can make it allocate without bound; zlib itself is safe to run on any bytes.
absl::Status CheckGzipTiles(const TileTable& t, const std::string& ctype) {
  const bool gzip_image = ctype == "GZIP_1" || ctype == "GZIP_2";
  std::vector<uint8_t> bytes, out;
  for (const char* name : {"COMPRESSED_DATA", "GZIP_COMPRESSED_DATA"}) {
    if (std::strcmp(name, "COMPRESSED_DATA") == 0 && !gzip_image) continue;
    CALIBD_ASSIGN_OR_RETURN(int col, FindColumn(t.file, name));
    if (col == 0) continue;
    CALIBD_RETURN_IF_ERROR(ForEachTile(t, col, [&](int64_t row, LONGLONG length,
                                                   int64_t pixels) -> absl::Status {
      bytes.resize(static_cast<size_t>(length));
      CALIBD_RETURN_IF_ERROR(ReadTile(t.file, col, row, TBYTE, length, bytes.data()));
      out.resize(static_cast<size_t>(pixels * 8 + 1));
      z_stream z{};
      if (inflateInit2(&z, 15 + 32) != Z_OK) {  // gzip or zlib header
        return t.file.Error(absl::StatusCode::kInvalidArgument, "zlib could not start");
      }
      z.next_in = bytes.data();
      z.avail_in = static_cast<uInt>(bytes.size());
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      const int rc = inflate(&z, Z_FINISH);
      inflateEnd(&z);
      if (rc != Z_STREAM_END) {
        return CorruptTile(t.file, "GZIP-compressed", row, "does not inflate to the tile's size");
      }
      return absl::OkStatus();
    }));
  }
  return absl::OkStatus();
}

// For HCOMPRESS_1 images: every tile's stream must start with the HCOMPRESS magic and
// declare exactly the tile's size. CFITSIO 4.2's fits_hdecompress trusts the stream's own
// nx, ny and clears nx*ny ints of a tile-sized buffer: a heap overflow on corrupt input
// (found by fuzzing under AddressSanitizer).
absl::Status CheckHcompressTiles(const TileTable& t, int col) {
  // magic (2 bytes), nx, ny, scale (4 each), sum (8), bit planes (3): 25 bytes of header.
  constexpr int kHeaderBytes = 25;
  return ForEachTile(t, col, [&](int64_t row, LONGLONG length, int64_t pixels) -> absl::Status {
    uint8_t head[kHeaderBytes] = {0};
    bool ok = length >= kHeaderBytes;
    if (ok) {
      CALIBD_RETURN_IF_ERROR(ReadTile(t.file, col, row, TBYTE, kHeaderBytes, head));
      auto be32 = [&](int at) {
        return int64_t{int32_t(uint32_t(head[at]) << 24 | uint32_t(head[at + 1]) << 16 |
                               uint32_t(head[at + 2]) << 8 | uint32_t(head[at + 3]))};
      };
      const int64_t nx = be32(2), ny = be32(6);
      ok = head[0] == 0xDD && head[1] == 0x99 && nx >= 1 && ny >= 1 && nx * ny == pixels;
    }
    if (!ok) return CorruptTile(t.file, "HCOMPRESS", row, "does not declare the tile's size");
    return absl::OkStatus();
  });
}

// For PLIO_1 images: every tile's line list must lie inside its own words. CFITSIO 4.2's
// pl_l2pi takes the list length and first-instruction index from the list's header and
// reads wherever they point (found by fuzzing: a crash). Its writes stay within the tile.
absl::Status CheckPlioTiles(const TileTable& t, int col) {
  std::vector<int16_t> words;
  return ForEachTile(t, col, [&](int64_t row, LONGLONG length, int64_t) -> absl::Status {
    words.assign(static_cast<size_t>(length) + 1, 0);  // 1-based, as pl_l2pi indexes
    CALIBD_RETURN_IF_ERROR(ReadTile(t.file, col, row, TSHORT, length, words.data() + 1));
    const int64_t n = length;
    bool ok = n >= 5;
    int64_t lllen = 0, llfirt = 0;
    if (ok) {
      // Header (1-based words): [2] header length, [3] version (IRAF's current format is
      // -100, what CFITSIO and astropy write), [4], [5] list length. Version > 0 is IRAF's
      // old format, which nobody writes any more: refused rather than modelled.
      ok = words[3] <= 0;
      lllen = (int64_t{words[5]} << 15) + words[4];
      llfirt = int64_t{words[2]} + 1;
      ok = ok && lllen <= n && (lllen <= 0 || llfirt >= 1);
    }
    // Opcode 1 (set value) reads the word after it.
    for (int64_t ip = std::max<int64_t>(llfirt, 1); ok && ip <= lllen; ++ip) {
      if (words[ip] / 4096 == 1) {
        if (ip + 1 > n) ok = false;
        ++ip;
      }
    }
    if (!ok) return CorruptTile(t.file, "PLIO", row, "has a line list longer than its data");
    return absl::OkStatus();
  });
}

// For RICE_1 images: every tile's stream must decode inside its own bytes (see rice_check.h;
// CFITSIO's decoder would read past them). Reads the compressed bytes once more.
absl::Status CheckRiceTiles(const TileTable& t, int col) {
  // Parameters as CFITSIO reads them: ZNAMEi = 'BLOCKSIZE' / 'BYTEPIX' with ZVALi.
  int64_t blocksize = 32, bytepix = 4;
  for (int i = 1; i < 100; ++i) {
    int status = 0;
    char name[FLEN_VALUE] = {0};
    std::string key = absl::StrCat("ZNAME", i);
    fits_read_key(t.file.get(), TSTRING, key.c_str(), name, nullptr, &status);
    if (status == KEY_NO_EXIST) {
      fits_clear_errmsg();
      break;
    }
    if (status != 0) return t.file.Check(status, absl::StrCat("reading ", key));
    std::string val_key = absl::StrCat("ZVAL", i);
    if (std::strcmp(name, "BLOCKSIZE") == 0) {
      CALIBD_ASSIGN_OR_RETURN(blocksize, ReadIntKey(t.file, val_key.c_str(), 32));
    } else if (std::strcmp(name, "BYTEPIX") == 0) {
      CALIBD_ASSIGN_OR_RETURN(bytepix, ReadIntKey(t.file, val_key.c_str(), 4));
    }
  }
  if (t.info.bitpix < 0) bytepix = 4;  // quantised floating point: 32-bit integers
  if (blocksize < 1 || blocksize > (1 << 20) ||
      (bytepix != 1 && bytepix != 2 && bytepix != 4)) {
    return t.file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("Rice parameters BLOCKSIZE = ", blocksize, ", BYTEPIX = ",
                                     bytepix, " are not supported"));
  }
  std::vector<uint8_t> bytes;
  return ForEachTile(t, col, [&](int64_t row, LONGLONG length, int64_t pixels) -> absl::Status {
    bytes.resize(static_cast<size_t>(length));
    CALIBD_RETURN_IF_ERROR(ReadTile(t.file, col, row, TBYTE, length, bytes.data()));
    if (!RiceStreamIsSafe(bytes.data(), length, pixels, static_cast<int>(bytepix),
                          static_cast<int>(blocksize))) {
      return CorruptTile(t.file, "Rice-compressed", row, "ends before its pixels do");
    }
    return absl::OkStatus();
  });
}

// Runs the check of the image's codec on its COMPRESSED_DATA tiles, and the GZIP check on the
// GZIP_COMPRESSED_DATA fallback column every codec may use.
absl::Status CheckCompressedTiles(const TileTable& t) {
  CALIBD_ASSIGN_OR_RETURN(const std::string ctype, CompressionType(t.file));
  CALIBD_RETURN_IF_ERROR(CheckGzipTiles(t, ctype));
  const bool rice = ctype == "RICE_1" || ctype == "RICE_ONE";
  if (!rice && ctype != "HCOMPRESS_1" && ctype != "PLIO_1") return absl::OkStatus();
  CALIBD_ASSIGN_OR_RETURN(const int col, FindColumn(t.file, "COMPRESSED_DATA"));
  if (col == 0) {
    return t.file.Error(absl::StatusCode::kInvalidArgument,
                        "a compressed image without a COMPRESSED_DATA column");
  }
  if (rice) return CheckRiceTiles(t, col);
  if (ctype == "HCOMPRESS_1") return CheckHcompressTiles(t, col);
  return CheckPlioTiles(t, col);
}

// Checks a tile-compressed image's table: its declared size fits in the file, the tiles are
// sane, and every tile's compressed bytes lie inside the heap. Nothing is decompressed.
absl::Status CheckCompressedTable(const FitsFile& file, const ImageInfo& info,
                                  const LONGLONG* naxes, int64_t datastart,
                                  const ReadOptions& options) {
  fitsfile* f = file.get();
  CALIBD_ASSIGN_OR_RETURN(int64_t row_bytes, ReadIntKey(file, "NAXIS1", -1));
  CALIBD_ASSIGN_OR_RETURN(int64_t nrows, ReadIntKey(file, "NAXIS2", -1));
  CALIBD_ASSIGN_OR_RETURN(int64_t pcount, ReadIntKey(file, "PCOUNT", 0));
  constexpr int64_t kHuge = int64_t{1} << 40;
  if (row_bytes < 0 || nrows < 0 || pcount < 0 || row_bytes > kHuge || nrows > kHuge ||
      pcount > kHuge) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      "the compressed image's table declares an impossible size");
  }
  int64_t table_bytes = row_bytes * nrows;
  if (datastart + table_bytes + pcount > file.file_size()) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("the compressed image declares ", table_bytes + pcount,
                                   " bytes of table and heap but the file holds only ",
                                   file.file_size() - datastart,
                                   " after the header (truncated file)"));
  }
  CALIBD_ASSIGN_OR_RETURN(int64_t theap, ReadIntKey(file, "THEAP", table_bytes));
  if (theap < table_bytes || theap > table_bytes + pcount) {
    return file.Error(absl::StatusCode::kInvalidArgument, "THEAP points outside the data");
  }
  // Tiles: ZTILEn >= 1 and their number must be the table's row count. A tile may be larger
  // than the image (astropy writes such HCOMPRESS tiles), but CFITSIO allocates whole tiles,
  // so a tile may hold at most max(image pixels, 2^20) pixels, and never more than the limit.
  int64_t expected_rows = 1;
  int64_t tile_pixels = 1;
  std::vector<int64_t> tiles(info.naxis);
  const int64_t image_pixels = int64_t{info.width} * info.height;
  const int64_t max_tile_pixels =
      std::min(options.max_pixels, std::max<int64_t>(image_pixels, int64_t{1} << 20));
  for (int i = 0; i < info.naxis; ++i) {
    std::string key = absl::StrCat("ZTILE", i + 1);
    CALIBD_ASSIGN_OR_RETURN(int64_t tile, ReadIntKey(file, key.c_str(), i == 0 ? naxes[0] : 1));
    if (tile < 1 || tile > max_tile_pixels) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(key, " = ", tile, " is not a sensible tile size"));
    }
    tile_pixels *= tile;
    if (tile_pixels > max_tile_pixels) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("compression tiles of ", tile_pixels, " pixels (",
                                     key, " = ", tile, ") exceed the ", max_tile_pixels,
                                     " allowed for this image"));
    }
    expected_rows *= (naxes[i] + tile - 1) / tile;
    tiles[i] = tile;
  }
  if (expected_rows != nrows) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("the compressed image has ", nrows, " tiles but its size (",
                                   naxes[0], " x ", naxes[1], ") and tiling need ",
                                   expected_rows));
  }
  // Every variable-length column's descriptors must point inside the heap.
  int status = 0;
  int ncols = 0;
  fits_get_num_cols(f, &ncols, &status);
  if (status != 0) return file.Check(status, "reading the compressed table's columns");
  for (int col = 1; col <= ncols; ++col) {
    int typecode = 0;
    LONGLONG repeat = 0, width = 0;
    fits_get_coltypell(f, col, &typecode, &repeat, &width, &status);
    if (status != 0) return file.Check(status, absl::StrCat("reading column ", col));
    if (typecode >= 0) continue;
    int64_t elem = 1;
    switch (-typecode) {
      case TBIT: case TBYTE: case TLOGICAL: case TSTRING: case TSBYTE: elem = 1; break;
      case TSHORT: elem = 2; break;
      case TINT32BIT: case TFLOAT: elem = 4; break;
      case TLONGLONG: case TDOUBLE: case TCOMPLEX: elem = 8; break;
      case TDBLCOMPLEX: elem = 16; break;
      default: elem = 8; break;
    }
    for (int64_t row = 1; row <= nrows; ++row) {
      LONGLONG length = 0, offset = 0;
      fits_read_descriptll(f, col, row, &length, &offset, &status);
      if (status != 0) return file.Check(status, absl::StrCat("reading tile ", row));
      if (length < 0 || offset < 0 || length > pcount || offset > pcount ||
          (theap - table_bytes) + offset + length * elem > pcount) {
        return file.Error(absl::StatusCode::kInvalidArgument,
                          absl::StrCat("tile ", row, " of column ", col,
                                       " points outside the heap (corrupt compressed image)"));
      }
    }
  }
  return CheckCompressedTiles(TileTable{file, info, naxes, tiles, nrows});
}

// Validates the image in the current HDU before anything is allocated for it.
absl::StatusOr<ImageInfo> InspectImage(const FitsFile& file, const ReadOptions& options) {
  fitsfile* f = file.get();
  int status = 0;
  int hdutype = 0;
  fits_get_hdu_type(f, &hdutype, &status);
  if (status != 0) return file.Check(status, "reading the HDU type");
  if (hdutype != IMAGE_HDU) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      "is a table, not an image; choose an image HDU");
  }
  // (Every header's bytes were checked by FitsFile::OpenForRead before CFITSIO parsed any.)
  LONGLONG headstart = 0, datastart = 0, dataend = 0;
  fits_get_hduaddrll(f, &headstart, &datastart, &dataend, &status);
  if (status != 0) return file.Check(status, "locating the HDU");

  ImageInfo info;
  info.compressed = fits_is_compressed_image(f, &status) != 0;
  if (status != 0) return file.Check(status, "checking for tile compression");
  fits_get_img_dim(f, &info.naxis, &status);
  if (status != 0) return file.Check(status, "reading NAXIS");
  if (info.naxis < 2 || info.naxis > kMaxAxes) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("has NAXIS = ", info.naxis,
                                   "; calibd reads 2-D images (further axes of length 1 are "
                                   "allowed)"));
  }
  LONGLONG naxes[kMaxAxes] = {0};
  fits_get_img_sizell(f, info.naxis, naxes, &status);
  if (status != 0) return file.Check(status, "reading NAXISn");
  for (int i = 0; i < info.naxis; ++i) {
    if (naxes[i] <= 0 || (i >= 2 && naxes[i] != 1)) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("has NAXIS", i + 1, " = ", naxes[i],
                                     "; calibd reads 2-D images with positive sizes (axes "
                                     "beyond the second must be 1)"));
    }
  }
  if (naxes[0] > std::numeric_limits<int>::max() || naxes[1] > std::numeric_limits<int>::max() ||
      naxes[0] > options.max_pixels / naxes[1]) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("declares a ", naxes[0], " x ", naxes[1],
                                   " image, more than the limit of ", options.max_pixels,
                                   " pixels (ReadOptions.max_pixels)"));
  }
  info.width = static_cast<int>(naxes[0]);
  info.height = static_cast<int>(naxes[1]);
  int64_t pixels = int64_t{info.width} * info.height;

  fits_get_img_type(f, &info.bitpix, &status);
  int equiv = 0;
  fits_get_img_equivtype(f, &equiv, &status);
  if (status != 0) return file.Check(status, "reading BITPIX");
  switch (info.bitpix) {
    case BYTE_IMG:
      info.type = equiv == BYTE_IMG ? PixelType::kUint8 : PixelType::kFloat32;
      break;
    case SHORT_IMG:
      info.type = equiv == SHORT_IMG    ? PixelType::kInt16
                  : equiv == USHORT_IMG ? PixelType::kUint16
                                        : PixelType::kFloat32;
      break;
    case LONG_IMG:
      info.type = equiv == LONG_IMG    ? PixelType::kInt32
                  : equiv == ULONG_IMG ? PixelType::kUint32
                                       : PixelType::kFloat64;
      break;
    case LONGLONG_IMG:
      info.type = equiv == LONGLONG_IMG ? PixelType::kInt64 : PixelType::kFloat64;
      break;
    case FLOAT_IMG:
      info.type = PixelType::kFloat32;
      break;
    case DOUBLE_IMG:
      info.type = PixelType::kFloat64;
      break;
    default:
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("has BITPIX = ", info.bitpix, ", not a FITS pixel type"));
  }

  if (info.compressed) {
    CALIBD_RETURN_IF_ERROR(CheckCompressedTable(file, info, naxes, datastart, options));
  } else {
    info.datastart = datastart;
    for (auto [key, value] : {std::pair{"BSCALE", &info.bscale}, std::pair{"BZERO", &info.bzero}}) {
      fits_read_key(f, TDOUBLE, key, value, nullptr, &status);
      if (status == KEY_NO_EXIST) {
        fits_clear_errmsg();
        status = 0;
      }
      if (status != 0) return file.Check(status, absl::StrCat("reading ", key));
    }
    char blank[FLEN_VALUE] = {0};
    fits_read_keyword(f, "BLANK", blank, nullptr, &status);
    info.has_blank = status == 0;
    if (status == KEY_NO_EXIST) {
      fits_clear_errmsg();
      status = 0;
    }
    if (status != 0) return file.Check(status, "reading BLANK");
    int64_t bytes = pixels * (std::abs(info.bitpix) / 8);
    if (datastart + bytes > file.file_size()) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("declares ", bytes, " bytes of pixels (", info.width, " x ",
                                     info.height, ", BITPIX ", info.bitpix,
                                     ") but the file holds only ",
                                     std::max<int64_t>(0, file.file_size() - datastart),
                                     " after the header (truncated file)"));
    }
  }
  if (options.verify_checksum) {
    int dataok = 0, hduok = 0;
    fits_verify_chksum(f, &dataok, &hduok, &status);
    if (status != 0) return file.Check(status, "verifying CHECKSUM/DATASUM");
    if (dataok < 0 || hduok < 0) {
      return file.Error(absl::StatusCode::kDataLoss,
                        absl::StrCat(dataok < 0 ? "DATASUM" : "CHECKSUM",
                                     " does not match the contents: the file is corrupt"));
    }
  }
  return info;
}

bool HasImage(fitsfile* f) {
  int status = 0;
  int hdutype = 0, naxis = 0;
  fits_get_hdu_type(f, &hdutype, &status);
  fits_get_img_dim(f, &naxis, &status);
  if (status != 0) {
    fits_clear_errmsg();
    return false;
  }
  return hdutype == IMAGE_HDU && naxis > 0;
}

// Moves to the HDU `options` names (see ReadOptions).
absl::Status SelectHdu(const FitsFile& file, const ReadOptions& options) {
  fitsfile* f = file.get();
  int status = 0;
  if (!options.hdu_name.empty()) {
    fits_movnam_hdu(f, ANY_HDU, const_cast<char*>(options.hdu_name.c_str()), 0, &status);
    if (status == BAD_HDU_NUM) {
      fits_clear_errmsg();
      return absl::NotFoundError(absl::StrCat("'", file.path(), "' has no HDU named '",
                                              options.hdu_name, "'"));
    }
    return file.Check(status, absl::StrCat("moving to HDU '", options.hdu_name, "'"));
  }
  if (options.hdu_index >= 0) {
    int hdutype = 0;
    fits_movabs_hdu(f, options.hdu_index + 1, &hdutype, &status);
    if (status == END_OF_FILE || status == BAD_HDU_NUM) {
      fits_clear_errmsg();
      return absl::NotFoundError(absl::StrCat("'", file.path(), "' has no HDU ",
                                              options.hdu_index, " (HDUs count from 0)"));
    }
    return file.Check(status, absl::StrCat("moving to HDU ", options.hdu_index));
  }
  if (HasImage(f)) return absl::OkStatus();
  for (;;) {
    int hdutype = 0;
    fits_movrel_hdu(f, 1, &hdutype, &status);
    if (status == END_OF_FILE) {
      fits_clear_errmsg();
      return absl::InvalidArgumentError(
          absl::StrCat("'", file.path(), "' holds no image (neither the primary HDU nor an "
                       "image extension has pixels)"));
    }
    if (status != 0) return file.Check(status, "looking for an image HDU");
    if (HasImage(f)) return absl::OkStatus();
  }
}

absl::Status ReadPixels(const FitsFile& file, const ImageInfo& info, int datatype, int y0,
                        int rows, void* out, bool null_to_nan) {
  LONGLONG first[kMaxAxes];
  std::fill(first, first + kMaxAxes, 1);
  first[1] = y0 + 1;
  int status = 0;
  int anynul = 0;
  // Integer pixels equal to BLANK become NaN when asked. Floating-point pixels are copied as
  // they are: with a null value CFITSIO would turn every IEEE special (also ±Inf) into it.
  float fnan = std::numeric_limits<float>::quiet_NaN();
  double dnan = std::numeric_limits<double>::quiet_NaN();
  void* nulval = nullptr;
  if (null_to_nan && info.bitpix > 0 && datatype == TFLOAT) nulval = &fnan;
  if (null_to_nan && info.bitpix > 0 && datatype == TDOUBLE) nulval = &dnan;
  fits_read_pixll(file.get(), datatype, first, LONGLONG{info.width} * rows, nulval, out, &anynul,
                  &status);
  return file.Check(status, absl::StrCat("reading pixel rows ", y0, "..", y0 + rows - 1));
}

// ---- direct reads of uncompressed pixels ----
// CFITSIO copies pixels through its 2880-byte buffers; for uncompressed images (whose size
// InspectImage checked against the file) we pread the rows straight into place and swap the
// bytes in loops the compiler vectorises: several times faster for a 4k frame.

absl::Status PreadExactly(const FitsFile& file, void* out, int64_t bytes, int64_t offset) {
  char* p = static_cast<char*>(out);
  while (bytes > 0) {
    ssize_t n = ::pread(file.fd(), p, static_cast<size_t>(std::min<int64_t>(bytes, 1 << 30)),
                        offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return file.Error(absl::StatusCode::kInvalidArgument,
                        n < 0 ? absl::StrCat("reading pixels failed: ", std::strerror(errno))
                              : "the file ended inside the pixels (truncated while reading?)");
    }
    p += n;
    bytes -= n;
    offset += n;
  }
  return absl::OkStatus();
}

// Big-endian to host, in place; `flip` is XORed in afterwards (BZERO-unsigned integers).
template <typename U>
void SwapInPlace(U* p, int64_t n, U flip) {
  for (int64_t i = 0; i < n; ++i) {
    U v = p[i];
    if constexpr (sizeof(U) == 2) v = __builtin_bswap16(v);
    if constexpr (sizeof(U) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(U) == 8) v = __builtin_bswap64(v);
    p[i] = v ^ flip;
  }
}

bool CanReadDirect(const FitsFile& file, const ImageInfo& info) {
  return !info.compressed && file.fd() >= 0 && info.datastart > 0;
}

// ReadRawFrame's pixels, when they are the stored values or BZERO-unsigned ones.
bool RawIsDirect(const FitsFile& file, const ImageInfo& info) {
  if (!CanReadDirect(file, info) || info.bscale != 1.0) return false;
  switch (info.type) {
    case PixelType::kUint16: return info.bitpix == 16 && info.bzero == 32768.0;
    case PixelType::kUint32: return info.bitpix == 32 && info.bzero == 2147483648.0;
    case PixelType::kUint8: case PixelType::kInt16: case PixelType::kInt32:
    case PixelType::kInt64: case PixelType::kFloat32: case PixelType::kFloat64:
      return info.bzero == 0.0 && std::abs(info.bitpix) / 8 == int(PixelSize(info.type));
  }
  return false;
}

absl::Status ReadRawDirect(const FitsFile& file, const ImageInfo& info, RawImage* out) {
  const int64_t n = out->num_pixels();
  CALIBD_RETURN_IF_ERROR(
      PreadExactly(file, out->data(), static_cast<int64_t>(out->size_bytes()), info.datastart));
  switch (PixelSize(info.type)) {
    case 2:
      SwapInPlace(static_cast<uint16_t*>(out->data()), n,
                  uint16_t(info.type == PixelType::kUint16 ? 0x8000u : 0u));
      break;
    case 4:
      SwapInPlace(static_cast<uint32_t*>(out->data()), n,
                  uint32_t(info.type == PixelType::kUint32 ? 0x80000000u : 0u));
      break;
    case 8:
      SwapInPlace(static_cast<uint64_t*>(out->data()), n, uint64_t{0});
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

template <typename U, typename S>
void ConvertRows(U* raw, int64_t n, double bscale, double bzero, float* out) {
  SwapInPlace(raw, n, U{0});
  const S* v = reinterpret_cast<const S*>(raw);
  if (bscale == 1.0 && bzero == 0.0) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(v[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(double(v[i]) * bscale + bzero);
  }
}

// Rows [y0, y0 + rows) as float32 with BSCALE/BZERO applied, as CFITSIO's TFLOAT reads give
// them (integer BLANK → NaN; float NaN/Inf kept). Direct when the HDU allows, else CFITSIO.
absl::Status ReadRowsAsFloat(const FitsFile& file, const ImageInfo& info, int y0, int rows,
                             float* out, std::vector<uint8_t>* scratch) {
  if (!CanReadDirect(file, info) || (info.bitpix > 0 && info.has_blank)) {
    return ReadPixels(file, info, TFLOAT, y0, rows, out, /*null_to_nan=*/true);
  }
  const int bytes_per_pixel = std::abs(info.bitpix) / 8;
  const int64_t n = int64_t{info.width} * rows;
  const int64_t offset = info.datastart + int64_t{y0} * info.width * bytes_per_pixel;
  if (info.bitpix == FLOAT_IMG) {
    // Straight into the output, then swapped there: no scratch.
    CALIBD_RETURN_IF_ERROR(PreadExactly(file, out, n * 4, offset));
    uint32_t* raw = reinterpret_cast<uint32_t*>(out);
    SwapInPlace(raw, n, uint32_t{0});
    if (info.bscale != 1.0 || info.bzero != 0.0) {
      for (int64_t i = 0; i < n; ++i) out[i] = float(double(out[i]) * info.bscale + info.bzero);
    }
    return absl::OkStatus();
  }
  scratch->resize(static_cast<size_t>(n * bytes_per_pixel));
  CALIBD_RETURN_IF_ERROR(PreadExactly(file, scratch->data(), n * bytes_per_pixel, offset));
  void* raw = scratch->data();
  switch (info.bitpix) {
    case BYTE_IMG: ConvertRows<uint8_t, uint8_t>(static_cast<uint8_t*>(raw), n, info.bscale, info.bzero, out); break;
    case SHORT_IMG: ConvertRows<uint16_t, int16_t>(static_cast<uint16_t*>(raw), n, info.bscale, info.bzero, out); break;
    case LONG_IMG: ConvertRows<uint32_t, int32_t>(static_cast<uint32_t*>(raw), n, info.bscale, info.bzero, out); break;
    case LONGLONG_IMG: ConvertRows<uint64_t, int64_t>(static_cast<uint64_t*>(raw), n, info.bscale, info.bzero, out); break;
    case DOUBLE_IMG: ConvertRows<uint64_t, double>(static_cast<uint64_t*>(raw), n, info.bscale, info.bzero, out); break;
    default:
      return ReadPixels(file, info, TFLOAT, y0, rows, out, /*null_to_nan=*/true);
  }
  return absl::OkStatus();
}

// A whole plane as float32, band by band (the scratch stays one band long).
absl::Status ReadPlaneAsFloat(const FitsFile& file, const ImageInfo& info, Image<float>* out,
                              std::vector<uint8_t>* scratch) {
  constexpr int kRows = 256;
  for (int y0 = 0; y0 < info.height; y0 += kRows) {
    int rows = std::min(kRows, info.height - y0);
    CALIBD_RETURN_IF_ERROR(ReadRowsAsFloat(file, info, y0, rows, out->row(y0), scratch));
  }
  return absl::OkStatus();
}

struct OpenHdu {
  FitsFile file;
  ImageInfo info;
};

absl::StatusOr<OpenHdu> OpenImage(const std::string& path, const ReadOptions& options) {
  OpenHdu hdu;
  CALIBD_ASSIGN_OR_RETURN(hdu.file, FitsFile::OpenForRead(path));
  CALIBD_RETURN_IF_ERROR(SelectHdu(hdu.file, options));
  CALIBD_ASSIGN_OR_RETURN(hdu.info, InspectImage(hdu.file, options));
  return hdu;
}

// Moves to the extension named `name` if there is one. false if absent.
absl::StatusOr<bool> MoveToOptional(const FitsFile& file, const char* name) {
  int status = 0;
  fits_movnam_hdu(file.get(), ANY_HDU, const_cast<char*>(name), 0, &status);
  if (status == BAD_HDU_NUM) {
    fits_clear_errmsg();
    return false;
  }
  CALIBD_RETURN_IF_ERROR(file.Check(status, absl::StrCat("looking for extension ", name)));
  return true;
}

absl::Status CheckSameShape(const FitsFile& file, const ImageInfo& info, int width, int height) {
  if (info.width != width || info.height != height) {
    return file.Error(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("is ", info.width, " x ", info.height,
                                   " but the data are ", width, " x ", height));
  }
  return absl::OkStatus();
}

// ---- writing ----

absl::Status CreateImageHdu(const FitsFile& file, PixelType type, int width, int height) {
  int status = 0;
  long naxes[2] = {width, height};
  fits_create_img(file.get(), CfitsioImageType(type), 2, naxes, &status);
  CALIBD_RETURN_IF_ERROR(file.Check(status, "creating an image HDU"));
  // CFITSIO puts two COMMENT cards citing the FITS paper into every primary header; they are
  // not part of the frame's header, so they go (the file stays valid FITS without them).
  int hdu = 0;
  fits_get_hdu_num(file.get(), &hdu);
  if (hdu == 1) {
    for (const char* prefix : {"FITS (Flexible Image Transport System) format is",
                               "and Astrophysics', volume 376, page 359"}) {
      int nkeys = 0;
      fits_get_hdrspace(file.get(), &nkeys, nullptr, &status);
      for (int i = 1; i <= nkeys && status == 0; ++i) {
        char card[FLEN_CARD] = {0};
        fits_read_record(file.get(), i, card, &status);
        if (status == 0 && std::strncmp(card, "COMMENT   ", 10) == 0 &&
            std::strncmp(card + 10, prefix, std::strlen(prefix)) == 0) {
          fits_delete_record(file.get(), i, &status);
          break;
        }
      }
    }
    CALIBD_RETURN_IF_ERROR(file.Check(status, "tidying the primary header"));
  }
  return absl::OkStatus();
}

absl::Status WriteKeyString(const FitsFile& file, const char* key, const std::string& value,
                            const char* comment) {
  int status = 0;
  fits_update_key(file.get(), TSTRING, key, const_cast<char*>(value.c_str()), comment, &status);
  return file.Check(status, absl::StrCat("writing ", key));
}

absl::Status WritePixels(const FitsFile& file, PixelType type, int y0, int rows, int width,
                         const void* data) {
  if (rows <= 0) return absl::OkStatus();
  LONGLONG first[2] = {1, y0 + 1};
  int status = 0;
  fits_write_pixll(file.get(), CfitsioDatatype(type), first, LONGLONG{width} * rows,
                   const_cast<void*>(data), &status);
  return file.Check(status, absl::StrCat("writing pixel rows ", y0, "..", y0 + rows - 1));
}

absl::Status WriteChecksum(const FitsFile& file) {
  int status = 0;
  fits_write_chksum(file.get(), &status);
  return file.Check(status, "writing CHECKSUM/DATASUM");
}

absl::Status WriteCalibratedBody(const FitsFile& file, const CalibratedFrame& frame,
                                 const WriteOptions& options) {
  const int w = frame.width(), h = frame.height();
  CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kFloat32, w, h));
  CALIBD_RETURN_IF_ERROR(WriteHeaderCards(file, frame.header, {"BUNIT"}));
  CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "BUNIT", frame.unit, "physical unit of the data"));
  CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kFloat32, 0, h, w, frame.data.data()));
  if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));

  if (frame.has_variance() && options.write_uncertainty) {
    CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kFloat32, w, h));
    CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "EXTNAME", "UNCERT", "uncertainty of the data"));
    CALIBD_RETURN_IF_ERROR(
        WriteKeyString(file, "UTYPE", "StdDevUncertainty", "standard deviation = sqrt(variance)"));
    std::vector<float> band(size_t(w) * std::min(h, kBandRows));
    for (int y0 = 0; y0 < h; y0 += kBandRows) {
      int rows = std::min(kBandRows, h - y0);
      for (int r = 0; r < rows; ++r) {
        const float* in = frame.variance.row(y0 + r);
        float* out = band.data() + size_t(r) * w;
        for (int x = 0; x < w; ++x) out[x] = std::sqrt(in[x]);
      }
      CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kFloat32, y0, rows, w, band.data()));
    }
    if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));
  }

  if (frame.has_dq() && options.write_mask) {
    CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kUint8, w, h));
    CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "EXTNAME", "MASK", "1 where DQ is not 0"));
    std::vector<uint8_t> band(size_t(w) * std::min(h, kBandRows));
    for (int y0 = 0; y0 < h; y0 += kBandRows) {
      int rows = std::min(kBandRows, h - y0);
      for (int r = 0; r < rows; ++r) {
        const uint16_t* in = frame.dq.row(y0 + r);
        uint8_t* out = band.data() + size_t(r) * w;
        for (int x = 0; x < w; ++x) out[x] = in[x] != 0;
      }
      CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kUint8, y0, rows, w, band.data()));
    }
    if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));

    CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, PixelType::kUint16, w, h));
    CALIBD_RETURN_IF_ERROR(WriteKeyString(file, "EXTNAME", "DQ", "data-quality bits"));
    CALIBD_RETURN_IF_ERROR(WritePixels(file, PixelType::kUint16, 0, h, w, frame.dq.data()));
    if (options.checksum) CALIBD_RETURN_IF_ERROR(WriteChecksum(file));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> CompressionType(const std::string& name) {
  if (name == "RICE_1") return RICE_1;
  if (name == "GZIP_1") return GZIP_1;
  if (name == "GZIP_2") return GZIP_2;
  if (name == "HCOMPRESS_1") return HCOMPRESS_1;
  if (name == "PLIO_1") return PLIO_1;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compression '", name,
                   "'; use \"\", RICE_1, GZIP_1, GZIP_2, HCOMPRESS_1 or PLIO_1"));
}

absl::Status WriteRawBody(const FitsFile& file, const RawFrame& frame, int compression) {
  const RawImage& px = frame.pixels;
  int status = 0;
  if (compression != 0) {
    fits_set_compression_type(file.get(), compression, &status);
    if (px.type() == PixelType::kFloat32 || px.type() == PixelType::kFloat64) {
      // No quantisation: floating-point pixels are compressed losslessly.
      fits_set_quantize_level(file.get(), 0.0f, &status);
    }
    CALIBD_RETURN_IF_ERROR(file.Check(status, "setting the compression"));
  }
  CALIBD_RETURN_IF_ERROR(CreateImageHdu(file, px.type(), px.width(), px.height()));
  CALIBD_RETURN_IF_ERROR(WriteHeaderCards(file, frame.header));
  CALIBD_RETURN_IF_ERROR(WritePixels(file, px.type(), 0, px.height(), px.width(), px.data()));
  return WriteChecksum(file);
}

class BandReaderImpl : public BandReader {
 public:
  BandReaderImpl(OpenHdu hdu, Header header) : hdu_(std::move(hdu)), header_(std::move(header)) {}

  int width() const override { return hdu_.info.width; }
  int height() const override { return hdu_.info.height; }
  PixelType stored_type() const override { return hdu_.info.type; }
  const Header& header() const override { return header_; }

  absl::Status ReadRows(int y0, int rows, float* out) override {
    if (y0 < 0 || rows < 0 || y0 > height() - rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("rows [", y0, ", ", int64_t{y0} + rows, ") are outside the image of ",
                       height(), " rows in '", hdu_.file.path(), "'"));
    }
    if (rows == 0) return absl::OkStatus();
    return ReadRowsAsFloat(hdu_.file, hdu_.info, y0, rows, out, &scratch_);
  }

 private:
  OpenHdu hdu_;
  Header header_;
  std::vector<uint8_t> scratch_;  // raw bytes of one band (direct reads of integer images)
};

}  // namespace

absl::StatusOr<RawFrame> ReadRawFrame(const std::string& path, const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage(path, options));
  RawFrame frame;
  CALIBD_ASSIGN_OR_RETURN(frame.header, ReadHeaderCards(hdu.file, hdu.info.compressed));
  frame.pixels = RawImage::Allocate(hdu.info.type, hdu.info.width, hdu.info.height, options.pool);
  if (RawIsDirect(hdu.file, hdu.info)) {
    CALIBD_RETURN_IF_ERROR(ReadRawDirect(hdu.file, hdu.info, &frame.pixels));
  } else {
    CALIBD_RETURN_IF_ERROR(ReadPixels(hdu.file, hdu.info, CfitsioDatatype(hdu.info.type), 0,
                                      hdu.info.height, frame.pixels.data(),
                                      /*null_to_nan=*/false));
  }
  return frame;
}

absl::StatusOr<Header> ReadHeader(const std::string& path, const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::OpenForRead(path));
  CALIBD_RETURN_IF_ERROR(SelectHdu(file, options));
  int status = 0;
  bool compressed = fits_is_compressed_image(file.get(), &status) != 0;
  if (status != 0) return file.Check(status, "checking for tile compression");
  if (options.verify_checksum) {
    int dataok = 0, hduok = 0;
    fits_verify_chksum(file.get(), &dataok, &hduok, &status);
    if (status != 0) return file.Check(status, "verifying CHECKSUM/DATASUM");
    if (dataok < 0 || hduok < 0) {
      return file.Error(absl::StatusCode::kDataLoss,
                        "CHECKSUM/DATASUM does not match the contents: the file is corrupt");
    }
  }
  return ReadHeaderCards(file, compressed);
}

absl::StatusOr<CalibratedFrame> ReadCalibratedFrame(const std::string& path,
                                                    const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage(path, options));
  CalibratedFrame frame;
  CALIBD_ASSIGN_OR_RETURN(frame.header, ReadHeaderCards(hdu.file, hdu.info.compressed));
  if (const HeaderCard* bunit = frame.header.Find("BUNIT"); bunit != nullptr) {
    if (const std::string* unit = std::get_if<std::string>(&bunit->value);
        unit != nullptr && !unit->empty()) {
      frame.unit = *unit;
    }
    frame.header.Erase("BUNIT");
  }
  const int w = hdu.info.width, h = hdu.info.height;
  frame.data = Image<float>::Allocate(w, h, options.pool);
  std::vector<uint8_t> scratch;
  CALIBD_RETURN_IF_ERROR(ReadPlaneAsFloat(hdu.file, hdu.info, &frame.data, &scratch));

  ReadOptions plane_options = options;
  plane_options.hdu_name.clear();
  plane_options.hdu_index = -1;

  CALIBD_ASSIGN_OR_RETURN(bool has_uncert, MoveToOptional(hdu.file, "UNCERT"));
  if (has_uncert) {
    CALIBD_ASSIGN_OR_RETURN(ImageInfo info, InspectImage(hdu.file, plane_options));
    CALIBD_RETURN_IF_ERROR(CheckSameShape(hdu.file, info, w, h));
    std::string utype = "StdDevUncertainty";
    {
      int status = 0;
      char value[FLEN_VALUE] = {0};
      fits_read_key(hdu.file.get(), TSTRING, "UTYPE", value, nullptr, &status);
      if (status == 0) {
        utype = value;
      } else if (status == KEY_NO_EXIST) {
        fits_clear_errmsg();
      } else {
        return hdu.file.Check(status, "reading UTYPE");
      }
    }
    enum { kStdDev, kVariance, kInverseVariance } kind;
    if (utype == "StdDevUncertainty") {
      kind = kStdDev;
    } else if (utype == "VarianceUncertainty") {
      kind = kVariance;
    } else if (utype == "InverseVariance") {
      kind = kInverseVariance;
    } else {
      return hdu.file.Error(absl::StatusCode::kInvalidArgument,
                            absl::StrCat("UTYPE = '", utype,
                                         "' is not StdDevUncertainty, VarianceUncertainty or "
                                         "InverseVariance"));
    }
    frame.variance = Image<float>::Allocate(w, h, options.pool);
    CALIBD_RETURN_IF_ERROR(ReadPlaneAsFloat(hdu.file, info, &frame.variance, &scratch));
    float* v = frame.variance.data();
    const int64_t n = frame.variance.num_pixels();
    if (kind == kStdDev) {
      for (int64_t i = 0; i < n; ++i) v[i] = v[i] * v[i];
    } else if (kind == kInverseVariance) {
      for (int64_t i = 0; i < n; ++i) v[i] = 1.0f / v[i];
    }
  }

  CALIBD_ASSIGN_OR_RETURN(bool has_dq, MoveToOptional(hdu.file, "DQ"));
  if (has_dq) {
    CALIBD_ASSIGN_OR_RETURN(ImageInfo info, InspectImage(hdu.file, plane_options));
    CALIBD_RETURN_IF_ERROR(CheckSameShape(hdu.file, info, w, h));
    frame.dq = Image<uint16_t>::Allocate(w, h, options.pool);
    CALIBD_RETURN_IF_ERROR(
        ReadPixels(hdu.file, info, TUSHORT, 0, h, frame.dq.data(), /*null_to_nan=*/false));
  } else {
    CALIBD_ASSIGN_OR_RETURN(bool has_mask, MoveToOptional(hdu.file, "MASK"));
    if (has_mask) {
      CALIBD_ASSIGN_OR_RETURN(ImageInfo info, InspectImage(hdu.file, plane_options));
      CALIBD_RETURN_IF_ERROR(CheckSameShape(hdu.file, info, w, h));
      frame.dq = Image<uint16_t>::Allocate(w, h, options.pool);
      std::vector<uint8_t> band(size_t(w) * std::min(h, kBandRows));
      for (int y0 = 0; y0 < h; y0 += kBandRows) {
        int rows = std::min(kBandRows, h - y0);
        CALIBD_RETURN_IF_ERROR(
            ReadPixels(hdu.file, info, TBYTE, y0, rows, band.data(), /*null_to_nan=*/false));
        for (int r = 0; r < rows; ++r) {
          uint16_t* out = frame.dq.row(y0 + r);
          const uint8_t* in = band.data() + size_t(r) * w;
          for (int x = 0; x < w; ++x) out[x] = in[x] != 0 ? kDqBad : 0;
        }
      }
    }
  }
  return frame;
}

absl::Status WriteCalibratedFrame(const std::string& path, const CalibratedFrame& frame,
                                  const WriteOptions& options) {
  const int w = frame.width(), h = frame.height();
  if (frame.data.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the frame has no data (0 x 0)"));
  }
  if (frame.has_variance() && (frame.variance.width() != w || frame.variance.height() != h)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot write '", path, "': variance is ", frame.variance.width(), " x ",
        frame.variance.height(), " but data are ", w, " x ", h));
  }
  if (frame.has_dq() && (frame.dq.width() != w || frame.dq.height() != h)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write '", path, "': dq is ",
                                                   frame.dq.width(), " x ", frame.dq.height(),
                                                   " but data are ", w, " x ", h));
  }
  if (frame.unit.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the frame has no unit (\"adu\" or \"electron\")"));
  }
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::Create(path, options.overwrite));
  absl::Status status = WriteCalibratedBody(file, frame, options);
  if (status.ok()) status = file.Close();
  if (!status.ok()) file.CloseAndDelete();
  return status;
}

absl::Status WriteRawFrame(const std::string& path, const RawFrame& frame,
                           const std::string& compression, bool overwrite) {
  if (frame.pixels.num_pixels() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write '", path, "': the frame has no pixels (0 x 0)"));
  }
  int ctype = 0;
  if (!compression.empty()) {
    CALIBD_ASSIGN_OR_RETURN(ctype, CompressionType(compression));
    const PixelType type = frame.pixels.type();
    if ((type == PixelType::kFloat32 || type == PixelType::kFloat64) && ctype != GZIP_1 &&
        ctype != GZIP_2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot write '", path, "' with ", compression, ": floating-point pixels are "
          "compressed losslessly only with GZIP_1 or GZIP_2; use one of those"));
    }
  }
  CALIBD_ASSIGN_OR_RETURN(FitsFile file, FitsFile::Create(path, overwrite));
  absl::Status status = WriteRawBody(file, frame, ctype);
  if (status.ok()) status = file.Close();
  if (!status.ok()) file.CloseAndDelete();
  return status;
}

absl::StatusOr<std::unique_ptr<BandReader>> BandReader::Open(const std::string& path,
                                                             const ReadOptions& options) {
  CALIBD_ASSIGN_OR_RETURN(OpenHdu hdu, OpenImage(path, options));
  CALIBD_ASSIGN_OR_RETURN(Header header, ReadHeaderCards(hdu.file, hdu.info.compressed));
  return std::unique_ptr<BandReader>(new BandReaderImpl(std::move(hdu), std::move(header)));
}

}  // namespace calibd::fits
