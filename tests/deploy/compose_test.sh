#!/usr/bin/env bash
# docker/compose.yaml: `docker-compose config` (Debian's docker-compose) validates it, and the
# resolved file has what docs/operations.md promises: PostgreSQL, two calibd replicas on the
# same postgresql:// store with a read-only root and a tmpfs spool, Prometheus scraping both
# (docker/prometheus.yml, checked by promtool) with the alert rules mounted, and the memory
# flags inside each replica's mem_limit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v docker-compose >/dev/null || { echo "compose_test: FAIL: docker-compose not found" >&2; exit 1; }
resolved=$(cd "$root/docker" && docker-compose -f compose.yaml config)
promtool check config "$root/docker/prometheus.yml" >/dev/null
/usr/bin/python3 "$here/check_compose.py" "$root" <<<"$resolved"
