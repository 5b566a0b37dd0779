"""A Docker Swarm cluster as a Mininet topology, built from the cluster model.

Every swarm node, task container, external client and the underlay itself is
a Mininet host in its own network namespace:

* ``underlay``: a Linux bridge in its own namespace, the cluster's L2 network
  (192.168.99.0/24).  Every node and client has one leg on it.
* ``node1..N`` (``SwarmNode``): the node's kernel (its underlay address, an
  nftables DNAT of published ports to the ingress sandbox, and of host-mode
  ports to a local task, a kernel VXLAN device for the ``ingress`` overlay
  with a static FDB) and the node's own ``ovs-vswitchd`` with bridge
  ``br-ingress``, which the controller programs to act as the ingress
  sandbox (IPVS rr + SNAT in Swarm).
* ``t1..`` (``SwarmTask``): one per task container, linked to its node's
  bridge, running the task server; a task with a host-mode port also has a
  leg on docker_gwbridge (a veth straight to its node's kernel).
* ``c1..`` : external clients on the underlay.

Use it from Mininet directly (start the controller first, see the README)::

    sudo mn --custom topologies/swarm.py --topo swarm,nodes=3,replicas=2 --controller remote
"""

from __future__ import annotations

import atexit
import json
import os

from mininet.topo import Topo

from swarmmesh.control.relay import DEFAULT_UNIX_SOCKET
from swarmmesh.dataplane import layout
from swarmmesh.dataplane.mtu import SWARM, Mtu
from swarmmesh.dataplane.nodeplan import is_built, tx_off_cmd  # noqa: F401  (re-exported)
from swarmmesh.machine.datapath import choose_datapath
from swarmmesh.model import Cluster, UNDERLAY_SUBNET, docker_mac
from swarmmesh.testbed.hosts import (APP_PORT, PRIVATE_PORT, TASKSERVER,  # noqa: F401
                                     SwarmClient, SwarmTask, Underlay, _Recorded)
from swarmmesh.testbed.runtime import RunState
from swarmmesh.testbed.shell import LINE_MAX, shell_lines, vsctl_batches  # noqa: F401
from swarmmesh.testbed.swarmnode import DNS, OVS_SCHEMA, VXLAN_PORT, SwarmNode  # noqa: F401



def task_params(task, cluster: Cluster, state: RunState | None, offload: bool = False,
                mtu: Mtu = SWARM) -> dict:
    """Mininet host parameters of a task (for addHost, at build or run time)."""
    svc = cluster.service(task.service)
    gw = layout.task_gw_intf(task) if layout.has_gw_leg(task, cluster) else None
    return dict(cls=SwarmTask, task_name=task.name, node_name=task.node,
                ports=[p.target for p in svc.ports], ip=None, state=state, gw_intf=gw,
                offload=offload, mtu=mtu)


def task_legs(task, cluster: Cluster) -> list[dict]:
    """addLink arguments of a task's legs to its node: ingress first, then
    one per user network, then its docker_gwbridge leg if it publishes a host-mode port."""
    legs = []
    for name, addr in task.addresses.items():
        net = cluster.networks[name]
        leg = {"params1": {"ip": f"{addr}/{net.subnet.prefixlen}"}, "addr1": task.macs[name]}
        if net.ingress:
            leg.update(intfName1=f"{task.host}-eth0", intfName2=layout.task_intf(task))
        else:
            leg.update(intfName1=layout.task_net_intf(task, net),
                       intfName2=layout.net_intf(task, net))
        legs.append(leg)
    if layout.has_gw_leg(task, cluster):
        ip = layout.task_gw_ip(task)
        legs.append({"params1": {"ip": f"{ip}/{layout.GW_PREFIX}"}, "addr1": docker_mac(ip),
                     "intfName1": layout.task_gw_intf(task), "intfName2": layout.gw_intf(task)})
    return legs


class SwarmTopo(Topo):
    """Nodes, tasks, clients and the underlay, all derived from one Cluster."""

    def build(self, nodes: int = 3, replicas: int = 2, stack: str | None = None,
              clients: int = 1, cluster: Cluster | None = None,
              state: RunState | None = None, datapath: str = "auto",
              controller: str = DEFAULT_UNIX_SOCKET, defer_ready: bool = False,
              userspace_tso: bool = False, ingress: str = "mesh", mtu: Mtu = SWARM):
        """``userspace_tso``: every node's vswitchd starts with
        ``other_config:userspace-tso-enable=true`` and every leg of a node, task or client
        keeps its checksum offload (so the kernels hand OVS segments of up to 64 KiB).
        ``ingress``: ``mesh`` (the emulated pick in each node's kernel) or ``ipvs`` (Swarm's
        own ingress sandbox with the kernel's IPVS per node, :mod:`swarmmesh.dataplane.ipvs`).
        ``mtu``: every leg's (underlay and overlay), Swarm's 1500/1450 unless the servers'
        plan says otherwise."""
        if cluster is None:
            cluster = (Cluster.from_stack(stack, nodes=nodes, clients=clients) if stack
                       else Cluster.quick(nodes=nodes, replicas=replicas, clients=clients))
        if state is None:                      # run by `mn --custom`: we own the records
            state = RunState(f"mn-{os.getpid()}")
            atexit.register(state.clean)
        model = state.dir / "model.json"
        if not model.exists():                 # the Testbed writes it before the controller
            model.write_text(json.dumps({**cluster.to_dict(), "revision": 0}))
        self.cluster, self.state = cluster, state
        self.userspace_tso = userspace_tso
        self.mtu = mtu
        dp = choose_datapath(datapath)
        self.datapath = dp
        prefix = UNDERLAY_SUBNET.prefixlen
        ul = self.addHost("underlay", cls=Underlay, ip=None, state=state, mtu=mtu)
        for node in cluster.nodes:
            self.addHost(node.name, cls=SwarmNode, ip=f"{node.underlay_ip}/{prefix}",
                         cluster=cluster, state=state, datapath=dp, controller=controller,
                         offload=userspace_tso, ingress=ingress, mtu=mtu)
            self.addLink(node.name, ul, intfName1=f"{node.name}-eth0",
                         intfName2=f"ul-{node.name}")
        for client in cluster.clients:
            self.addHost(client.name, cls=SwarmClient, ip=f"{client.underlay_ip}/{prefix}",
                         state=state, offload=userspace_tso, mtu=mtu)
            self.addLink(client.name, ul, intfName1=f"{client.name}-eth0",
                         intfName2=f"ul-{client.name}")
        for task in cluster.tasks:
            if not is_built(task, cluster):    # no network, no host-mode port: no host
                continue
            self.addHost(task.host, **task_params(task, cluster, state, userspace_tso, mtu),
                         defer_ready=defer_ready)
            for leg in task_legs(task, cluster):
                self.addLink(task.host, task.node, **leg)

    def planned_links(self) -> list[str]:
        """Every interface name Mininet will create in the root namespace
        on the way into a host, for cleanup after a kill mid-build."""
        names = []
        for _a, _b, info in self.links(withInfo=True):
            names += [info["intfName1"], info["intfName2"]]
        return names

