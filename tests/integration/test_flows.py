"""``--flows`` on a real routing_mesh run: flows.csv, from the nodes' conntrack events,
agrees connection by connection with what the client recorded in requests.csv."""

from __future__ import annotations

import csv
import json
import subprocess

from .conftest import PY, REPO


def test_flows_agree_with_the_clients_requests(tmp_path):
    r = subprocess.run([PY, "experiments/routing_mesh.py", "--nodes", "3", "--replicas", "2",
                        "--requests", "20", "--flows", "--out", str(tmp_path), "--quiet"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / r.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    requests = list(csv.DictReader(open(run_dir / "requests.csv")))
    flows = list(csv.DictReader(open(run_dir / "flows.csv")))
    assert len(requests) == 60 and all(q["ok"] == "True" for q in requests)
    by_conn = {(f["entry_node"], f["client_port"]): f for f in flows}
    assert len(by_conn) == len(flows) == len(requests)        # one row per connection
    for q in requests:
        f = by_conn[(q["ingress_node"], q["client_port"])]
        assert f["task"] == q["task"], (q, f)
        assert f["snat_address"] == q["seen_source"] and f["snat_port"] == q["seen_port"]
        assert f["published"] == "8000" and f["task_port"] == "80"
        assert f["ended"] == "closed", f
        assert int(f["bytes_in"]) > 0 and int(f["bytes_out"]) > 0
        assert 0 <= float(f["duration_s"]) < 2.0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["flows"]["connections"] == 60
    assert (run_dir / "flows.png").stat().st_size > 10_000
    assert sorted(p.name for p in (run_dir / "conntrack").iterdir()) == \
        [f"node{i}{kind}.txt" for i in (1, 2, 3) for kind in (".list", "")]
