#!/usr/bin/python3
"""Independent NumPy implementation of calibd's noise products, for tests/noise.

Reads the same FITS frames calibd read (astropy), computes each product with plain NumPy
(std(ddof=1) for read noise, per-pixel numpy.linalg.lstsq for the dark fit and the EMCCD noise
model, numpy.polyfit for the photon transfer curve), reads calibd's product file (astropy:
one image HDU per map, EXTNAME = the map's name) and compares. Prints one line per quantity;
exits 1 on any disagreement beyond float32 precision.

  noise_numpy.py read_noise PRODUCT.fits FRAME...
  noise_numpy.py dark_current PRODUCT.fits FRAME...          (groups by EXPTIME)
  noise_numpy.py noise_model PRODUCT.fits FRAME...           (groups by EMGAIN, EXPTIME)
  noise_numpy.py gain PRODUCT.fits NLEVELS NBIAS FRAME...    (flat pairs, then biases)
"""
import sys

import numpy as np
from astropy.io import fits

RTOL = 1e-5
failures = []


def load(path):
    with fits.open(path) as f:
        return f[0].data.astype(np.float64), dict(f[0].header)


def product(path):
    with fits.open(path) as f:
        maps = {h.name: h.data.astype(np.float64) for h in f[1:] if h.data is not None}
        maps["DQ"] = f["DQ"].data.astype(np.int64)
        units = {h.name: h.header.get("BUNIT", "") for h in f[1:]}
        return maps, units, dict(f[0].header)


