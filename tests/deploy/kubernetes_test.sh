#!/usr/bin/env bash
# Renders every kustomization of deploy/ with `kubectl kustomize` and validates the objects
# (validator/validate.mjs: kubernetes-models schemas, unknown fields refused through the
# TypeScript compiler, the deployment rules). Offline but for npm: the validator's packages
# (validator/package-lock.json) are installed from the npm registry into a cache directory
# the first time, ${CALIBD_NPM_CACHE:-~/.cache/calibd}/deploy-validator-<lock hash>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "kubernetes_test: FAIL: $tool not found" >&2; exit 1; }
done
# Debian 12 ships no kubectl with a kustomize new enough for components and replacements
# (kubernetes-client 1.20 has kustomize v2): where none is installed the render is skipped
# (ctest reports SKIPPED, exit 77) rather than failed; with kubectl >= 1.21 it always runs.
if ! command -v kubectl >/dev/null ||
   ! kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v[45]'; then
  echo "kubernetes_test: SKIP: kubectl >= 1.21 (kustomize >= v4) not installed" >&2
  exit 77
fi

lock_hash=$(cat "$here/validator/package.json" "$here/validator/package-lock.json" | sha256sum | cut -c1-16)
dir=${CALIBD_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/calibd}/deploy-validator-$lock_hash
if [ ! -f "$dir/.installed" ]; then
  mkdir -p "$dir"
  cp "$here/validator/package.json" "$here/validator/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error 2>&1 | grep -v EBADENGINE || true)
  [ -d "$dir/node_modules/kubernetes-models" ] || { echo "kubernetes_test: FAIL: npm ci in $dir" >&2; exit 1; }
  touch "$dir/.installed"
fi
cp "$here/validator/validate.mjs" "$dir/validate.mjs"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for k in overlays/embedded overlays/shared dev-postgres; do
  name=$(basename "$k")
  if ! kubectl kustomize "$root/deploy/$k" >"$out/$name.yaml" 2>"$out/$name.err"; then
    echo "FAIL $name: kubectl kustomize deploy/$k: $(cat "$out/$name.err")"
    status=1
    continue
  fi
  (cd "$dir" && node validate.mjs --overlay "$name" "$out/$name.yaml") || status=1
done
exit $status
