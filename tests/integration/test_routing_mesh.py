"""The routing mesh on a real network: 3 nodes, service `app`, 2 replicas,
8000 -> 80, node3 runs no replica; and 4 nodes x 3 replicas for the split."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections import Counter

import pytest

from swarmmesh.model import Cluster
from swarmmesh.testbed.topology import PRIVATE_PORT

from .conftest import PY, REPO, http


@pytest.fixture(scope="module")
def mesh(testbed_factory):
    return testbed_factory(Cluster.quick(nodes=3, replicas=2))


def test_scenario_every_node_answers_including_the_one_without_replica(mesh):
    cluster = mesh.cluster
    assert cluster.tasks_on("node3") == []
    for node in cluster.nodes:
        answers = http(mesh, "c1", str(node.underlay_ip), 8000, count=6)
        assert all(a["ok"] for a in answers), answers
        assert {a["body"]["task"] for a in answers} == {"app.1", "app.2"}, node.name


def test_source_is_snatted_to_the_entry_nodes_ingress_address(mesh):
    client_ip = str(mesh.cluster.clients[0].underlay_ip)
    for node in mesh.cluster.nodes:
        for a in http(mesh, "c1", str(node.underlay_ip), 8000, count=4):
            assert a["body"]["client"] == str(node.ingress_ip)
            assert a["body"]["client"] != client_ip


def test_published_port_is_rewritten_to_the_target_port(mesh):
    answers = http(mesh, "c1", str(mesh.cluster.node("node3").underlay_ip), 8000, count=2)
    assert [a["body"]["port"] for a in answers] == [80, 80]


def test_unpublished_task_port_is_not_reachable_from_the_client(mesh):
    before = {t.name: _seq(mesh, t) for t in mesh.cluster.tasks}
    for node in mesh.cluster.nodes:
        for port in (PRIVATE_PORT, 80):
            [a] = http(mesh, "c1", str(node.underlay_ip), port, timeout=1.0)
            assert not a["ok"], (node.name, port, a)
    for task in mesh.cluster.tasks:          # the task's own address is not routed
        [a] = http(mesh, "c1", str(task.addresses["ingress"]), PRIVATE_PORT, timeout=1.0)
        assert not a["ok"], a
    # The receiving side: no task server saw any of those requests.
    after = {t.name: _seq(mesh, t) for t in mesh.cluster.tasks}
    assert {k: after[k] - before[k] for k in after} == {k: 1 for k in after}


def _seq(tb, task) -> int:
    """The task server's request counter, read from inside the task (one request)."""
    [a] = http(tb, task.host, "127.0.0.1", PRIVATE_PORT)
    return a["body"]["seq"]


def test_vxlan_udp_4789_crosses_the_underlay(mesh):
    ul = mesh.host("underlay")
    cap = ul.popen(["tcpdump", "--immediate-mode", "-l", "-n", "-i", "ul-node3",
                    "udp", "port", "4789"], stdout=subprocess.PIPE,
                   stderr=subprocess.DEVNULL, text=True)
    mesh.state.register(cap.pid, "tcpdump")
    time.sleep(0.7)
    answers = http(mesh, "c1", str(mesh.cluster.node("node3").underlay_ip), 8000, count=4)
    time.sleep(0.3)
    cap.terminate()
    out = cap.communicate(timeout=5)[0]
    assert all(a["ok"] for a in answers)
    lines = [line for line in out.splitlines() if "VXLAN" in line]
    assert len(lines) >= 4 * 5, out[-2000:]          # SYN, ACK, request, ... both ways
    assert all("vni 4096" in line for line in lines)
    assert any("192.168.99.3." in line and "192.168.99.1.4789" in line for line in lines)
    assert any("192.168.99.3." in line and "192.168.99.2.4789" in line for line in lines)


def test_no_packet_in_and_no_openflow_error(mesh):
    log = mesh.controller_log()
    assert "in sync with the model" in log
    assert "OpenFlow error" not in log
    for node in mesh.cluster.nodes:
        flows = mesh.host(node.name).ofctl("dump-flows")
        assert "CONTROLLER" not in flows          # never in the per-connection path


