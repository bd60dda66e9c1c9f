"""Checks the resolved docker/compose.yaml (stdin) against docker/prometheus.yml (tests/deploy/compose_test.sh)."""
import sys, yaml
root = sys.argv[1]
c = yaml.safe_load(sys.stdin)
s = c["services"]
fail = []
for name in ("postgres", "calibd-a", "calibd-b", "prometheus"):
    if name not in s:
        fail.append(f"no service {name}")
calibds = [s[n] for n in ("calibd-a", "calibd-b") if n in s]
stores = {d["environment"].get("CALIBD_STORE", "") for d in calibds}
if len(stores) != 1 or not next(iter(stores)).startswith("postgresql://") or "@postgres:" not in next(iter(stores)):
    fail.append(f"the replicas do not share the postgres store: {stores}")
for n in ("calibd-a", "calibd-b"):
    d = s.get(n, {})
    if d.get("read_only") is not True:
        fail.append(f"{n}: root filesystem not read-only")
    if not any(str(t).startswith("/var/spool/calibd") for t in d.get("tmpfs", [])):
        fail.append(f"{n}: no tmpfs spool")
    if "postgres" not in d.get("depends_on", {}):
        fail.append(f"{n}: does not wait for postgres")
# Memory: the budgets the flags set (combine's default 256 MiB when unset) plus 512 MiB for
# the process fit mem_limit, as in the Kubernetes manifests.
units = {"k": 2**10, "m": 2**20, "g": 2**30}
for n in ("calibd-a", "calibd-b"):
    d = s.get(n, {})
    env = d.get("environment", {})
    lim = str(d.get("mem_limit", ""))
    limit = int(lim[:-1]) * units[lim[-1].lower()] if lim[-1:].lower() in units else int(lim or 0)
    budgets = [int(env.get(k, 0)) for k in ("CALIBD_CACHE_BYTES", "CALIBD_BUFFER_POOL_BYTES", "CALIBD_FRAME_MEMORY_BYTES")]
    if not all(budgets):
        fail.append(f"{n}: memory budgets not all set")
    total = sum(budgets) + int(env.get("CALIBD_COMBINE_MEMORY_BYTES", 256 * 2**20)) + 512 * 2**20
    if not limit or total > limit:
        fail.append(f"{n}: memory budgets {total / 2**30:.2f} GiB exceed mem_limit {lim}")
prom = yaml.safe_load(open(f"{root}/docker/prometheus.yml"))
targets = [t for job in prom["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
for n in ("calibd-a", "calibd-b"):
    if f"{n}:9464" not in targets:
        fail.append(f"prometheus does not scrape {n}:9464")
mounts = " ".join(str(v) for v in s.get("prometheus", {}).get("volumes", []))
if "calibd-rules.yaml" not in mounts:
    fail.append("prometheus has no alert rules")
for f in fail:
    print("FAIL compose:", f)
print(f"compose: {len(s)} services, {len(fail)} failures")
sys.exit(1 if fail else 0)
