"""mesh_overhead at a small size on real Mininet/OVS: the four paths answer,
each as designed (who answered, which source the task saw), all in one table
and one figure, and replot redraws them from the files alone."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.conftest import ours_left

REPO = Path(__file__).resolve().parents[2]
PATHS = ["direct", "mesh_task_node", "mesh_empty_node", "nft_lb"]
REQUESTS, REPEATS = 20, 2

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Mininet)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mesh_overhead")
    cmd = [sys.executable, "experiments/mesh_overhead.py", "--out", str(out), "--quiet",
           "--nodes", "3", "--replicas", "2", "--requests", str(REQUESTS), "--rate", "100",
           "--repeats", str(REPEATS), "--ab-requests", "100", "--seed", "1"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    run_dir = Path(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
    return r, run_dir


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_exits_zero_with_every_output(run):
    r, run_dir = run
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("latency.csv", "connection_rate.csv", "paths.csv", "summary.json", "report.md",
                 "mesh_overhead.png", "mesh_overhead.pdf"):
        assert (run_dir / name).is_file(), name
    assert "(mesh_overhead.png)" in (run_dir / "report.md").read_text()


def test_one_table_with_all_four_paths_and_ratios(run):
    _, run_dir = run
    table = _csv(run_dir / "paths.csv")
    assert [row["path"] for row in table] == PATHS
    for row in table:
        assert int(row["latency_n"]) == REQUESTS * REPEATS
        assert int(row["rps_repeats"]) == REPEATS and float(row["rps_median"]) > 0
        assert int(row["failed"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    res = summary["results"]
    assert res["direct"]["latency_ratio_to_direct"] == 1.0
    # one or two userspace OVS hops (and VXLAN) per packet against a kernel-only
    # route: the mesh cannot be the faster of the two
    assert res["mesh_empty_node"]["latency_ratio_to_direct"] > 1.0
    assert res["mesh_empty_node"]["rps_ratio_to_direct"] < 1.0
    report = (run_dir / "report.md").read_text()
    for label in ("(a) direct", "(b) mesh", "(c) mesh", "(d) nftables"):
        assert label in report
    assert summary["tools"]["connection_rate"]["tool"] == "ab"
    assert summary["tools"]["connection_rate"]["command_example"].split()[0].endswith("ab")


def test_each_path_reaches_the_tasks_the_way_it_should(run):
    _, run_dir = run
    summary = json.loads((run_dir / "summary.json").read_text())
    model = json.loads((run_dir / "model.json").read_text())
    ingress = {n["name"]: n["ingress_ip"] for n in model["nodes"]}
    client_ip = model["clients"][0]["underlay_ip"]
    lb = summary["load_balancer"]
    rows = _csv(run_dir / "latency.csv")
    by = {p: [r for r in rows if r["path"] == p] for p in PATHS}
    tasks = set(summary["placement"])
    # (a) no NAT anywhere: the task sees the client itself, and the task aimed at
    assert {r["seen_source"] for r in by["direct"]} == {client_ip}
    assert all(r["task"] == r["target"] for r in by["direct"])
    # (b), (c) the mesh: SNAT to the entry node's ingress address, rr over every task
    for p, node in (("mesh_task_node", summary["task_node"]),
                    ("mesh_empty_node", summary["empty_node"])):
        assert {r["seen_source"] for r in by[p]} == {ingress[node]}, p
        assert Counter(r["task"] for r in by[p]) == {t: REQUESTS * REPEATS // len(tasks)
                                                     for t in tasks}, p
    # (d) nftables: masquerade to lb1's backend address, numgen inc = exact rr
    assert {r["seen_source"] for r in by["nft_lb"]} == {lb["backend_gateway"]}
    assert Counter(r["task"] for r in by["nft_lb"]) == {t: REQUESTS * REPEATS // len(tasks)
                                                        for t in tasks}
    assert "numgen inc mod 2" in lb["nft_ruleset"] and "masquerade" in lb["nft_ruleset"]


def test_replot_redraws_from_a_copy(run, tmp_path):
    _, run_dir = run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("logs"))
    for name in ("mesh_overhead.png", "mesh_overhead.pdf", "report.md", "paths.csv"):
        (copy / name).unlink()
    r = subprocess.run([sys.executable, "experiments/replot.py", str(copy)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("mesh_overhead.png", "mesh_overhead.pdf", "report.md", "paths.csv"):
        assert (copy / name).is_file(), name
    assert _csv(copy / "paths.csv") == _csv(run_dir / "paths.csv")


def test_nothing_left_behind(run):
    assert ours_left() == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "lb1-" not in links and "ul-lb1" not in links
