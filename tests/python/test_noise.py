"""Noise products through the package against a real calibd: each product built with
`Client.build(kind=...)` from synthetic stacks of known truth recovers it within its own standard
errors, equals a NumPy oracle doing the same math, and comes back from `get_master` as a
`calibd.NoiseProduct` (a dict of CCDData by EXTNAME). Frames are tiny (32x24) and sent as
arrays: the whole module takes about a second.

The truth check: z = (estimate - truth) / the product's *_ERR; with correct errors 99.7 % of
pixels have |z| < 3, so >= 98 % (15 of 768 pixels of slack, > 8 binomial standard deviations)
fails only when the errors or the estimates are wrong; and the mean z is near 0.
"""
import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData

import calibd

W, H = 32, 24
CCD = "lab/ccd"       # gain 1.5 e-/ADU: products are in e-, inputs in ADU
EMCCD = "lab/emccd"   # gain 1: an EMCCD whose frames are already in e-
BARE = "lab/bare"     # no noise products
GAIN, RN_E = 1.5, 6.0
NIGHT = "2026-03-02T01:00:00"
HOT = [(3, 4), (10, 20), (17, 9), (22, 30), (5, 27)]        # (y, x)
NOISY = [(1, 1), (8, 14), (12, 3), (19, 25), (23, 16), (6, 9)]
DEAD = [(2, 11), (9, 28), (15, 6), (20, 19)]


def ccd_variance(x, rn_e, gain):
    """The pre-processing recipe's variance (ccdproc create_deviation) in input units²."""
    return (gain * np.maximum(x, 0) + rn_e ** 2) / gain ** 2


def within_errors(estimate, truth, err, what):
    z = (np.asarray(estimate, float) - truth) / np.asarray(err, float)
    inside = np.mean(np.abs(z) < 3)
    assert inside >= 0.98, f"{what}: only {inside:.1%} of pixels within 3 SE"
    # Nor biased by more than 0.3 SE (pure noise gives 0 ± 0.04 over 768 pixels; the weights
    # come from each frame's own variance plane, which pulls a weighted fit low by ~0.1 SE).
    assert abs(np.mean(z)) < 0.3, f"{what}: mean z {np.mean(z):.3f}"


def wls(designs, means, variances):
    """Per-pixel weighted least squares: designs (K, P), means/variances (K, H, W) →
    (coefficients (P, H, W), covariance (P, P, H, W))."""
    a = np.asarray(designs, float)
    w = 1.0 / np.asarray(variances, float)
    m = np.einsum("kp,kq,khw->hwpq", a, a, w)
    b = np.einsum("kp,khw,khw->hwp", a, w, np.asarray(means, float))
    cov = np.linalg.inv(m)
    beta = np.einsum("hwpq,hwq->phw", cov, b)
    return beta, np.moveaxis(cov, (0, 1), (2, 3))


@pytest.fixture(scope="module")
def noise_server(tmp_path_factory):
    from conftest import CalibdServer
    d = tmp_path_factory.mktemp("calibd_noise")
    s = CalibdServer(str(d / "store"), str(d / "calibd.log")).start()
    with calibd.Client(s.address) as c:
        for name, gain, rn in ((CCD, GAIN, RN_E), (EMCCD, 1.0, 3.0), (BARE, 1.0, 3.0)):
            c.put_detector({"name": name, "width": W, "height": H, "gain": gain,
                            "read_noise": rn, "configuration_keys": {"default": []}})
    yield s
    s.kill()


@pytest.fixture(scope="module")
def client(noise_server):
    with calibd.Client(noise_server.address) as c:
        yield c


@pytest.fixture(scope="module")
def read_noise(client):
    """12 biases at 1000 ADU with RN_E e- of read noise, 6 pixels 5x noisier."""
    rng = np.random.default_rng(11)
    sigma = np.full((H, W), RN_E / GAIN)
    for p in NOISY:
        sigma[p] *= 5
    stack = (1000 + sigma * rng.standard_normal((12, H, W))).astype(np.float32)
    frames = [(f, fits.Header({"IMAGETYP": "bias", "EXPTIME": 0.0})) for f in stack]
    r = client.build("read_noise", frames, detector=CCD)
    return r, stack, sigma * GAIN


