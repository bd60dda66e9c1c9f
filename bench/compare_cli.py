#!/usr/bin/python3
"""What a user feels: files in -> files out through calibctl and a real calibd, vs ccdproc, one run.

  /usr/bin/python3 bench/compare_cli.py --build build [--lights 4] [--size 4096]
      [--build-frames 20] [--build-size 2048] [--work DIR] [--skip-ccdproc] [--skip-build]
      [--repeat 3] [--combine-memory-mb 1024]

On the same files, in one run (absolute times drift on a shared machine; ratios hold):
  1. `calibctl make-samples` writes raw uint16 frames (SIZE x SIZE including 32 overscan
     columns): 3 biases, darks and flats and LIGHTS lights; and BUILD_FRAMES biases of
     BUILD_SIZE^2 for the combine benchmark.
  2. a real calibd (embedded store in WORK, free 127.0.0.1 ports) gets the detector and
     certified bias/dark/flat masters built from the raw frames (`calibctl build`).
  3. calibrate: `calibctl calibrate` of the lights, all planes (data, UNCERT, MASK, DQ) and
     data only (`--planes data`), after one warm-up frame (the server's master cache is then
     warm, as ccdproc's masters are in memory). ccdproc 2.4: per light `CCDData.read` +
     `ccd_process` (per-row median overscan, trim, bias, exposure-scaled dark, flat, variance
     from gain and read noise) + `write` with uncertainty and mask, masters read once.
  4. build: `calibctl build --method median --no-clip` of the BUILD_FRAMES biases vs ccdproc
     (`subtract_overscan` + `trim_image` per frame, `combine(method='median')`, `write`).
Each calibctl measurement is repeated REPEAT times (the best is reported, every run printed);
ccdproc runs once. The 1-minute load average is recorded next to every figure: other jobs on a
shared machine move absolute times, so compare the ratios of one run, taken when the load is low.
calibd runs with --combine-memory-bytes = COMBINE_MEMORY_MB MiB (builds keep up to 2/3 of it of
pre-processed inputs in memory; the default 256 MiB holds 6 of the 20 2048^2 biases).
The disk floor is the best of REPEAT O_DIRECT writes of the all-planes outputs' byte count (the
disk alone; calibctl's writer cannot beat it). Prints seconds, frames/s and ratios against
issue 9's targets (calibrate >= 10x ccdproc and >= 4 frames/s; data only >= 10 frames/s;
build >= 30x), and one JSON line for scripts.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

OSCAN = 32


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Calibctl:
    def __init__(self, binary, server):
        self.binary, self.server = binary, server

    def __call__(self, *args, json_out=False, quiet=False):
        cmd = [self.binary, "--server", self.server] + (["--json"] if json_out else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"calibctl {' '.join(args[:2])} failed ({r.returncode}): {r.stderr.strip()}")
        if not quiet and r.stderr.strip():
            for line in r.stderr.strip().splitlines()[-2:]:
                print("   ", line, file=sys.stderr)
        return json.loads(r.stdout) if json_out else r.stdout


def load():
    return os.getloadavg()[0]


class Cpu:
    """CPU seconds (user + system) of calibctl (finished children) and calibd (by pid): less
    sensitive to other jobs on the machine than wall time."""
    calibd_pid = None

    @staticmethod
    def now():
        import resource
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        server = 0.0
        if Cpu.calibd_pid is not None:
            with open(f"/proc/{Cpu.calibd_pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return ru.ru_utime + ru.ru_stime, server


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_of(n, label, fn, before=None):
    """Runs fn n times (each after `before`, untimed); returns (best seconds, load average then,
    client CPU s, server CPU s)."""
    runs = []
    for _ in range(n):
        if before is not None:
            before()
        la = load()
        c0, s0 = Cpu.now()
        t = timed(fn)
        c1, s1 = Cpu.now()
        runs.append((t, la, c1 - c0, s1 - s0))
        print(f"    {label}: {t:.3f} s (load {la:.1f}; CPU calibctl {c1 - c0:.2f} s, "
              f"calibd {s1 - s0:.2f} s)", file=sys.stderr)
    return min(runs)


def disk_floor(directory, nbytes, repeat):
    """Best seconds to write `nbytes` to new files in `directory` with O_DIRECT in 8 MiB pwrites
    (what calibctl's writer does, without computing anything): the disk's floor for the outputs."""
    import mmap
    block = 8 << 20
    buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs
    buf.write(b"\x5a" * block)
    best = None
    for i in range(repeat):
        path = os.path.join(directory, f"disk_floor_{i}.bin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_DIRECT", 0))
        t0 = time.perf_counter()
        for off in range(0, nbytes, block):
            os.pwrite(fd, buf, off)
        os.close(fd)
        t = time.perf_counter() - t0
        os.unlink(path)
        best = t if best is None else min(best, t)
    return best


def ccdproc_calibrate(lights, masters, out_dir):
    """ccdproc on the same files; returns seconds for read + process + write of every light."""
    import astropy.units as u
    import ccdproc
    from astropy.nddata import CCDData
    import warnings
    warnings.simplefilter("ignore")
    bias = CCDData.read(masters["bias"], unit="adu")
    dark = CCDData.read(masters["dark"], unit="adu")
    flat = CCDData.read(masters["flat"], unit="adu")
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    for path in lights:
        raw = CCDData.read(path, unit="adu")
        h = raw.header
        out = ccdproc.ccd_process(
            raw, oscan=h["BIASSEC"], oscan_median=True, trim=h["TRIMSEC"], error=True,
            gain=h["GAIN"] * u.electron / u.adu, readnoise=h["RDNOISE"] * u.electron,
            master_bias=bias, dark_frame=dark, exposure_key="EXPTIME", exposure_unit=u.s,
            dark_scale=True, master_flat=flat, gain_corrected=False)
        out.write(os.path.join(out_dir, os.path.basename(path)), overwrite=True,
                  hdu_mask="MASK", hdu_uncertainty="UNCERT")
    return time.perf_counter() - t0


def ccdproc_build(files, out_path):
    import ccdproc
    from astropy.nddata import CCDData
    import warnings
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    frames = []
    for path in files:
        raw = CCDData.read(path, unit="adu")
        c = ccdproc.subtract_overscan(raw, fits_section=raw.header["BIASSEC"], median=True,
                                      overscan_axis=1)
        frames.append(ccdproc.trim_image(c, fits_section=raw.header["TRIMSEC"]))
    master = ccdproc.combine(frames, method="median", sigma_clip=False, dtype="float32")
    master.write(out_path, overwrite=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="CMake build directory")
    ap.add_argument("--lights", type=int, default=4)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--build-frames", type=int, default=20)
    ap.add_argument("--build-size", type=int, default=2048)
    ap.add_argument("--work", help="work directory (default a temporary one, removed)")
    ap.add_argument("--skip-ccdproc", action="store_true")
    ap.add_argument("--skip-build", action="store_true", help="skip the combine benchmark")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each calibctl measurement")
    ap.add_argument("--combine-memory-mb", type=int, default=1024,
                    help="calibd --combine-memory-bytes, in MiB")
    args = ap.parse_args()

    calibctl_bin = os.path.abspath(os.path.join(args.build, "client", "calibctl"))
    calibd_bin = os.path.abspath(os.path.join(args.build, "server", "calibd"))
    work = args.work or tempfile.mkdtemp(prefix="compare_cli_")
    os.makedirs(work, exist_ok=True)
    port, mport = free_port(), free_port()
    server = f"127.0.0.1:{port}"
    ctl = Calibctl(calibctl_bin, server)
    log = open(os.path.join(work, "calibd.log"), "w")
    calibd = subprocess.Popen([calibd_bin, "--listen", server, "--metrics-listen",
                               f"127.0.0.1:{mport}", "--store", os.path.join(work, "store"),
                               "--combine-memory-bytes", str(args.combine_memory_mb << 20)],
                              stdout=log, stderr=subprocess.STDOUT)
    Cpu.calibd_pid = calibd.pid
    results = {}
    try:
        print(f"samples in {work} ...", file=sys.stderr)
        night = ctl("make-samples", "-o", os.path.join(work, "night"), "--width",
                    str(args.size - OSCAN), "--height", str(args.size), "--overscan", str(OSCAN),
                    "--frames", "3", "--lights", str(args.lights), "--overwrite", json_out=True)
        for _ in range(100):
            r = subprocess.run([calibctl_bin, "--server", server, "health"], capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        ctl("detector", "put", night["spec"])
        detector = night["detector"]
        for kind in ("bias", "dark", "flat"):
            ctl("build", "--detector", detector, "--kind", kind, "--method", "median", "--no-clip",
                "--certify-from", night["certify_from"], *night[kind], quiet=True)
        masters = {}
        for kind in ("bias", "dark", "flat"):
            masters[kind] = os.path.join(work, f"master_{kind}.fits")
            ctl("get", "--detector", detector, "--kind", kind, "--version", "1", "-o",
                masters[kind], quiet=True)
        lights = night["light"]
        out_all, out_data = os.path.join(work, "out_all"), os.path.join(work, "out_data")
        # Warm-up: the server loads and prepares the masters once.
        ctl("calibrate", "--detector", detector, "-o", os.path.join(work, "warm"), "--overwrite",
            lights[0], quiet=True)
        def calibrate(out, *extra):
            ctl("calibrate", "--detector", detector, "-o", out, "--overwrite", "--stats",
                *extra, *lights)
        # New files each run, as a user's would be (and as ccdproc's are); the removal of the
        # previous run's is not timed.
        t_all, la_all, cc_all, sc_all = best_of(args.repeat, "calibrate all planes",
                                                lambda: calibrate(out_all),
                                                before=lambda: shutil.rmtree(out_all, True))
        t_data, la_data, cc_data, sc_data = best_of(
            args.repeat, "calibrate data only", lambda: calibrate(out_data, "--planes", "data"),
            before=lambda: shutil.rmtree(out_data, True))
        n = len(lights)
        # The same bytes as the all-planes outputs, written with nothing computed.
        out_bytes = sum(os.path.getsize(os.path.join(out_all, f)) for f in os.listdir(out_all))
        results.update(disk_floor_all_s=disk_floor(work, out_bytes, args.repeat),
                       out_all_mb=out_bytes / 1e6)
        results.update(calibrate_all_s=t_all, calibrate_data_s=t_data,
                       calibrate_all_fps=n / t_all, calibrate_data_fps=n / t_data,
                       load_calibrate_all=la_all, load_calibrate_data=la_data,
                       cpu_calibrate_all_client_s=cc_all, cpu_calibrate_all_server_s=sc_all,
                       cpu_calibrate_data_client_s=cc_data, cpu_calibrate_data_server_s=sc_data)
        if not args.skip_ccdproc:
            print("ccdproc calibrate ...", file=sys.stderr)
            la = load()
            p0 = time.process_time()
            t_cp = ccdproc_calibrate(lights, masters, os.path.join(work, "out_ccdproc"))
            results.update(ccdproc_calibrate_s=t_cp, calibrate_ratio=t_cp / t_all,
                           load_ccdproc_calibrate=la,
                           cpu_ccdproc_calibrate_s=time.process_time() - p0)

        if not args.skip_build:
            b2k = ctl("make-samples", "-o", os.path.join(work, "b2k"), "--width",
                      str(args.build_size - OSCAN), "--height", str(args.build_size),
                      "--overscan", str(OSCAN), "--frames", str(args.build_frames), "--lights",
                      "0", "--detector", "bench/b2k", "--overwrite", json_out=True)
            ctl("detector", "put", b2k["spec"])
            t_build, la_build, cc_build, sc_build = best_of(
                args.repeat, "build median",
                lambda: ctl("build", "--detector", "bench/b2k", "--kind", "bias", "--method",
                            "median", "--no-clip", *b2k["bias"], quiet=True))
            results.update(build_s=t_build, load_build=la_build, cpu_build_client_s=cc_build,
                           cpu_build_server_s=sc_build)
            if not args.skip_ccdproc:
                print("ccdproc combine ...", file=sys.stderr)
                la = load()
                p0 = time.process_time()
                t_cb = ccdproc_build(b2k["bias"], os.path.join(work, "ccdproc_bias.fits"))
                results.update(ccdproc_build_s=t_cb, build_ratio=t_cb / t_build,
                               load_ccdproc_build=la,
                               cpu_ccdproc_build_s=time.process_time() - p0)
    finally:
        calibd.terminate()
        calibd.wait(timeout=30)
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)

    n = args.lights
    print(f"\ncalibrate {n} x {args.size}^2 uint16, files -> files, one run:")
    print(f"  calibctl all planes  {results['calibrate_all_s']:7.2f} s  "
          f"{results['calibrate_all_fps']:5.2f} frames/s  (target >= 4)   "
          f"load {results['load_calibrate_all']:.1f}")
    print(f"  calibctl data only   {results['calibrate_data_s']:7.2f} s  "
          f"{results['calibrate_data_fps']:5.2f} frames/s  (target >= 10)  "
          f"load {results['load_calibrate_data']:.1f}")
    print(f"  disk floor           {results['disk_floor_all_s']:7.2f} s  "
          f"(O_DIRECT write of the same {results['out_all_mb']:.0f} MB, nothing computed)")
    if "ccdproc_calibrate_s" in results:
        print(f"  ccdproc all planes   {results['ccdproc_calibrate_s']:7.2f} s  "
              f"ratio {results['calibrate_ratio']:.1f}x  (target >= 10x)   "
              f"load {results['load_ccdproc_calibrate']:.1f}")
    def cpu_line(label, client, server, ccdproc_key):
        total = results[client] + results[server]
        line = (f"  CPU {label}: calibctl {results[client]:.2f} s + calibd {results[server]:.2f} s"
                f" = {total:.2f} s")
        if ccdproc_key in results:
            line += f"; ccdproc {results[ccdproc_key]:.2f} s ({results[ccdproc_key] / total:.1f}x)"
        print(line)
    cpu_line("all planes", "cpu_calibrate_all_client_s", "cpu_calibrate_all_server_s",
             "cpu_ccdproc_calibrate_s")
    cpu_line("data only", "cpu_calibrate_data_client_s", "cpu_calibrate_data_server_s",
             "cpu_ccdproc_calibrate_s")
    if "build_s" in results:
        print(f"build median of {args.build_frames} x {args.build_size}^2 "
              f"(--combine-memory-bytes {args.combine_memory_mb} MiB):")
        print(f"  calibctl build       {results['build_s']:7.2f} s  "
              f"load {results['load_build']:.1f}")
        if "ccdproc_build_s" in results:
            print(f"  ccdproc combine      {results['ccdproc_build_s']:7.2f} s  "
                  f"ratio {results['build_ratio']:.1f}x  (target >= 30x)   "
                  f"load {results['load_ccdproc_build']:.1f}")
        cpu_line("build", "cpu_build_client_s", "cpu_build_server_s", "cpu_ccdproc_build_s")
    print(json.dumps({k: round(v, 4) for k, v in results.items()}))


if __name__ == "__main__":
    main()
