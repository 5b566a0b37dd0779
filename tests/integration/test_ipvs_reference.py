"""Swarm's own data plane as the reference path (``Testbed(ingress="ipvs")``): a real ingress
sandbox per node with the mangle mark, an IPVS rr service on the fwmark and the SNAT with
``-m ipvs``, passing the routing mesh's own checks: exact rr per node, the entry node's
ingress address seen by the task, and a task that leaves (weight 0, then removal).

Needs the kernel's ``ip_vs`` (every stock distribution kernel: ``make vm-test`` runs this
file in such a guest); skipped, with the reason, where it is missing."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from swarmmesh.lifecycle.orchestrator import Orchestrator
from swarmmesh.machine.datapath import ipvs_missing
from swarmmesh.model import Cluster
from swarmmesh.testbed.testbed import Testbed

from .conftest import http

WHY_NOT = ipvs_missing()
pytestmark = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f"IPVS reference path skipped: {WHY_NOT}")


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """3 nodes, `app` 2 replicas 8000 -> 80 (node3 runs none), every node with a real
    ingress sandbox; an orchestrator with Swarm's timings (a task leaves after 2 s)."""
    tb = Testbed(Cluster.quick(nodes=3, replicas=2), tmp_path_factory.mktemp("ipvs"),
                 ingress="ipvs")
    tb.__enter__()
    orch = Orchestrator(tb, profile="swarm")
    orch.start()
    yield tb, orch
    orch.stop()
    log = tb.controller_log()
    tb.__exit__(None, None, None)
    assert "OpenFlow error" not in log


def picks(tb, node: str, count: int) -> list[str]:
    """The task that answered each of ``count`` new connections through ``node``."""
    ip = str(tb.cluster.node(node).underlay_ip)
    return [a["body"]["task"] if a["ok"] else "FAILED"
            for a in http(tb, "c1", ip, 8000, count=count)]


def weights(tb, node: str) -> dict[str, int]:
    """The real servers of the node's sandbox (address -> weight), from ``ipvsadm -L -n``."""
    out = tb.host(node).sandbox.ipvsadm()
    return {m[0]: int(m[1]) for m in re.findall(r"->\s+(\S+:\d+)\s+Masq\s+(\d+)", out)}


def test_every_node_splits_new_connections_in_exact_round_robin(ref):
    tb, _ = ref
    tasks = {t.name for t in tb.cluster.tasks_of("app")}
    for node in tb.cluster.nodes:
        seq = picks(tb, node.name, 8)
        assert set(seq[:2]) == tasks, (node.name, seq)           # one of each per turn
        assert all(seq[i] == seq[i % 2] for i in range(8)), (node.name, seq)


def test_the_task_sees_the_entry_nodes_ingress_address(ref):
    tb, _ = ref
    for node in tb.cluster.nodes:
        answers = http(tb, "c1", str(node.underlay_ip), 8000, count=4)
        assert all(a["ok"] for a in answers), answers
        assert {a["body"]["client"] for a in answers} == {str(node.ingress_ip)}
        assert {a["body"]["port"] for a in answers} == {80}


def test_the_sandbox_is_built_as_libnetwork_builds_it(ref):
    tb, _ = ref
    sbox = tb.host("node1").sandbox
    out = sbox.ipvsadm()
    assert re.search(r"FWM\s+256 rr", out), out
    assert weights(tb, "node1") == {f"{t.addresses['ingress']}:80": 1
                                    for t in tb.cluster.tasks_of("app")}
    for key, want in (("conntrack", "1"), ("conn_reuse_mode", "0"),
                      ("expire_nodest_conn", "1"), ("expire_quiescent_template", "1")):
        assert sbox.run(["sysctl", "-n", f"net.ipv4.vs.{key}"]).strip() == want, key
    mangle = sbox.run(["iptables", "-t", "mangle", "-S", "PREROUTING"])
    assert "--dport 8000 -j MARK --set-xmark 0x100/0xffffffff" in mangle, mangle
    nat = sbox.run(["iptables", "-t", "nat", "-S", "POSTROUTING"])
    assert "-m ipvs --ipvs -j SNAT --to-source 10.0.0.2" in nat, nat
    # The node itself has no route to the ingress network: only its sandbox reaches tasks.
    assert "10.0.0.0/24" not in tb.host("node1").cmd("ip route")
    # moby 20.10's sandbox: its ingress address and the service's ingress VIP as a /32.
    addrs = sbox.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
    assert "10.0.0.2/24" in addrs and "10.0.0.5/32" in addrs, addrs


