#!/usr/bin/python3
"""Writes FITS files with astropy (Debian astropy 5.2) for tests/fits/astropy_test.cc.

Usage: fits_write_astropy.py OUTDIR

Pixel values are closed-form functions of (x, y) that the C++ test recomputes; x is the column
(FITS axis 1), y the row. Files:
  ccddata.fits     CCDData, unit electron, StdDevUncertainty, boolean mask (MASK, no DQ)
  uint16.fits      uint16 primary image (BITPIX 16, BZERO 32768) with assorted header cards
  int8.fits        int8 image (BITPIX 8, BZERO -128)
  float64_ext.fits empty primary, float64 image extension named SCI, a table named TAB
  comp_<type>.fits int32 CompImageHDU with RICE_1, GZIP_1, GZIP_2, HCOMPRESS_1, PLIO_1
  comp_uint16.fits uint16 RICE_1; comp_float32.fits quantised float32 RICE_1
"""
import os
import sys
import warnings

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

W, H = 37, 23


def grid():
    y, x = np.mgrid[0:H, 0:W]
    return x, y


def main():
    out = sys.argv[1]
    warnings.simplefilter("ignore")
    x, y = grid()

    data = (0.5 * x - 0.25 * y + 100).astype(np.float32)
    sigma = (1 + 0.5 * x + y).astype(np.float32)
    mask = (x + 2 * y) % 5 == 0
    ccd = CCDData(data, unit="electron", uncertainty=StdDevUncertainty(sigma), mask=mask)
    ccd.header["EXPTIME"] = (30.0, "exposure [s]")
    ccd.header["IMAGETYP"] = "object"
    ccd.write(os.path.join(out, "ccddata.fits"), overwrite=True)

    u16 = ((x * 37 + y * 707) % 65536).astype(np.uint16)
    hdu = fits.PrimaryHDU(u16)
    hdu.header["OBSERVER"] = ("O'Brien", "has a quote")
    hdu.header["LONGSTR"] = "word " * 40 + "end"
    hdu.header["HIERARCH ESO DET CHIP NAME"] = "chip 7"
    hdu.header["FLAG"] = True
    hdu.header["COUNT"] = -12
    hdu.header["THIRD"] = 1.0 / 3.0
    # append() keeps this order (add_history would group the HISTORY cards together).
    hdu.header.append(("HISTORY", "first history"))
    hdu.header.append(("COMMENT", "a comment"))
    hdu.header.append(("HISTORY", "second history"))
    hdu.writeto(os.path.join(out, "uint16.fits"), overwrite=True)

    i8 = ((x * 3 + y * 11) % 256 - 128).astype(np.int8)
    fits.PrimaryHDU(i8).writeto(os.path.join(out, "int8.fits"), overwrite=True)

    f64 = (x * 0.001 + y * 1e6 + 1.0 / 3.0).astype(np.float64)
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="a", format="J", array=np.arange(3, dtype=np.int32))], name="TAB")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(f64, name="SCI"), table]).writeto(
        os.path.join(out, "float64_ext.fits"), overwrite=True)

    i32 = (x * 1000 + y * 3).astype(np.int32)
    for ctype in ("RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1"):
        comp = fits.CompImageHDU(i32, compression_type=ctype, name="COMPRESSED_IMAGE")
        comp.header["FILTER"] = "r"
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(
            os.path.join(out, "comp_%s.fits" % ctype), overwrite=True)
    # Quantised (lossy) Rice of float32 data, astropy's default for floats.
    f32 = (0.5 * x - 0.25 * y + 100 + 0.01 * ((x * 7 + y * 3) % 11)).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(f32, compression_type="RICE_1")]).writeto(
        os.path.join(out, "comp_float32.fits"), overwrite=True)
    comp16 = fits.CompImageHDU(u16, compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), comp16]).writeto(
        os.path.join(out, "comp_uint16.fits"), overwrite=True)


if __name__ == "__main__":
    main()
