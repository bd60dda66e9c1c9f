#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] — every calibd benchmark in one run, with ratios against the
# machine's own yardsticks measured in the same run (absolute times drift on a shared machine).
#
#   bench/run.sh build            # what `make bench` runs
#   FRAMES=10 STREAMS=1,2,4 bench/run.sh build-integ
#
# Steps:
#   1. build calibd, calibd_load and the Google Benchmark programs that exist;
#   2. raw loopback TCP with Debian's iperf3 (one stream) — the transport's ceiling;
#   3. start calibd on a temporary embedded store; calibd_load --setup puts a 4096×4096
#      detector with bias, dark and flat masters and certifies them;
#   4. calibd_load streams 4096×4096 uint16 frames with 1, 2 and 4 concurrent streams, all
#      planes and data only: frames/s, MB/s in/out, p50/p99 latency, server CPU and RSS;
#   5. ccdproc calibrating the same kind of frame from files (bench/load/ccdproc_frame.py);
#   6. calibrate_bench / combine_bench / store_bench through their compare scripts, if present
#      (LOAD_ONLY=1 skips them);
#   7. the ratios against the targets of issues 4 and 9.
# Run it on an otherwise idle machine; it takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
BUILD=${1:-build}
FRAMES=${FRAMES:-12}            # frames per stream per configuration
STREAMS=${STREAMS:-1,2,4}
PY=/usr/bin/python3
JOBS=${JOBS:-2}

log() { printf '\n== %s\n' "$*"; }

# ---- 1. build -----------------------------------------------------------------------------
log "build ($BUILD)"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=(calibd calibd_load)
if [ -z "${LOAD_ONLY:-}" ]; then
  for b in bandwidth_bench calibrate_bench combine_bench store_bench; do
    if [ -f "bench/$b.cc" ]; then targets+=("$b"); fi
  done
fi
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/calibd-bench.XXXXXX")
SERVER_PID=""
IPERF_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- 2. raw loopback TCP --------------------------------------------------------------------
log "raw loopback TCP (iperf3, 1 stream, 5 s)"
TCP_MBPS=""
if command -v iperf3 >/dev/null; then
  IPORT=$(free_port)
  iperf3 -s -1 -B 127.0.0.1 -p "$IPORT" >/dev/null 2>&1 &
  IPERF_PID=$!
  sleep 0.5
  if iperf3 -c 127.0.0.1 -p "$IPORT" -t 5 -J >"$WORK/iperf.json" 2>/dev/null; then
    TCP_MBPS=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f" % (d["end"]["sum_received"]["bits_per_second"]/8e6))' "$WORK/iperf.json")
    echo "loopback TCP: $TCP_MBPS MB/s"
  else
    echo "iperf3 failed; no TCP baseline"
  fi
  wait "$IPERF_PID" 2>/dev/null || true
  IPERF_PID=""
else
  echo "iperf3 not installed (scripts/install-deps installs it); no TCP baseline"
fi

# ---- 3. calibd with masters -----------------------------------------------------------------
log "start calibd"
PORT=$(free_port)
MPORT=$(free_port)
# With a token file, as deployed (deploy/calibd.yaml): the figures include authentication.
TOKEN="bench-$RANDOM$RANDOM"
echo "$TOKEN admin bench" >"$WORK/tokens"
"$BUILD/server/calibd" --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$MPORT" \
  --store "$WORK/store" --tokens "$WORK/tokens" >"$WORK/calibd.log" 2>&1 &
SERVER_PID=$!
LOAD="$BUILD/bench/load/calibd_load"
"$LOAD" --server "127.0.0.1:$PORT" --token "$TOKEN" --wait_serving_s 60 --setup || {
  echo "setup failed; calibd log:"; tail -n 30 "$WORK/calibd.log"; exit 1; }

# ---- 4. load ----------------------------------------------------------------------------------
log "load: 4096x4096 uint16 frames, streams $STREAMS, $FRAMES frames per stream"
"$LOAD" --server "127.0.0.1:$PORT" --token "$TOKEN" --server_pid "$SERVER_PID" --streams "$STREAMS" \
  --frames "$FRAMES" --planes all,data --json "$WORK/load.json"

# RSS independent of the number of frames: the same configuration again on the warm server.
log "steady state: all planes x1 again, $((FRAMES * 2)) frames, on the warm server"
"$LOAD" --server "127.0.0.1:$PORT" --token "$TOKEN" --server_pid "$SERVER_PID" --streams 1 \
  --frames "$((FRAMES * 2))" --planes all --json "$WORK/steady.json"