REUSE_RATE, REUSE_SECONDS, REUSE_PORTS = 30, 6, (40100, 40120)   # 21: odd


def reused_ports(tb, tmp_path) -> tuple[list[dict], dict[str, list[str]]]:
    """180 new connections at 30/s through node3 (no task) from 21 client ports, each
    coming back every ~0.7 s: the loadgen's rows, and the tasks each port reached in turn."""
    import csv
    import subprocess
    import sys
    from collections import defaultdict

    from swarmmesh.agents import python_env
    client = tb.host("c1")
    client.cmd("sysctl -qw net.ipv4.ip_local_port_range='%d %d'" % REUSE_PORTS)
    out = tmp_path / "load.csv"
    proc = client.popen([sys.executable, "-m", "swarmmesh.agents.loadgen",
                         "--target", f"node3={tb.cluster.node('node3').underlay_ip}",
                         "--port", "8000", "--rate", str(REUSE_RATE),
                         "--duration", str(REUSE_SECONDS),
                         "--t0", str(time.monotonic() + 0.5), "--csv", str(out)],
                        env=python_env(), stdout=subprocess.PIPE, text=True)
    tb.state.register(proc.pid, "swarmmesh.agents.loadgen")
    proc.communicate(timeout=REUSE_SECONDS + 60)
    client.cmd("sysctl -qw net.ipv4.ip_local_port_range='32768 60999'")
    rows = sorted(csv.DictReader(out.open()), key=lambda r: int(r["seq"]))
    by_port = defaultdict(list)
    for r in rows:
        by_port[r["client_port"]].append(r["task"])
    assert len(rows) == REUSE_RATE * REUSE_SECONDS
    assert [r for r in rows if r["ok"] != "True"] == []                # nothing lost
    assert len(by_port) <= REUSE_PORTS[1] - REUSE_PORTS[0] + 1       # every port reused
    return rows, by_port


def moved(by_port: dict[str, list[str]]) -> int:
    """How many reuses of a port reached another task than its previous use."""
    return sum(1 for ts in by_port.values() for a, b in zip(ts, ts[1:]) if a != b)


def test_a_reused_client_port_keeps_its_ipvs_entry_and_loses_nothing(ref, tmp_path):
    """With ``conn_reuse_mode=0`` IPVS reuses the port's connection entry (TIME_WAIT,
    2 min): a reused port goes back to the task it had, not to the next in rr."""
    tb, orch = ref
    orch.settle()
    rows, by_port = reused_ports(tb, tmp_path)
    print(f"IPVS: {len(rows) - len(by_port)} reuses, {moved(by_port)} to another task, "
          f"split {sorted(Counter(r['task'] for r in rows).items())}")
    assert moved(by_port) == 0, dict(by_port)


def test_the_emulated_mesh_gives_a_reused_port_a_fresh_pick(tmp_path_factory, tmp_path):
    """The same load on the emulated mesh, for comparison: the node's conntrack reopens
    the port's closed entry and the pick runs again, so the split stays exact."""
    tb = Testbed(Cluster.quick(nodes=3, replicas=2), tmp_path_factory.mktemp("mesh"))
    tb.__enter__()
    try:
        rows, by_port = reused_ports(tb, tmp_path)
    finally:
        tb.__exit__(None, None, None)
    split = Counter(r["task"] for r in rows)
    print(f"emulated: {len(rows) - len(by_port)} reuses, {moved(by_port)} to another task, "
          f"split {sorted(split.items())}")
    assert split == {"app.1": len(rows) // 2, "app.2": len(rows) // 2}
    assert moved(by_port) > 0


def test_a_task_that_leaves_gets_weight_0_then_is_removed_and_new_connections_skip_it(ref):
    tb, orch = ref
    leaving = max(tb.cluster.tasks_of("app"), key=lambda t: t.slot)
    dest = f"{leaving.addresses['ingress']}:80"
    seen: list[int | None] = []
    orch.scale("app", 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:            # node3 (no task) as every node
        w = weights(tb, "node3").get(dest)
        if not seen or seen[-1] != w:
            seen.append(w)
        if w is None:
            break
        time.sleep(0.05)
    assert seen[-2:] == [0, None], seen           # weight 0 first, then no real server
    orch.settle()
    stays = {t.name for t in tb.cluster.tasks_of("app")}
    assert leaving.name not in stays
    for node in tb.cluster.nodes:
        assert dest not in weights(tb, node.name), node.name
        assert set(picks(tb, node.name, 4)) == stays, node.name
