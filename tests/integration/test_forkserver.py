"""The task-server fork server on its own: a real namespace (``unshare -n -m``), a real
fork into it, a real request to the forked task server. No Mininet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from swarmmesh.testbed.forks import ForkServer, ForkServerError, MARKER
from swarmmesh.testbed.runtime import RunState

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")


@pytest.fixture
def state(tmp_path):
    st = RunState("forktest", root=tmp_path)
    yield st
    st.clean()


@pytest.fixture
def netns():
    """A process holding a new network and mount namespace, loopback up."""
    proc = subprocess.Popen(["unshare", "-n", "-m", "--propagation", "private", "--",
                             "sh", "-c", "ip link set lo up; echo up; exec sleep 60"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    yield proc.pid
    proc.kill()
    proc.wait()


def in_ns(pid: int, *cmd: str) -> str:
    return subprocess.run(["nsenter", "-t", str(pid), "-n", "-m", "--", *cmd],
                          capture_output=True, text=True, timeout=10).stdout


def test_a_forked_task_server_runs_in_the_tasks_namespaces_and_answers(state, netns):
    forks = ForkServer(state).start()
    try:
        proc = forks.spawn(netns, ["--task", "app.1", "--node", "node1", "--port", "8080"])
        assert proc.stdout.readline().startswith("ready 8080")
        for ns in ("net", "mnt"):
            assert os.readlink(f"/proc/{proc.pid}/ns/{ns}") == \
                os.readlink(f"/proc/{netns}/ns/{ns}")
        assert os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        body = json.loads(in_ns(netns, "curl", "-s", "-m", "3", "http://127.0.0.1:8080/"))
        assert (body["task"], body["node"], body["port"]) == ("app.1", "node1", 8080)
        assert MARKER in open(f"/proc/{proc.pid}/cmdline").read().replace("\0", " ")
        assert f"{proc.pid}\t{MARKER}" in (state.dir / "pids").read_text()
        proc.send_signal(signal.SIGUSR2)              # the app dies: refused from now on
        time.sleep(0.3)
        assert in_ns(netns, "curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                     "http://127.0.0.1:8080/") == "000"
        proc.terminate()
        assert proc.wait(timeout=5) == 0 and proc.poll() is not None
        # The fork server reaps on SIGCHLD, a moment after the exit wait() saw (a zombie
        # counts as exited): the entry is gone within a second.
        deadline = time.monotonic() + 2.0
        while os.path.exists(f"/proc/{proc.pid}") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not os.path.exists(f"/proc/{proc.pid}")                     # reaped
    finally:
        forks.stop()


def test_a_namespace_that_is_gone_is_an_error_naming_it(state):
    forks = ForkServer(state).start()
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        with pytest.raises(ForkServerError, match=f"/proc/{dead.pid}/ns/net"):
            forks.spawn(dead.pid, ["--task", "a.1", "--node", "n1"])
        assert forks.proc.poll() is None                # the fork server goes on
    finally:
        forks.stop()


def test_the_forks_share_memory_with_their_parent(state, netns):
    """What each forked task server has of its own (private dirty pages: its PSS once
    the shared ones are spread over many tasks) stays under 2 MiB (measured: 1.6 MiB);
    a task server started as its own interpreter has 7.7 MiB. Every task but the newest
    counts: a page the fork server writes while it serves a later request becomes private
    to each older child (the newest reads 1.5 MiB). What keeps it there: the fork server
    reads the testbed's plain arguments without argparse (argparse, though its parser is
    built once before the first fork, wrote 0.2 MiB into every older child); the
    ``resource`` module imported by the task server's module, not at its start (0.5 MiB
    in every child); the warm-up that runs a task server's life ten times in the parent
    (0.15 MiB)."""
    forks = ForkServer(state).start()
    procs = []
    try:
        for i in range(5):
            p = forks.spawn(netns, ["--task", f"app.{i}", "--node", "node1", "--port",
                                    str(9000 + i)])
            assert p.stdout.readline().startswith("ready")
            procs.append(p)
        own = [_rollup_kib(p.pid, "Private_Dirty") for p in procs]
        assert max(own) < 2048, own
    finally:
        for p in procs:
            p.kill()
        forks.stop()


def _rollup_kib(pid: int, field: str) -> int:
    text = open(f"/proc/{pid}/smaps_rollup").read()
    return next(int(line.split()[1]) for line in text.splitlines()
                if line.startswith(field + ":"))

