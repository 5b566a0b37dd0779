"""The four lifecycle experiments end to end on real Mininet, small and with
the fast profile: run folder, timeline.csv/events.csv, figures, report, and
each experiment's claim (failover: kill to last new connection <= 1 s;
rolling update start-first: no failed request; scaling: no failed request;
node loss: nothing fails through the survivors after convergence)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarmmesh.runs.timeline_metrics import read_events, read_timeline

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")


def run(name: str, tmp_path: Path, *flags: str) -> tuple[int, Path, dict]:
    r = subprocess.run([sys.executable, f"experiments/{name}.py", "--quiet", "--out",
                        str(tmp_path), *flags], cwd=REPO, capture_output=True, text=True,
                       timeout=180)
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path, r.stdout + r.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    for f in ("timeline.csv", "events.csv", "timeline.png", "timeline.pdf", "report.md"):
        assert (run_dir / f).is_file(), f
    head = (run_dir / "timeline.csv").read_text().splitlines()[0]
    assert head.startswith("t_send,ingress_node,task,ok,latency_ms")
    assert (run_dir / "events.csv").read_text().startswith("t,event,detail")
    return r.returncode, run_dir, summary


def test_failover_fast(tmp_path):
    code, run_dir, s = run("failover", tmp_path, "--duration", "5", "--rate", "200")
    m = s["variants"]["fast"]["failover"]
    load = s["variants"]["fast"]["load"]
    assert load["requests"] == 1000 and load["achieved_rps"] > 190
    assert m["failed_total"] >= 1                        # the dead task refused some
    assert m["kill_to_last_new_connection_s"] <= 1.0, m
    assert m["kill_to_detect_s"] <= m["kill_to_convergence_s"] <= m["kill_to_removed_s"]
    rows = read_timeline(run_dir / "timeline.csv")
    events = read_events(run_dir / "events.csv")
    assert len(rows) == 1000 and {r["ingress_node"] for r in rows} == {"node1", "node2", "node3"}
    assert {"task killed", "health unhealthy", "weight 0", "task removed"} <= \
        {e["event"] for e in events}
    assert (run_dir / "timeline_zoom.png").is_file()
    # exit 1 exactly when a check was missed (a request failed after convergence, ...)
    assert code == (1 if m["failed_after_convergence"] else 0), s["checks"]


def test_scaling_fast(tmp_path):
    code, run_dir, s = run("scaling", tmp_path, "--replicas", "2", "--duration", "6",
                           "--up-at", "2", "--down-at", "4", "--rate", "150")
    m = s["scaling"]
    assert sorted(m["new_tasks"]) == ["app.3", "app.4"]
    assert all(v["first_request_s"] is not None and v["first_request_s"] >= v["joined_s"] - 0.05
               for v in m["new_tasks"].values()), m["new_tasks"]
    assert set(m["phases"]["scaled up"]["per_task"]) == {"app.1", "app.2", "app.3", "app.4"}
    assert set(m["phases"]["scaled down"]["per_task"]) == {"app.1", "app.2"}
    assert code == (1 if m["failed"] else 0)


def test_rolling_update_both_orders(tmp_path):
    code, run_dir, s = run("rolling_update", tmp_path, "--replicas", "2", "--duration", "5",
                           "--update-at", "1.5", "--rate", "150")
    ru = s["rolling_update"]
    assert set(ru) == {"start-first", "stop-first"}
    for order, m in ru.items():
        assert m["update_s"] is not None, order
        assert "version 2" in m["answered_per_version"], order
    assert ru["start-first"]["min_tasks_in_lb"] == 2
    assert ru["stop-first"]["min_tasks_in_lb"] == 1
    assert ru["start-first"]["failed"] == 0, ru["start-first"]
    assert code == 0


def test_node_loss_fast(tmp_path):
    code, run_dir, s = run("node_loss", tmp_path, "--duration", "5", "--down-at", "1.5",
                           "--rate", "150", "--node", "node2")
    m = s["node_loss"]
    assert 0.9 <= m["down_to_marked_s"] <= 2.0
    assert m["down_to_recovered_s"] is not None
    assert m["via_lost_node"]["failed"] > 0           # node2 answers nothing after the loss
    assert m["via_others"]["failed_after_convergence"] == 0, m
    placement = s["variants"]["fast"]["placement_after"]
    assert "node2" not in placement.values()
    assert code == 0
