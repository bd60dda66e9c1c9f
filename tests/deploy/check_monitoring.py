"""Checks the Grafana dashboard and the alert rules against the metrics calibd exports.

    python3 check_monitoring.py ROOT

- every calibd_* series named in deploy/monitoring/calibd-dashboard.json or
  calibd-rules.yaml is a family of server/metrics.cc (`.Name("...")`, with _bucket/_sum/_count
  for histograms), so a renamed metric breaks this test, not a dashboard in production;
  names still being added by the server work (PENDING) are allowed and reported;
- every dashboard query is valid PromQL: Grafana's variables are substituted and the queries
  go through `promtool check rules` as recording rules;
- the dashboard has a Prometheus datasource variable and no hard-coded datasource, ids are
  unique, and every panel has a query.
Prints one line; exit 0 when all hold.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

PENDING = set()  # metric names whose server work is still landing (none now)


def main(root):
    fail = []
    src = open(os.path.join(root, "server/metrics.cc")).read()
    families = set(re.findall(r'\.Name\("(calibd_[a-z_]+)"\)', src))
    histograms = {f for f in families if re.search(
        rf'BuildHistogram\(\)\s*\.Name\("{f}"\)', src)} | {f for f in families if f.endswith("_seconds")}
    known = set(families) | PENDING
    for h in histograms:
        known |= {h + "_bucket", h + "_sum", h + "_count"}
    if len(families) < 5:
        fail.append(f"found only {sorted(families)} in server/metrics.cc")

    dash = json.load(open(os.path.join(root, "deploy/monitoring/calibd-dashboard.json")))
    rules = yaml.safe_load(open(os.path.join(root, "deploy/monitoring/calibd-rules.yaml")))
    exprs = []
    ids = set()
    for p in dash["panels"]:
        if p["id"] in ids:
            fail.append(f"duplicate panel id {p['id']}")
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail.append(f"panel {p['title']}: datasource is not the ${{datasource}} variable")
        if not p.get("targets"):
            fail.append(f"panel {p['title']}: no query")
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    if not any(v["type"] == "datasource" and v["query"] == "prometheus"
               for v in dash["templating"]["list"]):
        fail.append("no Prometheus datasource variable")
    rule_exprs = [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]

    used = set()
    for where, e in exprs + rule_exprs:
        for name in re.findall(r"\b(calibd_[a-z_]+)", e):
            used.add(name)
            if name not in known:
                fail.append(f"{where}: {name} is not exported by server/metrics.cc")
    unused = sorted(f for f in families if not any(u.startswith(f) for u in used))
    if unused:
        fail.append(f"metrics on no panel or alert: {unused}")

    # PromQL syntax: the dashboard's queries as recording rules.
    subst = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".*"}
    rec = {"groups": [{"name": "dashboard", "rules": []}]}
    for i, (_, e) in enumerate(exprs):
        for k, v in subst.items():
            e = e.replace(k, v)
        rec["groups"][0]["rules"].append({"record": f"dashboard:query{i}", "expr": e})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(rec, f)
    r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode != 0:
        fail.append("dashboard PromQL: " + (r.stdout + r.stderr).strip().replace("\n", " | ")[:600])

    for f_ in fail:
        print("FAIL monitoring:", f_)
    pending = sorted(PENDING & used - families)
    print(f"monitoring: {len(exprs)} dashboard queries, {len(rule_exprs)} alerts, "
          f"{len(used)} metrics used, pending in server/metrics.cc: {pending or 'none'}, "
          f"{len(fail)} failures")
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
