#!/usr/bin/python3
"""Oracle for calibd's combine: runs astropy ccdproc 2.4's `combine` on a stack written by the test.

Usage: ccdproc_combine.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR holds
  params.json   {"n": N, "width": W, "height": H, "method": "average"|"median"|"sum",
                 "masks": bool, "weights": [..] | null, "scale": [..] | "inv_median" | null,
                 "clip_extrema": bool, "nlow": int, "nhigh": int,
                 "minmax_clip": bool, "min": float | null, "max": float | null,
                 "sigma_clip": bool, "low": float, "high": float,
                 "cenfunc": "mean"|"median", "devfunc": "std"|"mad_std"}
  frame_<i>.f32 raw little-endian float32, H rows of W values (row-major, row 0 first)
  mask_<i>.u8   (when "masks") 1 = masked
and gets
  out_data.f64, out_uncert.f64 (float64 little-endian), out_mask.u8 (1 = masked)
"""
import json
import os
import sys
import warnings

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData
import ccdproc


def run_case(case_dir):
    with open(os.path.join(case_dir, "params.json")) as f:
        p = json.load(f)
    n, w, h = p["n"], p["width"], p["height"]
    ccds = []
    for i in range(n):
        data = np.fromfile(os.path.join(case_dir, f"frame_{i}.f32"), dtype="<f4").reshape(h, w)
        mask = None
        if p.get("masks"):
            mask = np.fromfile(os.path.join(case_dir, f"mask_{i}.u8"), dtype="u1").reshape(h, w) != 0
        ccds.append(CCDData(data, unit=u.adu, mask=mask))

    kwargs = {"method": p["method"]}
    if p.get("weights") is not None:
        kwargs["weights"] = np.asarray(p["weights"], dtype=float)
    scale = p.get("scale")
    if scale == "inv_median":
        kwargs["scale"] = lambda a: 1.0 / np.median(a)
    elif scale == "inv_mean":
        kwargs["scale"] = lambda a: 1.0 / np.mean(a)
    elif scale is not None:
        kwargs["scale"] = np.asarray(scale, dtype=float)
    if p.get("clip_extrema"):
        kwargs.update(clip_extrema=True, nlow=p["nlow"], nhigh=p["nhigh"])
    if p.get("minmax_clip"):
        kwargs.update(minmax_clip=True, minmax_clip_min=p.get("min"), minmax_clip_max=p.get("max"))
    if p.get("sigma_clip"):
        cen = {"mean": np.ma.mean, "median": np.ma.median}[p["cenfunc"]]
        dev = {"std": np.ma.std, "mad_std": "mad_std"}[p["devfunc"]]
        kwargs.update(sigma_clip=True, sigma_clip_low_thresh=p["low"],
                      sigma_clip_high_thresh=p["high"], sigma_clip_func=cen,
                      sigma_clip_dev_func=dev)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ccdproc.combine(ccds, **kwargs)
    np.asarray(out.data, dtype="<f8").tofile(os.path.join(case_dir, "out_data.f64"))
    np.asarray(out.uncertainty.array, dtype="<f8").tofile(os.path.join(case_dir, "out_uncert.f64"))
    mask = out.mask if out.mask is not None else np.zeros((h, w), dtype=bool)
    np.asarray(mask, dtype="u1").tofile(os.path.join(case_dir, "out_mask.u8"))
    if scale in ("inv_median", "inv_mean"):
        f = np.median if scale == "inv_median" else np.mean
        factors = [1.0 / float(f(c.data)) for c in ccds]
        with open(os.path.join(case_dir, "out_scale.json"), "w") as fh:
            json.dump(factors, fh)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print("ccdproc", ccdproc.__version__)
    for case_dir in sys.argv[1:]:
        run_case(case_dir)
        print("done", case_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
