"""A node's set-up (kernel legs, VXLAN devices, FDB, MTUs, bridge ports) against a recorded
copy, as the flows are (``test_flows_golden``), and the MTU rules it keeps.

The plan is a pure function of the model and the MTUs; a change meant to change the
set-up regenerates the files and shows the difference in review:

    SWARMMESH_REGEN_NODEPLAN=1 python -m pytest tests/unit/test_nodeplan.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from swarmmesh.dataplane import layout, mtu, nodeplan
from swarmmesh.dataplane.servers import mtu_plan
from swarmmesh.model import Cluster
from tests.stacks import EASTWEST

GOLDEN = Path(__file__).parent / "fixtures" / "nodeplan"
REPO = Path(__file__).resolve().parents[2]

HOSTMODE = {"services": {
    "web": {"deploy": {"replicas": 3},
            "ports": [{"target": 80, "published": 8080, "mode": "host"}, "9000:90"]},
    "db": {"deploy": {"replicas": 2}, "networks": ["back"]}},
    "networks": {"back": {}}}

# name -> (cluster, the plan's options)
CASES = {
    "quick-3x2": (lambda: Cluster.quick(3, 2), {}),
    "eastwest": (lambda: Cluster.from_stack(EASTWEST, nodes=3), {}),
    "hostmode": (lambda: Cluster.from_stack(HOSTMODE, nodes=3), {}),
    "hostmode-ipvs-offload": (lambda: Cluster.from_stack(HOSTMODE, nodes=3),
                              {"ingress": "ipvs", "offload": True, "datapath": "system"}),
    "quick-3x2-servers-gretap-1500": (lambda: Cluster.quick(3, 2),
                                      {"mtu": mtu_plan(1500, "gretap")}),
}


def render(name: str) -> str:
    make, opts = CASES[name]
    cluster = make()
    opts = {"mtu": mtu.SWARM, **opts}
    return "".join(f"## {n.name}\n" + nodeplan.node_plan(cluster, n.name, **opts).text()
                   for n in cluster.nodes)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_node_plans_are_unchanged(name):
    text = render(name)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("SWARMMESH_REGEN_NODEPLAN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: SWARMMESH_REGEN_NODEPLAN=1 writes it"
    assert text == path.read_text(), f"the node plans of {name} changed (see the docstring)"


def mtus_set(plan: nodeplan.NodePlan) -> dict[str, int]:
    """interface -> the MTU the plan gives it."""
    return {m[1]: int(m[2]) for c in plan.kernel
            if (m := re.match(r"ip link set (\S+) mtu (\d+)", c))}


@pytest.mark.parametrize("path_mtu,tunnel", [(1500, "gretap"), (1500, "vxlan"), (9000, "vxlan")])
def test_every_leg_gets_the_plans_mtu_underlay_or_overlay(path_mtu, tunnel):
    m = mtu_plan(path_mtu, tunnel)
    cluster = Cluster.from_stack(HOSTMODE, nodes=3)
    for node in cluster.nodes:
        set_ = mtus_set(nodeplan.node_plan(cluster, node.name, m))
        assert set_.pop(nodeplan.underlay_intf(node.name)) == m.underlay
        overlay_legs = [i for i, overlay in nodeplan.node_legs(cluster, node.name) if overlay]
        kernel_legs = [i for n in layout.user_networks(cluster)
                       for i in (layout.lb_intf(n), layout.lb_br_intf(n))]
        assert set(set_) == {layout.VXLAN_INTF, *(layout.vxlan_intf(n) for n in
                                                  layout.user_networks(cluster)), *overlay_legs,
                             *kernel_legs}
        assert set(set_.values()) == {m.overlay}
        gw = [i for i, overlay in nodeplan.node_legs(cluster, node.name) if not overlay]
        assert gw and not set(gw) & set(set_)       # docker_gwbridge legs stay at 1500


def test_one_machine_keeps_swarms_1500_and_1450():
    assert (mtu.SWARM.underlay, mtu.SWARM.overlay) == (1500, 1450)
    assert mtu.SWARM.overlay == mtu.SWARM.underlay - mtu.SWARM_OVERLAY_OVERHEAD


def test_the_legs_are_the_ones_the_topology_links():
    """node_legs names exactly the node ends of task_legs (the links Mininet makes)."""
    pytest.importorskip("mininet")
    from swarmmesh.testbed.topology import task_legs
    cluster = Cluster.from_stack(HOSTMODE, nodes=3)
    for node in cluster.nodes:
        linked = [leg["intfName2"] for t in cluster.tasks if t.node == node.name
                  and nodeplan.is_built(t, cluster) for leg in task_legs(t, cluster)]
        assert [i for i, _ in nodeplan.node_legs(cluster, node.name)] == linked


def test_a_task_leg_and_a_late_task_get_the_overlay_mtu():
    m = mtu_plan(1500, "gretap")
    cluster = Cluster.from_stack(HOSTMODE, nodes=3)
    task = next(t for t in cluster.tasks if layout.has_gw_leg(t, cluster))
    cmds = nodeplan.task_cmds(["t1-eth0", "t1-gw"], "t1-gw", m)
    assert f"ip link set t1-eth0 mtu {m.overlay}" in cmds
    assert not any("t1-gw mtu" in c for c in cmds)
    assert cmds[-1] == f"ip route replace default via {layout.GW_IP} dev t1-gw"
    late = nodeplan.attach_cmds(task, cluster, m)
    assert f"ip link set {layout.task_intf(task)} mtu {m.overlay} up" in late
    assert f"ip link set {layout.gw_intf(task)} up" in late


def test_no_mtu_literal_outside_the_derivation():
    """No command of the package writes an MTU as a number: they come from dataplane/mtu.py."""
    bad = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
           for p in sorted((REPO / "swarmmesh").rglob("*.py")) if p.name != "mtu.py"
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if re.search(r"mtu \d|MTU\s*=\s*\d", line)]
    assert not bad, bad


def test_a_task_s_ip_commands_run_as_one_ip_batch():
    from swarmmesh.testbed.shell import ip_batches
    legs = ["ip addr add 10.0.0.6/24 brd + dev t1-eth0", "ip link set t1-eth0 up"]
    cmds = nodeplan.task_cmds(["t1-eth0"], None, mtu.SWARM, lo="up", legs=legs)
    groups = ip_batches(cmds)
    assert len(groups) == 2                          # the offload, then one ip -batch
    assert groups[1][1].endswith("| ip -batch -") and groups[1][0] == [1, 2, 3, 4]
    assert cmds[1:] == [*legs, "ip link set lo up", f"ip link set t1-eth0 mtu {mtu.SWARM.overlay}"]


def test_the_offload_commands_split_from_the_others_in_order():
    cmds = [nodeplan.tx_off_cmd("gwbr"), "ip link set gwbr up", nodeplan.tx_cmd("x", True),
            nodeplan.tx_off_cmd("t1-n1"), "sysctl -qw net.ipv4.ip_forward=1"]
    assert nodeplan.split_tx_off(cmds) == (
        ["gwbr", "t1-n1"], ["ip link set gwbr up", "true", "sysctl -qw net.ipv4.ip_forward=1"])


def test_every_offload_command_of_a_plan_is_recognised():
    cluster = Cluster.from_stack(HOSTMODE, nodes=3)
    for node in cluster.nodes:
        plan = nodeplan.node_plan(cluster, node.name, mtu.SWARM)
        intfs, rest = nodeplan.split_tx_off([*plan.kernel, *plan.gw_legs])
        assert intfs and not any("ethtool" in c for c in rest)


def test_an_ethtool_request_names_the_interface_and_points_at_its_value():
    import ctypes
    import struct
    from swarmmesh.testbed import netns
    data = ctypes.create_string_buffer(8)
    req = netns.ethtool_request("t12-veth", netns.ETHTOOL_STXCSUM, 0, data)
    assert len(req) == netns.IFREQ_SIZE and req[:16].rstrip(b"\0") == b"t12-veth"
    assert struct.unpack_from("P", req, 16)[0] == ctypes.addressof(data)
    assert struct.unpack("II", data.raw) == (netns.ETHTOOL_STXCSUM, 0)
    with pytest.raises(ValueError, match="interface name"):
        netns.ethtool_request("a-name-too-long-for-ifreq", 1, 0, data)