def compare(name, ours, ref, scale):
    """|ours - ref| <= RTOL |ref| + RTOL * scale, where both are finite; NaN where ref is NaN."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    finite = np.isfinite(ref)
    if not np.array_equal(finite, np.isfinite(ours)):
        failures.append(name)
        print(f"{name}: finite pixels differ ({finite.sum()} vs {np.isfinite(ours).sum()})")
        return
    d = np.abs(ours[finite] - ref[finite])
    tol = RTOL * np.abs(ref[finite]) + RTOL * np.abs(np.asarray(scale))[finite] if np.ndim(scale) \
        else RTOL * np.abs(ref[finite]) + RTOL * abs(scale)
    bad = d > tol
    worst = float(np.max(d / np.maximum(np.abs(ref[finite]), 1e-300))) if d.size else 0.0
    print(f"{name}: max relative difference {worst:.3g} over {d.size} values")
    if bad.any():
        failures.append(name)
        print(f"  {bad.sum()} beyond tolerance")


def weighted_lstsq(design, y, var):
    """Per-pixel weighted least squares: y[k, pix] = design[k] . beta[pix], weights 1/var."""
    k, npix = y.shape
    p = design.shape[1]
    beta = np.full((p, npix), np.nan)
    cov = np.full((p, p, npix), np.nan)
    r2 = np.full(npix, np.nan)
    for i in range(npix):
        w = 1.0 / var[:, i]
        sw = np.sqrt(w)
        a = design * sw[:, None]
        b = y[:, i] * sw
        sol, _, _, _ = np.linalg.lstsq(a, b, rcond=None)
        beta[:, i] = sol
        cov[:, :, i] = np.linalg.inv(a.T @ a)
        chi2 = np.sum(w * (y[:, i] - design @ sol) ** 2)
        ybar = np.sum(w * y[:, i]) / np.sum(w)
        sst = np.sum(w * (y[:, i] - ybar) ** 2)
        if k > p and sst > 0:
            r2[i] = 1 - (chi2 / sst) * (k - 1) / (k - p)
    return beta, cov, r2


def groups(headers, keys):
    settings = sorted({tuple(float(h[k]) for k in keys) for h in headers})
    return settings, [settings.index(tuple(float(h[k]) for k in keys)) for h in headers]


def substack_means(data, index, nset):
    means, var = [], []
    for s in range(nset):
        stack = data[[i for i, g in enumerate(index) if g == s]]
        n = stack.shape[0]
        means.append(stack.mean(axis=0))
        var.append(stack.var(axis=0, ddof=1) / n)
    return np.array(means), np.array(var)


def main():
    kind, path = sys.argv[1], sys.argv[2]
    maps, units, header = product(path)
    dq_plane = maps["DQ"]
    if kind == "gain":
        nlevels, nbias = int(sys.argv[3]), int(sys.argv[4])
        frames = [load(p)[0] for p in sys.argv[5:]]
        flats, biases = np.array(frames[:2 * nlevels]), np.array(frames[2 * nlevels:])
        assert biases.shape[0] == nbias
        bias_mean = biases.mean(axis=0)
        mean = np.array([((flats[2 * l] + flats[2 * l + 1]) / 2 - bias_mean).mean()
                         for l in range(nlevels)])
        var = np.array([(flats[2 * l] - flats[2 * l + 1]).var(ddof=1) / 2
                        for l in range(nlevels)])
        npix = flats[0].size
        sigma = np.sqrt(2 * var ** 2 / (npix - 1))
        (b, a), cov = np.polyfit(mean, var, 1, w=1 / sigma, cov="unscaled")
        compare("PTCB", header["PTCB"], b, 0)
        compare("PTCA", header["PTCA"], a, np.sqrt(cov[1, 1]))
        compare("GAIN", header["GAIN"], 1 / b, 0)
        compare("GAINERR", header["GAINERR"], np.sqrt(cov[0, 0]) / b ** 2, 0)
        # Per-pixel map: per-pixel mean and variance of each pair, weighted with the curve.
        pm = np.array([(flats[2 * l] + flats[2 * l + 1]) / 2 - bias_mean
                       for l in range(nlevels)]).reshape(nlevels, -1)
        pv = np.array([np.var(flats[2 * l:2 * l + 2], axis=0, ddof=1)
                       for l in range(nlevels)]).reshape(nlevels, -1)
        g = np.full(pm.shape[1], np.nan)
        ge = np.full(pm.shape[1], np.nan)
        for i in range(pm.shape[1]):
            model = a + b * pm[:, i]
            (bi, ai), ci = np.polyfit(pm[:, i], pv[:, i], 1, w=1 / np.sqrt(2 * model ** 2),
                                      cov="unscaled")
            if bi > 0:
                g[i], ge[i] = 1 / bi, np.sqrt(ci[0, 0]) / bi ** 2
        # Where the per-pixel slope is not positive calibd stores 0 with DQ bad (maps are finite).
        unfit = ~np.isfinite(g)
        dq = dq_plane.ravel()
        if not (np.all(maps["GAIN"].ravel()[unfit] == 0) and np.all(dq[unfit] & 1) and
                not np.any(dq[~unfit] & 1)):
            failures.append("GAIN unfitted pixels")
            print("GAIN: unfitted pixels are not 0 with DQ bad")
        print(f"GAIN map: {unfit.sum()} pixels without a positive slope (0, DQ bad)")
        g[unfit], ge[unfit] = 0, 0
        compare("GAIN map", maps["GAIN"].ravel(), g, ge)
        compare("GAIN_ERR map", maps["GAIN_ERR"].ravel(), ge, 0)
    else:
        loaded = [load(p) for p in sys.argv[3:]]
        data = np.array([d for d, _ in loaded])
        headers = [h for _, h in loaded]
        shape = data.shape[1:]
        if kind == "read_noise":
            std = data.std(axis=0, ddof=1)
            n = data.shape[0]
            compare("READ_NOISE", maps["READ_NOISE"], std, 0)
            compare("READ_NOISE_ERR", maps["READ_NOISE_ERR"], std / np.sqrt(2 * (n - 1)), 0)
            compare("RDNOISE", header["RDNOISE"], np.median(std), 0)
            assert units["READ_NOISE"] == "electron", units
        elif kind == "dark_current":
            settings, index = groups(headers, ["EXPTIME"])
            means, var = substack_means(data, index, len(settings))
            design = np.array([[1.0, t] for (t,) in settings])
            beta, cov, _ = weighted_lstsq(design, means.reshape(len(settings), -1),
                                          var.reshape(len(settings), -1))
            se = np.sqrt(cov[1, 1]).reshape(shape)
            compare("DARK_CURRENT", maps["DARK_CURRENT"], beta[1].reshape(shape), se)
            compare("DARK_CURRENT_ERR", maps["DARK_CURRENT_ERR"], se, 0)
            compare("DARK_INTERCEPT", maps["DARK_INTERCEPT"], beta[0].reshape(shape),
                    np.sqrt(cov[0, 0]).reshape(shape))
            compare("DARK_COV", maps["DARK_COV"], cov[0, 1].reshape(shape),
                    np.sqrt(cov[0, 0] * cov[1, 1]).reshape(shape))
            assert units["DARK_CURRENT"] == "electron/s", units
        elif kind == "noise_model":
            settings, index = groups(headers, ["EMGAIN", "EXPTIME"])
            means, var = substack_means(data, index, len(settings))
            design = np.array([[1.0, g * t, g] for g, t in settings])
            k = len(settings)
            beta, cov, r2 = weighted_lstsq(design, means.reshape(k, -1), var.reshape(k, -1))
            for j, name in enumerate(["FPN", "DARK_CURRENT", "CIC"]):
                se = np.sqrt(cov[j, j]).reshape(shape)
                compare(name, maps[name], beta[j].reshape(shape), se)
                compare(name + "_ERR", maps[name + "_ERR"], se, 0)
            for (j, l), name in zip([(0, 1), (0, 2), (1, 2)], ["COV_F_D", "COV_F_C", "COV_D_C"]):
                compare(name, maps[name], cov[j, l].reshape(shape),
                        np.sqrt(cov[j, j] * cov[l, l]).reshape(shape))
            compare("ADJ_R2", maps["ADJ_R2"], r2.reshape(shape), 1.0)
        else:
            print("unknown kind", kind)
            return 2
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
