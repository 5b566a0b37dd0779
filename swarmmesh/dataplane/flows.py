"""The small flow language the rules speak: a closed set of actions, a flow, and the
cookie every flow of ours carries.  Stateless on purpose: the bridge keeps no conntrack
and learns nothing (every pick and NAT is in the node's kernel).

Pure data, no behaviour: ``swarmmesh.dataplane.rules`` builds flows from the
cluster model, ``swarmmesh.control.ofp`` translates them into OpenFlow 1.3
(with Nicira extensions), ``tests.doubles.fakeswitch.FakeSwitch`` runs them.
A flow's ``repr`` names its classes only, so it does not depend on this module.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Union

COOKIE = 0x5357_0000_0000_0000          # "SW": every flow of ours carries it
COOKIE_MASK = 0xFFFF_0000_0000_0000


@dataclass(frozen=True)
class Output:
    port: Union[int, str]          # a port number, or "in_port"


@dataclass(frozen=True)
class SetField:
    field: str                     # os-ken OXM name: eth_src, eth_dst, arp_op, ...
    value: Union[int, str]


@dataclass(frozen=True)
class Move:
    src: str                       # copy a whole field into another
    dst: str


@dataclass(frozen=True)
class MoveBits:
    """Copy ``n_bits`` bits of a field into another: from bit ``src_ofs`` of ``src`` to
    bit ``dst_ofs`` of ``dst`` (bit 0 is the least significant)."""
    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0


@dataclass(frozen=True)
class Load:
    """Write ``value`` into ``n_bits`` bits of ``field`` from bit ``ofs``."""
    field: str
    value: int
    ofs: int
    n_bits: int


@dataclass(frozen=True)
class Goto:
    table: int


Action = Union[Output, SetField, Move, MoveBits, Load, Goto]


# A match's value: the field's value, or for an IPv4 address field a masked one,
# ``(address, mask)`` in dotted form (as os-ken writes and reads it back), for a block
# of addresses that one flow matches (:func:`ip_cover`).
MaskedIp = tuple[str, str]


def ip_cover(addresses: Iterable[str]) -> list[Union[str, MaskedIp]]:
    """The fewest address blocks that match exactly ``addresses`` and nothing else, in
    address order: one address stays as it is, a block is ``(address, mask)``.  Where the
    addresses of a cluster's tasks run on without gaps, as a pool hands them out, a
    thousand of them are a few blocks; scattered ones stay one each."""
    nets = ipaddress.collapse_addresses(ipaddress.IPv4Network(a) for a in addresses)
    return [str(n.network_address) if n.prefixlen == 32
            else (str(n.network_address), str(n.netmask)) for n in nets]


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: tuple[tuple[str, object], ...]
    actions: tuple[Action, ...] = ()   # empty: drop
    cookie: int = COOKIE

    @property
    def match_dict(self) -> dict:
        return dict(self.match)


def flow(table: int, priority: int, match: dict | None = None,
         actions: Iterable[Action] = ()) -> Flow:
    """Build a Flow with its match in a canonical (sorted) order."""
    return Flow(table, priority, tuple(sorted((match or {}).items())), tuple(actions))
