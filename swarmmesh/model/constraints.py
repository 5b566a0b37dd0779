"""Swarm's placement constraints and preferences, as swarmkit evaluates them.

A constraint is ``KEY == VALUE`` or ``KEY != VALUE``.  Parsing follows
swarmkit's ``constraint.Parse`` (the first operator found splits the text; the
key and the value must match its patterns), so what Swarm refuses at
``docker stack deploy`` is refused here.  Matching follows ``NodeMatches``:

* values compare case-insensitively, label *names* are case-sensitive;
* a node without the label (or platform field) matches as the empty string:
  ``node.labels.zone != east`` holds on a node with no ``zone`` label;
* a key Swarm does not know parses, but no node ever satisfies it (the
  task stays pending): :func:`unknown_key` lets the checker warn about it.

``node.ip`` takes an address or a CIDR, as in swarmkit.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable, Sequence

from swarmmesh.model.errors import check
from swarmmesh.model.objects import Node

OPERATORS = ("==", "!=")
NODE_LABELS, ENGINE_LABELS = "node.labels.", "engine.labels."
KEYS = ("node.id", "node.hostname", "node.ip", "node.role", "node.platform.os",
        "node.platform.arch")
_KEY_RE = re.compile(r"(?i)[a-z_][a-z0-9\-_.]+\Z")
_VALUE_RE = re.compile(r"(?i)[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+\Z")

Constraint = tuple[str, str, str]          # (key, operator, value)


def parse(text: object, path: str) -> Constraint:
    """One constraint string, as swarmkit parses it (errors name ``path``)."""
    check(isinstance(text, str), path, f"constraints must be strings, got {text!r}")
    op = next((o for o in OPERATORS if o in text), None)
    check(op is not None, path,
          f"constraint {text!r} expected one operator from {', '.join(OPERATORS)}")
    key, _, value = text.partition(op)
    key, value = key.strip(), value.strip()
    check(_KEY_RE.match(key) is not None, path, f"key {key!r} in {text!r} is invalid")
    check(_VALUE_RE.match(value) is not None, path,
          f"value {value!r} in {text!r} is invalid (quotes and operators are not allowed)")
    return key, op, value


def unknown_key(key: str) -> bool:
    """A key swarmkit does not know: no node will ever satisfy it."""
    low = key.lower()
    if low.startswith(NODE_LABELS) or low.startswith(ENGINE_LABELS):
        return len(low) == len(NODE_LABELS) or len(low) == len(ENGINE_LABELS)
    return low not in KEYS


def node_value(key: str, node: Node) -> str | None:
    """The node's value for a constraint key ("" when missing; None: unknown key)."""
    low = key.lower()
    if low.startswith(NODE_LABELS) and len(key) > len(NODE_LABELS):
        return node.labels.get(key[len(NODE_LABELS):], "")
    if low.startswith(ENGINE_LABELS) and len(key) > len(ENGINE_LABELS):
        return node.engine_labels.get(key[len(ENGINE_LABELS):], "")
    return {"node.id": node.id, "node.hostname": node.name, "node.ip": str(node.underlay_ip),
            "node.role": node.role, "node.platform.os": node.os,
            "node.platform.arch": node.arch}.get(low)


def _ip_match(value: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False


def holds(constraint: Constraint, node: Node) -> bool:
    """Does one constraint hold on the node?"""
    key, op, value = constraint
    have = node_value(key, node)
    if have is None:
        return False                      # swarmkit: a key it does not know never matches
    if key.lower() == "node.ip":
        same = _ip_match(value, have)
    else:
        same = value.lower() == have.lower()
    return same == (op == "==")


def satisfies(constraints: Iterable[Constraint], node: Node) -> bool:
    """Every constraint holds on the node."""
    return all(holds(c, node) for c in constraints)


def text(constraints: Sequence[Constraint]) -> str:
    return " and ".join(f"{k} {o} {v}" for k, o, v in constraints)


# --- placement preferences ---------------------------------------------------------


def parse_preference(item: object, path: str, warnings: list[str]) -> str:
    """``- spread: node.labels.zone`` -> the descriptor.  Like swarmkit, a descriptor
    that is not a node or engine label is accepted and spreads nothing (a warning)."""
    check(isinstance(item, dict) and len(item) == 1, path,
          f"must be a mapping with one key 'spread', got {item!r}")
    (kind, descriptor), = item.items()
    check(kind == "spread", path, f"unknown preference {kind!r} (Swarm has only 'spread')")
    check(isinstance(descriptor, str) and descriptor.strip() != "", f"{path}.spread",
          f"must name a label, got {descriptor!r}")
    descriptor = descriptor.strip()
    low = descriptor.lower()
    if not (low.startswith(NODE_LABELS) or low.startswith(ENGINE_LABELS)):
        warnings.append(f"{path}.spread: {descriptor!r} is not node.labels.<name> or "
                        "engine.labels.<name>: Swarm spreads nothing over it")
    return descriptor


def spread_value(descriptor: str, node: Node) -> str:
    """The node's value of a spread descriptor ("" when the label is missing, and
    for a descriptor that is no label: every node in one branch, as in swarmkit)."""
    low = descriptor.lower()
    if not (low.startswith(NODE_LABELS) or low.startswith(ENGINE_LABELS)):
        return ""
    return node_value(descriptor, node) or ""
