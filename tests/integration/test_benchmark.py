"""The benchmark end to end at tiny sizes (about 30 s): every part runs in one run (the
four mesh paths, iperf3 with and without userspace TSO, two build sizes against bare
Mininet, the memory), the table has every row with its baseline and ratio, replot
redraws it from a copy, and nothing is left on the machine (the bare builds' shells and
links included)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ours_left

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = ("latency.csv", "connection_rate.csv", "load.csv", "benchmark_load.png", "throughput.csv", "builds.csv", "memory.csv",
           "table.csv", "summary.json", "report.md", "benchmark_ratios.png",
           "benchmark_ratios.pdf", "benchmark_build.png", "benchmark_build.pdf")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Mininet)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    cmd = [sys.executable, "experiments/benchmark.py", "--out", str(out), "--quiet", "--seed", "1",
           "--nodes", "3", "--replicas", "2", "--requests", "10", "--rate", "100",
           "--repeats", "1", "--ab-requests", "20", "--load-concurrency", "1,3",
           "--load-repeats", "1", "--load-seconds", "1", "--iperf-seconds", "1", "--streams", "1,2",
           "--userspace-tso", "--sizes", "2x1,3x2", "--build-repeats", "1",
           "--settle-timeout", "3"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    run_dir = Path(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
    return r, run_dir


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_exits_zero_with_every_output(run):
    r, run_dir = run
    assert r.returncode == 0, r.stderr[-3000:]
    for name in OUTPUTS:
        assert (run_dir / name).is_file(), name
    report = (run_dir / "report.md").read_text()
    assert "(benchmark_ratios.png)" in report and "(benchmark_build.png)" in report


def test_the_load_sweep_has_ab_and_wrk_at_each_concurrency_on_every_path(run):
    _, run_dir = run
    rows = _csv(run_dir / "load.csv")
    assert {(r["tool"], r["concurrency"], r["path"]) for r in rows} == {
        (t, c, p) for t in ("ab", "wrk") for c in ("1", "3")
        for p in ("direct", "mesh_task_node", "mesh_empty_node", "nft_lb")}
    assert all(r["error"] == "" and float(r["rps"]) > 0 and r["errors"] == "0" for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    direct = [r for r in summary["load"] if r["path"] == "direct"]
    assert direct and all(r["ratio"] == 1.0 for r in direct)
    assert "Load sweep" in (run_dir / "report.md").read_text()


def test_the_table_has_every_row_with_a_baseline_and_a_ratio(run):
    _, run_dir = run
    table = _csv(run_dir / "table.csv")
    got = {(r["section"], r["measure"], r["path"]) for r in table}
    for path in ("mesh_task_node", "mesh_empty_node", "nft_lb"):
        assert ("mesh", "latency", path) in got and ("mesh", "connection_rate", path) in got
    for config in ("default", "userspace_tso"):
        for streams in ("1 stream", "2 streams"):
            for path in ("underlay", "mesh_task_node", "mesh_empty_node"):
                assert (f"throughput ({config})", f"throughput, {streams}", path) in got
    for size in ("2x1 (2 tasks)", "3x2 (6 tasks)"):
        assert ("build", "build_up", size) in got and ("build", "build_down", size) in got
    for row in table:
        assert float(row["value"]) > 0, row
        if row["path"] != "underlay":
            assert float(row["baseline"]) > 0 and float(row["ratio"]) > 0, row
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failures"] == [] and summary["status"] == "ok"
    assert summary["sizes_built"] == {"2x1": True, "3x2": True}
    assert len(summary["userspace_tso_log"]) == 3          # every vswitchd said so
    # the mesh still carries every stream with TSO on (checksums filled in by OVS)
    thr = _csv(run_dir / "throughput.csv")
    assert all(r["error"] == "" and float(r["mbps"]) > 10 for r in thr), thr


def test_builds_against_bare_mininet_and_the_memory_per_kind(run):
    _, run_dir = run
    builds = _csv(run_dir / "builds.csv")
    assert sorted((r["size"], r["build"]) for r in builds) == [
        ("2x1", "mininet"), ("2x1", "swarmmesh"), ("3x2", "mininet"), ("3x2", "swarmmesh")]
    ours = next(r for r in builds if r["size"] == "3x2" and r["build"] == "swarmmesh")
    assert ours["hosts"] == "11"                        # underlay, 3 nodes, 6 tasks, c1
    assert next(r for r in builds if r["size"] == "3x2" and r["build"] == "mininet")["hosts"] == "11"
    assert 0 < float(ours["idle_after_s"]) <= 4       # waited for the CPUs, 3 s at most
    steps = json.loads(ours["phases"])
    assert set(steps) >= {"controller", "hosts, links, kernels, OVS, DNS"}
    assert sum(steps.values()) == pytest.approx(float(ours["up_s"]), rel=0.05)
    memory = _csv(run_dir / "memory.csv")
    kinds = {r["kind"] for r in memory if r["size"] == "3x2" and r["build"] == "swarmmesh"}
    assert kinds == {"ovs-vswitchd", "ovsdb-server", "dns", "node shell", "task server",
                     "task shell", "controller", "fork server", "other shell"}
    m = {x["size"]: x for x in json.loads((run_dir / "summary.json").read_text())["memory"]}
    assert 5 < m["3x2"]["per_node_pss_mib"] < 200 and 1 < m["3x2"]["per_task_pss_mib"] < 100
    assert 0 < m["3x2"]["bare_host_pss_mib"] < m["3x2"]["per_task_pss_mib"]


def test_replot_redraws_from_a_copy(run, tmp_path):
    _, run_dir = run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("logs", "userspace_tso"))
    for name in ("benchmark_ratios.png", "benchmark_build.png", "report.md", "table.csv"):
        (copy / name).unlink()
    r = subprocess.run([sys.executable, "-m", "swarmmesh.ui.cli", "replot", str(copy)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("benchmark_ratios.png", "benchmark_build.png", "report.md"):
        assert (copy / name).is_file(), name
    assert _csv(copy / "table.csv") == _csv(run_dir / "table.csv")


def test_nothing_left_behind(run):
    assert ours_left() == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "bul-eth" not in links and "lb1-" not in links
    assert not list(Path("/run/swarmmesh").glob("benchmark-bare-*"))
