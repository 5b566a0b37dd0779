"""The MTUs, derived in one place: what each encapsulation adds, and the underlay and
overlay MTUs every leg of a testbed gets.

On one machine the testbed keeps Swarm's own numbers: the underlay 1500 (Ethernet), the
overlay (every VXLAN device and task leg) 1500 - 50 = 1450.  Across servers the tunnels
between the servers' underlay bridges cost more (``servers.mtu_plan``), and the same
derivation runs from the servers' path MTU.  Every leg is set once, at build, from the
:class:`Mtu` the node plan (``nodeplan``) is given.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bytes each encapsulation adds to what it carries (IPv4 outer header, no options).
ETHERNET = 14
IPV4 = 20
UDP = 8
VXLAN_HEADER = 8
GRE_HEADER = 4
GRE_KEY = 4
OVERHEAD = {"gretap": IPV4 + GRE_HEADER + GRE_KEY + ETHERNET,        # 42
            "vxlan": IPV4 + UDP + VXLAN_HEADER + ETHERNET}            # 50
SWARM_OVERLAY_OVERHEAD = IPV4 + UDP + VXLAN_HEADER + ETHERNET          # 50: Swarm's VXLAN
ETHERNET_MTU = 1500
MIN_OVERLAY_MTU = 1280            # below this IPv6 would not even fit; refuse


@dataclass(frozen=True)
class Mtu:
    """What fits: the servers' path, the tunnel's device, the underlay, the overlay."""

    path: int
    tunnel_overhead: int
    underlay: int
    overlay: int

    @property
    def tunnel(self) -> int:
        return self.path - self.tunnel_overhead

    def explain(self) -> str:
        return (f"path {self.path} - tunnel {self.tunnel_overhead} = {self.tunnel}; underlay "
                f"min(1500, {self.tunnel}) = {self.underlay}; overlay {self.underlay} - "
                f"{SWARM_OVERLAY_OVERHEAD} = {self.overlay}")


def overlay_of(underlay: int) -> int:
    """The overlay MTU inside an underlay of ``underlay`` bytes (Swarm's VXLAN)."""
    return underlay - SWARM_OVERLAY_OVERHEAD


# One machine, no tunnel: Swarm's own 1500 / 1450.
SWARM = Mtu(path=ETHERNET_MTU, tunnel_overhead=0, underlay=ETHERNET_MTU,
            overlay=overlay_of(ETHERNET_MTU))
