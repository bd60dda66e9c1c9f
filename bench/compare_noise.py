#!/usr/bin/python3
"""Noise products' speed and memory: calibd's core/noise against NumPy doing the same math,
same FITS frames, same run.

Usage: /usr/bin/python3 bench/compare_noise.py [--bench build/bench/noise_bench] [--size 4096]
                                               [--threads 2] [--dir DIR] [--skip-numpy]

1. writes float32 FITS frames of SIZE x SIZE (astropy) with known truth: 10 biases (e-, read
   noise 3..6 e- across the columns), 6 EMCCD settings x 5 darks and 3 exposure times x 4 darks
   (e-; F = 20 +- 5 e-, D = 0.010..0.015 e-/s with 64 hot pixels at 1 e-/s, C = 0.05..0.07 e-),
   5 flat pairs and 2 biases in ADU (1.5 e-/ADU, 5 e-, 64 dead pixels at 0.2 response);
   longer stacks cycle through
   these files (a path repeated is opened again, so every frame is read from the page cache);
2. runs noise_bench (one process per product, so its peak RSS is its own): read noise from 100
   and from 200 biases, the noise model from 6 settings x 30 frames, dark current from
   3 x 10 darks, the photon-transfer gain from 5 pairs + 2 biases, bad pixels, a synthesized
   dark;
3. runs the same math in NumPy, each in its own process: streamed Welford std(ddof=1);
   streamed sub-stack means and a per-pixel weighted least squares by batched normal
   equations (np.linalg.inv on 3x3 / 2x2 systems, in row chunks); polyfit of the photon
   transfer curve and the per-pixel gain fit; F/g + t.D + C with the covariance variance;
then prints times, peak RSS, the ratios and each side's summary figure (they must agree).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

PY = "/usr/bin/python3"
SETTINGS = [(1, 10), (10, 10), (50, 30), (100, 60), (200, 30), (500, 100)]
DARK_TIMES = [10, 100, 300]
LEVELS = [2000, 5000, 10000, 20000, 30000]


def write_frames(directory, size):
    import numpy as np
    from astropy.io import fits
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    files = {"bias": [], "nm": [], "dark": [], "flat": []}

    def save(name, data, **cards):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            h = fits.Header()
            for k, v in cards.items():
                h[k] = v
            fits.PrimaryHDU(data.astype(np.float32), header=h).writeto(path)
        return path

    rn = 3 + 3 * (x / size)
    for i in range(10):
        files["bias"].append(save(f"bias_{i}.fits",
                                  rn * rng.standard_normal((size, size), np.float32)))
    f_map = 20 + 5 * np.sin(x / 50)
    d_map = 0.01 + 0.005 * (y / size)
    # 64 hot pixels (1 e-/s) and 64 dead pixels (response 0.2) at fixed places.
    hot = (rng.integers(0, size, 64), rng.integers(0, size, 64))
    dead = (rng.integers(0, size, 64), rng.integers(0, size, 64))
    d_map[hot] = 1.0
    c_map = 0.05 + 0.02 * (x / size)
    for g, t in SETTINGS:
        mean = f_map + g * t * d_map + g * c_map
        sigma = np.sqrt(16 + 2 * g * g * (t * d_map + c_map))
        for i in range(5):
            files["nm"].append(save(f"nm_g{g}_t{t}_{i}.fits",
                                    mean + sigma * rng.standard_normal((size, size), np.float32),
                                    EMGAIN=float(g), EXPTIME=float(t)))
    for t in DARK_TIMES:
        mean = 10 + t * d_map
        for i in range(4):
            files["dark"].append(save(f"dark_t{t}_{i}.fits",
                                      mean + np.sqrt(16 + mean) * rng.standard_normal((size, size), np.float32),
                                      EXPTIME=float(t)))
    response = 1 + 0.05 * np.sin(x / 37 + y / 53)
    response[dead] = 0.2
    # Biases of the photon-transfer set: ADU of a 1.5 e-/ADU, 5 e- detector.
    files["ptc_bias"] = [save(f"ptc_bias_{i}.fits",
                              5 / 1.5 * rng.standard_normal((size, size), np.float32))
                         for i in range(2)]
    for level in LEVELS:
        e = level * response
        for i in range(2):
            adu = (e + np.sqrt(e) * rng.standard_normal((size, size), np.float32) +
                   5 * rng.standard_normal((size, size), np.float32)) / 1.5
            files["flat"].append(save(f"flat_{level}_{i}.fits", adu))
    return files


def stacks(files):
    cyc = lambda lst, n: [lst[i % len(lst)] for i in range(n)]
    nm = []
    for k in range(len(SETTINGS)):
        nm += cyc(files["nm"][5 * k:5 * k + 5], 30)
    dark = []
    for k in range(len(DARK_TIMES)):
        dark += cyc(files["dark"][4 * k:4 * k + 4], 10)
    return {
        "read_noise": cyc(files["bias"], 100),
        "read_noise_200": cyc(files["bias"], 200),
        "noise_model": nm,
        "dark_current": dark,
        "gain": files["flat"] + files["ptc_bias"],
    }


# ---- NumPy side (runs in its own process) -------------------------------------------------

def np_worker(kind, paths, extra):
    import numpy as np
    from astropy.io import fits

    def load(p):
        with fits.open(p, memmap=False) as f:
            return f[0].data.astype(np.float64), f[0].header

    t0 = time.perf_counter()
    out = {}
    if kind in ("read_noise", "read_noise_200"):
        n, mean, m2 = 0, None, None
        for p in paths:
            x, _ = load(p)
            if mean is None:
                mean, m2 = np.zeros_like(x), np.zeros_like(x)
            n += 1
            d = x - mean
            mean += d / n
            m2 += d * (x - mean)
        std = np.sqrt(m2 / (n - 1))
        err = std / np.sqrt(2 * (n - 1))
        out["rdnoise"] = float(np.median(std))
    elif kind in ("noise_model", "dark_current"):
        groups = {}
        for p in paths:
            x, h = load(p)
            key = (float(h["EMGAIN"]), float(h["EXPTIME"])) if kind == "noise_model" else \
                (float(h["EXPTIME"]),)
            s = groups.setdefault(key, [0, np.zeros_like(x), np.zeros_like(x)])
            s[0] += 1
            s[1] += x
            s[2] += x * x
        keys = sorted(groups)
        shape = groups[keys[0]][1].shape
        means = np.array([groups[k][1] / groups[k][0] for k in keys]).reshape(len(keys), -1)
        var = np.array([(groups[k][2] - groups[k][0] * (groups[k][1] / groups[k][0]) ** 2) /
                        (groups[k][0] - 1) / groups[k][0] for k in keys]).reshape(len(keys), -1)
        for k in keys:
            del groups[k][1:]
        if kind == "noise_model":
            X = np.array([[1.0, g * t, g] for g, t in keys])
        else:
            X = np.array([[1.0, t] for (t,) in keys])
        p = X.shape[1]
        npix = means.shape[1]
        beta = np.empty((p, npix))
        cov = np.empty((p, p, npix))
        r2 = np.empty(npix)
        chunk = 1 << 20
        for a in range(0, npix, chunk):
            b = min(npix, a + chunk)
            w = 1 / var[:, a:b]
            y = means[:, a:b]
            A = np.einsum("kn,kj,kl->njl", w, X, X)
            rhs = np.einsum("kn,kj,kn->nj", w, X, y)
            inv = np.linalg.inv(A)
            bt = np.einsum("njl,nl->nj", inv, rhs)
            fit = X @ bt.T
            chi2 = np.sum(w * (y - fit) ** 2, axis=0)
            ybar = np.sum(w * y, axis=0) / np.sum(w, axis=0)
            sst = np.sum(w * (y - ybar) ** 2, axis=0)
            m = len(keys)
            r2[a:b] = 1 - chi2 / sst * (m - 1) / (m - p) if m > p else np.nan
            beta[:, a:b] = bt.T
            cov[:, :, a:b] = np.transpose(inv, (1, 2, 0))
        if kind == "noise_model":
            out["fpn_mean"] = float(beta[0].mean())
            out["dc_mean"] = float(beta[1].mean())
            out["cic_mean"] = float(beta[2].mean())
        else:
            out["darkcur"] = float(np.median(beta[1]))
    elif kind == "gain":
        nlev = int(extra)
        flats = paths[:2 * nlev]
        biases = [load(p)[0] for p in paths[2 * nlev:]]
        bias_mean = sum(biases) / len(biases)
        del biases
        means, vars_, pm, pv = [], [], [], []
        for l in range(nlev):
            a, _ = load(flats[2 * l])
            b, _ = load(flats[2 * l + 1])
            means.append(((a + b) / 2 - bias_mean).mean())
            vars_.append((a - b).var(ddof=1) / 2)
            pm.append(((a + b) / 2 - bias_mean).ravel())
            pv.append(((a - b) ** 2 / 2).ravel())  # var(ddof=1) of two values
        means, vars_ = np.array(means), np.array(vars_)
        npix = pm[0].size
        sigma = np.sqrt(2 * vars_ ** 2 / (npix - 1))
        (slope, icpt), _ = np.polyfit(means, vars_, 1, w=1 / sigma, cov="unscaled")
        out["gain"] = float(1 / slope)
        # Per-pixel: weighted line through (pm, pv), weights 1/(2 model^2), closed form.
        pm, pv = np.array(pm), np.array(pv)
        w = 1 / (2 * (icpt + slope * pm) ** 2)
        sw, sx, sy = w.sum(0), (w * pm).sum(0), (w * pv).sum(0)
        sxx, sxy = (w * pm * pm).sum(0), (w * pm * pv).sum(0)
        det = sw * sxx - sx * sx
        bpix = (sw * sxy - sx * sy) / det
        gmap = 1 / bpix
        gerr = np.sqrt(sw / det) / bpix ** 2
    elif kind == "synth_dark":
        with fits.open(paths[0]) as f:
            m = {h.name: h.data.astype(np.float64) for h in f[1:]}
        g, t = 300.0, 45.0
        a = np.array([1 / g, t, 1.0])
        data = m["FPN"] * a[0] + m["DARK_CURRENT"] * a[1] + m["CIC"] * a[2]
        t0 = time.perf_counter()  # the maps are loaded: time the synthesis only, as calibd
        data = m["FPN"] * a[0] + m["DARK_CURRENT"] * a[1] + m["CIC"] * a[2]
        var = (a[0] ** 2 * m["FPN_ERR"] ** 2 + a[1] ** 2 * m["DARK_CURRENT_ERR"] ** 2 +
               a[2] ** 2 * m["CIC_ERR"] ** 2 + 2 * (a[0] * a[1] * m["COV_F_D"] +
                                                   a[0] * a[2] * m["COV_F_C"] +
                                                   a[1] * a[2] * m["COV_D_C"]))
        out["center"] = float(data[data.shape[0] // 2, data.shape[1] // 2])
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run_numpy(kind, paths, extra=""):
    listing = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    listing.write("\n".join(paths))
    listing.close()
    r = subprocess.run([PY, __file__, "--worker", kind, listing.name, str(extra)],
                       capture_output=True, text=True)
    os.unlink(listing.name)
    if r.returncode != 0:
        raise RuntimeError(f"numpy {kind}: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_ours(bench, product, args, threads):
    r = subprocess.run([bench, product, "--threads", str(threads)] + args, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"noise_bench {product}: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        with open(sys.argv[3]) as f:
            paths = f.read().split("\n")
        np_worker(sys.argv[2], paths, sys.argv[4] if len(sys.argv) > 4 else "")
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bench/noise_bench")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default="")
    ap.add_argument("--skip-numpy", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated products")
    args = ap.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="calibd_noise_bench_")
    os.makedirs(directory, exist_ok=True)
    t0 = time.perf_counter()
    files = write_frames(directory, args.size)
    print(f"frames {args.size}x{args.size} in {directory} ({time.perf_counter() - t0:.0f} s)")
    s = stacks(files)
    nm_out = os.path.join(directory, "nm_product.fits")
    dc_out = os.path.join(directory, "dc_product.fits")
    plan = [
        ("read_noise", s["read_noise"], [], ""),
        ("read_noise_200", s["read_noise_200"], [], ""),
        ("noise_model", s["noise_model"], ["--out", nm_out], ""),
        ("dark_current", s["dark_current"], ["--out", dc_out], ""),
        ("gain", s["gain"], ["--levels", str(len(LEVELS))], len(LEVELS)),
        ("synth_dark", [nm_out], ["--model", nm_out], ""),
        ("bad_pixels", [], ["--dark", dc_out, "--flat", files["flat"][-1]], None),
    ]
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for name, paths, extra_args, extra in plan:
        if only and name not in only:
            continue
        product = "read_noise" if name == "read_noise_200" else name
        bench_args = extra_args + ([] if product in ("synth_dark", "bad_pixels") else paths)
        ours = run_ours(args.bench, product, bench_args, args.threads)
        theirs = None
        if not args.skip_numpy and extra is not None and name != "read_noise_200":
            theirs = run_numpy(name, paths, extra)
        rows.append((name, len(paths) if product not in ("synth_dark", "bad_pixels") else 0,
                     ours, theirs))
        line = f"{name:15s} frames {rows[-1][1]:4d}  calibd {ours['seconds']:8.2f} s " \
               f"{ours['peak_rss_mb']:8.0f} MB"
        if theirs:
            line += f"  numpy {theirs['seconds']:8.2f} s {theirs['peak_rss_mb']:8.0f} MB" \
                    f"  time ratio {theirs['seconds'] / ours['seconds']:6.1f}x" \
                    f"  rss ratio {theirs['peak_rss_mb'] / ours['peak_rss_mb']:5.1f}x"
        print(line, flush=True)
        keys = [k for k in ours if k not in ("product", "frames", "width", "height", "threads",
                                               "seconds", "peak_rss_mb")]
        for k in keys:
            print(f"    {k}: calibd {ours[k]:.6g}" +
                  (f"  numpy {theirs[k]:.6g}" if theirs and k in theirs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
