#!/usr/bin/env bash
# The memory-budget load run (issue 10): calibd with --frame-memory-bytes (1.5 GiB), a 1 GiB
# master cache and a 512 MiB buffer pool — the compose/Kubernetes figures — on a temporary
# embedded store and free 127.0.0.1 ports; calibd_load sends 4096² uint16 frames (all planes)
# over 64 concurrent streams from 4 client connections and accounts for every frame (calibrated
# and byte-identical to a frame calibrated alone, or refused with RESOURCE_EXHAUSTED; any other
# outcome fails), probes health every 200 ms, and samples the server's RSS every 50 ms. The run
# passes when nothing is lost or wrong, health answered every probe, and the peak RSS stays
# under budget + cache + pool + the idle server's own RSS. Takes ~1–3 min on 2 cores; not in
# `make test` (tests/integration/frame_memory_test.cc is its small variant there).
#
#   bench/load/run_load.sh [BUILD_DIR]          # default build/
#   STREAMS=64 CONNECTIONS=4 FRAMES=2 WIDTH=4096 HEIGHT=4096 BUDGET=1610612736 bench/load/run_load.sh
#
# Prints the load generator's table, the figures and the load average, and writes
# $OUT (default /tmp/calibd-load-run.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(readlink -f "${1:-$root/build}")
streams=${STREAMS:-64}
connections=${CONNECTIONS:-4}  # the streams come from this many client connections
frames=${FRAMES:-2}
width=${WIDTH:-4096}
height=${HEIGHT:-4096}
budget=${BUDGET:-1610612736}   # 1.5 GiB
cache=${CACHE:-1073741824}     # 1 GiB
pool=${POOL:-536870912}        # 512 MiB
deadline=${DEADLINE_S:-0}      # per stream; 0 = none (the server's --frame-memory-wait-seconds)
wait_s=${WAIT_S:-60}           # --frame-memory-wait-seconds
out=${OUT:-/tmp/calibd-load-run.json}
py=${CALIBD_PYTHON:-/usr/bin/python3}

for b in "$build/server/calibd" "$build/bench/load/calibd_load"; do
  [ -x "$b" ] || { echo "run_load: build $b first (cmake --build $build --target calibd calibd_load)" >&2; exit 2; }
done
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d /tmp/calibd-load.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "${KEEP:-}" ] && { echo "run_load: kept $work" >&2; return; }
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/spool"
port=$(free_port)
mport=$(free_port)
"$build/server/calibd" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
  --store "$work/store" --spool-dir "$work/spool" \
  --frame-memory-bytes "$budget" --frame-memory-wait-seconds "$wait_s" \
  --cache-bytes "$cache" --buffer-pool-bytes "$pool" --max-concurrent-streams "$streams" \
  >"$work/calibd.log" 2>&1 &
pid=$!
load=("$build/bench/load/calibd_load" --server "127.0.0.1:$port" --width "$width" --height "$height")
"${load[@]}" --wait_serving_s 60 --setup
sleep 1
idle_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
echo "run_load: calibd pid $pid, idle RSS $((idle_kb / 1024)) MiB; budget $((budget >> 20)) MiB," \
  "cache $((cache >> 20)) MiB, pool $((pool >> 20)) MiB; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Every 250 ms: the server's RSS and its frame-memory gauges (in use, waiting), keeping the
# largest of each, and the RSS at the moment the budget's in-use peaked.
"$py" - "$pid" "$mport" "$work/samples.json" <<'PY' &
import json, re, signal, sys, time, urllib.request
pid, port, out = sys.argv[1], sys.argv[2], sys.argv[3]
peak = {"rss_mib": 0, "in_use_mib": 0, "waiting_mib": 0, "rss_at_in_use_peak_mib": 0}
def dump(*_):
    json.dump(peak, open(out, "w"))
    sys.exit(0)
signal.signal(signal.SIGTERM, dump)
while True:
    try:
        rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1)) / 1024
        m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        g = {k: float(v) / 2**20 for k, v in re.findall(
            r'^calibd_frame_memory_bytes\{[^}]*"(in_use|waiting)"[^}]*\} (\S+)', m, re.M)}
        peak["rss_mib"] = max(peak["rss_mib"], rss)
        if g.get("in_use", 0) >= peak["in_use_mib"]:
            peak["in_use_mib"] = g.get("in_use", 0)
            peak["rss_at_in_use_peak_mib"] = rss
        peak["waiting_mib"] = max(peak["waiting_mib"], g.get("waiting", 0))
    except Exception:
        pass
    time.sleep(0.25)
PY
sampler=$!
t0=$(date +%s)
status=0
"${load[@]}" --server_pid "$pid" --streams "$streams" --connections "$connections" --frames "$frames" --warmup 0 \
  --planes all --deadline_s "$deadline" --json "$out" || status=$?
kill "$sampler"; wait "$sampler" || true
echo "run_load: load average after: $(cut -d' ' -f1-3 /proc/loadavg); wall $(( $(date +%s) - t0 )) s"
echo "run_load: sampled every 250 ms: $(cat "$work/samples.json" 2>/dev/null)"
metrics=$("$py" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
  "http://127.0.0.1:$mport/metrics" || true)
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
cache_now=$(awk '/^calibd_cache_bytes/ {s += $2} END {print s + 0}' <<<"$metrics")
refusals=$(awk '/^calibd_frame_memory_refusals_total/ {s += $2} END {print s + 0}' <<<"$metrics")
echo "run_load: server VmHWM $((hwm_kb / 1024)) MiB; calibd_cache_bytes $((${cache_now%.*} >> 20)) MiB;" \
  "calibd_frame_memory_refusals_total $refusals"
[ $status -eq 0 ] || { echo "run_load: FAIL: calibd_load exited $status" >&2; tail -20 "$work/calibd.log" >&2; exit 1; }
"$py" - "$out" "$budget" "$cache" "$pool" "$idle_kb" "$hwm_kb" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["runs"][-1]
budget, cache, pool, idle_kb, hwm_kb = map(int, sys.argv[2:7])
limit_mb = (budget + cache + pool) / 2**20 + idle_kb / 1024
peak_mb = max(run["server_rss_peak_mb"] * 1e6 / 2**20, hwm_kb / 1024)  # MiB
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok = ok and cond
check(run["calibrated"] + run["refused"] == run["sent"],
      f'every frame accounted for: {run["calibrated"]} calibrated + {run["refused"]} refused '
      f'(RESOURCE_EXHAUSTED) = {run["sent"]} sent')
check(run["wrong"] == 0, f'{run["wrong"]} calibrated frames differ from the reference')
check(run["health_failures"] == 0,
      f'health: {run["health_checks"]} probes, {run["health_failures"]} failed, '
      f'worst {run["health_max_ms"]:.0f} ms')
check(peak_mb <= limit_mb, f'peak RSS {peak_mb:.0f} MiB <= budget + cache + pool + idle '
      f'{limit_mb:.0f} MiB')
print(f'latency p50 {run["p50_ms"] / 1000:.1f} s, p99 {run["p99_ms"] / 1000:.1f} s, '
      f'max {run["max_ms"] / 1000:.1f} s; {run["frames_per_s"]:.2f} frames/s, '
      f'server {run["server_cpu_cores"]:.2f} cores')
sys.exit(0 if ok else 1)
PY
