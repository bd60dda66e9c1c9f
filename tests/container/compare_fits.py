"""Compares the calibrated frames of two directories plane by plane (astropy reads them).

    python3 compare_fits.py NATIVE_DIR CONTAINER_DIR

Every FITS file of NATIVE_DIR must exist in CONTAINER_DIR with the same image HDUs (by
name), shapes, dtypes and values: bit-identical, NaN where NaN (both binaries are the same
source built by the same Debian compiler with the same flags, so any difference is a defect
of the image, e.g. another library version). Headers are not compared: they carry the
masters' sha256, which include build times. Prints one JSON line; exit 0 when all agree.
"""
import json
import os
import sys

import numpy as np
from astropy.io import fits


def image_hdus(path):
    with fits.open(path, memmap=False) as hdul:
        out = {}
        for i, hdu in enumerate(hdul):
            if hdu.data is None or not hasattr(hdu.data, "shape") or hdu.is_image is False:
                continue
            out[hdu.name or str(i)] = np.array(hdu.data)
        return out


def main(a_dir, b_dir):
    names = sorted(n for n in os.listdir(a_dir) if n.endswith((".fits", ".fit", ".fz")))
    problems = []
    planes = 0
    pixels = 0
    for name in names:
        b_path = os.path.join(b_dir, name)
        if not os.path.exists(b_path):
            problems.append(f"{name}: missing from {b_dir}")
            continue
        a = image_hdus(os.path.join(a_dir, name))
        b = image_hdus(b_path)
        if sorted(a) != sorted(b):
            problems.append(f"{name}: HDUs {sorted(a)} != {sorted(b)}")
            continue
        for hdu, av in a.items():
            bv = b[hdu]
            if av.shape != bv.shape or av.dtype != bv.dtype:
                problems.append(f"{name}[{hdu}]: {av.shape} {av.dtype} != {bv.shape} {bv.dtype}")
                continue
            same = np.array_equal(av, bv, equal_nan=av.dtype.kind == "f")
            if not same:
                diff = np.nanmax(np.abs(av.astype(np.float64) - bv.astype(np.float64)))
                problems.append(f"{name}[{hdu}]: values differ (max |diff| {diff:g})")
            planes += 1
            pixels += av.size
    ok = bool(names) and not problems
    print(json.dumps({"frames": len(names), "planes": planes, "pixels": pixels,
                      "ok": ok, "problems": problems[:10]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
