"""Bringing a switch's flow table to what the model says, touching only the
difference (pure functions, no os-ken).

Every flow of ours carries a cookie made of the tag ``SW`` and a 48-bit
digest of the flow itself (table, priority, match, actions).  So the table
of a switch says what it holds: a controller that restarts reads it back
(flow stats), compares cookies with the flows the model asks for, and adds
only what is missing or changed and deletes only what is stale.  A switch
whose flows are already right is left exactly as it was; flows that are not ours
are left alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

from swarmmesh.dataplane.flows import COOKIE, COOKIE_MASK, Flow

Key = tuple  # (table, priority, sorted match items)


def flow_cookie(f: Flow) -> int:
    """``SW`` + a digest of everything the flow does (stable across processes)."""
    body = repr((f.table, f.priority, f.match, f.actions)).encode()
    return COOKIE | int.from_bytes(hashlib.blake2b(body, digest_size=6).digest(), "big")


def key_of(table: int, priority: int, match: Iterable) -> Key:
    return (table, priority, tuple(sorted(match)))


def flow_key(f: Flow) -> Key:
    return key_of(f.table, f.priority, f.match)


@dataclass(frozen=True)
class Installed:
    """One flow as a switch reports it."""
    table: int
    priority: int
    match: tuple
    cookie: int

    @property
    def key(self) -> Key:
        return key_of(self.table, self.priority, self.match)

    @property
    def ours(self) -> bool:
        return self.cookie & COOKIE_MASK == COOKIE


@dataclass
class Plan:
    add: list[Flow]                # new or changed (an ADD replaces in place)
    delete: list[Installed]        # stale: delete strictly, by key and cookie

    @property
    def empty(self) -> bool:
        return not self.add and not self.delete


def plan_sync(desired: list[Flow], installed: Iterable[Installed]) -> Plan:
    """What to send so that the switch holds ``desired`` and nothing stale.

    Flows that are not ours are left alone.
    """
    want = {flow_key(f): f for f in desired}
    have: dict[Key, Installed] = {}
    delete: list[Installed] = []
    for i in installed:
        if i.ours:
            have[i.key] = i
            if i.key not in want:
                delete.append(i)
    add = []
    for k, f in want.items():
        cur = have.get(k)
        if cur is None or (cur.ours and cur.cookie != flow_cookie(f)):
            add.append(f)
    return Plan(add, delete)


def plan_update(old: list[Flow], new: list[Flow]) -> Plan:
    """From one model to the next, on a switch that holds ``old``: a flow that stays has
    the same cookie and is not re-added."""
    return plan_sync(new, [Installed(f.table, f.priority, f.match, flow_cookie(f)) for f in old])
