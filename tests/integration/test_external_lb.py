"""external_lb on real Mininet/OVS with a real HAProxy: the checks pass on every server
that should answer (and keep the host-mode nodes without a task out), the external
name resolves to every node, both balancing stages show, a node taken down leaves
HAProxy's rotation and no request fails after the detection window; replot redraws
from the files; Ctrl-C and SIGKILL + clean leave nothing of the run (its recorded PIDs,
state and links: other runs may share the machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CMD = [sys.executable, "experiments/external_lb.py", "--quiet", "--nodes", "3", "--replicas",
       "2", "--requests", "30", "--rate", "50", "--down-seconds", "4.5", "--down-rate", "30",
       "--seed", "1"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Mininet)")


class Recorder(threading.Thread):
    """Reads the run records of one experiment process while it runs: every PID it
    registered (with its marker), so that the test can check each one is gone after,
    whatever other runs share the machine."""

    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.proc, self.entries = proc, set()

    def run(self) -> None:
        while self.proc.poll() is None:
            for f in Path("/run/swarmmesh").glob(f"run-{self.proc.pid}-*/pids"):
                try:
                    for line in f.read_text().splitlines():
                        pid, _, marker = line.partition("\t")
                        if pid.isdigit():
                            self.entries.add((int(pid), marker))
                except OSError:
                    pass
            time.sleep(0.1)

    def left(self) -> list[str]:
        """Its processes still alive, its state folders, its links."""
        out = []
        for pid, marker in sorted(self.entries):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd:
                out.append(f"process {pid} ({marker})")
        out += [str(p) for p in Path("/run/swarmmesh").glob(f"run-{self.proc.pid}-*")]
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        out += [w for w in ("haproxy-", "ul-haproxy", "ul-extdns", "-xlb") if w in links]
        return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("external_lb")
    proc = subprocess.Popen(CMD + ["--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rec = Recorder(proc)
    rec.start()
    stdout, stderr = proc.communicate(timeout=300)
    rec.join()
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    run_dir = Path(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
    summary = json.loads((run_dir / "summary.json").read_text()) if run_dir else {}
    return r, run_dir, summary, rec


def test_exits_zero_with_every_output(run):
    r, run_dir, summary, _ = run
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("requests.csv", "haproxy_states.csv", "events.csv", "haproxy.cfg",
                 "haproxy.log", "two_stages.png", "latency_per_path.png", "node_down.png",
                 "report.md"):
        assert (run_dir / name).is_file(), name
    assert summary["status"] == "ok"


def test_haproxy_checks_pass_on_the_servers_that_answer(run):
    _, _, summary, _ = run
    st = summary["haproxy_stat_start"]
    tasks = summary["placement"]
    assert {k for k, v in st.items() if v["status"] == "UP"} == (
        {f"mesh/node{i}" for i in (1, 2, 3)} | {f"host/{n}" for n in tasks.values()}
        | {f"direct/{t}" for t in tasks})
    empty = ({"node1", "node2", "node3"} - set(tasks.values())).pop()
    assert st[f"host/{empty}"]["status"].startswith("DOWN")     # refused: out of rotation


def test_the_external_name_resolves_to_every_node(run):
    _, _, summary, _ = run
    dns = summary["dns"]
    nodes = ["192.168.99.1", "192.168.99.2", "192.168.99.3"]
    assert dns["every_node"] and all(sorted(a) == nodes for a in dns["answers"])
    assert sorted(dns["first_addresses"]) == nodes            # rotated: each node first once


def test_two_stages_and_the_source_each_sees(run):
    _, _, summary, _ = run
    paths = summary["results"]["paths"]
    mesh = paths["haproxy_mesh"]
    assert sorted(mesh["split"]) == ["node1", "node2", "node3"]     # stage 1: every node
    assert all(sum(t.values()) == 10 for t in mesh["split"].values())  # roundrobin, 30 / 3
    assert all(src.startswith("10.0.0.") for src in mesh["seen_sources"])
    host = paths["haproxy_host"]
    assert {n: list(t) for n, t in host["split"].items()} == {
        n: [t] for t, n in summary["placement"].items()}               # its own node's task
    assert host["seen_sources"] == [summary["external_lb"]["address"]]
    assert paths["node_host"]["seen_sources"] == ["192.168.99.201"]
    assert summary["results"]["paths_failed"] == 0


def test_a_node_down_leaves_the_rotation_and_nothing_fails_after_the_window(run):
    _, _, summary, _ = run
    down = summary["results"]["down"]
    lo, hi = summary["external_lb"]["checks"]["detection_window_s"]
    for pool, d in down["pools"].items():
        assert d["haproxy_marked_down_after_s"] is not None, pool
        assert d["haproxy_marked_down_after_s"] <= hi + 0.5, (pool, d)
        assert d["failed_after_window"] == 0, (pool, d)
        assert d["failed_before_cut"] == 0, (pool, d)
    end = summary["haproxy_stat_end"]
    assert end[f"mesh/{summary['down']['node']}"]["status"].startswith("DOWN")


def test_replot_redraws_from_a_copy(run, tmp_path):
    _, run_dir, _, _ = run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("logs"))
    for name in ("two_stages.png", "node_down.png", "latency_per_path.png", "report.md"):
        (copy / name).unlink()
    r = subprocess.run([sys.executable, "experiments/replot.py", str(copy)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("two_stages.png", "node_down.png", "latency_per_path.png", "report.md"):
        assert (copy / name).is_file(), name


def test_nothing_left_behind(run):
    r, _, _, rec = run
    assert any("haproxy" in m for _, m in rec.entries), rec.entries   # it was recorded
    assert any("extdns" in m for _, m in rec.entries), rec.entries
    assert rec.left() == []


def _start_and_wait_for_sending(out: Path) -> tuple[subprocess.Popen, Recorder]:
    proc = subprocess.Popen(CMD[:2] + ["--nodes", "3", "--replicas", "2", "--requests", "400",
                                       "--rate", "20", "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rec = Recorder(proc)
    rec.start()
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "sending (paths)" in line or time.monotonic() > deadline:
            break
    assert proc.poll() is None
    time.sleep(0.3)
    assert any("haproxy" in m for _, m in rec.entries), "HAProxy is not recorded"
    return proc, rec


def test_ctrl_c_leaves_nothing(tmp_path):
    proc, rec = _start_and_wait_for_sending(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    rec.join()
    assert rec.left() == []


def test_sigkill_then_clean_leaves_nothing(tmp_path):
    proc, rec = _start_and_wait_for_sending(tmp_path)
    proc.kill()
    proc.wait()
    rec.join()
    assert rec.left() != []                          # SIGKILL leaves it all running ...
    subprocess.run([sys.executable, "-m", "swarmmesh.testbed.runtime"], cwd=REPO, check=True,
                   capture_output=True)
    assert rec.left() == []                          # ... until swarmmesh clean
