#!/usr/bin/python3
"""astropy's view of a calibrated frame written directly against the same frame written through
CFITSIO (the reference): every checksum verifies, every HDU's data are equal (bit for bit, NaN
where NaN), the cards other than CHECKSUM/DATASUM agree, and CCDData.read loads the direct file.

Usage: fits_compare_astropy.py DIRECT REFERENCE UNIT [DIRECT REFERENCE UNIT ...]
Exit 0 and print "ok" if all holds for every triple, else print what differs and exit 1.
"""
import sys
import warnings

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty


def same_array(a, b):
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))
    return np.array_equal(a, b)


def cards(header):
    return [(c.keyword, c.value) for c in header.cards if c.keyword not in ("CHECKSUM", "DATASUM")]


def compare(direct, reference, unit):
    problems = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy warns on a checksum that does not verify
        with fits.open(direct, checksum=True) as d, fits.open(reference, checksum=True) as r:
            names = [h.name for h in d]
            if names != [h.name for h in r]:
                problems.append("HDUs %s vs %s" % (names, [h.name for h in r]))
            for hd, hr in zip(d, r):
                if hd.verify_checksum() != 1 or hd.verify_datasum() != 1:
                    problems.append("%s: checksum does not verify" % hd.name)
                if not same_array(hd.data, hr.data):
                    problems.append("%s: data differ" % hd.name)
                if cards(hd.header) != cards(hr.header):
                    problems.append("%s: cards differ: %s vs %s" % (hd.name, cards(hd.header), cards(hr.header)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ccd = CCDData.read(direct, unit=unit)
    with fits.open(reference) as r:
        if not same_array(ccd.data, r[0].data):
            problems.append("CCDData data differ")
        if "UNCERT" in r:
            if not isinstance(ccd.uncertainty, StdDevUncertainty) or not same_array(
                    ccd.uncertainty.array, r["UNCERT"].data):
                problems.append("CCDData uncertainty differs")
        if "DQ" in r:
            if ccd.mask is None or not np.array_equal(ccd.mask, r["DQ"].data != 0):
                problems.append("CCDData mask differs")
    return ["%s: %s" % (direct, p) for p in problems]


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        print(__doc__)
        return 2
    problems = []
    for i in range(0, len(args), 3):
        problems += compare(*args[i:i + 3])
    if problems:
        print("; ".join(problems))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