# ---- 5. ccdproc on the same kind of frame -----------------------------------------------------
log "ccdproc 2.4 calibrating a 4096x4096 frame from files"
CCDPROC_S=""
if $PY "$SRC/bench/load/ccdproc_frame.py" --size 4096 --repeat 3 --json "$WORK/ccdproc.json"; then
  CCDPROC_S=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["median_s"])' "$WORK/ccdproc.json")
fi

# ---- 6. the other benchmark programs ----------------------------------------------------------
# Each compare script runs its own Google Benchmark program next to its baselines; programs
# without a script run alone. LOAD_ONLY=1 skips this step.
if [ -z "${LOAD_ONLY:-}" ]; then
  if [ -f bench/compare_calibrate.py ] && [ -x "$BUILD/bench/calibrate_bench" ]; then
    log "bench/compare_calibrate.py (calibrate_bench, bandwidth_bench, ccdproc, NumPy)"
    $PY bench/compare_calibrate.py --build "$BUILD" || echo "compare_calibrate.py failed"
  fi
  if [ -f bench/compare_combine.py ] && [ -x "$BUILD/bench/combine_bench" ]; then
    log "bench/compare_combine.py (combine_bench, ccdproc, NumPy)"
    $PY bench/compare_combine.py --bench "$BUILD/bench/combine_bench" || echo "compare_combine.py failed"
  fi
  if [ -x "$BUILD/bench/store_bench" ]; then
    log "store_bench"
    "$BUILD/bench/store_bench" || echo "store_bench failed"
  fi
fi

# ---- 7. ratios -------------------------------------------------------------------------------
log "summary (targets from issues 4 and 9)"
$PY - "$WORK/load.json" "${TCP_MBPS:-0}" "${CCDPROC_S:-0}" "$WORK/steady.json" <<'PYEOF'
import json, sys
load = json.load(open(sys.argv[1]))
steady = json.load(open(sys.argv[4]))["runs"][0]
tcp = float(sys.argv[2])
ccdproc_s = float(sys.argv[3])
ok = True
def check(name, passed, detail):
    global ok
    ok &= passed
    print(f"  [{'PASS' if passed else 'FAIL'}] {name}: {detail}")
runs = {(r["planes"], r["streams"]): r for r in load["runs"]}
for (planes, streams), r in sorted(runs.items()):
    moved = r["mb_in_per_s"] + r["mb_out_per_s"]
    tcp_ratio = f", {moved / tcp:.0%} of raw TCP" if tcp else ""
    speedup = f", {ccdproc_s * r['frames_per_s']:.1f}x ccdproc's frame rate" if ccdproc_s else ""
    print(f"  {planes:4s} x{streams}: {r['frames_per_s']:.2f} frames/s, {moved:.0f} MB/s moved"
          f"{tcp_ratio}, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, server CPU "
          f"{r['server_cpu_cores']:.2f} cores, RSS {r['server_rss_start_mb']:.0f}->{r['server_rss_end_mb']:.0f} MB"
          f"{speedup}")
best = max((r for r in load["runs"] if r["planes"] == "all"),
           key=lambda r: r["mb_in_per_s"] + r["mb_out_per_s"])
if tcp:
    moved = best["mb_in_per_s"] + best["mb_out_per_s"]
    check("all planes: bytes moved >= 50% of loopback TCP (issue 9)", moved >= 0.5 * tcp, f"{moved:.0f} / {tcp:.0f} MB/s = {moved/tcp:.0%}")
fa = max(r["frames_per_s"] for r in load["runs"] if r["planes"] == "all")
fd = max(r["frames_per_s"] for r in load["runs"] if r["planes"] == "data")
check(">= 5 frames/s with all planes", fa >= 5, f"{fa:.2f}")
check(">= 10 frames/s data only", fd >= 10, f"{fd:.2f}")
for planes in ("all", "data"):
    r = runs.get((planes, 1))
    if r:
        check(f"p99 < 2x median at 1 stream ({planes})", r["p99_ms"] < 2 * r["p50_ms"],
              f"p99/p50 = {r['p99_ms'] / r['p50_ms']:.2f}")
# Pools and caches grow while the first configurations warm them (bounded by --buffer-pool-bytes
# and --cache-bytes); after that, sending twice as many frames must not grow the server.
growth = steady["server_rss_end_mb"] - steady["server_rss_start_mb"]
peak = max(r["server_rss_peak_mb"] for r in load["runs"] + [steady])
check("server RSS bounded (warm server, 2x the frames: growth < 64 MB)", growth < 64,
      f"{steady['server_rss_start_mb']:.0f} -> {steady['server_rss_end_mb']:.0f} MB over "
      f"{steady['frames']} frames; peak over the whole run {peak:.0f} MB")
if ccdproc_s:
    print(f"  ccdproc 2.4: {ccdproc_s:.2f} s per frame from files ({1/ccdproc_s:.2f} frames/s)")
sys.exit(0 if ok else 1)
PYEOF
