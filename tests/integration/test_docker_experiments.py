"""The lifecycle experiments on real Docker Swarm (``swarmmesh run X --engine docker``): three
real dockerd nodes on the emulated underlay, the load through every node's published port,
the events read from Swarm's own task and node states.

Each needs the kernel's ``ip_vs`` (Swarm's routing mesh): they skip where it is missing,
with the reason, and run in the guest of ``make vm-test``.  Durations are the shortest that
still show each experiment's point with Docker's default health check (30 s, 3 retries)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from swarmmesh.machine import dockerd

from .conftest import REPO
from .test_cli import swarmmesh

WHY_NOT = dockerd.engine_missing()
pytestmark = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f"real Swarm's routing mesh skipped: {WHY_NOT}")


def run(tmp_path: Path, experiment: str, *flags: str) -> tuple[dict, list[dict], list[dict]]:
    """Run it; its summary, timeline rows and events."""
    r = subprocess.run(swarmmesh() + ["run", experiment, "--engine", "docker", "--rate", "20",
                                      "--quiet", "--out", str(tmp_path), *flags],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["engines"]["docker"]["version"].startswith("20.10")
    assert summary["parameters"]["profile"] == "swarm"
    assert (run_dir / "timeline.png").stat().st_size > 10_000
    assert (run_dir / "swarm.jsonl").stat().st_size > 0
    assert "real Swarm reports no convergence" in (run_dir / "report.md").read_text()
    rows = list(csv.DictReader(open(run_dir / "timeline.csv")))
    events = list(csv.DictReader(open(run_dir / "events.csv")))
    return summary, rows, events


def names(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def test_scaling_on_real_swarm_starts_joins_and_retires_the_new_task(tmp_path):
    """1 -> 2 -> 1 on two nodes: the new task starts, joins after its first healthy check
    (Docker's 30 s), is answered through both nodes; on the way down one task gets weight
    0 on its node and is removed ~2 s later (Swarm's gossip delay); no request fails."""
    s, rows, events = run(tmp_path, "scaling", "--nodes", "2", "--replicas", "1", "--to", "2",
                          "--up-at", "3", "--down-at", "65", "--duration", "70")
    m = s["scaling"]
    assert m["failed"] == 0 and m["requests"] == len(rows)
    [(new, fig)] = m["new_tasks"].items()
    assert new == "app.2" and 0 <= fig["started_s"] < 30, fig
    assert 30 <= fig["joined_s"] <= fig["first_request_s"] < 62, fig
    assert {r["ingress_node"] for r in rows if r["task"] == new} == {"node1", "node2"}
    [(old, gone)] = m["retired_tasks"].items()
    assert gone["converged_s"] is None and 0 <= gone["weight0_s"] < gone["removed_s"] < 10, gone
    assert "convergence" not in names(events) and names(events).count("scale") == 2


def test_node_loss_on_real_swarm_reschedules_the_lost_task_and_recovers(tmp_path):
    """node2 of two loses its link at 5 s: Swarm marks it down (~15 s), starts its task on
    node1, which joins after its first healthy check; requests through node2 fail from the
    loss on, through node1 only until its balancer dropped node2's task."""
    s, rows, events = run(tmp_path, "node_loss", "--nodes", "2", "--replicas", "2",
                          "--node", "node2", "--down-at", "5", "--duration", "30")
    m = s["node_loss"]
    assert m["down_to_converged_s"] is None
    assert 10 < m["down_to_marked_s"] < m["down_to_rescheduled_s"] < m["down_to_recovered_s"]
    assert m["via_lost_node"]["failed"] > 0.9 * (m["via_lost_node"]["requests"] / 2)
    o = m["via_others"]
    assert o["failed"] < o["requests"] / 4 and o["failed_after_recovered"] == 0, o
    assert {"node down", "node marked down", "task started"} <= set(names(events))
