"""No build that can hang: each fault injected into a real build (a shell that never
answers, a task server that never listens, a DNS that never serves, a vswitchd without
/dev/net/tun that the controller can never program) ends it within its bound, with one
line naming the node, the step and the cause from that process's own log, and leaves
nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from swarmmesh.model import Cluster
from swarmmesh.testbed import topology
from swarmmesh.testbed.testbed import Testbed, TestbedError

from .conftest import PY, REPO, ours_left

BOUND = 8.0           # seconds: SWARMMESH_BUILD_TIMEOUT for these builds
SLACK = 25.0          # the teardown, and the build's own few seconds before the fault


def _fails(tmp_path, monkeypatch) -> tuple[str, float]:
    """Build a 2-node cluster that must fail; its message and how long it took."""
    monkeypatch.setenv("SWARMMESH_BUILD_TIMEOUT", str(BOUND))
    assert ours_left() == []
    t0 = time.monotonic()
    with pytest.raises(TestbedError) as err:
        with Testbed(Cluster.quick(nodes=2, replicas=2), tmp_path / "run"):
            pass
    took = time.monotonic() - t0
    assert ours_left() == []
    return str(err.value), took


def test_a_shell_that_never_answers_is_killed_and_named(tmp_path, monkeypatch):
    config = topology.SwarmNode.config

    def hang(self, **params):
        if self.name == "node2":
            self.cmd("sleep 600")
        return config(self, **params)
    monkeypatch.setattr(topology.SwarmNode, "config", hang)
    msg, took = _fails(tmp_path, monkeypatch)
    assert msg.startswith("node2: shell: `sleep 600` did not return within"), msg
    assert "\n" not in msg and took < BOUND + SLACK, (msg, took)


def test_a_task_that_never_listens_is_named_with_its_state(tmp_path, monkeypatch):
    start = topology.SwarmTask.start_server

    def stopped(self):
        start(self)
        if self.task_name == "app.2":
            os.kill(self.server.pid, signal.SIGSTOP)      # alive, and never says ready
    monkeypatch.setattr(topology.SwarmTask, "start_server", stopped)
    # Each task server its own interpreter: one forked by the fork server says ready within
    # a millisecond of its fork, before the test could stop it.
    monkeypatch.setenv("SWARMMESH_FORKSERVER", "0")
    msg, took = _fails(tmp_path, monkeypatch)
    assert msg.startswith("t2 (task app.2 on node2): task server: task server not ready "
                          "after"), msg
    assert "process stopped" in msg and took < BOUND + SLACK, (msg, took)


def test_a_dns_that_never_serves_is_named(tmp_path, monkeypatch):
    start = topology.SwarmNode._start_dns

    def stopped(self):
        start(self)
        if self.name == "node1":
            os.kill(self.dns.pid, signal.SIGSTOP)
    monkeypatch.setattr(topology.SwarmNode, "_start_dns", stopped)
    msg, took = _fails(tmp_path, monkeypatch)
    assert msg.startswith("node1: embedded DNS: embedded DNS not ready after"), msg
    assert "process stopped" in msg and took < BOUND + SLACK, (msg, took)


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "own-interpreter"])
def test_a_dns_that_exits_fails_at_once_with_its_own_error(tmp_path, monkeypatch, forked):
    """Started with a flag it does not know: forked, the fork server's parse refuses it
    (the DNS's own parser's words); as its own interpreter, it exits 2 saying so."""
    from swarmmesh.testbed.forks import ForkServer
    monkeypatch.setenv("SWARMMESH_FORKSERVER", "1" if forked else "0")
    spawn, start = ForkServer.spawn, topology.SwarmNode._start_dns

    def bad_flag(self, pid, argv, program="taskserver", output=None):
        if program == "dns" and "node2" in argv:
            argv = [*argv, "--no-such-flag"]
        return spawn(self, pid, argv, program, output)

    def broken(self):
        if self.name == "node2":
            popen = self.popen
            self.popen = lambda cmd, **kw: popen([*cmd, "--no-such-flag"], **kw)
        start(self)
    monkeypatch.setattr(ForkServer, "spawn", bad_flag)
    monkeypatch.setattr(topology.SwarmNode, "_start_dns", broken)
    msg, took = _fails(tmp_path, monkeypatch)
    assert msg.startswith("node2: embedded DNS: embedded DNS exited 2: "), msg
    assert msg.endswith("error: unrecognized arguments: --no-such-flag"), msg
    assert took < BOUND, (msg, took)          # at once, not at the bound


# Run in a mount namespace of its own where /dev/net is empty: a container started
# without --privileged or --device /dev/net/tun.
NO_TUN = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
          'mount -t tmpfs none /dev/net && exec "$@"', "sh"]

BUILD = """
import sys
from pathlib import Path
from swarmmesh.model import Cluster
from swarmmesh.testbed import testbed
from swarmmesh.testbed.testbed import Testbed, TestbedError
if sys.argv[2] == "skip-check":           # the fault the check exists for, injected past it
    testbed.check_datapath = lambda datapath: None
try:
    with Testbed(Cluster.quick(nodes=2, replicas=2), Path(sys.argv[1]), datapath="netdev"):
        pass
except TestbedError as e:
    print(e)
    sys.exit(3)
"""


def _no_tun(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "SWARMMESH_BUILD_TIMEOUT": str(BOUND)}
    return subprocess.run(NO_TUN + args, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_without_dev_net_tun_the_doctor_and_the_build_say_so_first(tmp_path):
    r = _no_tun([PY, "-m", "swarmmesh.ui.cli", "doctor", "--datapath", "netdev"])
    assert r.returncode == 1, r.stdout + r.stderr
    line = next(l for l in r.stdout.splitlines() if "datapath netdev: /dev/net/tun" in l)
    assert line.startswith("missing") and "/dev/net/tun is absent" in line, line
    assert "--device /dev/net/tun" in r.stdout
    t0 = time.monotonic()
    r = _no_tun([PY, "-c", BUILD, str(tmp_path / "run"), "check"])
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.strip().startswith("datapath netdev: /dev/net/tun is absent"), r.stdout
    assert time.monotonic() - t0 < 10 and ours_left() == []


def test_a_node_the_controller_cannot_program_is_named_with_its_vswitchd_line(tmp_path):
    t0 = time.monotonic()
    r = _no_tun([PY, "-c", BUILD, str(tmp_path / "run"), "skip-check"])
    took = time.monotonic() - t0
    assert r.returncode == 3, r.stdout + r.stderr
    msg = r.stdout.strip()
    assert msg.startswith('node1: programming (ovs-vswitchd): opening "/dev/net/tun" failed: '
                          "No such file or directory; failed to create datapath ovs-netdev: "
                          "No such file or directory; failed to open datapath"), msg
    assert took < BOUND + SLACK and ours_left() == [], (msg, took)
