"""``swarmmesh cli --engine docker`` as a user runs it: real dockerd nodes, commands on
stdin, what real Swarm reported checked in the transcript, and nothing left behind after
``exit`` or SIGTERM.  The stack publishes no port, so it runs on a machine without ip_vs
too (dockerd refuses published ports there; the CLI asks for ip_vs only when a port is
published)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from swarmmesh.machine import dockerd
from swarmmesh.testbed import docker_clean

from .conftest import REPO
from .test_cli import swarmmesh

NO_DOCKER = dockerd.programs_missing(lambda p: __import__("shutil").which(p), os.path.exists)
pytestmark = pytest.mark.skipif(NO_DOCKER is not None or os.geteuid() != 0,
                                reason=f"real Swarm skipped: {NO_DOCKER or 'not root'}")

STACK = """\
services:
  app:
    deploy: {replicas: 2}
    networks: [front]
    healthcheck: {test: ["CMD", "true"], interval: 2s, timeout: 15s, retries: 3}
networks:
  front: {driver: overlay}
"""

SCRIPT = """\
service ls
service scale app=3
wait
service ps app
task kill app.1 --how container
wait
service ps app
node drain node2
wait
node ls
service ls
flows node1
events
"""


def section(out: str, command: str) -> str:
    return out.split(f"swarmmesh> {command}\n", 1)[1].split("swarmmesh> ", 1)[0]


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()[1:] if line.strip()]


def left_behind(pid: int) -> list[str]:
    """This CLI's run: its state folder, data root, processes naming them."""
    out = [str(p) for p in Path("/run/swarmmesh").glob(f"run-{pid}-*")]
    out += [str(p) for p in docker_clean.DATA_BASE.glob(f"run-{pid}-*")]
    for proc in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{proc}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"run-{pid}-docker" in cmd:
            out.append(f"{proc} {cmd[:100]}")
    return out


def cli(tmp_path: Path, stdin) -> subprocess.Popen:
    stack = tmp_path / "stack.yml"
    stack.write_text(STACK)
    return subprocess.Popen(swarmmesh() + ["cli", "--engine", "docker", "--stack", str(stack),
                                           "--nodes", "3", "--out", str(tmp_path / "out")],
                            cwd=REPO, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_cli_drives_real_swarm_and_shows_what_swarm_reports(tmp_path):
    forward_before = docker_clean.IP_FORWARD.read_text()
    proc = cli(tmp_path, subprocess.PIPE)
    out, err = proc.communicate(SCRIPT, timeout=900)
    print(out, err[-3000:])
    assert proc.returncode == 0, err[-3000:]
    assert "real Swarm (dockerd 20.10" in err
    assert rows(section(out, "service ls")) == [["app", "replicated", "2/2"]]
    assert section(out, "wait").startswith("app scaled to 3 (3/3 running) in ")
    ps = rows(section(out, "service ps app"))
    assert [(r[1], r[4], r[5]) for r in ps] == [(f"app.{i}", "Running", "Running")
                                                for i in (1, 2, 3)]
    old_id, old_node = ps[0][0], ps[0][3]
    kill = out.split("swarmmesh> task kill app.1 --how container\n", 1)[1]
    assert kill.startswith(f"app.1's container killed on {old_node}; Swarm knows at once")
    done = section(kill, "wait")
    assert done.startswith("app.1 replaced by task ") and "(app 3/3 running) in " in done
    new_id = done.split()[4]
    ps = rows(section(kill, "service ps app"))
    assert ps[0][:2] == [new_id, "app.1"] and ps[0][4:6] == ["Running", "Running"]
    # the killed task stays in Swarm's history: shut down, failed with the kill's exit code
    assert ps[1][:3] == [old_id, "\\_", "app.1"] and ps[1][5:7] == ["Shutdown", "Failed"]
    assert '"task: non-zero exit (137)"' in section(kill, "service ps app")
    drain = out.split("swarmmesh> node drain node2\n", 1)[1]
    assert drain.startswith("node2 drained\n")
    assert section(drain, "wait").startswith("node2 drained: its tasks run elsewhere (3 running)")
    nodes = {r[1]: r for r in rows(section(drain, "node ls"))}
    assert nodes["node2"][2:4] == ["Ready", "Drain"] and nodes["node2"][-1] == "0"
    assert nodes["node1"][4] == "Leader"
    assert sum(int(r[-1]) for r in nodes.values()) == 3
    assert rows(section(drain, "service ls")) == [["app", "replicated", "3/3"]]
    assert "flows: the emulated engine's" in section(out, "flows node1")
    events = [r[1:] for r in rows(section(out, "events")) if len(r) > 2]   # not the run folder
    asked = [n for n in (" ".join(e[:2]) if e[0] != "scale" else "scale" for e in events)
             if n in ("scale", "container killed", "node update")]
    assert asked[:3] == ["scale", "container killed", "node update"], events
    assert ["task", "failed", "app.1", old_id] in [e[:4] for e in events]
    assert ["task", "running", "app.3"] in [e[:3] for e in events]
    run_dir = Path(out.strip().splitlines()[-1])
    logged = list(csv.DictReader(open(run_dir / "events.csv")))
    assert {"scale", "container killed", "task failed", "node drain"} <= {e["event"] for e in logged}
    assert left_behind(proc.pid) == []
    assert docker_clean.IP_FORWARD.read_text() == forward_before


def test_sigterm_stops_the_cli_and_every_dockerd(tmp_path):
    proc = cli(tmp_path, subprocess.PIPE)
    proc.stdin.write("service ls\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line or line.startswith("app    replicated"):
            break
    assert line.split() == ["app", "replicated", "2/2"], line
    assert any("dockerd" in p for p in left_behind(proc.pid))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert (Path(out.strip().splitlines()[-1]) / "events.csv").exists()
    assert left_behind(proc.pid) == []
