"""Integration tier: real Mininet, real per-node Open vSwitch, the real
controller process, real packets.  On failure a test's testbed leaves its
flow tables and logs in the run folder (printed in the failure report)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarmmesh.lifecycle.orchestrator import Orchestrator
from swarmmesh.model import Cluster
from swarmmesh.testbed.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")


def dump_state(tb: Testbed, where: Path) -> None:
    """FAUCET-style: flows and ports of every node, for the failure report."""
    where.mkdir(parents=True, exist_ok=True)
    for n in tb.cluster.nodes:
        h = tb.host(n.name)
        (where / f"{n.name}-flows.txt").write_text(h.ofctl("dump-flows"))
        (where / f"{n.name}-ports.txt").write_text(h.ofctl("dump-ports-desc"))


@pytest.fixture(scope="module")
def testbed_factory(tmp_path_factory, request):
    """Build a Testbed for a cluster; tear it down after the module."""
    made: list[Testbed] = []

    def make(cluster: Cluster) -> Testbed:
        run = tmp_path_factory.mktemp("run")
        tb = Testbed(cluster, run)
        tb.__enter__()
        made.append(tb)
        return tb

    yield make
    for tb in made:
        if request.session.testsfailed:
            dump_state(tb, tb.run_dir / "dump")
            print(f"\ntestbed state dumped to {tb.run_dir / 'dump'}")
        errors = re.findall(r".*ERROR.*", tb.controller_log())
        tb.__exit__(None, None, None)
        assert not errors, f"controller logged errors: {errors[:5]}"


def http(tb: Testbed, client: str, ip: str, port: int, count: int = 1,
         timeout: float = 2.0) -> list[dict]:
    """Requests from a host, each on a new connection; one dict per request."""
    out = tb.run_in(client, ["-m", "swarmmesh.agents.httpclient", ip, str(port), "--count", str(count),
                             "--timeout", str(timeout)], timeout=count * (timeout + 1) + 20)
    return [json.loads(line) for line in out.splitlines()]


def ours_left() -> list[str]:
    """Processes, state and root-namespace links of this project still present."""
    left = []
    root_ns = os.readlink("/proc/self/ns/net")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        try:   # our task servers run in a host's namespace, never in the root one
            netns = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            netns = root_ns
        if any(m in cmd for m in ("swarmmesh.control.app", "/run/swarmmesh/run-",
                                  "mininet:underlay")) or \
                ("swarmmesh.agents.taskserver" in cmd and netns != root_ns):
            left.append(f"process {pid}: {cmd[:100]}")
    root = Path("/run/swarmmesh")
    if root.exists():
        left += [f"state {p}" for p in root.glob("run-*")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for name in re.findall(r"^\d+: ([^:@]+)", links, re.M):
        if re.match(r"(ul-|t\d+-|node\d+-|c\d+-|lb\d+-|gwbr|vx-)", name):
            left.append(f"link {name}")
    return left


@pytest.fixture
def living(tmp_path):
    """A started testbed and orchestrator; the cluster is the test's own."""
    made = []

    def make(cluster: Cluster, profile: str = "fast"):
        tb = Testbed(cluster, tmp_path / f"run{len(made)}")
        tb.__enter__()
        orch = Orchestrator(tb, profile=profile)
        made.append((tb, orch))
        orch.start()
        return tb, orch

    yield make
    for tb, orch in made:
        orch.stop()
        log = tb.controller_log()
        tb.__exit__(None, None, None)
        assert "OpenFlow error" not in log


def wait_all_running(tb, orch, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(t.state != "running" for t in tb.cluster.tasks) or orch.busy:
        assert time.monotonic() < deadline, [(t.name, t.state) for t in tb.cluster.tasks]
        time.sleep(0.05)
