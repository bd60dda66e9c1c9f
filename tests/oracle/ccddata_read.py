#!/usr/bin/python3
"""Checks that astropy's CCDData.read loads a calibrated frame written by calibd unchanged.

Usage: ccddata_read.py PATH WIDTH HEIGHT UNIT

tests/fits/astropy_test.cc writes PATH with these closed-form planes (x the column, y the row):
  data     = 0.5*x - 0.25*y + 100
  variance = (1 + 0.5*x + y)**2          (so UNCERT = 1 + 0.5*x + y exactly)
  dq       = 8 where (x + 2*y) % 5 == 0, else 0 (so MASK = dq != 0)
and header cards EXPTIME = 30.0, OBSERVER = "O'Brien". Exit 0 if CCDData.read agrees, else 1.
"""
import sys
import warnings

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty


def main():
    path, width, height, unit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    warnings.simplefilter("ignore")
    ccd = CCDData.read(path, unit=unit)
    y, x = np.mgrid[0:height, 0:width]
    data = (0.5 * x - 0.25 * y + 100).astype(np.float32)
    sigma = (1 + 0.5 * x + y).astype(np.float32)
    mask = (x + 2 * y) % 5 == 0
    problems = []
    if ccd.data.shape != (height, width):
        problems.append("shape %s" % (ccd.data.shape,))
    elif ccd.data.dtype.kind != "f" or ccd.data.dtype.itemsize != 4:
        problems.append("data dtype %s" % ccd.data.dtype)
    elif not np.array_equal(ccd.data, data):
        problems.append("data differ")
    if ccd.unit != u.Unit(unit):
        problems.append("unit %s" % ccd.unit)
    if not isinstance(ccd.uncertainty, StdDevUncertainty):
        problems.append("uncertainty type %r" % type(ccd.uncertainty))
    elif not np.array_equal(ccd.uncertainty.array, sigma):
        problems.append("uncertainty differs")
    if ccd.mask is None or not np.array_equal(ccd.mask, mask):
        problems.append("mask differs")
    if ccd.header.get("EXPTIME") != 30.0:
        problems.append("EXPTIME %r" % ccd.header.get("EXPTIME"))
    if ccd.header.get("OBSERVER") != "O'Brien":
        problems.append("OBSERVER %r" % ccd.header.get("OBSERVER"))
    if ccd.header.get("BUNIT") != unit:
        problems.append("BUNIT %r" % ccd.header.get("BUNIT"))
    if problems:
        print("CCDData.read disagrees: " + "; ".join(problems))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
