#!/usr/bin/env bash
# docker/compose.yaml started for real (ctest: compose_up): PostgreSQL, two calibd replicas on
# it, Prometheus scraping both, on free 127.0.0.1 host ports.
#
#   tests/container/compose_up_test.sh BUILD_DIR/client/calibctl
#
# 1. the images: calibd from a clean tree of HEAD (scripts/build-image --rev HEAD; the
#    container test's build cache makes this seconds), postgres:15-bookworm and
#    prom/prometheus:v2.42.0 made from Debian 12's packages when the daemon has none
#    (scripts/make-service-images; no registry is needed);
# 2. `docker-compose up -d`: both replicas' container HEALTHCHECK healthy; readiness ("") and
#    liveness SERVING on each replica's published port;
# 3. masters built and certified through replica a, the `make-samples` lights calibrated
#    through a and through b: every plane of every frame bit-identical (one shared store);
# 4. Prometheus: both replicas' targets up (/api/v1/targets), the rule file loaded;
# 5. `docker-compose down -v` removes containers, network and volumes.
#
# Exit 77 (ctest: skipped) ONLY when no Docker daemon can run on this machine.
set -euo pipefail
calibctl=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${CALIBD_PYTHON:-/usr/bin/python3}
t0=$(date +%s)
log() { echo "compose_up_test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

if ! command -v docker-compose >/dev/null 2>&1; then
  fail "docker-compose not found (Debian package docker-compose, scripts/install-deps)"
fi
if ! why=$("$root/scripts/docker-up" 2>&1); then
  log "SKIP: no Docker daemon can run here: $why"
  exit 77
fi

work=$(mktemp -d /tmp/calibd-compose-test.XXXXXX)
project=calibd-up-$$
export CALIBD_IMAGE=calibd-compose-test:$$
free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
export CALIBD_A_PORT=$(free_port) CALIBD_A_METRICS_PORT=$(free_port)
export CALIBD_B_PORT=$(free_port) CALIBD_B_METRICS_PORT=$(free_port) PROMETHEUS_PORT=$(free_port)
compose() { docker-compose -p "$project" -f "$root/docker/compose.yaml" "$@"; }
cleanup() {
  set +e
  if [ -n "${KEEP:-}" ]; then log "kept project $project and $work"; return; fi
  compose down -v --remove-orphans >/dev/null 2>&1
  docker image rm "$CALIBD_IMAGE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# ---- 1. images ----
"$root/scripts/make-service-images"
tb=$(date +%s)
"$root/scripts/build-image" --rev HEAD --tag "$CALIBD_IMAGE" >/dev/null 2>"$work/build.log" ||
  { tail -n 30 "$work/build.log" >&2; fail "image build"; }
log "images ready (calibd build $(( $(date +%s) - tb )) s)"

# ---- 2. up, healthy, SERVING ----
tu=$(date +%s)
compose up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "docker-compose up"; }
healthy() { docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q "$1")" 2>/dev/null; }
for _ in $(seq 1 180); do
  [ "$(healthy calibd-a)" = healthy ] && [ "$(healthy calibd-b)" = healthy ] && break
  sleep 1
done
for r in calibd-a calibd-b; do
  [ "$(healthy $r)" = healthy ] || { compose logs --tail 30 >&2; fail "$r not healthy: $(healthy $r)"; }
done
up_s=$(( $(date +%s) - tu ))
for port in "$CALIBD_A_PORT" "$CALIBD_B_PORT"; do
  for svc in "" readiness liveness; do
    out=$("$calibctl" --server "127.0.0.1:$port" health ${svc:+--service "$svc"} 2>&1) ||
      fail "health of 127.0.0.1:$port service '$svc': $out"
    grep -q SERVING <<<"$out" || fail "health of 127.0.0.1:$port service '$svc': $out"
  done
done
log "up: both replicas healthy (HEALTHCHECK) in ${up_s} s; readiness and liveness SERVING"

# ---- 3. a frame through each replica ----
ctl() { "$calibctl" --server "$1" "${@:2}"; }
a=127.0.0.1:$CALIBD_A_PORT
b=127.0.0.1:$CALIBD_B_PORT
"$calibctl" make-samples -o "$work/night" --small >/dev/null
ctl "$a" detector put "$work/night/SPEC.json" >/dev/null
for kind in bias dark flat; do
  ctl "$a" build --detector demo/ccd0 --kind "$kind" --method median --no-clip \
    --certify-from 2026-03-01T00:00:00Z "$work/night/$kind"/*.fits >/dev/null ||
    { compose logs --tail 30 calibd-a >&2; fail "build $kind through calibd-a"; }
done
for r in a b; do
  ctl "${!r}" calibrate --detector demo/ccd0 -o "$work/out-$r" "$work/night/light"/* \
    >"$work/cal-$r.log" 2>&1 || { cat "$work/cal-$r.log" >&2; fail "calibrate through calibd-$r"; }
done
cmp=$("$python" "$here/compare_fits.py" "$work/out-a" "$work/out-b") ||
  fail "replicas a and b calibrate differently: $cmp"
grep -q '"frames": 3' <<<"$cmp" || fail "expected 3 calibrated frames: $cmp"
log "calibrated through a and through b (masters built on a): identical, $cmp"

# ---- 4. Prometheus scrapes both ----
up=""
for _ in $(seq 1 60); do
  up=$("$python" -c '
import json, sys, urllib.request
t = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))["data"]["activeTargets"]
print(" ".join(sorted(x["labels"]["instance"] + "=" + x["health"] for x in t)))' \
    "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets" 2>/dev/null || true)
  [ "$up" = "calibd-a:9464=up calibd-b:9464=up" ] && break
  sleep 1
done
[ "$up" = "calibd-a:9464=up calibd-b:9464=up" ] || fail "Prometheus targets: '$up'"
rules=$("$python" -c '
import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
print(sum(len(g["rules"]) for g in d["data"]["groups"]))' "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/rules")
[ "$rules" -gt 0 ] || fail "Prometheus loaded no rules"
log "Prometheus: $up; $rules alert rules loaded"

# ---- 5. down ----
compose down -v --remove-orphans >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; fail "down"; }
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project" | wc -l)
[ "$left" = 0 ] || fail "$left containers left after down"
log "PASS in $(( $(date +%s) - t0 )) s (up to healthy ${up_s} s)"
