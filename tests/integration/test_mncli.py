"""The interactive CLI on a real cluster (2 nodes, 2 replicas, fast profile):
a script of commands run through Mininet's batch mode, its output checked,
real requests sent from the CLI itself, and the model checked afterwards.
Then ``swarmmesh cli`` as a process: stdin commands, Ctrl-C exits 130 and
leaves nothing of its run behind."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from swarmmesh.ui.shell_cli import SwarmCLI
from swarmmesh.model import Cluster
from swarmmesh.lifecycle.orchestrator import Orchestrator

from .conftest import REPO
from .test_cli import _alive, swarmmesh

STACK = {"services": {"app": {
    "deploy": {"replicas": 2}, "ports": ["8000:80"],
    "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost/health"]}}}}

SCRIPT = """\
service ls
service scale app=3
wait
service ps app
c1 for i in 1 2 3; do curl -s -m 2 192.168.99.1:8000; echo; done
task kill app.1
wait
node ls
node drain node2
wait
service ps app
node ls
c1 curl -s -m 2 192.168.99.2:8000
service scale app=-1
events
"""


def section(out: str, command: str) -> str:
    return out.split(f"swarmmesh> {command}\n", 1)[1].split("swarmmesh> ", 1)[0]


def answers(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def transcript(tb, text: str, tmp_path) -> str:
    """Run a script of CLI commands on a live cluster (fast profile); its output."""
    script = tmp_path / "script.txt"
    script.write_text(text)
    out = io.StringIO()
    with Orchestrator(tb, profile="fast") as orch, open(os.devnull) as devnull:
        SwarmCLI(orch, stdin=devnull, script=str(script), stdout=out)
        orch.settle()
    print(out.getvalue())
    return out.getvalue()


def test_script_of_commands_on_a_real_cluster(testbed_factory, tmp_path):
    tb = testbed_factory(Cluster.from_stack(STACK, nodes=2))
    out = transcript(tb, SCRIPT, tmp_path)

    assert section(out, "service ls").splitlines() == [
        "NAME   MODE         REPLICAS   PORTS", "app    replicated   2/2        *:8000->80/tcp"]
    assert section(out, "wait").startswith("app scaled to 3 (3/3 running) in ")
    ps = [line.split() for line in section(out, "service ps app").splitlines()[1:]]
    assert [(r[1], r[4], r[5]) for r in ps] == [
        (f"app.{i}", "Running", "Running") for i in (1, 2, 3)]
    # three new connections through node1 reach the three tasks (rr per node)
    hits = answers(section(out, "c1 for i in 1 2 3; do curl -s -m 2 192.168.99.1:8000; "
                                "echo; done"))
    assert sorted(h["task"] for h in hits) == ["app.1", "app.2", "app.3"]
    # the kill: detected by the fast health check, removed, replaced
    kill = out.split("swarmmesh> task kill app.1\n", 1)[1]
    assert kill.startswith("app.1 killed (hang) on node1; its health check will tell")
    assert section(kill, "wait").startswith("app.1 detected, removed and replaced "
                                            "(app 3/3 running) in ")
    # drain: node2's tasks move to node1; node2 still answers on the published port
    after = out.split("swarmmesh> node drain node2\n", 1)[1]
    assert after.startswith("node2 drained")
    ps = [line.split() for line in section(after, "service ps app").splitlines()[1:]]
    assert len(ps) == 3 and {r[3] for r in ps} == {"node1"}
    assert all(r[4] == "Running" and r[5] == "Running" for r in ps)
    assert "app.1" not in {r[1] for r in ps}
    rows = [line.split()[1:] for line in section(after, "node ls").splitlines()[1:]]
    assert rows == [["node1", "Ready", "Active", "Leader", "-", "3"],
                    ["node2", "Ready", "Drain", "-", "0"]]
    [hit] = answers(section(after, "c1 curl -s -m 2 192.168.99.2:8000"))
    assert hit["node"] == "node1" and hit["task"] in {r[1] for r in ps}
    assert "error: services.app.replicas: must be >= 0, got -1" in out
    events = [line.split("   ")[1].strip() for line in
              section(out, "events").splitlines()[1:] if "   " in line]
    for e in ("scale", "task killed", "health unhealthy", "weight 0", "task removed",
              "node drain"):
        assert e in events, (e, events)

    # the model afterwards
    tasks = tb.cluster.tasks_of("app")
    assert len(tasks) == 3 and all(t.node == "node1" and t.state == "running" for t in tasks)
    assert "app.1" in tb.cluster.retired and "app.1" not in [t.name for t in tasks]
    assert tb.cluster.node("node2").availability == "drain"
    assert tb.cluster.service("app").replicas == 3
    # and the switches: node1's bridge has a port per task, node2's none
    for node, want in (("node1", {t.host for t in tasks}), ("node2", set())):
        ports = tb.host(node).ofctl("dump-ports-desc")
        assert {h for h in {f"t{i}" for i in range(1, 10)} if f"({h}-" in ports} == want


def test_swarmmesh_cli_reads_stdin_and_ctrl_c_cleans_up(tmp_path):
    proc = subprocess.Popen(swarmmesh() + ["cli", "--nodes", "2", "--replicas", "1", "--profile", "fast",
                                   "--out", str(tmp_path)],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write("node ls\nservice scale app=2\nwait\nservice ls\n")
    proc.stdin.flush()
    lines, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if not line or line.startswith("app    replicated"):
            break
    assert lines[-1].split() == ["app", "replicated", "2/2", "*:8000->80/tcp"], lines
    assert ["node2", "Ready", "Active", "-", "0"] in [line.split()[1:] for line in lines]
    [state] = Path("/run/swarmmesh").glob(f"run-{proc.pid}-*")
    recorded = [line.split("\t") for line in (state / "pids").read_text().splitlines()]
    assert len(recorded) >= 5
    proc.send_signal(signal.SIGINT)                  # stdin is a pipe: Ctrl-C ends the CLI
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    run_dir = Path(out.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path
    events = (run_dir / "events.csv").read_text().splitlines()
    assert events[0] == "t,event,detail" and any(",scale,app: 1 -> 2" in e for e in events)
    assert [p for p, m in recorded if _alive(int(p), m)] == []
    assert not state.exists()
