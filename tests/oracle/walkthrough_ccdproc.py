#!/usr/bin/python3
"""Oracle for the end-to-end walkthrough: the same reduction as calibd, done by astropy ccdproc 2.4.

Usage: /usr/bin/python3 tests/oracle/walkthrough_ccdproc.py SAMPLES_DIR CALIBRATED_DIR [--rtol R] [--atol A]

SAMPLES_DIR is what `calibctl make-samples` wrote (SPEC.json, bias/, dark/, flat/, light/).
CALIBRATED_DIR holds calibd's outputs for light/*.fits under the same names (written by
`calibctl calibrate --unit electron`), read back with CCDData.read as a user would.

The reduction (what the walkthrough asks calibd to do):
  bias master  = median of the biases, each overscan-subtracted (per-row median over BIASSEC,
                 ccdproc subtract_overscan median=True, overscan_axis=1) and trimmed (TRIMSEC);
  dark master  = median of the darks, each overscan-subtracted, trimmed, bias-subtracted;
  flat master  = median of the flats, each overscan-subtracted, trimmed, bias-subtracted and
                 dark-subtracted scaled by exposure;
  lights       = ccd_process(oscan, trim, error=True, gain, readnoise, master_bias, dark_frame
                 (dark_scale=True, EXPTIME in s), master_flat, gain_corrected=False) -> electrons.
  No clipping in the combines (calibctl build --method median --no-clip), an odd number of
  frames, so the median is one of the inputs and both sides agree exactly before float32
  rounding. create_deviation is called with disregard_nan=True, as calibd does (negative signal
  counts as 0), see tests/oracle/ccdproc_process.py.

Compares each light's data plane with calibd's: |calibd - ccdproc| <= atol + rtol * |ccdproc|
(float32 precision of the intermediate values), and the uncertainty plane likewise when
calibd wrote one. Prints one JSON object per frame and a summary line; exit 0 when every
frame agrees, 1 otherwise, 2 on bad input.
"""
import argparse
import functools
import glob
import json
import os
import sys
import warnings

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData

import ccdproc
import ccdproc.core as ccdcore

warnings.simplefilter("ignore")

_original_create_deviation = ccdcore.create_deviation
ccdcore.create_deviation = functools.partial(_original_create_deviation, disregard_nan=True)


def read_raw(path):
    # Tile-compressed files keep their image in HDU 1.
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None)
        return CCDData(hdu.data.astype(np.float64), unit=u.adu, meta=hdu.header.copy())


def overscan_trim(ccd):
    ccd = ccdproc.subtract_overscan(ccd, fits_section=ccd.header["BIASSEC"], median=True,
                                    overscan_axis=1)
    return ccdproc.trim_image(ccd, fits_section=ccd.header["TRIMSEC"])


def median_combine(frames):
    return ccdproc.combine(frames, method="median", mem_limit=1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
    ap.add_argument("calibrated")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=2e-3)
    ap.add_argument("--unc-rtol", type=float, default=1e-4)
    args = ap.parse_args()

    with open(os.path.join(args.samples, "SPEC.json")) as f:
        spec = json.load(f)
    gain = spec["gain"] * u.electron / u.adu
    readnoise = spec["read_noise"] * u.electron

    def files(kind):
        out = sorted(glob.glob(os.path.join(args.samples, kind, "*.fits*")))
        if not out:
            print(f"no {kind} frames in {args.samples}", file=sys.stderr)
            sys.exit(2)
        return out

    bias = median_combine([overscan_trim(read_raw(p)) for p in files("bias")])
    dark_frames = []
    for p in files("dark"):
        dark_frames.append(ccdproc.subtract_bias(overscan_trim(read_raw(p)), bias))
    dark = median_combine(dark_frames)
    dark.header["EXPTIME"] = dark_frames[0].header["EXPTIME"]
    flat_frames = []
    for p in files("flat"):
        f = ccdproc.subtract_bias(overscan_trim(read_raw(p)), bias)
        f = ccdproc.subtract_dark(f, dark, exposure_time="EXPTIME", exposure_unit=u.s, scale=True)
        flat_frames.append(f)
    flat = median_combine(flat_frames)

    ok = True
    n = 0
    for p in files("light"):
        raw = read_raw(p)
        ref = ccdproc.ccd_process(raw, oscan=raw.header["BIASSEC"], oscan_median=True,
                                  trim=raw.header["TRIMSEC"], error=True, gain=gain,
                                  readnoise=readnoise, master_bias=bias, dark_frame=dark,
                                  master_flat=flat, exposure_key="EXPTIME", exposure_unit=u.s,
                                  dark_scale=True, gain_corrected=False)
        name = os.path.basename(p)
        for suffix in (".fz", ".gz"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        out_path = os.path.join(args.calibrated, name)
        result = {"frame": name}
        try:
            got = CCDData.read(out_path, unit="electron")
        except Exception as e:  # noqa: BLE001 - report any read failure as a mismatch
            result.update(ok=False, error=f"CCDData.read({out_path}) failed: {e}")
            print(json.dumps(result))
            ok = False
            continue
        if got.data.shape != ref.data.shape:
            result.update(ok=False, error=f"shape {got.data.shape} != ccdproc {ref.data.shape}")
            print(json.dumps(result))
            ok = False
            continue
        a = np.asarray(got.data, dtype=np.float64)
        b = np.asarray(ref.data, dtype=np.float64)
        diff = np.abs(a - b)
        tol = args.atol + args.rtol * np.abs(b)
        bad = int(np.count_nonzero(~(diff <= tol)))
        result.update(pixels=int(b.size), data_max_abs_diff=float(diff.max()),
                      data_max_rel_diff=float((diff / np.maximum(np.abs(b), 1.0)).max()),
                      data_bad=bad, ccdproc_median=float(np.median(b)),
                      calibd_median=float(np.median(a)))
        frame_ok = bad == 0
        if got.uncertainty is not None and ref.uncertainty is not None:
            ua = np.asarray(got.uncertainty.array, dtype=np.float64)
            ub = np.asarray(ref.uncertainty.array, dtype=np.float64)
            finite = np.isfinite(ub)
            udiff = np.abs(ua - ub)[finite]
            utol = args.atol + args.unc_rtol * np.abs(ub[finite])
            ubad = int(np.count_nonzero(~(udiff <= utol)))
            result.update(unc_max_rel_diff=float((udiff / np.maximum(np.abs(ub[finite]), 1e-6)).max()),
                          unc_bad=ubad)
            frame_ok = frame_ok and ubad == 0
        result["ok"] = frame_ok
        ok = ok and frame_ok
        n += 1
        print(json.dumps(result))
    print(json.dumps({"summary": True, "frames": n, "ok": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
