"""A cluster spread over two servers on one machine (issue 15): the second server is a
network namespace with its own sshd (``testbed.nsserver``), reached over ssh; nodes 3 and 4
live there (Mininet's cluster edition: their shells and processes over ssh), the two
underlay bridges joined by a VXLAN tunnel (this kernel makes no gretap)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from swarmmesh.dataplane import servers as sv
from swarmmesh.model import Cluster
from swarmmesh.testbed.nsserver import NamespaceServer
from swarmmesh.testbed.servers import Spread
from swarmmesh.testbed.testbed import Testbed

from .conftest import PY, REPO, http


def _plan(cluster, ns):
    return sv.plan(cluster, [{"name": "localhost", "address": ns.local_address},
                             {"name": ns.name, "address": ns.address, "port": ns.port}],
                   tunnel="vxlan", ssh_options=ns.ssh_options())


@pytest.fixture(scope="module")
def ns():
    server = NamespaceServer(index=7).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def spread(ns, tmp_path_factory):
    cluster = Cluster.quick(nodes=4, replicas=3)
    tb = Testbed(cluster, tmp_path_factory.mktemp("run"), servers=Spread(_plan(cluster, ns)))
    tb.__enter__()
    state = tb.state.dir
    yield tb
    tb.__exit__(None, None, None)
    assert not _ours(state), _ours(state)
    assert not _children(ns.proc.pid), _children(ns.proc.pid)


def _ours(state: Path) -> list[str]:
    """Processes whose command line names this run's state folder (on either server)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(state) in line and "ps -eo" not in line]


def _children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return out.split("\n")[:-1]


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(next(l for l in status.splitlines() if l.startswith("PPid:")).split()[1])
        chain.append(pid)
    return chain


def test_nodes_placed_on_the_server_run_under_its_sshd(spread, ns):
    where = spread.servers.plan.placement
    assert [n for n, s in where.items() if s == ns.name] == ["node3", "node4"]
    for name in ("node3", "node4", "underlay1", "app.3" and spread.cluster.tasks[2].host):
        assert ns.proc.pid in _ancestors(spread.host(name).pid), name
    for name in ("node1", "node2", "underlay", "c1"):
        assert ns.proc.pid not in _ancestors(spread.host(name).pid), name


def test_every_node_answers_with_the_exact_split(spread):
    for node in spread.cluster.nodes:
        answers = http(spread, "c1", str(node.underlay_ip), 8000, count=12)
        assert all(a["ok"] for a in answers), (node.name, answers)
        tasks = [a["body"]["task"] for a in answers]
        assert {t: tasks.count(t) for t in set(tasks)} == {"app.1": 4, "app.2": 4,
                                                           "app.3": 4}, node.name


def test_vxlan_crosses_the_tunnel_inside_the_servers_vxlan(spread, ns):
    inner = spread.host("underlay").popen(
        ["tcpdump", "--immediate-mode", "-l", "-n", "-i", "tun-s1", "udp", "port", "4789"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    outer = subprocess.Popen(["tcpdump", "--immediate-mode", "-l", "-n", "-i", ns.intf,
                              "udp", "port", "4789"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    spread.state.register(inner.pid, "tcpdump")
    spread.state.register(outer.pid, "tcpdump")
    time.sleep(0.7)
    answers = http(spread, "c1", str(spread.cluster.node("node4").underlay_ip), 8000, count=3)
    time.sleep(0.3)
    for cap in (inner, outer):
        cap.terminate()
    inner_out, outer_out = inner.communicate(timeout=5)[0], outer.communicate(timeout=5)[0]
    assert all(a["ok"] for a in answers)
    # Swarm's ingress overlay (VNI 4096) between the nodes' underlay addresses, on the tunnel
    assert len([l for l in inner_out.splitlines() if "vni 4096" in l]) >= 3 * 5, inner_out[-1500:]
    # ... and the tunnel's own VXLAN between the servers' addresses, around it
    assert any(f"{ns.local_address}" in l and "vni 4096" not in l and "VXLAN" in l
               for l in outer_out.splitlines()), \
        outer_out[-1500:]


def test_mtus_follow_the_plan(spread):
    mtu = spread.servers.plan.mtu
    assert (mtu.underlay, mtu.overlay) == (1450, 1400)        # a 1500 path, VXLAN tunnel

    def mtu_of(host, intf):
        return int(spread.host(host).cmd(f"cat /sys/class/net/{intf}/mtu").strip())
    assert mtu_of("node3", "node3-eth0") == mtu.underlay
    assert mtu_of("underlay1", "tun-s0") == mtu.underlay
    assert mtu_of("node3", "vx-ingress") == mtu.overlay
    task = spread.cluster.tasks_on("node3")[0]
    assert mtu_of(task.host, f"{task.host}-eth0") == mtu.overlay


def test_the_servers_processes_are_recorded_there(spread, ns):
    rec = (spread.state.dir / "servers" / ns.name / "pids").read_text()
    for marker in ("mininet:node3", "mininet:underlay1", "swarmmesh.agents.taskserver",
                   "swarmmesh.agents.dns", "swarmmesh.control.server_relay"):
        assert marker in rec, rec


RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from swarmmesh.dataplane import servers as sv
    from swarmmesh.model import Cluster
    from swarmmesh.testbed.servers import Spread
    from swarmmesh.testbed.testbed import Testbed
    c = Cluster.quick(nodes=2, replicas=2)
    plan = sv.plan(c, [{{"name": "localhost", "address": "{local}"}},
                       {{"name": "{name}", "address": "{addr}", "port": {port}}}],
                   tunnel="vxlan", ssh_options={opts!r})
    with Testbed(c, Path(sys.argv[1]), servers=Spread(plan)) as tb:
        print("up", tb.state.dir, flush=True)
        time.sleep(600)
""")


@pytest.fixture
def ns_alone():
    """A server of its own (the module's testbed keeps its sessions on ``ns``)."""
    server = NamespaceServer(index=8).start()
    yield server
    server.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_and_kill_then_clean_leave_nothing_on_either_server(ns_alone, tmp_path, sig):
    ns = ns_alone
    script = RUN.format(local=ns.local_address, name=ns.name, addr=ns.address, port=ns.port,
                        opts=ns.ssh_options())
    proc = subprocess.Popen([PY, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    line = proc.stdout.readline()
    assert line.startswith("up"), line
    state = Path(line.split()[1])
    assert _children(ns.proc.pid) and _ours(state)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if sig == signal.SIGKILL:
        assert _ours(state)                       # a killed run leaves its processes ...
        out = subprocess.run([PY, "-m", "swarmmesh.testbed.runtime"], capture_output=True,
                             text=True, timeout=120).stdout
        assert f"{ns.name}: process" in out, out  # ... which the server cleans by its record
    time.sleep(0.5)
    assert not _ours(state), _ours(state)
    assert not _children(ns.proc.pid), _children(ns.proc.pid)
    assert not state.exists()
    assert not os.path.exists(os.path.expanduser("~/.ssh/mn"))
