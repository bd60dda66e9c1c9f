#!/usr/bin/python3
"""ccdproc 2.4 calibrating one frame from files: the reference point for calibd_load.

Writes a synthetic raw frame (uint16, overscan strip on the right) and bias/dark/flat masters
to a temporary directory, then times, per repetition, what a ccdproc user does for one frame:
read the raw FITS, ccd_process (per-row median overscan, trim, bias, exposure-scaled dark,
mean-normalised flat, gain, with a deviation plane), write the result FITS.

    /usr/bin/python3 bench/load/ccdproc_frame.py --size 4096 --repeat 3 --json out.json
"""
import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData
import ccdproc
from astropy import log as astropy_log
import logging

OVERSCAN = 32  # columns on the right, as calibd_load's detector


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    n = args.size
    data_w = n - OVERSCAN
    rng = np.random.default_rng(1)
    warnings.simplefilter("ignore")
    astropy_log.setLevel("ERROR")
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        raw = (1000 + rng.normal(0, 5, (n, n)) + np.pad(rng.uniform(100, 3000, (n, data_w)),
                                                          ((0, 0), (0, OVERSCAN)))).astype(np.uint16)
        raw_path = os.path.join(tmp, "raw.fits")
        CCDData(raw, unit="adu", meta={"EXPTIME": 30.0}).write(raw_path)
        bias = CCDData(rng.normal(0, 1, (n, data_w)).astype(np.float32), unit="adu")
        dark = CCDData(rng.uniform(0, 5, (n, data_w)).astype(np.float32), unit="adu",
                       meta={"EXPTIME": 60.0})
        flat = CCDData(rng.uniform(0.9, 1.1, (n, data_w)).astype(np.float32) * 20000, unit="adu")
        times = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            ccd = CCDData.read(raw_path, unit="adu")
            out = ccdproc.ccd_process(
                ccd, oscan=f"[{data_w + 1}:{n}, 1:{n}]", oscan_median=True,
                trim=f"[1:{data_w}, 1:{n}]", error=True, gain=1.5 * u.electron / u.adu,
                readnoise=5 * u.electron, master_bias=bias, dark_frame=dark,
                exposure_key="EXPTIME", exposure_unit=u.s, dark_scale=True, master_flat=flat,
                gain_corrected=False)
            out.write(os.path.join(tmp, f"out{i}.fits"), overwrite=True)
            times.append(time.perf_counter() - t0)
    result = {"size": n, "times_s": times, "median_s": statistics.median(times)}
    print(f"ccdproc: {n}x{n} read+process+write per frame: "
          + ", ".join(f"{t:.2f}" for t in times) + f" s (median {result['median_s']:.2f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
