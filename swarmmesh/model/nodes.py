"""The swarm's nodes as Swarm has them: role, labels, platform, availability.

Defaults match a fresh ``docker swarm init`` on node1 and ``docker swarm join``
on the others: node1 is the one manager (or the first N with ``managers``),
no labels, ``linux``/``x86_64``, active.  Roles and labels come from flags
(``--managers 3``, ``--node-label node2:zone=east``) and from a nodes file::

    count: 6                 # optional: the number of nodes (else --nodes)
    managers: 3              # optional: the first N are managers
    nodes:
      node2: {labels: {zone: east, disk: ssd}}
      node5: {role: manager, availability: drain,
              platform: {os: linux, arch: aarch64}, engine_labels: {gpu: "yes"}}

Flags win over the file.  Every error names its field (``node_label``,
``nodes_file.nodes.node5.role``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from swarmmesh.model.errors import InvalidConfigError, check, is_int, type_name
from swarmmesh.model.objects import MAX_NODES, NODE_AVAILABILITIES, NODE_ROLES
from swarmmesh.model.stackfile import as_mapping, load_stack

_NODE_RE = re.compile(r"node([1-9][0-9]*)\Z")
_LABEL_KEY_RE = re.compile(r"[^=\s]+\Z")
NODE_KEYS = ("role", "labels", "engine_labels", "platform", "availability")


@dataclass(frozen=True)
class NodeAttrs:
    """What Swarm knows of one node besides its addresses."""

    role: str = "worker"
    labels: Mapping[str, str] = field(default_factory=dict)
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    os: str = "linux"
    arch: str = "x86_64"
    availability: str = "active"


@dataclass(frozen=True)
class NodeSetup:
    """The node count and every node's attributes (index 1..count)."""

    count: int = 3
    attrs: Mapping[int, NodeAttrs] = field(default_factory=dict)

    def of(self, index: int) -> NodeAttrs:
        """Node ``index``'s attributes (default: node1 the manager, the rest workers)."""
        return self.attrs.get(index, NodeAttrs(role="manager" if index == 1 else "worker"))


def node_index(name: Any, path: str, count: int | None = None) -> int:
    """``nodeN`` -> N (the testbed's nodes are node1..nodeN)."""
    match = _NODE_RE.match(name) if isinstance(name, str) else None
    check(match is not None, path, f"node names are node1, node2, ..., got {name!r}")
    index = int(match.group(1))
    if count is not None:
        check(index <= count, path, f"{name} does not exist (nodes are node1..node{count})")
    return index


def parse_label_flag(text: str, path: str = "node_label") -> tuple[int, str, str]:
    """``node2:zone=east`` -> (2, "zone", "east"); ``node2:ssd`` -> (2, "ssd", "")
    as ``docker node update --label-add ssd``."""
    node, sep, label = text.partition(":")
    check(bool(sep), path, f"expected NODE:KEY=VALUE, got {text!r}")
    key, value = split_label(label, path)
    return node_index(node, path), key, value


def split_label(text: str, path: str) -> tuple[str, str]:
    """``KEY=VALUE`` or ``KEY`` (empty value), as docker's ``--label-add``."""
    key, _, value = text.partition("=")
    check(_LABEL_KEY_RE.match(key) is not None, path,
          f"label {text!r}: the key must be non-empty, without '=' or spaces")
    return key, value


def _labels(raw: Any, path: str) -> dict[str, str]:
    out = {}
    for key, value in as_mapping(raw, path).items():
        check(_LABEL_KEY_RE.match(key) is not None, f"{path}.{key}",
              "label keys have no '=' or spaces")
        check(isinstance(value, (str, int, float, bool)) or value is None, f"{path}.{key}",
              f"must be a string, got {type_name(value)}")
        out[key] = "" if value is None else (str(value).lower() if isinstance(value, bool)
                                              else str(value))
    return out


def _choice(value: Any, choices: Sequence[str], path: str) -> str:
    check(value in choices, path, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _platform(raw: Any, path: str) -> tuple[str, str]:
    body = as_mapping(raw, path)
    for key in body:
        check(key in ("os", "arch"), f"{path}.{key}", "unknown key (expected os, arch)")
    got = {}
    for key, default in (("os", "linux"), ("arch", "x86_64")):
        value = body.get(key, default)
        check(isinstance(value, str) and value.strip() != "", f"{path}.{key}",
              f"must be a non-empty string, got {value!r}")
        got[key] = value
    return got["os"], got["arch"]


def _node_attrs(raw: Any, path: str, role: str) -> NodeAttrs:
    body = as_mapping(raw, path)
    for key in body:
        check(key in NODE_KEYS, f"{path}.{key}",
              f"unknown key (expected one of {', '.join(NODE_KEYS)})")
    os_, arch = _platform(body.get("platform"), f"{path}.platform")
    return NodeAttrs(
        role=_choice(body.get("role", role), NODE_ROLES, f"{path}.role"),
        labels=_labels(body.get("labels"), f"{path}.labels"),
        engine_labels=_labels(body.get("engine_labels"), f"{path}.engine_labels"),
        os=os_, arch=arch,
        availability=_choice(body.get("availability", "active"), NODE_AVAILABILITIES,
                             f"{path}.availability"))


def _count(value: Any, path: str) -> int:
    check(is_int(value), path, f"must be an integer, got {value!r}")
    check(1 <= value <= MAX_NODES, path, f"must be in 1..{MAX_NODES}, got {value}")
    return value


def setup(count: int | None = None, managers: int | None = None,
          labels: Sequence[str] = (), nodes_file: Any = None) -> NodeSetup:
    """Nodes from flags and an optional nodes file (a path or a parsed mapping)."""
    raw = as_mapping(load_stack(nodes_file, what="nodes_file"), "nodes_file") \
        if nodes_file is not None else {}
    for key in raw:
        check(key in ("count", "managers", "nodes"), f"nodes_file.{key}",
              "unknown key (expected count, managers, nodes)")
    if count is None:
        count = _count(raw.get("count", 3), "nodes_file.count")
    count = _count(count, "nodes")
    if managers is None:
        managers = raw.get("managers", 1)
        mpath = "nodes_file.managers"
    else:
        mpath = "managers"
    check(is_int(managers) and 1 <= managers <= count, mpath,
          f"must be an integer in 1..{count} (the nodes), got {managers!r}")
    attrs: dict[int, NodeAttrs] = {i: NodeAttrs(role="manager" if i <= managers else "worker")
                                   for i in range(1, count + 1)}
    for name, body in as_mapping(raw.get("nodes"), "nodes_file.nodes").items():
        path = f"nodes_file.nodes.{name}"
        i = node_index(name, path, count)
        attrs[i] = _node_attrs(body, path, attrs[i].role)
    for i, flag in enumerate(labels):
        path = f"node_label[{i}]"
        index, key, value = parse_label_flag(flag, path)
        check(index <= count, path, f"node{index} does not exist (nodes are node1..node{count})")
        old = attrs[index]
        attrs[index] = NodeAttrs(old.role, {**old.labels, key: value}, old.engine_labels,
                                 old.os, old.arch, old.availability)
    if not any(a.role == "manager" for a in attrs.values()):
        raise InvalidConfigError("nodes_file.nodes", "a swarm needs at least one manager")
    return NodeSetup(count, attrs)