def test_read_noise_recovers_truth_and_equals_numpy(client, read_noise):
    r, stack, truth = read_noise
    assert r.version.kind == "read_noise" and r.inputs == 12
    p = client.get_master(CCD, "read_noise", version=r.version.version)
    assert isinstance(p, calibd.NoiseProduct) and p.kind == "read_noise"
    assert p.master.sha256 == r.version.sha256
    assert p.maps == ["READ_NOISE", "READ_NOISE_ERR", "NFRAMES"]
    rn = p["READ_NOISE"]
    assert isinstance(rn, CCDData) and rn.unit == u.electron and rn.shape == (H, W)
    np.testing.assert_array_equal(rn.uncertainty.array, p["READ_NOISE_ERR"].data)
    np.testing.assert_array_equal(p["NFRAMES"].data, 12)
    # NumPy: the unbiased std of the stack in e-; its Gaussian standard error.
    oracle = np.std(stack.astype(np.float64) * GAIN, axis=0, ddof=1)
    np.testing.assert_allclose(rn.data, oracle, rtol=2e-5)
    np.testing.assert_allclose(p["READ_NOISE_ERR"].data, oracle / np.sqrt(2 * 11), rtol=2e-5)
    # Truth: the sample variance is unbiased with standard error σ²·sqrt(2/(n-1)).
    within_errors(rn.data.astype(float) ** 2, truth ** 2, truth ** 2 * np.sqrt(2 / 11),
                  "READ_NOISE²")
    assert abs(p.header["RDNOISE"] - np.median(oracle)) < 1e-4 * RN_E
    # RDNOISE is the median of the map: the median of a sample std of n = 12 is
    # σ·sqrt(median(χ²₁₁)/11) ≈ 0.97σ (the pixels being 5x noisier are 6 of 768).
    from scipy.stats import chi2
    expect = RN_E * np.sqrt(chi2.median(11) / 11)
    assert abs(p.header["RDNOISE"] - expect) < 3 * p.header["RDNOISEE"]
    assert not p.dq.any() and not rn.mask.any()


@pytest.fixture(scope="module")
def dark_current(client):
    """Darks of 10, 30, 60, 100 s (3 each): 8 ADU pedestal, 0.05 e-/s + a gradient, 5 hot
    pixels at 3 e-/s; Gaussian noise of the recipe's variance."""
    rng = np.random.default_rng(12)
    rate = 0.05 + 0.002 * np.arange(W)[None, :] + np.zeros((H, W))
    for p in HOT:
        rate[p] = 3.0
    frames, times, means_adu = [], [10.0, 30.0, 60.0, 100.0], []
    for t in times:
        mean = 8 + t * rate / GAIN  # ADU
        means_adu.append(mean)
        for _ in range(3):
            x = mean + np.sqrt(ccd_variance(mean, RN_E, GAIN)) * rng.standard_normal((H, W))
            frames.append((x.astype(np.float32), fits.Header({"IMAGETYP": "dark", "DATE-OBS": NIGHT,
                                                              "EXPTIME": t})))
    r = client.build("dark_current", frames, detector=CCD, preprocess={"bias": False})
    return r, frames, times, rate


