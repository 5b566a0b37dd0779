"""The wiring of every node's bridge: port numbers, interface names and addresses.

What the topology builds and the rules match on must agree; both take it from here.
Pure functions of the model.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from swarmmesh.model import INGRESS_VNI, Cluster, Network, Node, Task

BRIDGE = "br-ingress"
PORT_GW = 1
PORT_VXLAN = 2
FIRST_TASK_PORT = 10
GW_INTF = "gwbr"               # kernel side, in the node's namespace
GW_OVS_INTF = "gwbr-sbox"      # bridge side
VXLAN_INTF = "vx-ingress"
GW_IP = "172.18.0.1"           # the node's address on docker_gwbridge
GW_PREFIX = 16
GW_MAC = "02:42:ac:12:00:01"
SBOX_GW_IP = "172.18.0.2"      # the ingress sandbox's address on docker_gwbridge
SBOX_GW_MAC = "02:42:ac:12:00:02"
NET_PORT_STRIDE = 1000         # network j: VXLAN on port 1000*j, task t<n> on 1000*j + n
LB_PORT_BASE = 65000           # network j: the leg to the node's kernel (its VIPs) on 65000 + j
# A task with a host-mode port has its own leg on docker_gwbridge (a veth to its node, no
# bridge port): 172.18.0.0/24 is kept for the gateway and the sandbox, t<n> takes
# 172.18.1.0 + n, so tasks t1..t65278 fit below the /16's broadcast address.
GW_TASK_BASE = IPv4Address("172.18.1.0")
GW_TASK_MAX = int(IPv4Address("172.18.255.254")) - int(GW_TASK_BASE)


def ingress_port(task: Task) -> int:
    """Bridge port of a task's ingress leg: 10 + n - 1 for task ``t<n>``
    (stable while other tasks come and go)."""
    return FIRST_TASK_PORT + task_number(task) - 1


def task_ports(cluster: Cluster, node: str) -> dict[str, int]:
    """Port number of each local task's ingress leg on the node's bridge, by task host."""
    return {t.host: ingress_port(t) for t in cluster.tasks_on(node) if "ingress" in t.addresses}


def task_intf(task: Task) -> str:
    """Name of the task's veth end on the node's side."""
    return f"{task.host}-veth"


def dpid_of(node: Node) -> int:
    """Datapath id of a node's bridge: 0x5357 ("SW") then the node index."""
    return (0x5357 << 48) | node.index


def node_of_dpid(cluster: Cluster, dpid: int) -> Node | None:
    for n in cluster.nodes:
        if dpid_of(n) == dpid:
            return n
    return None


def net_index(network: Network) -> int:
    """The network's small index j (0 for ingress): its VNI minus 4096."""
    return network.vni - INGRESS_VNI


def user_networks(cluster: Cluster) -> list[Network]:
    return [n for n in cluster.networks.values() if not n.ingress]


def task_number(task: Task) -> int:
    """n of the task's host name ``t<n>``."""
    return int(task.host[1:])


def vxlan_port(network: Network) -> int:
    return NET_PORT_STRIDE * net_index(network)


def vxlan_intf(network: Network) -> str:
    return VXLAN_INTF if network.ingress else f"vx-n{net_index(network)}"


def net_port(task: Task, network: Network) -> int:
    """Bridge port of a task's leg on a user network."""
    return NET_PORT_STRIDE * net_index(network) + task_number(task)


def lb_port(network: Network) -> int:
    """Bridge port of the node's leg to its kernel on a user network (``lb-n<j>``): the
    kernel picks a task for each new connection to a VIP, as Swarm's ``lb-<net>``."""
    return LB_PORT_BASE + net_index(network)


def lb_intf(network: Network) -> str:
    """The kernel's end of that leg (``lb-n<j>``)."""
    return f"lb-n{net_index(network)}"


def lb_br_intf(network: Network) -> str:
    """The bridge's end of that leg (``lb-n<j>-br``)."""
    return f"lb-n{net_index(network)}-br"


def lb_leg_mac(network: Network) -> str:
    """The MAC of the kernel's end (the same on every node: it never leaves the node)."""
    j = net_index(network)
    return f"02:42:ac:13:{j >> 8:02x}:{j & 0xff:02x}"


def net_intf(task: Task, network: Network) -> str:
    """Name of the task's veth end on the node's side, on a user network."""
    return f"{task.host}-n{net_index(network)}"


def task_net_intf(task: Task, network: Network) -> str:
    """Name of the task's interface on a network, inside the task."""
    return f"{task.host}-eth{net_index(network)}"


def net_ports(cluster: Cluster, node: str) -> dict[tuple[str, str], int]:
    """Bridge port of each local task's leg on each user network, by (host, network)."""
    out = {}
    for t in cluster.tasks_on(node):
        for name, net in cluster.networks.items():
            if not net.ingress and name in t.addresses:
                out[(t.host, name)] = net_port(t, net)
    return out


def has_gw_leg(task: Task, cluster: Cluster) -> bool:
    """Does the task have a leg on docker_gwbridge (its service publishes a host-mode port,
    or its ingress ports go to local tasks only: ``traffic_policy: local``)?"""
    svc = cluster.service(task.service)
    return bool(svc.host_ports()) or (svc.balancing.traffic_policy == "local"
                                      and bool(svc.ingress_ports()))


def task_gw_ip(task: Task) -> IPv4Address:
    """The task's address on docker_gwbridge: 172.18.1.0 + n for task ``t<n>`` (prefix
    GW_PREFIX, default route via GW_IP)."""
    n = task_number(task)
    if not 1 <= n <= GW_TASK_MAX:
        raise ValueError(f"task {task.host}: no docker_gwbridge address for task numbers "
                         f"beyond {GW_TASK_MAX}")
    return GW_TASK_BASE + n


def task_gw_intf(task: Task) -> str:
    """Name of the task's docker_gwbridge leg, inside the task (``t<n>-ethgw``)."""
    return f"{task.host}-ethgw"


def gw_intf(task: Task) -> str:
    """Name of the node's end of a task's docker_gwbridge leg (``t<n>-gw``)."""
    return f"{task.host}-gw"
