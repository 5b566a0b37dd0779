"""`mode: host` published ports on a real network: bound only on the nodes that run a
task, DNATed by the node's kernel straight to that local task (no mesh, no SNAT: the
task sees the client's own address), refused everywhere else; and the binding follows
the tasks at run time.  Beside them an ingress service still answers on every node."""

from __future__ import annotations

import json
import subprocess

import pytest

from swarmmesh.dataplane import layout
from swarmmesh.lifecycle.orchestrator import Orchestrator
from swarmmesh.model import Cluster

from .conftest import PY, REPO, http

CLIENT_IP = "192.168.99.201"
STACK = {"services": {
    "web": {"deploy": {"replicas": 2},
            "ports": [{"target": 80, "published": 8080, "mode": "host"},
                      {"target": 80, "published": 8081, "protocol": "udp", "mode": "host"}]},
    "app": {"deploy": {"replicas": 1}, "ports": [{"target": 80, "published": 8000}]},
}}

UDP_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]))
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"ping")
try:
    print(json.dumps(json.loads(s.recv(4096))))
except ConnectionRefusedError:          # ICMP port unreachable
    print(json.dumps({"refused": True}))
except socket.timeout:
    print(json.dumps({"timeout": True}))
"""


@pytest.fixture(scope="module")
def hostmode(testbed_factory):
    # as `docker service create`: no stack network, so `web`'s tasks are on no network
    # at all (test_real_stacks.py runs host mode beside the stack's default network)
    return testbed_factory(Cluster.from_stack(STACK, nodes=3, implicit_network=False))


def web_nodes(tb) -> dict[str, str]:
    """node -> the task of `web` on it."""
    return {t.node: t.name for t in tb.cluster.tasks_of("web")}


def udp(tb, ip: str, port: int, timeout: float = 1.0) -> dict:
    return json.loads(tb.run_in("c1", ["-c", UDP_CLIENT, ip, str(port), str(timeout)]))


def test_tasks_on_no_network_are_built_with_only_their_gw_leg(hostmode):
    for t in hostmode.cluster.tasks_of("web"):
        assert t.addresses == {}
        links = hostmode.task_host(t).cmd("ip -o link show").split("\n")
        names = sorted(line.split(":")[1].strip().split("@")[0] for line in links if line)
        assert names == sorted(["lo", layout.task_gw_intf(t)])
    recorded = set((hostmode.state.dir / "links").read_text().split())   # for a cleanup
    assert {layout.gw_intf(t) for t in hostmode.cluster.tasks_of("web")} <= recorded
    assert {layout.task_gw_intf(t) for t in hostmode.cluster.tasks_of("web")} <= recorded
    [app] = hostmode.cluster.tasks_of("app")               # no host-mode port: as before
    assert "ethgw" not in hostmode.task_host(app).cmd("ip -o link show")
    assert "-gw" not in hostmode.host("node3").cmd("ip -o link show")


def test_host_port_answers_on_task_nodes_from_the_local_task_with_the_clients_address(
        hostmode):
    web = web_nodes(hostmode)
    assert sorted(web) == ["node1", "node2"]
    for node, task in web.items():
        ip = str(hostmode.cluster.node(node).underlay_ip)
        answers = http(hostmode, "c1", ip, 8080, count=4)
        assert all(a["ok"] for a in answers), answers
        assert {a["body"]["task"] for a in answers} == {task}
        assert {a["body"]["node"] for a in answers} == {node}
        assert {a["body"]["client"] for a in answers} == {CLIENT_IP}     # no SNAT
        assert {a["body"]["port"] for a in answers} == {80}              # the target port


def test_host_port_is_refused_on_a_node_without_a_task(hostmode):
    ip = str(hostmode.cluster.node("node3").underlay_ip)
    answers = http(hostmode, "c1", ip, 8080, count=2, timeout=2.0)
    for a in answers:                     # an RST, at once: not a timeout
        assert a["error"].startswith("connect: ConnectionRefusedError"), a
    assert udp(hostmode, ip, 8081, timeout=2.0) == {"refused": True}


def test_udp_host_port_answers_from_the_local_task(hostmode):
    for node, task in web_nodes(hostmode).items():
        body = udp(hostmode, str(hostmode.cluster.node(node).underlay_ip), 8081)
        assert (body.get("task"), body.get("client"), body.get("port")) == (task, CLIENT_IP, 80)


def test_ingress_service_still_answers_on_every_node(hostmode):
    for node in hostmode.cluster.nodes:
        answers = http(hostmode, "c1", str(node.underlay_ip), 8000, count=2)
        assert all(a["ok"] for a in answers), (node.name, answers)
        assert {a["body"]["task"] for a in answers} == {"app.1"}
        assert {a["body"]["client"] for a in answers} == {str(node.ingress_ip)}


def test_localhost_on_a_task_node_reaches_the_local_task(hostmode):
    for node, task in web_nodes(hostmode).items():
        [a] = http(hostmode, node, "127.0.0.1", 8080)
        assert a["ok"] and a["body"]["task"] == task, a
        assert a["body"]["client"] == layout.GW_IP          # masqueraded, as on gwbr
    [a] = http(hostmode, "node3", "127.0.0.1", 8080)
    assert a["error"].startswith("connect: ConnectionRefusedError"), a


def test_scaling_binds_and_unbinds_the_port_on_the_new_node(hostmode):
    tb = hostmode
    node3 = str(tb.cluster.node("node3").underlay_ip)
    with Orchestrator(tb, profile="fast") as orch:
        orch.scale("web", 3)
        orch.settle()
        [new] = [t for t in tb.cluster.tasks_of("web") if t.node == "node3"]
        answers = http(tb, "c1", node3, 8080, count=3)
        assert all(a["ok"] for a in answers), answers
        assert {(a["body"]["task"], a["body"]["client"]) for a in answers} == \
            {(new.name, CLIENT_IP)}
        assert udp(tb, node3, 8081).get("task") == new.name
        recorded = (tb.state.dir / "links").read_text().split()
        assert {layout.gw_intf(new), layout.task_gw_intf(new)} <= set(recorded)

        orch.scale("web", 2)                  # the highest slot goes: the task on node3
        orch.settle()
        assert new not in tb.cluster.tasks
        [a] = http(tb, "c1", node3, 8080)
        assert a["error"].startswith("connect: ConnectionRefusedError"), a
        assert layout.gw_intf(new) not in tb.host("node3").cmd("ip -o link show")
        assert "8080" not in tb.host("node3").cmd("nft list table ip swarmmesh")
    for node, task in web_nodes(tb).items():  # the others never noticed
        [a] = http(tb, "c1", str(tb.cluster.node(node).underlay_ip), 8080)
        assert a["ok"] and a["body"]["task"] == task, a


def test_routing_mesh_experiment_on_a_host_mode_service(tmp_path):
    """Every node measured the same way; node3's refusals are the result, not a failure."""
    stack = tmp_path / "stack.yml"
    stack.write_text("services:\n"
                     "  web:\n    deploy: {replicas: 2}\n"
                     "    ports: [{target: 80, published: 8080, mode: host}]\n"
                     "  app:\n    ports: ['8000:80']\n")
    r = subprocess.run([PY, "experiments/routing_mesh.py", "--stack", str(stack), "--service",
                        "web", "--requests", "10", "--out", str(tmp_path / "out"), "--quiet"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "out" / r.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["port_mode"] == "host" and summary["failed"] == 0
    assert summary["nodes_with_task"] == ["node1", "node2"]
    assert summary["refused"] == {"node1": 0, "node2": 0, "node3": 10}
    assert summary["counts"] == {"node1": {"web.1": 10}, "node2": {"web.2": 10}}
    assert summary["answered_by_the_local_task"] and summary["seen_source_is_client"]
    assert summary["vxlan_on_underlay"]["packets"] == 0          # no mesh, no overlay
    assert "**host mode**" in (run_dir / "report.md").read_text()
