#!/usr/bin/env bash
# The container image, built and run for real (ctest: container_image).
#
#   tests/container/container_test.sh BUILD_DIR/server/calibd BUILD_DIR/client/calibctl
#
# 1. builds the image from a clean tree of HEAD (`scripts/build-image --rev HEAD`: git
#    archive, no build directories in the context), timed;
# 2. ldd of both binaries inside the runtime stage finds every library;
# 3. runs it with the Kubernetes ConfigMap's flags (deploy/components/flags/calibd.env), a
#    named volume for the embedded store, a read-only root filesystem and a tmpfs spool, on
#    free 127.0.0.1 ports (host network); waits for the container's own HEALTHCHECK to
#    report healthy, with `SERVING` in its output; readiness and liveness on the health port;
# 4. the process runs as the non-root user (uid/gid 10001 in /proc/1/status), cannot write
#    the root filesystem;
# 5. `calibctl make-samples` frames: masters built and lights calibrated through the
#    container, and the same through the native binary on a temporary store; every plane of
#    every calibrated frame is bit-identical (tests/container/compare_fits.py, astropy);
# 6. `docker stop` drains and exits 0; a new container on the same volume still has the
#    masters (the store lives on the volume, not in the container).
#
# Exit 77 (ctest: skipped) ONLY when no Docker daemon can run on this machine, saying why.
set -euo pipefail

calibd=$(readlink -f "$1")
calibctl=$(readlink -f "$2")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${CALIBD_PYTHON:-/usr/bin/python3}
t0=$(date +%s)