def test_experiment_4_nodes_3_replicas_splits_exactly_per_node(tmp_path):
    """The issue's acceptance run, through the experiment script itself."""
    r = subprocess.run([PY, "experiments/routing_mesh.py", "--nodes", "4", "--replicas", "3",
                        "--requests", "60", "--out", str(tmp_path), "--quiet"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / r.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failed"] == 0
    assert summary["datapath"] in ("system", "netdev")
    for node in ("node1", "node2", "node3", "node4"):
        assert summary["counts"][node] == {"app.1": 20, "app.2": 20, "app.3": 20}, node
    assert summary["seen_source_is_entry_node_ingress_ip"] is True
    assert summary["vxlan_on_underlay"]["packets"] > 0
    assert summary["vxlan_on_underlay"]["vni"] == {"4096": summary["vxlan_on_underlay"]["packets"]}
    import csv
    rows = list(csv.DictReader(open(run_dir / "requests.csv")))
    assert len(rows) == 240
    # the pick sequence of each node is exact round robin: b0 b1 b2 b0 ...
    for node in ("node1", "node2", "node3", "node4"):
        seq = [row["task"] for row in rows if row["ingress_node"] == node]
        assert Counter(seq[i::3][0] for i in range(3)) == Counter(["app.1", "app.2", "app.3"])
        assert all(seq[i] == seq[i % 3] for i in range(len(seq))), seq
        assert {row["seen_source"] for row in rows if row["ingress_node"] == node} == \
            {f"10.0.0.{1 + int(node[-1])}"}
    for name in ("requests_per_task", "latency_cdf"):
        assert (run_dir / f"{name}.png").stat().st_size > 10_000
        assert (run_dir / f"{name}.pdf").exists()


UDP_CLIENT = r"""
import json, socket, sys
node, conns, burst, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for c in range(conns):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.bind(("", base + c))            # a port no earlier flow used: a new flow for conntrack
    s.connect((node, 8000))
    for i in range(burst):            # several datagrams before any answer
        s.send(b"ping %d" % i)
    tasks = []
    for i in range(burst):
        tasks.append(json.loads(s.recv(2048))["task"])
    print(json.dumps(tasks))
    s.close()
"""


@pytest.fixture(scope="module")
def udp_mesh(testbed_factory):
    return testbed_factory(Cluster.quick(nodes=3, replicas=2, protocol="udp"))


_UDP_PORTS = itertools.count(42000, 100)


def _udp_flows(tb, conns: int, burst: int) -> list[list[str]]:
    """``conns`` new UDP flows (fresh source ports), ``burst`` datagrams each."""
    out = tb.run_in("c1", ["-c", UDP_CLIENT, "192.168.99.3", str(conns), str(burst),
                           str(next(_UDP_PORTS))])
    return [json.loads(line) for line in out.splitlines()]


def test_udp_published_port_keeps_each_flow_on_one_task(udp_mesh):
    flows = _udp_flows(udp_mesh, 8, 3)
    assert len(flows) == 8
    assert all(len(set(f)) == 1 for f in flows), flows        # a flow stays on its task
    assert {f[0] for f in flows} == {"app.1", "app.2"}


def test_udp_single_datagram_flows_split_in_exact_round_robin(udp_mesh):
    picks = [f[0] for f in _udp_flows(udp_mesh, 8, 1)]
    assert picks == [picks[0], picks[1]] * 4 and picks[0] != picks[1], picks


@pytest.mark.parametrize("repeat", range(3))
def test_udp_bursts_keep_round_robin_exact(udp_mesh, repeat):
    """Datagrams of one new flow that arrive in one receive batch all pass
    conntrack before the first is committed; the later ones find the
    connection learned in table 14, so the pointer moves once per flow."""
    picks = [f[0] for f in _udp_flows(udp_mesh, 8, 3)]
    assert picks == [picks[0], picks[1]] * 4 and picks[0] != picks[1], picks


def test_localhost_on_a_node_is_steered_into_the_mesh_too(mesh):
    """Swarm DNATs every local address, 127.0.0.1 included (route_localnet +
    masquerade on the gateway bridge)."""
    for node in mesh.cluster.nodes:
        answers = http(mesh, node.name, "127.0.0.1", 8000, count=4)
        assert all(a["ok"] for a in answers), (node.name, answers)
        assert {a["body"]["task"] for a in answers} == {"app.1", "app.2"}
        assert {a["body"]["client"] for a in answers} == {str(node.ingress_ip)}


def test_every_leg_of_a_node_and_a_task_has_its_checksum_offload_off(mesh):
    """Userspace OVS fills in no checksum a veth left to offload: every leg it carries
    has transmit checksumming off (done by ioctl from the testbed's process)."""
    task = mesh.cluster.tasks_on("node1")[0]
    node = mesh.host("node1")
    legs = {node: [f"{task.host}-veth", "gwbr", "gwbr-sbox"],
            mesh.net.get(task.host): [f"{task.host}-eth0"]}
    for host, intfs in legs.items():
        for intf in intfs:
            out = host.cmd(f"ethtool -k {intf}")
            assert "tx-checksumming: off" in out, (host.name, intf, out[:300])
    # and the client's (a leg Mininet's config turns off with ethtool, as before)
    assert "tx-checksumming: off" in mesh.net.get("c1").cmd("ethtool -k c1-eth0")
