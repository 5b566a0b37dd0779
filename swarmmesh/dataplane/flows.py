"""The small flow language the rules speak: a closed set of actions, a flow, and the
vocabulary they share (cookies, conntrack state bits).

Pure data, no behaviour: ``swarmmesh.dataplane.rules`` builds flows from the
cluster model, ``swarmmesh.control.ofp`` translates them into OpenFlow 1.3
(with Nicira extensions), ``tests.doubles.fakeswitch.FakeSwitch`` runs them.
A flow's ``repr`` names its classes only, so it does not depend on this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

COOKIE = 0x5357_0000_0000_0000          # "SW": every flow of ours carries it
COOKIE_MASK = 0xFFFF_0000_0000_0000
COOKIE_LEARNED = 0x534C_0000_0000_0000  # "SL": flows that ``learn`` wrote

# ct_state bits (Nicira): new=0x01 est=0x02 rel=0x04 rpl=0x08 inv=0x10 trk=0x20
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
CT_TRK_NEW = (CT_TRK | CT_NEW, CT_TRK | CT_NEW | CT_INV)
CT_TRK_EST = (CT_TRK | CT_EST, CT_TRK | CT_EST | CT_INV)


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
class Resubmit:
    table: int


@dataclass(frozen=True)
class Nat:
    kind: str                      # "src" | "dst"
    ip: str
    port: int | None = None


@dataclass(frozen=True)
class Ct:
    zone: int
    table: int
    commit: bool = False
    nat: Nat | None = None
    nat_existing: bool = False     # bare "nat": apply the connection's existing binding
    mark: int | None = None        # with commit: set the connection's ct_mark


@dataclass(frozen=True)
class Learn:
    """Add or replace a flow in ``table``.

    ``match`` holds immediate values, ``copy`` names fields whose values are
    taken from the packet, ``load`` sets registers in the learned flow.
    """
    table: int
    priority: int
    match: tuple[tuple[str, int], ...] = ()
    copy: tuple[str, ...] = ()
    load: tuple[tuple[str, int], ...] = ()
    hard_timeout: int = 0


@dataclass(frozen=True)
class Goto:
    table: int


Action = Union[Output, SetField, Move, Resubmit, Ct, Learn, Goto]


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