log() { echo "container_test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

if ! command -v docker >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
  log "SKIP: no docker on this machine (Debian package docker.io, scripts/install-deps)"
  exit 77
fi
if ! why=$("$root/scripts/docker-up" 2>&1); then
  log "SKIP: no Docker daemon can run here: $why"
  exit 77
fi

work=$(mktemp -d /tmp/calibd-container-test.XXXXXX)
id=$$-$(date +%s)
tag=calibd-test:$id
ctr=calibd-test-$id
vol=calibd-test-store-$id
native_pid=""
cleanup() {
  set +e
  [ -n "$native_pid" ] && kill "$native_pid" 2>/dev/null && wait "$native_pid" 2>/dev/null
  docker rm -f "$ctr" "$ctr-2" >/dev/null 2>&1
  docker volume rm -f "$vol" >/dev/null 2>&1
  docker image rm "$tag" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- 1. build from a clean tree of HEAD ----
tb=$(date +%s)
# CALIBD_IMAGE_REV= (empty) builds the work tree instead (while developing the image).
rev_args=(--rev "${CALIBD_IMAGE_REV-HEAD}")
[ -n "${CALIBD_IMAGE_REV-HEAD}" ] || rev_args=()
if ! "$root/scripts/build-image" "${rev_args[@]}" --tag "$tag" >"$work/build.out" 2>"$work/build.log"; then
  tail -n 40 "$work/build.log" >&2
  fail "image build failed"
fi
build_s=$(( $(date +%s) - tb ))
size=$(docker image inspect -f '{{.Size}}' "$tag")
log "image $tag built in ${build_s}s, $((size / 1000000)) MB"

# ---- 2. ldd in the runtime stage ----
ldd_out=$(docker run --rm --network none --entrypoint sh "$tag" -c \
  'ldd /usr/local/bin/calibd /usr/local/bin/calibctl')
if grep -q 'not found' <<<"$ldd_out"; then
  grep 'not found' <<<"$ldd_out" >&2
  fail "a runtime library is missing from the image"
fi
[ "$(grep -c '=>' <<<"$ldd_out")" -gt 10 ] || fail "ldd listed almost nothing: $ldd_out"
log "ldd: every library of calibd and calibctl found"

# ---- 3. run: volume store, read-only root, tmpfs spool, own HEALTHCHECK ----
run_container() {  # name, grpc port, metrics port, more docker run options...
  local name=$1 port=$2 mport=$3
  shift 3
  docker run -d --name "$name" --network host --read-only "$@" \
    --tmpfs /var/spool/calibd:rw,uid=10001,gid=10001,mode=0700,size=512m \
    -v "$vol:/var/lib/calibd" \
    -e "CALIBD_LISTEN=127.0.0.1:$port" -e "CALIBD_METRICS_LISTEN=127.0.0.1:$mport" \
    -e "CALIBD_SERVER=127.0.0.1:$port" \
    --health-interval 1s --health-start-period 30s \
    "$tag" >/dev/null
}
wait_healthy() {  # name
  local s=""
  for _ in $(seq 1 60); do
    s=$(docker inspect -f '{{.State.Health.Status}}' "$1")
    [ "$s" = healthy ] && return 0
    [ "$(docker inspect -f '{{.State.Running}}' "$1")" = true ] || break
    sleep 0.5
  done
  docker logs "$1" 2>&1 | tail -n 20 >&2
  fail "$1 did not become healthy (last: $s)"
}
# With the Kubernetes flags (deploy/components/flags/calibd.env: every value must parse, or
# calibd exits 2), but free ports, no token file, and the image's store and spool paths.
port=$(free_port)
mport=$(free_port)
hport=$(free_port)
run_container "$ctr" "$port" "$mport" --env-file "$root/deploy/components/flags/calibd.env" \
  -e "CALIBD_HEALTH_LISTEN=127.0.0.1:$hport" -e CALIBD_TOKENS=
wait_healthy "$ctr"
probe=$(docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' "$ctr")
grep -q 'SERVING' <<<"$probe" || fail "HEALTHCHECK output has no SERVING: $probe"
log "HEALTHCHECK: healthy ($(tr -s '\n' ' ' <<<"$probe" | cut -c1-60))"
curl_metrics=$("$python" -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$mport/metrics', timeout=5).read().decode())")
grep -q '^calibd_' <<<"$curl_metrics" || fail "no calibd_ metrics on the metrics port"
grep -q '^calibd_store_up 1' <<<"$curl_metrics" || fail "calibd_store_up is not 1"
# The kubelet's probes: readiness ("") and liveness on the plaintext health port.
for svc in "" liveness; do
  out=$("$calibctl" --server "127.0.0.1:$hport" health ${svc:+--service "$svc"} 2>&1) ||
    fail "health port, service '$svc': $out"
  grep -q SERVING <<<"$out" || fail "health port, service '$svc': $out"
done
log "health port: readiness and liveness SERVING; calibd_store_up 1"

# ---- 4. non-root, read-only root ----
uids=$(docker exec "$ctr" sh -c 'grep -E "^(Uid|Gid):" /proc/1/status; cat /proc/1/comm')
grep -qE '^Uid:\s+10001\s+10001\s+10001\s+10001$' <<<"$uids" || fail "calibd does not run as uid 10001: $uids"
grep -qE '^Gid:\s+10001\s+10001\s+10001\s+10001$' <<<"$uids" || fail "calibd does not run as gid 10001: $uids"
grep -qx 'calibd' <<<"$uids" || fail "pid 1 is not calibd: $uids"
if docker exec "$ctr" sh -c 'echo x > /usr/local/bin/x || echo x > /tmp/x' 2>/dev/null; then
  fail "the root filesystem is writable"
fi
docker exec "$ctr" sh -c 'touch /var/spool/calibd/probe && rm /var/spool/calibd/probe' ||
  fail "the spool tmpfs is not writable by calibd"
log "runs as calibd (10001:10001), root filesystem read-only, spool writable"

# ---- 5. the same frames through the container and through the native binary ----
ctl() { "$calibctl" --server "$1" "${@:2}"; }
reduce() {  # server address, output dir
  local server=$1 out=$2
  ctl "$server" detector put "$work/night/SPEC.json" >/dev/null
  for kind in bias dark flat; do
    ctl "$server" build --detector demo/ccd0 --kind "$kind" --method median --no-clip \
      --certify-from 2026-03-01T00:00:00Z "$work/night/$kind"/*.fits >/dev/null
  done
  ctl "$server" calibrate --detector demo/ccd0 -o "$out" --unit electron \
    "$work/night/light"/*
}
"$calibctl" make-samples -o "$work/night" --small >/dev/null

reduce "127.0.0.1:$port" "$work/container" >"$work/container.log" 2>&1 ||
  { cat "$work/container.log" >&2; docker logs "$ctr" 2>&1 | tail -n 20 >&2; fail "calibration through the container"; }

nport=$(free_port)
nmport=$(free_port)
mkdir -p "$work/native-spool"
"$calibd" --listen="127.0.0.1:$nport" --metrics-listen="127.0.0.1:$nmport" \
  --store="$work/native-store" --spool-dir="$work/native-spool" >"$work/native.log" 2>&1 &
native_pid=$!
for _ in $(seq 1 100); do
  ctl "127.0.0.1:$nport" health >/dev/null 2>&1 && break
  sleep 0.1
done
reduce "127.0.0.1:$nport" "$work/native" >"$work/native-cal.log" 2>&1 ||
  { cat "$work/native-cal.log" "$work/native.log" >&2; fail "calibration through the native binary"; }
kill "$native_pid"; wait "$native_pid" || true; native_pid=""

cmp=$("$python" "$here/compare_fits.py" "$work/native" "$work/container") ||
  fail "container and native results differ: $cmp"
grep -q '"frames": 3' <<<"$cmp" || fail "expected 3 calibrated frames: $cmp"
log "same numbers: $cmp"

# ---- 6. graceful stop; the store survives on the volume ----
docker stop -t 30 "$ctr" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$ctr")
[ "$code" = 0 ] || { docker logs "$ctr" 2>&1 | tail -n 20 >&2; fail "calibd exited $code on SIGTERM"; }
port2=$(free_port)
run_container "$ctr-2" "$port2" "$(free_port)"
wait_healthy "$ctr-2"
listing=$(ctl "127.0.0.1:$port2" ls --detector demo/ccd0)
for kind in bias dark flat; do
  grep -q "$kind" <<<"$listing" || fail "the $kind master did not survive a new container: $listing"
done
log "SIGTERM exit 0; a new container on the volume has the masters"

log "PASS in $(( $(date +%s) - t0 ))s (image build ${build_s}s, image $((size / 1000000)) MB)"
