"""The testbed's veth links: each end configured in one round trip to its host's shell.

Mininet's ``addLink`` always creates a veth pair with both MAC addresses given
(``ip link add ... address M1 type veth peer ... address M2``), and then configures each
end through ``ifconfig``: down, ``hw ether`` (the MAC it already has), up, the address, up
again: four or five round trips to the host's shell and as many ``ifconfig`` processes per
end, about 9,900 of each for a cluster of 100 nodes and 1,000 tasks, one after the other.
:class:`PairIntf` keeps the MAC the pair was created with and sets the address and the
link state in one command line (``ip``); anything else (an ``ifconfig`` parameter, an
address without its prefix) goes to Mininet's own configuration.
"""

from __future__ import annotations

from mininet.link import Intf, Link

from swarmmesh.testbed.shell import ip_batches


def intf_cmds(name: str, ip: str | None, up: bool) -> list[str]:
    """The commands that give interface ``name`` its address (``ip``: ``A.B.C.D/len``)
    and bring it up, as Mininet's ``ifconfig`` calls do (the broadcast address included)."""
    cmds = [f"ip addr add {ip} brd + dev {name}"] if ip else []
    if up or ip:                  # (ifconfig with an address brings the interface up)
        cmds.append(f"ip link set {name} up")
    return cmds


class PairIntf(Intf):
    """One end of a veth pair that was created with its MAC address.  A host that has
    a ``link_cmds`` list (a node or a task not configured yet) gets the commands there
    and runs them with its own configuration, in the same ``ip -batch``."""

    def config(self, mac=None, ip=None, ifconfig=None, up=True, **params):
        if ifconfig is not None or (ip is not None and "/" not in ip):
            return super().config(mac=mac, ip=ip, ifconfig=ifconfig, up=up, **params)
        if mac is not None:
            self.mac = mac               # the pair was made with it (``makeIntfPair``)
        if ip is not None:
            self.ip, self.prefixLen = ip.split("/")
        cmds = intf_cmds(self.name, ip, bool(up))
        waiting = getattr(self.node, "link_cmds", None)
        if waiting is not None:          # the host runs them with its own configuration
            waiting.extend(cmds)
            return {}
        out = self.cmd(" && ".join(t for _, t in ip_batches(cmds))) if cmds else ""
        if out.strip():
            raise RuntimeError(f"{self.node.name}: configuring {self.name} failed: "
                               f"{out.strip()}")
        return {}


class PairLink(Link):
    """Mininet's veth link, with :class:`PairIntf` at both ends unless told otherwise."""

    def __init__(self, node1, node2, **params):
        params.setdefault("intf", PairIntf)
        super().__init__(node1, node2, **params)
