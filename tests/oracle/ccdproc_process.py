#!/usr/bin/python3
"""Oracle for calibd's Recipe: runs astropy ccdproc 2.4's ccd_process on raw binary inputs.

Usage: /usr/bin/python3 tests/oracle/ccdproc_process.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR holds (all little-endian, row-major, C order, shape height x width):
  params.json       {"raw_width", "raw_height", "width", "height", "raw_dtype": "uint16"|...,
                     "oscan": "[x1:x2,y1:y2]" or null, "oscan_median": bool,
                     "poly_order": int or null, "trim": "[...]" or null,
                     "oscan_axis": 1 (one value per row, ccd_process's) or 0 (per column),
                     "gain", "readnoise", "exptime", "dark_exptime", "electrons": bool,
                     "bias": bool, "dark": bool, "flat": bool, "bpm": bool,
                     "bias_var"/"dark_var"/"flat_var": bool, "bias_dq"/"dark_dq"/"flat_dq": bool}
  raw.bin           the raw frame (raw_dtype)
  bias.f32 dark.f32 flat.f32             master data (float32, trimmed shape)
  bias_var.f32 ...                       master variance (float32) -> StdDevUncertainty(sqrt)
  bias_dq.u16 ...                        master DQ (uint16) -> CCDData mask (dq != 0)
  bpm.u8                                 bad-pixel mask (nonzero = bad)
Writes into CASE_DIR: out_data.f64, out_unc.f64 (standard deviation), out_mask.u8.

Semantics: ccd_process(oscan=<BIASSEC>, oscan_median, oscan_model=Polynomial1D(n), trim,
error=True, gain, readnoise, master_bias, dark_frame with dark_scale=True and both exposures,
master_flat, bad_pixel_mask, gain_corrected=False) — i.e. the masters are in ADU and the gain is
applied at the end. Two documented deviations, both chosen by calibd:
  * create_deviation is called with disregard_nan=True (negative signal counts as 0 instead of
    giving a NaN uncertainty); ccd_process itself does not expose the flag, so it is patched
    in here.
  * for output in ADU (electrons=false) the gain_correct step at the end is skipped: the same
    steps of ccd_process are called one by one in its order.
  * ccd_process always measures the overscan per row (overscan_axis=1); for oscan_axis=0 the
    steps are called one by one too, with subtract_overscan(..., overscan_axis=0).
"""
import functools
import json
import os
import sys
import warnings

import numpy as np
from astropy import units as u
from astropy.modeling import models
from astropy.nddata import CCDData, StdDevUncertainty

import ccdproc
import ccdproc.core as ccdcore

warnings.simplefilter("ignore")

_original_create_deviation = ccdcore.create_deviation
ccdcore.create_deviation = functools.partial(_original_create_deviation, disregard_nan=True)


def load(path, dtype, shape):
    return np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def master(case, name, p, shape):
    if not p.get(name):
        return None
    data = load(os.path.join(case, name + ".f32"), "f4", shape).astype(np.float64)
    uncertainty = None
    mask = None
    if p.get(name + "_var"):
        var = load(os.path.join(case, name + "_var.f32"), "f4", shape).astype(np.float64)
        uncertainty = StdDevUncertainty(np.sqrt(var))
    if p.get(name + "_dq"):
        mask = load(os.path.join(case, name + "_dq.u16"), "u2", shape) != 0
    return CCDData(data, unit=u.adu, uncertainty=uncertainty, mask=mask)


def run_case(case):
    with open(os.path.join(case, "params.json")) as f:
        p = json.load(f)
    raw_shape = (p["raw_height"], p["raw_width"])
    shape = (p["height"], p["width"])
    raw = load(os.path.join(case, "raw.bin"), p["raw_dtype"], raw_shape)
    ccd = CCDData(raw, unit=u.adu)
    bias = master(case, "bias", p, shape)
    dark = master(case, "dark", p, shape)
    flat = master(case, "flat", p, shape)
    bpm = None
    if p.get("bpm"):
        bpm = load(os.path.join(case, "bpm.u8"), "u1", shape) != 0
    model = None
    if p.get("poly_order") is not None:
        model = models.Polynomial1D(p["poly_order"])
    gain = p["gain"] * u.electron / u.adu
    readnoise = p["readnoise"] * u.electron
    dark_kwargs = {}
    if dark is not None:
        dark_kwargs = dict(dark_exposure=p["dark_exptime"] * u.s,
                           data_exposure=p["exptime"] * u.s, dark_scale=True)
    axis = p.get("oscan_axis", 1)
    if p["electrons"] and axis == 1:
        out = ccdproc.ccd_process(
            ccd, oscan=p.get("oscan"), trim=p.get("trim"), error=True, gain=gain,
            readnoise=readnoise, oscan_median=p["oscan_median"], oscan_model=model,
            master_bias=bias, dark_frame=dark, master_flat=flat, bad_pixel_mask=bpm,
            gain_corrected=False, **dark_kwargs)
    else:
        # ccd_process's steps in its order, one by one.
        out = ccd.copy()
        if p.get("oscan"):
            out = ccdproc.subtract_overscan(out, fits_section=p["oscan"], overscan_axis=axis,
                                            median=p["oscan_median"], model=model)
        if p.get("trim"):
            out = ccdproc.trim_image(out, fits_section=p["trim"])
        out = ccdcore.create_deviation(out, gain=gain, readnoise=readnoise)
        if bpm is not None:
            out.mask = bpm
        if bias is not None:
            out = ccdproc.subtract_bias(out, bias)
        if dark is not None:
            out = ccdproc.subtract_dark(out, dark, scale=True,
                                        dark_exposure=dark_kwargs["dark_exposure"],
                                        data_exposure=dark_kwargs["data_exposure"])
        if flat is not None:
            out = ccdproc.flat_correct(out, flat)
        if p["electrons"]:
            out = ccdproc.gain_correct(out, gain)
    expected_unit = u.electron if p["electrons"] else u.adu
    assert out.unit == expected_unit, (out.unit, expected_unit)
    np.asarray(out.data, dtype="<f8").tofile(os.path.join(case, "out_data.f64"))
    np.asarray(out.uncertainty.array, dtype="<f8").tofile(os.path.join(case, "out_unc.f64"))
    mask = out.mask if out.mask is not None else np.zeros(out.shape, dtype=bool)
    np.asarray(mask, dtype="u1").tofile(os.path.join(case, "out_mask.u8"))


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    for case in argv[1:]:
        run_case(case)
    print("ok", len(argv) - 1, "cases")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
