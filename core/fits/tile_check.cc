#include "core/fits/tile_check.h"

#include <fitsio.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/fits/rice_check.h"
#include "core/status/macros.h"

namespace calibd::fits {

namespace {

// What every per-codec tile check below walks: the tile table of a compressed image HDU.
struct TileTable {
  const FitsFile& file;
  const ImageInfo& info;
  const LONGLONG* naxes;
  const std::vector<int64_t>& tiles;
  int64_t nrows;
};

}  // namespace

absl::StatusOr<std::string> ReadZcmptype(const FitsFile& file) {
  int status = 0;
  char ctype[FLEN_VALUE] = {0};
  fits_read_key(file.get(), TSTRING, "ZCMPTYPE", ctype, nullptr, &status);
  if (status != 0) return file.Check(status, "reading ZCMPTYPE");
  return std::string(ctype);
}

namespace {

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
  CALIBD_ASSIGN_OR_RETURN(const std::string ctype, ReadZcmptype(t.file));
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

}  // namespace

absl::Status CheckCompressedTable(const FitsFile& file, const ImageInfo& info,
                                  const LONGLONG* naxes, int64_t datastart, int64_t max_pixels) {
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
      std::min(max_pixels, std::max<int64_t>(image_pixels, int64_t{1} << 20));
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

}  // namespace calibd::fits
