"""The command-line tool for real: `swarmmesh run routing_mesh` on a tiny
cluster writes a complete run folder; Ctrl-C exits 130, records it and leaves
nothing behind."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .conftest import PY, REPO


def swarmmesh() -> list[str]:
    """The console script from setup.py, else the same entry point by module."""
    script = Path(PY).parent / "swarmmesh"
    return [str(script)] if script.exists() else [PY, "-m", "swarmmesh.ui.cli"]


def test_run_routing_mesh_writes_a_complete_run_folder(tmp_path):
    r = subprocess.run(swarmmesh() + ["run", "routing_mesh", "--nodes", "2", "--replicas", "2",
                                      "--requests", "4", "--quiet", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path and run_dir.name.endswith("-routing_mesh")
    names = {p.name for p in run_dir.iterdir()}
    assert {"requests.csv", "summary.json", "report.md", "model.json", "underlay-vxlan.pcap",
            "requests_per_task.png", "requests_per_task.pdf", "latency_cdf.png",
            "latency_cdf.pdf", "controller.log"} <= names, names
    rows = list(csv.DictReader(open(run_dir / "requests.csv")))
    assert len(rows) == 2 * 4 and all(row["ok"] == "True" for row in rows)
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["experiment"] == "routing_mesh" and s["status"] == "ok"
    assert s["datapath"] in ("system", "netdev") and s["datapath_requested"] == "auto"
    assert s["parameters"]["requests"] == 4 and isinstance(s["seed"], int)
    assert s["counts"] == {"node1": {"app.1": 2, "app.2": 2}, "node2": {"app.1": 2, "app.2": 2}}
    assert s["started"] <= s["finished"]
    report = (run_dir / "report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(figures) == ["latency_cdf.png", "requests_per_task.png"]
    for f in figures:
        assert (run_dir / f).stat().st_size > 10_000
        assert (run_dir / f).with_suffix(".pdf").exists()
    assert f"| datapath | {s['datapath']} OVS" in report
    assert "| node1 | 2 | 2 |" in report                  # who answered, from the CSV
    # quiet = plain lines for CI: no carriage returns, phases named
    assert "\r" not in r.stderr and "] sending: 8/8 (100%)" in r.stderr
    assert "] plotting" in r.stderr
    # replot on a copy with the figures deleted gives the same figures back
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for f in copy.glob("*.p[nd][gf]"):
        f.unlink()
    r = subprocess.run(swarmmesh() + ["replot", str(copy)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in copy.glob("*.p[nd][gf]")} == {
        "requests_per_task.png", "requests_per_task.pdf", "latency_cdf.png", "latency_cdf.pdf"}


def _alive(pid: int, marker: str) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False


def test_ctrl_c_exits_130_records_it_and_leaves_nothing(tmp_path):
    """Checked by this run's own records (other sessions may run testbeds now)."""
    proc = subprocess.Popen(swarmmesh() + ["run", "routing_mesh", "--nodes", "2", "--requests",
                                           "400", "--quiet", "--out", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line or "] sending" in line:
            break
    time.sleep(0.5)
    [state] = Path("/run/swarmmesh").glob(f"run-{proc.pid}-*")
    recorded = [line.split("\t") for line in (state / "pids").read_text().splitlines()]
    assert len(recorded) >= 5 and all(_alive(int(p), m) for p, m in recorded[:1])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    run_dir = Path(out.strip().splitlines()[-1])
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "interrupted (Ctrl-C)" and s["finished"]
    assert not (run_dir / "report.md").exists()
    assert [p for p, m in recorded if _alive(int(p), m)] == []
    assert not state.exists()


def test_run_overlay_rtt_small(tmp_path):
    r = subprocess.run(swarmmesh() + ["run", "overlay_rtt", "--sizes", "2x2", "--count", "10",
                                      "--quiet", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    rows = list(csv.DictReader(open(run_dir / "rtt.csv")))
    assert {row["path"] for row in rows} == {"overlay", "underlay", "mesh"}
    assert sum(row["path"] == "overlay" for row in rows) >= 9      # ping may lose one
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "ok" and s["datapath"] in ("system", "netdev")
    assert s["rtt"]["2x2"]["overlay"]["median_ms"] > s["rtt"]["2x2"]["underlay"]["median_ms"]
    report = (run_dir / "report.md").read_text()
    assert "![Round-trip time per path and cluster size](rtt.png)" in report
    assert (run_dir / "rtt.png").stat().st_size > 10_000 and (run_dir / "rtt.pdf").exists()