def test_dark_current_recovers_truth_flags_hot_pixels_and_equals_numpy(client, dark_current):
    r, frames, times, rate = dark_current
    p = client.get_master(CCD, "dark_current", version=r.version.version)
    assert p.kind == "dark_current"
    for name in ("DARK_CURRENT", "DARK_CURRENT_ERR", "DARK_INTERCEPT", "DARK_INTERCEPT_ERR",
                 "DARK_COV"):
        assert name in p, name
    d = p["DARK_CURRENT"]
    assert d.unit == u.electron / u.s
    # NumPy: per exposure time the mean (e-) and the variance of the mean from the recipe's
    # variance planes, then signal = I + t*D by weighted least squares.
    x = np.array([f for f, _ in frames], dtype=np.float64).reshape(4, 3, H, W)
    means = x.mean(axis=1) * GAIN
    var = ccd_variance(x.astype(np.float32).astype(np.float64), RN_E, GAIN).sum(axis=1) / 9
    beta, cov = wls([[1, t] for t in times], means, var * GAIN ** 2)
    np.testing.assert_allclose(d.data, beta[1], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(p["DARK_CURRENT_ERR"].data, np.sqrt(cov[1, 1]), rtol=1e-3)
    np.testing.assert_allclose(p["DARK_INTERCEPT"].data, beta[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(p["DARK_COV"].data, cov[0, 1], rtol=1e-3, atol=1e-9)
    within_errors(d.data, rate, p["DARK_CURRENT_ERR"].data, "DARK_CURRENT")
    within_errors(p["DARK_INTERCEPT"].data, 8 * GAIN, p["DARK_INTERCEPT_ERR"].data,
                  "DARK_INTERCEPT")
    hot = {b.name: b.bit for b in client.dq_bits()}["hot"]
    flagged = set(zip(*np.nonzero(p.dq & hot)))
    assert flagged == set(HOT) and p.header["NHOT"] == len(HOT)
    np.testing.assert_array_equal(d.mask, p.dq != 0)


def test_bad_pixels_from_stored_products_and_a_flat(client, read_noise, dark_current):
    flat = np.ones((H, W), np.float32) * (1 + 0.01 * np.arange(W)[None, :])
    for p in DEAD:
        flat[p] = 0.2
    put = client.put_master(CCDData(flat, unit="adu"), CCD, "flat")
    r = client.build("bad_pixels", [calibd.Stored("read_noise", read_noise[0].version.version),
                                    calibd.Stored("dark_current",
                                                  dark_current[0].version.version),
                                    calibd.Stored("flat", put.version.version)],
                     detector=CCD)
    p = client.get_master(CCD, "bad_pixels", version=r.version.version)
    assert p.kind == "bad_pixels" and p.maps == []
    bits = {b.name: b.bit for b in client.dq_bits()}
    assert set(zip(*np.nonzero(p.dq & bits["hot"]))) == set(HOT)
    assert set(zip(*np.nonzero(p.dq & bits["dead"]))) == set(DEAD)
    assert set(zip(*np.nonzero(p.dq & bits["bad"]))) == set(NOISY)
    assert (p.header["NHOT"], p.header["NDEAD"], p.header["NNOISY"]) == (5, 4, 6)
    assert r.version.provenance["input_sha256"][0] == read_noise[0].version.sha256


def test_noise_model_recovers_truth_and_equals_numpy(noise_model):
    p, frames, settings, truth = noise_model
    assert p.kind == "noise_model"
    x = np.array([f for f, _ in frames], dtype=np.float64).reshape(len(settings), 4, H, W)
    means = x.mean(axis=1)
    var = ccd_variance(x, 3.0, 1.0).sum(axis=1) / 16
    beta, cov = wls([[1, g * t, g] for g, t in settings], means, var)
    for i, name in enumerate(("FPN", "DARK_CURRENT", "CIC")):
        np.testing.assert_allclose(p[name].data, beta[i], rtol=2e-3, atol=2e-3 * np.sqrt(
            cov[i, i]).mean(), err_msg=name)
        np.testing.assert_allclose(p[f"{name}_ERR"].data, np.sqrt(cov[i, i]), rtol=2e-3)
        within_errors(p[name].data, truth[name], p[f"{name}_ERR"].data, name)
    for name, (i, j) in (("COV_F_D", (0, 1)), ("COV_F_C", (0, 2)), ("COV_D_C", (1, 2))):
        np.testing.assert_allclose(p[name].data, cov[i, j], rtol=5e-3,
                                   atol=1e-3 * np.abs(cov[i, j]).max(), err_msg=name)
    assert p["FPN"].unit == u.electron and p["DARK_CURRENT"].unit == u.electron / u.s
    assert p.header["NFITTED"] == W * H and p.header["NSETTING"] == len(settings)
    np.testing.assert_array_equal(p["NUSABLE"].data, len(settings))


@pytest.fixture(scope="module")
def noise_model(client):
    """An EMCCD's darks at five (EM gain, exptime) settings, 4 frames each: mean
    F + g·t·D + g·C with F a gradient, D = 0.01 e-/s, C = 0.05 e-."""
    rng = np.random.default_rng(13)
    settings = [(1, 10), (10, 10), (50, 30), (100, 60), (200, 30)]
    truth = {"FPN": 20 + 0.1 * np.arange(W)[None, :] + np.zeros((H, W)),
             "DARK_CURRENT": np.full((H, W), 0.01), "CIC": np.full((H, W), 0.05)}
    frames = []
    for g, t in settings:
        mean = truth["FPN"] + g * t * truth["DARK_CURRENT"] + g * truth["CIC"]
        for _ in range(4):
            x = mean + np.sqrt(ccd_variance(mean, 3.0, 1.0)) * rng.standard_normal((H, W))
            frames.append((x.astype(np.float32),
                           fits.Header({"IMAGETYP": "dark", "EMGAIN": g, "EXPTIME": t,
                                        "DATE-OBS": NIGHT})))
    r = client.build("noise_model", frames, detector=EMCCD, preprocess={"bias": False},
                     certify_from="2026-03-01")
    p = client.get_master(EMCCD, "noise_model", version=r.version.version)
    return p, frames, settings, truth


def test_gain_from_photon_transfer(client):
    """Flat pairs at six levels and two biases: the fitted GAIN within its error of the truth.
    (The per-pixel map needs more than pairs to be precise; tests/noise checks it.)"""
    rng = np.random.default_rng(14)
    pattern = 1 + 0.02 * np.sin(np.arange(W) / 3.0)[None, :] + np.zeros((H, W))
    rn_adu = RN_E / GAIN
    frames = [((1000 + rn_adu * rng.standard_normal((H, W))).astype(np.float32),
               fits.Header({"IMAGETYP": "bias", "EXPTIME": 0.0})) for _ in range(2)]
    for level in (500, 1500, 3000, 6000, 10000, 15000):
        signal = level * pattern
        for _ in range(2):
            x = 1000 + signal + np.sqrt(signal / GAIN + rn_adu ** 2) * rng.standard_normal(
                (H, W))
            frames.append((x.astype(np.float32), fits.Header({"IMAGETYP": "flat",
                                                              "EXPTIME": 1.0})))
    r = client.build("gain", frames, detector=CCD)
    p = client.get_master(CCD, "gain", version=r.version.version)
    assert p.kind == "gain" and "GAIN" in p
    assert abs(p.header["GAIN"] - GAIN) < 3 * p.header["GAINERR"], (p.header["GAIN"],
                                                                     p.header["GAINERR"])
    assert p["GAIN"].unit == u.electron / u.adu
    assert p["GAIN"].shape == (H, W) and "GAIN_ERR" in p
    assert r.version.statistics["gain"] == pytest.approx(p.header["GAIN"])


def test_noise_options_reach_the_build_or_fail_exactly(client, dark_current):
    frames = dark_current[1]
    has_options = "noise" in calibd._proto.builder_pb2.BuildOptions.DESCRIPTOR.fields_by_name
    if has_options:
        # A threshold far above the hot pixels' 3 e-/s: nothing is hot.
        r = client.build("dark_current", frames, detector=CCD, preprocess={"bias": False},
                         hot_sigma=1e6, hot_min_rate=100.0)
        assert r.version.provenance["options"]["noise.hot_sigma"] == "1000000"
        p = client.get_master(CCD, "dark_current", version=r.version.version)
        assert p.header["NHOT"] == 0 and not p.dq.any()
    else:
        with pytest.raises(calibd.Unimplemented):
            client.build("dark_current", frames, detector=CCD, hot_sigma=1e6)
    with pytest.raises(calibd.InvalidArgument, match="not an option of 'dark_current'"):
        client.build("dark_current", frames, detector=CCD, min_frames=3)
    with pytest.raises(calibd.InvalidArgument, match="options of the noise kinds"):
        client.build("bias", frames, detector=CCD, hot_sigma=3)


def test_noise_build_errors_carry_exact_codes(client, dark_current):
    import grpc
    frames = dark_current[1]
    # gain_normalisation needs each flat's gain setting (GAINMODE): darks have none.
    with pytest.raises(calibd.InvalidArgument) as e:
        client.build("gain_normalisation", frames, detector=CCD,
                     preprocess={"bias": False, "dark": False, "flat": False})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "GAINMODE" in str(e.value)
    # One exposure time: a dark-current fit needs three.
    with pytest.raises(calibd.InvalidArgument) as e:
        client.build("dark_current", frames[:3], detector=CCD, preprocess={"bias": False})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(calibd.NotFound):
        client.get_master(CCD, "noise_model", version=1)
    with pytest.raises(calibd.NotFound):
        client.build("read_noise", frames, detector="lab/none")


# --- synthesized darks and the dark policy (the Noise API, RecipeOverrides.dark_policy) -----

def test_synthesize_dark_equals_the_closed_form_of_the_model(client, noise_model):
    """(F + g·t·D + g·C)/g from the downloaded maps, its variance aᵀΣa with a = (1/g, t, 1),
    and the truth within that error, at a (t, g) the model was not trained on."""
    p, _, _, truth = noise_model
    g, t = 300.0, 45.0
    dark = client.synthesize_dark(EMCCD, exptime=t, em_gain=g)
    assert isinstance(dark, calibd.CalibratedFrame) and dark.unit == u.electron
    assert dark.model.kind == "noise_model" and dark.model.version == p.master.version
    assert dark.meta["SYNTHDRK"] and dark.meta["EXPTIME"] == t and dark.meta["EMGAIN"] == g
    assert [m.kind for m in dark.provenance] == ["noise_model"]
    f, d, c = (p[k].data.astype(np.float64) for k in ("FPN", "DARK_CURRENT", "CIC"))
    np.testing.assert_allclose(dark.data, (f + g * t * d + g * c) / g, rtol=1e-5, atol=1e-6)
    a = (1 / g, t, 1.0)
    err = {k: p[f"{k}_ERR"].data.astype(np.float64) for k in ("FPN", "DARK_CURRENT", "CIC")}
    var = (a[0] ** 2 * err["FPN"] ** 2 + a[1] ** 2 * err["DARK_CURRENT"] ** 2
           + a[2] ** 2 * err["CIC"] ** 2 + 2 * a[0] * a[1] * p["COV_F_D"].data
           + 2 * a[0] * a[2] * p["COV_F_C"].data + 2 * a[1] * a[2] * p["COV_D_C"].data)
    np.testing.assert_allclose(dark.uncertainty.array.astype(np.float64) ** 2, var, rtol=1e-4,
                               atol=1e-9)
    within_errors(dark.data, (truth["FPN"] + g * t * truth["DARK_CURRENT"]
                              + g * truth["CIC"]) / g, dark.uncertainty.array, "synthesized")
    np.testing.assert_array_equal(dark.dq, p.dq)
    only = client.synthesize_dark(EMCCD, exptime=t, em_gain=g, planes=["data"],
                                  version=p.master.version)
    np.testing.assert_array_equal(only.data, dark.data)
    assert only.uncertainty is None and only.dq is None


def test_synthesize_dark_from_dark_current_and_errors(client, dark_current):
    import grpc
    r = dark_current[0]
    p = client.get_master(CCD, "dark_current", version=r.version.version)
    dark = client.synthesize_dark(CCD, exptime=40.0)
    assert dark.model.kind == "dark_current"
    np.testing.assert_allclose(dark.data, 40.0 * p["DARK_CURRENT"].data, rtol=1e-6)
    np.testing.assert_allclose(dark.uncertainty.array, 40.0 * p["DARK_CURRENT_ERR"].data,
                               rtol=1e-5)
    for call, error, code in (
            (lambda: client.synthesize_dark(CCD, exptime=0), calibd.InvalidArgument,
             grpc.StatusCode.INVALID_ARGUMENT),
            (lambda: client.synthesize_dark(CCD, exptime=10, em_gain=-1), calibd.InvalidArgument,
             grpc.StatusCode.INVALID_ARGUMENT),
            (lambda: client.synthesize_dark("lab/none", exptime=10), calibd.NotFound,
             grpc.StatusCode.NOT_FOUND),
            (lambda: client.synthesize_dark(BARE, exptime=10), calibd.NotFound,
             grpc.StatusCode.NOT_FOUND),
            (lambda: client.synthesize_dark(CCD, exptime=10, temperature=-90),
             calibd.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
            (lambda: client.synthesize_dark(CCD, exptime=10, version=99), calibd.NotFound,
             grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(error) as e:
            call()
        assert e.value.code == code, e.value


def test_dark_policy_synthesized_agrees_with_measured(client, noise_server):
    """Lights of a bias-free CCD calibrated with a measured master dark (scaled from 100 s)
    and with one synthesized from the dark_current product: they differ by the two darks'
    errors only (z within 3 for >= 98 % of pixels); the provenance says which dark served."""
    det = "lab/darkccd"
    client.put_detector({"name": det, "width": W, "height": H, "gain": 1.0, "read_noise": 3.0,
                         "configuration_keys": {"default": []}})
    rng = np.random.default_rng(15)
    rate = 0.2 + 0.01 * np.arange(W)[None, :] + np.zeros((H, W))

    def frames(times, sky=0.0, n=1, kind="dark"):
        out = []
        for t in times:
            mean = sky + t * rate
            for _ in range(n):
                x = mean + np.sqrt(ccd_variance(mean, 3.0, 1.0)) * rng.standard_normal((H, W))
                out.append((x.astype(np.float32), fits.Header(
                    {"IMAGETYP": kind, "EXPTIME": t, "DATE-OBS": NIGHT})))
        return out

    pre = {"bias": False}
    client.build("dark_current", frames([30, 60, 120, 200], n=4), detector=det,
                 preprocess=pre, certify_from="2026-03-01")
    client.build("dark", frames([100], n=8), detector=det, method="average",
                 preprocess=pre, certify_from="2026-03-01")
    lights = frames([60.0], sky=50.0, n=2, kind="light")
    recipe = {"bias": False, "flat": False}
    measured = list(client.calibrate(lights, detector=det, recipe=recipe,
                                     dark_policy="measured"))
    synthesized = list(client.calibrate(lights, detector=det, recipe=recipe,
                                        dark_policy="synthesized"))
    kmaster = client.get_master(det, "dark", version=1)
    dc = client.get_master(det, "dark_current", version=1)
    s = 60.0 / 100.0
    sigma = np.sqrt((s * kmaster.uncertainty.array.astype(float)) ** 2
                    + (60.0 * dc["DARK_CURRENT_ERR"].data.astype(float)) ** 2)
    for m, y in zip(measured, synthesized):
        assert isinstance(m, calibd.CalibratedFrame), m
        assert isinstance(y, calibd.CalibratedFrame), y
        assert [a.kind for a in m.provenance if a.used_as == "dark"] == ["dark"]
        assert [a.kind for a in y.provenance if a.used_as == "dark"] == ["dark_current"]
        z = (m.data.astype(float) - y.data.astype(float)) / sigma
        assert np.mean(np.abs(z) < 3) >= 0.98 and abs(np.mean(z)) < 0.3
        # Both recover the sky.
        within_errors(y.data, 50.0, y.uncertainty.array, "synthesized-dark light")
    # measured_else_synthesized takes the measured dark while there is one.
    either = next(iter(client.calibrate(lights[:1], detector=det, recipe=recipe,
                                        dark_policy="measured_else_synthesized")))
    np.testing.assert_array_equal(either.data, measured[0].data)
    with pytest.raises(calibd.InvalidArgument, match="dark_policy"):
        client.calibrate(lights, detector=det, dark_policy="guess")
    # The noise switches: a product required but not there fails the frame as a missing master
    # does under "strict"; not required, the frame is calibrated without it.
    import grpc
    [missing] = client.calibrate(lights[:1], detector=det, recipe=recipe, bad_pixels=True)
    assert isinstance(missing, calibd.FrameError), missing
    assert missing.code == grpc.StatusCode.FAILED_PRECONDITION and "bad_pixels" in missing.message
    [without] = client.calibrate(lights[:1], detector=det, recipe=recipe, bad_pixels=False,
                                 read_noise_map=False, dark_policy="measured")
    assert "bad_pixels" not in [a.used_as for a in without.provenance]
    np.testing.assert_array_equal(without.data, measured[0].data)


def test_read_noise_map_and_bad_pixels_shape_the_calibrated_frame(client, read_noise,
                                                                  dark_current):
    """A light calibrated with the read_noise product and a bad_pixels map: the variance is
    ccdproc's create_deviation with the map's per-pixel read noise instead of RDNOISE (to float32
    rounding), the map's flags are OR-ed into DQ (and the mask) at exactly its pixels, and the
    provenance names both products; switched off, the spec's scalar read noise is back."""
    rn_version = read_noise[0].version.version
    flat = np.ones((H, W), np.float32)
    for p in DEAD:
        flat[p] = 0.1
    put = client.put_master(CCDData(flat, unit="adu"), CCD, "flat")
    bpm = client.build("bad_pixels", [calibd.Stored("read_noise", rn_version),
                                      calibd.Stored("dark_current",
                                                    dark_current[0].version.version),
                                      calibd.Stored("flat", put.version.version)],
                       detector=CCD)
    for kind, version in (("read_noise", rn_version), ("bad_pixels", bpm.version.version)):
        client.certify(CCD, kind, version, "2026-03-01", replace=True)
    rn_map = client.get_master(CCD, "read_noise", version=rn_version)["READ_NOISE"].data
    dq_map = client.get_master(CCD, "bad_pixels", version=bpm.version.version).dq
    assert dq_map.any()

    rng = np.random.default_rng(16)
    light = (300 + 10 * rng.standard_normal((H, W))).astype(np.float32)
    light[0, :4] = -5.0  # a negative value counts as 0 in the Poisson term
    header = fits.Header({"IMAGETYP": "light", "EXPTIME": 10.0, "DATE-OBS": NIGHT})
    recipe = {"bias": False, "dark": False, "flat": False}
    [used] = client.calibrate([(light, header)], detector=CCD, recipe=recipe,
                              read_noise_map=True, bad_pixels=True, gain_product=False)
    assert isinstance(used, calibd.CalibratedFrame), used
    by_use = {a.used_as: a for a in used.provenance}
    assert by_use["read_noise"].version == rn_version
    assert by_use["bad_pixels"].version == bpm.version.version
    assert f"{np.count_nonzero(dq_map)} flagged" in by_use["bad_pixels"].detail
    g = np.float32(GAIN)
    expect = (g * np.maximum(light, 0) + rn_map.astype(np.float32) ** 2) / g ** 2
    np.testing.assert_allclose(used.uncertainty.array.astype(float) ** 2, expect, rtol=1e-6)
    np.testing.assert_array_equal(used.data, light)
    np.testing.assert_array_equal(used.dq & dq_map, dq_map)
    assert set(zip(*np.nonzero(used.dq))) == set(zip(*np.nonzero(dq_map)))
    np.testing.assert_array_equal(used.mask, dq_map != 0)

    [plain] = client.calibrate([(light, header)], detector=CCD, recipe=recipe,
                               read_noise_map=False, bad_pixels=False, gain_product=False)
    assert not {"read_noise", "bad_pixels"} & {a.used_as for a in plain.provenance}
    expect = (g * np.maximum(light, 0) + np.float32(RN_E) ** 2) / g ** 2
    np.testing.assert_allclose(plain.uncertainty.array.astype(float) ** 2, expect, rtol=1e-6)
    assert not plain.dq.any()
