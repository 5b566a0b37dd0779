"""Health checks run inside a real Mininet host's network namespace.

A two-host Mininet network (hk1 -- hk2, one direct link, no switch, no
controller); the task server runs in hk2. Checks run, as Docker runs them,
inside the task's namespace against localhost: the built-in HTTP probe through
setns, a command probe through ``mnexec -a``. The mode is flipped from hk1
over the link, with real packets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from swarmmesh.lifecycle.checker import Checker
from swarmmesh.lifecycle.health import HEALTHY, UNHEALTHY, Transition
from swarmmesh.lifecycle.probeloop import run_probe
from swarmmesh.lifecycle.probes import CommandProbe, HttpProbe, probe_for
from swarmmesh.lifecycle.profiles import check_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Mininet)")

REPO = Path(__file__).resolve().parents[2]
HK2_IP = "10.77.0.2"


@pytest.fixture(scope="module")
def net():
    from mininet.net import Mininet
    mn = Mininet(build=False, controller=None, autoSetMacs=False)
    hk1 = mn.addHost("hk1", ip="10.77.0.1/24")
    hk2 = mn.addHost("hk2", ip=HK2_IP + "/24")
    mn.addLink(hk1, hk2)
    mn.build()
    server = None
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        server = hk2.popen([sys.executable, "-m", "swarmmesh.agents.taskserver", "--task", "app.1",
                            "--node", "node1", "--port", "80", "--control-port", "9999"],
                           cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        line = server.stdout.readline()
        assert line.startswith("ready 80 9999"), (line, server.stderr.read())
        yield mn, hk1, hk2, server
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(5)
        mn.stop()


def set_mode(hk1, mode: str) -> None:
    """From hk1, across the link, to the task's private port."""
    out = hk1.cmd(f"curl -s -m 2 'http://{HK2_IP}:9999/control?mode={mode}'")
    assert f'"mode": "{mode}"' in out, out


def test_checks_run_in_the_task_namespace(net):
    _, hk1, hk2, _ = net
    http = probe_for(("CMD", "curl", "-f", "http://localhost/health"), netns_pid=hk2.pid)
    assert isinstance(http, HttpProbe)
    r = run_probe(http, timeout=1.0)
    assert r.ok and r.output == "HTTP 200", r
    # hk1 has nothing on port 80: the probe really runs where it is told to
    r = run_probe(HttpProbe(port=80, netns_pid=hk1.pid), timeout=1.0)
    assert not r.ok and "refused" in r.output.lower()
    cmd = probe_for(("CMD", "curl", "-sf", "-X", "GET", "http://localhost/health"),
                    netns_pid=hk2.pid)
    assert isinstance(cmd, CommandProbe)
    assert run_probe(cmd, timeout=3.0).ok
    assert not run_probe(CommandProbe(cmd.argv, netns_pid=hk1.pid), timeout=3.0).ok

    set_mode(hk1, "unhealthy")
    try:
        r = run_probe(http, timeout=1.0)
        assert not r.ok and r.output == "HTTP 503"
        r = run_probe(cmd, timeout=3.0)
        assert not r.ok and r.exit_code == 22  # curl -f on HTTP >= 400
    finally:
        set_mode(hk1, "healthy")
    assert run_probe(http, timeout=1.0).ok


def test_checker_in_namespace_detects_dead_and_recovery(net):
    _, hk1, hk2, server = net
    seen: list[Transition] = []
    cond = threading.Condition()

    def on_transition(t: Transition) -> None:
        with cond:
            seen.append(t)
            cond.notify_all()

    def wait_for(new: str, timeout: float = 5.0) -> Transition:
        deadline = time.monotonic() + timeout
        with cond:
            while not any(t.new == new for t in seen):
                left = deadline - time.monotonic()
                assert left > 0, f"no transition to {new}: {seen}"
                cond.wait(left)
            return next(t for t in seen if t.new == new)

    fast = check_for("fast")
    with Checker(on_transition) as checker:
        checker.add("app.1", fast, probe_for(fast.test, netns_pid=hk2.pid))
        assert wait_for(HEALTHY).old == "starting"
        seen.clear()
        t_kill = time.monotonic()
        set_mode(hk1, "dead")
        down = wait_for(UNHEALTHY)
        detect = down.t - t_kill
        # retries failed checks, interval apart, after the kill
        assert detect <= fast.retries * (fast.interval + fast.timeout), detect
        assert "refused" in down.result.output.lower()
        seen.clear()
        server.send_signal(signal.SIGUSR1)  # the task comes back
        up = wait_for(HEALTHY)
        assert up.old == UNHEALTHY
    print(f"\nfast profile, dead task detected after {detect * 1000:.0f} ms")
