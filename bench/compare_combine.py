#!/usr/bin/python3
"""Combine speed and memory: calibd against astropy ccdproc 2.4 and plain NumPy, same inputs, same run.

Usage: /usr/bin/python3 bench/compare_combine.py [--bench build-combine/bench/combine_bench]
                                                 [--skip-ccdproc] [--repeat 3]

1. combine_bench writes its 20 frames of 2048x2048 (BM_Dump) as raw float32 to a temp dir;
2. each baseline runs in its own Python process on those frames (so its peak RSS is its own):
   ccdproc.combine(method='median'), ccdproc.combine(method='average', sigma_clip=True),
   ccdproc.combine(method='average', clip_extrema=True, nlow=1, nhigh=1), np.median(axis=0),
   and NumPy's drop-lowest-and-highest mean;
3. combine_bench runs the same combines (1 and 2 threads) and a C sorting-network median
   (BM_AnchorMedian20, PERFORMANCE.md's anchor) in the same process;
then prints times, peak RSS and the ratios. Absolute times drift on a shared machine; the
ratios, measured in one run, are what to read.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

N, SIZE = 20, 2048
PY = "/usr/bin/python3"


def worker(kind, directory, repeat):
    import numpy as np
    frames = [np.fromfile(os.path.join(directory, f"frame_{i}.f32"), dtype="<f4").reshape(SIZE, SIZE)
              for i in range(N)]
    times = []
    for _ in range(repeat):
        if kind.startswith("ccdproc"):
            import warnings
            from astropy import units as u
            from astropy.nddata import CCDData
            import ccdproc
            ccds = [CCDData(f, unit=u.adu) for f in frames]
            kwargs = {"median": dict(method="median"),
                      "ccdproc_clipped": dict(method="average", sigma_clip=True,
                                              sigma_clip_low_thresh=3, sigma_clip_high_thresh=3),
                      "ccdproc_extrema": dict(method="average", clip_extrema=True, nlow=1, nhigh=1),
                      }[kind.replace("ccdproc_median", "median")]
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ccdproc.combine(ccds, **kwargs)
            times.append(time.perf_counter() - t0)
        elif kind == "numpy_median":
            stack = np.stack(frames)
            t0 = time.perf_counter()
            np.median(stack, axis=0)
            times.append(time.perf_counter() - t0)
        elif kind == "numpy_extrema":
            stack = np.stack(frames)
            t0 = time.perf_counter()
            s = np.sort(stack, axis=0)
            s[1:-1].mean(axis=0)
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"kind": kind, "seconds": min(times), "peak_rss_mb": peak}))


def run_worker(kind, directory, repeat):
    out = subprocess.run([PY, os.path.abspath(__file__), "--worker", kind, directory,
                          "--repeat", str(repeat)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..",
                                                     "build-combine", "bench", "combine_bench"))
    ap.add_argument("--skip-ccdproc", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="runs per baseline (min is kept)")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.repeat)
        return 0

    with tempfile.TemporaryDirectory(prefix="calibd_combine_") as d:
        env = dict(os.environ, CALIBD_BENCH_DUMP=d)
        subprocess.run([args.bench, "--benchmark_filter=BM_Dump"], check=True, env=env,
                       capture_output=True)
        baselines = {}
        kinds = ["numpy_median", "numpy_extrema"]
        if not args.skip_ccdproc:
            kinds += ["ccdproc_median", "ccdproc_clipped", "ccdproc_extrema"]
        for kind in kinds:
            baselines[kind] = run_worker(kind, d, args.repeat)
            print(f"{kind:18s} {baselines[kind]['seconds'] * 1e3:10.1f} ms"
                  f"  peak RSS {baselines[kind]['peak_rss_mb']:8.0f} MB", flush=True)

        out = subprocess.run(
            [args.bench, "--benchmark_filter=BM_(Median20|Median20NoVariance|AnchorMedian20|ClippedMean20|ExtremaMean20|DefaultClip20)/",
             "--benchmark_format=json", "--benchmark_min_time=1",
             f"--benchmark_repetitions={max(1, args.repeat)}",
             "--benchmark_report_aggregates_only=true" if args.repeat > 1 else "--benchmark_color=false"],
            check=True, capture_output=True, text=True)
        ours = {}
        for b in json.loads(out.stdout)["benchmarks"]:
            if args.repeat > 1 and b.get("aggregate_name") != "median":
                continue
            name = b["run_name"] if "run_name" in b else b["name"]
            ours[name] = (b["real_time"] / 1e3, b.get("peak_rss_MB", 0.0))  # ms → s
        for name, (sec, rss) in sorted(ours.items()):
            print(f"calibd {name:34s} {sec * 1e3:8.1f} ms  peak RSS (process) {rss:6.0f} MB")

        def ratio(base, ours_name):
            if base not in baselines or ours_name not in ours:
                return "n/a"
            return f"{baselines[base]['seconds'] / ours[ours_name][0]:7.1f}x"

        def anchor(ours_name, threads):
            a = ours.get(f"BM_AnchorMedian20/{threads}/real_time")
            if a is None or ours_name not in ours:
                return "n/a"
            return f"{ours[ours_name][0] / a[0]:5.2f}x"

        print("\nmedian against the C sorting-network anchor (calibd time / anchor time, same run):")
        for threads in (1, 2):
            print(f"  {threads} thread(s): with MAD variance {anchor(f'BM_Median20/{threads}/real_time', threads)}"
                  f"   without {anchor(f'BM_Median20NoVariance/{threads}/real_time', threads)}")

        print("\nratios (baseline time / calibd time), 20 x 2048x2048:")
        for threads in (1, 2):
            print(f"  {threads} thread(s):")
            print(f"    median        vs ccdproc {ratio('ccdproc_median', f'BM_Median20/{threads}/real_time')}"
                  f"   vs NumPy {ratio('numpy_median', f'BM_Median20/{threads}/real_time')}")
            print(f"    3σ-clip mean  vs ccdproc {ratio('ccdproc_clipped', f'BM_ClippedMean20/{threads}/real_time')}")
            print(f"    extrema mean  vs ccdproc {ratio('ccdproc_extrema', f'BM_ExtremaMean20/{threads}/real_time')}"
                  f"   vs NumPy {ratio('numpy_extrema', f'BM_ExtremaMean20/{threads}/real_time')}")
        print(f"  load average during the run: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
