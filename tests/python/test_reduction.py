"""A full reduction through the package — bias, dark and flat built with `Client.build`,
lights calibrated with `Client.calibrate` — against two oracles: astropy ccdproc's
`ccd_process` on the same raw files (to float32 precision, as tests/oracle/walkthrough_ccdproc.py
checks calibctl), and calibctl's output files for the same lights from the same server (exactly:
both clients receive the same bytes). `calibd.reduce` writes files that read back equal to
calibctl's.
"""
import importlib.util
import os
import subprocess

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty

import calibd
from conftest import CALIBCTL, DETECTOR, ROOT, kind_files

ORACLE = os.path.join(ROOT, "tests", "oracle", "walkthrough_ccdproc.py")


def load_oracle():
    """The walkthrough oracle's functions (it patches create_deviation to disregard_nan=True,
    as calibd computes the variance)."""
    spec = importlib.util.spec_from_file_location("walkthrough_ccdproc", ORACLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ccdproc_lights(samples):
    """ccdproc's reduction of the sample lights, in electrons, keyed by file name."""
    import json
    import ccdproc
    o = load_oracle()
    with open(os.path.join(samples, "SPEC.json")) as f:
        spec = json.load(f)
    gain = spec["gain"] * u.electron / u.adu
    readnoise = spec["read_noise"] * u.electron
    bias = o.median_combine([o.overscan_trim(o.read_raw(p)) for p in kind_files(samples, "bias")])
    darks = [ccdproc.subtract_bias(o.overscan_trim(o.read_raw(p)), bias)
             for p in kind_files(samples, "dark")]
    dark = o.median_combine(darks)
    dark.header["EXPTIME"] = darks[0].header["EXPTIME"]
    flats = []
    for p in kind_files(samples, "flat"):
        f = ccdproc.subtract_bias(o.overscan_trim(o.read_raw(p)), bias)
        flats.append(ccdproc.subtract_dark(f, dark, exposure_time="EXPTIME", exposure_unit=u.s,
                                           scale=True))
    flat = o.median_combine(flats)
    out = {}
    for p in kind_files(samples, "light"):
        raw = o.read_raw(p)
        out[os.path.basename(p)] = ccdproc.ccd_process(
            raw, oscan=raw.header["BIASSEC"], oscan_median=True, trim=raw.header["TRIMSEC"],
            error=True, gain=gain, readnoise=readnoise, master_bias=bias, dark_frame=dark,
            master_flat=flat, exposure_key="EXPTIME", exposure_unit=u.s, dark_scale=True,
            gain_corrected=False)
    return out


def assert_matches_ccdproc(got, ref):
    """|calibd - ccdproc| <= 2e-3 + 1e-5 |ccdproc| (float32 intermediates), uncertainty 1e-4."""
    a = np.asarray(got.data, dtype=np.float64)
    b = np.asarray(ref.data, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-3)
    ua = np.asarray(got.uncertainty.array, dtype=np.float64)
    ub = np.asarray(ref.uncertainty.array, dtype=np.float64)
    finite = np.isfinite(ub)
    np.testing.assert_allclose(ua[finite], ub[finite], rtol=1e-4, atol=2e-3)


def calibrate_lights(client, samples, **kw):
    return list(client.calibrate(kind_files(samples, "light"), detector=DETECTOR,
                                 unit="electron", **kw))


def test_masters_were_built_and_certified(reduced_server):
    for kind, b in reduced_server.builds.items():
        assert b.version.kind == kind and b.version.version == 1
        assert b.inputs == 5
        assert b.certification is not None and b.certification.end is None
        assert len(b.input_sha256) == 5


def test_reduction_matches_ccdproc(reduced_server, samples, ccdproc_lights):
    with calibd.Client(reduced_server.address) as c:
        results = calibrate_lights(c, samples)
    assert [r.frame_id for r in results] == sorted(ccdproc_lights)
    shas = {k: b.version.sha256 for k, b in reduced_server.builds.items()}
    for r in results:
        assert isinstance(r, calibd.CalibratedFrame), r
        assert isinstance(r, CCDData)
        assert r.unit == u.electron
        assert isinstance(r.uncertainty, StdDevUncertainty)
        assert r.dq.dtype == np.uint16 and r.dq.shape == (96, 128)
        np.testing.assert_array_equal(r.mask, r.dq != 0)
        assert r.mask.any()  # the saturated star
        assert {m.kind: m.sha256 for m in r.provenance} == shas
        assert all(m.outcome == "certified" for m in r.provenance)
        assert {t.kind for t in r.trail} >= {"bias", "dark", "flat"}
        chosen = [cand for t in r.trail for cand in t.candidates if cand.chosen]
        assert {cand.sha256 for cand in chosen} == set(shas.values())
        assert r.meta["EXPTIME"] == 120.0 and "HISTORY" in r.meta
        assert r.statistics["pixels"] == 96 * 128
        assert_matches_ccdproc(r, ccdproc_lights[r.frame_id])


def test_reduction_equals_calibctl_files_exactly(reduced_server, samples, tmp_path):
    out = str(tmp_path / "calibctl")
    subprocess.run([CALIBCTL, "--server", reduced_server.address, "calibrate", "--detector",
                    DETECTOR, "--unit", "electron", "-o", out, *kind_files(samples, "light")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with calibd.Client(reduced_server.address) as c:
        results = calibrate_lights(c, samples)
        table = calibd.reduce(os.path.join(samples, "light", "*.fits"), c,
                              str(tmp_path / "reduce"), detector=DETECTOR, unit="electron")
    assert list(table["ok"]) == [True] * 3
    assert list(table["code"]) == ["OK"] * 3
    assert all("flat v1 (certified)" in m for m in table["masters"])
    for r in results:
        ref = CCDData.read(os.path.join(out, r.frame_id), unit="electron")
        np.testing.assert_array_equal(r.data, ref.data)
        np.testing.assert_array_equal(r.uncertainty.array, ref.uncertainty.array)
        np.testing.assert_array_equal(r.mask, ref.mask)
        from astropy.io import fits
        with fits.open(os.path.join(out, r.frame_id)) as hdul:
            np.testing.assert_array_equal(r.dq, hdul["DQ"].data)
        # calibd.reduce's file reads back the same as calibctl's.
        mine = CCDData.read(os.path.join(str(tmp_path / "reduce"), r.frame_id), unit="electron")
        np.testing.assert_array_equal(mine.data, ref.data)
        np.testing.assert_array_equal(mine.uncertainty.array, ref.uncertainty.array)
        np.testing.assert_array_equal(mine.mask, ref.mask)
        for key in ("EXPTIME", "DATE-OBS", "FILTER"):
            assert mine.header[key] == ref.header[key]
        # reduce streams results straight into file buffers; the bytes are those of the
        # CCDData writer for the same result, and astropy verifies every checksum.
        from calibd._fitsio import FitsWriter
        via_ccddata = str(tmp_path / f"ccddata_{r.frame_id}")
        FitsWriter().write(r, via_ccddata)
        with open(via_ccddata, "rb") as a, open(os.path.join(str(tmp_path / "reduce"),
                                                             r.frame_id), "rb") as b:
            assert a.read() == b.read()
        with fits.open(os.path.join(str(tmp_path / "reduce"), r.frame_id), checksum=True) as h:
            assert [x.name for x in h] == ["PRIMARY", "UNCERT", "MASK", "DQ"]
            assert all(x.verify_checksum() == 1 and x.verify_datasum() == 1 for x in h)
            np.testing.assert_array_equal(h["DQ"].data, r.dq)
    data_only = calibd.reduce(os.path.join(samples, "light", "*.fits"),
                              calibd.Client(reduced_server.address), str(tmp_path / "data"),
                              detector=DETECTOR, unit="electron", planes=["data"])
    assert all(data_only["ok"])
    for r in results:
        with fits.open(os.path.join(str(tmp_path / "data"), r.frame_id), checksum=True) as h:
            assert [x.name for x in h] == ["PRIMARY"] and h[0].verify_checksum() == 1
            np.testing.assert_array_equal(h[0].data, r.data)


def test_reduce_over_an_image_file_collection(reduced_server, samples, tmp_path, capsys):
    from ccdproc import ImageFileCollection
    ifc = ImageFileCollection(os.path.join(samples, "light"))
    with calibd.Client(reduced_server.address) as c:
        table = calibd.reduce(ifc, c, str(tmp_path), detector=DETECTOR, progress=True)
        assert len(table) == 3 and all(table["ok"])
        assert "3/3" in capsys.readouterr().err  # tqdm's bar (python3-tqdm)
        assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(f) for f in
                                                      kind_files(samples, "light"))
        with pytest.raises(calibd.AlreadyExists):  # refused before anything is sent
            calibd.reduce(ifc, c, str(tmp_path), detector=DETECTOR)


def test_arrays_and_ccddata_in_equal_paths_in(reduced_server, samples):
    """The same frames given as (ndarray, header) and as CCDData calibrate to the same bytes."""
    from astropy.io import fits
    paths = kind_files(samples, "light")
    pairs, ccds = [], []
    for p in paths:
        with fits.open(p) as hdul:
            pairs.append((hdul[0].data.copy(), hdul[0].header.copy(), os.path.basename(p)))
            ccds.append(CCDData(hdul[0].data.astype(np.uint16), unit="adu",
                                meta=hdul[0].header.copy()))
    with calibd.Client(reduced_server.address) as c:
        a = calibrate_lights(c, samples)
        b = list(c.calibrate(pairs, detector=DETECTOR, unit="electron"))
        d = list(c.calibrate(ccds, detector=DETECTOR, unit="electron", planes=["data"]))
    assert [r.frame_id for r in b] == [r.frame_id for r in a]
    for x, y, z in zip(a, b, d):
        np.testing.assert_array_equal(x.data, y.data)
        np.testing.assert_array_equal(x.dq, y.dq)
        np.testing.assert_array_equal(x.data, z.data)
        assert z.uncertainty is None and z.dq is None
