"""keepalive at a small size on real Mininet/OVS: one keep-alive connection is
pinned to one task; a new connection per request splits exactly over the
replicas (the node's rr); wrk shows the same under load."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.conftest import ours_left

REPO = Path(__file__).resolve().parents[2]
REPLICAS, REQUESTS = 3, 30

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Mininet)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("keepalive")
    cmd = [sys.executable, "experiments/keepalive.py", "--out", str(out), "--quiet",
           "--nodes", "3", "--replicas", str(REPLICAS), "--requests", str(REQUESTS),
           "--rate", "100", "--wrk-seconds", "1", "--node", "node3", "--seed", "1"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    run_dir = Path(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
    rows = []
    if run_dir and (run_dir / "requests.csv").is_file():
        with open(run_dir / "requests.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    return r, run_dir, rows


def test_exits_zero_with_every_output(run):
    r, run_dir, _ = run
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("requests.csv", "wrk.csv", "summary.json", "report.md",
                 "requests_per_task.png", "requests_per_task.pdf", "latency_cdf.png"):
        assert (run_dir / name).is_file(), name
    assert "(requests_per_task.png)" in (run_dir / "report.md").read_text()


def test_keepalive_is_pinned_to_one_task(run):
    _, _, rows = run
    ka = [r for r in rows if r["mode"] == "keepalive"]
    assert len(ka) == REQUESTS and all(r["ok"] == "True" for r in ka)
    assert len({r["local_port"] for r in ka}) == 1          # one TCP connection
    assert len({r["task"] for r in ka}) == 1                # so one task answered all
    assert sum(1 for r in ka if r["connect_ms"]) == 1       # one handshake, the first request


def test_new_connections_split_evenly(run):
    _, run_dir, rows = run
    new = [r for r in rows if r["mode"] == "new_connection"]
    assert len(new) == REQUESTS and all(r["ok"] == "True" for r in new)
    assert len({r["local_port"] for r in new}) == REQUESTS
    tasks = json.loads((run_dir / "summary.json").read_text())["placement"]
    assert Counter(r["task"] for r in new) == {t: REQUESTS // REPLICAS for t in tasks}
    # every request went through node3's mesh: SNAT to node3's ingress address
    model = json.loads((run_dir / "model.json").read_text())
    node3 = next(n for n in model["nodes"] if n["name"] == "node3")
    assert {r["seen_source"] for r in rows} == {node3["ingress_ip"]}


def test_summary_and_wrk_agree(run):
    _, run_dir, _ = run
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["keepalive_pinned"] is True and s["new_connection_even"] is True
    assert s["keepalive_tasks_hit"] == 1 and s["new_connection_tasks_hit"] == REPLICAS
    assert len(s["wrk"]["1"]) == 1 and sum(s["wrk"]["1"].values()) > 100
    assert len(s["wrk"][str(REPLICAS)]) == REPLICAS        # one task per connection, in turn
    assert s["wrk_failed"] == 0


def test_nothing_left_behind(run):
    assert ours_left() == []
