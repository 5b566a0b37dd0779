"""A stack file's published ports (``services.X.ports``), parsed as ``docker stack deploy``
reads them: the short syntax (``8080:80``, ranges, ``/udp``, a host address dropped with
a warning) and the long one (``target``, ``published``, ``protocol``, ``mode``); and the
published ports Swarm picks for the ones that name none.  Errors name the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from swarmmesh.model.errors import InvalidConfigError, check, is_int, type_name
from swarmmesh.model.objects import AUTO_PORT_FIRST, AUTO_PORT_LAST, PORT_MODES, PROTOCOLS
from swarmmesh.model.stackfile import Ignored


@dataclass
class PortSpec:
    published: int | None
    target: int
    protocol: str
    mode: str
    path: str


def _port_number(value: Any, what: str, path: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    check(is_int(value), path, f"{what} port must be an integer, got {value!r}")
    check(1 <= value <= 65535, path, f"{what} port must be in 1..65535, got {value}")
    return value


def _port_range(text: str, what: str, path: str) -> list[int]:
    text = text.strip()
    check(text != "", path, f"empty {what} port")
    if "-" in text:
        lo_s, _, hi_s = text.partition("-")
        lo, hi = _port_number(lo_s, what, path), _port_number(hi_s, what, path)
        check(lo <= hi, path, f"{what} port range {text!r} is reversed")
        return list(range(lo, hi + 1))
    return [_port_number(text, what, path)]


def _protocol(value: Any, path: str) -> str:
    proto = value.strip().lower() if isinstance(value, str) else value
    check(proto in PROTOCOLS, path,
           f"protocol must be one of {', '.join(PROTOCOLS)}, got {value!r}")
    return proto


def _drop_host_ip(spec: str, item: str, path: str, ignored: Ignored) -> str:
    """``IP:PUBLISHED:TARGET`` -> ``PUBLISHED:TARGET`` with a warning: the docker CLI
    ignores the address for a service (it listens on every address)."""
    if spec.startswith("["):                         # [::1]:8080:80
        ip, sep, rest = spec[1:].partition("]:")
        check(bool(sep), path, f"cannot parse port {item!r}")
    elif spec.count(":") == 2:
        ip, _, rest = spec.partition(":")
    else:
        return spec
    check(ip != "", path, f"cannot parse port {item!r}")
    ignored.warnings.append(f"{path}: host IP {ip} in {item!r} ignored, as docker stack "
                            "deploy does: the service listens on every address")
    published, _, target = rest.partition(":")
    return f"{published}:{target}" if published else target


def parse_port(item: Any, path: str, ignored: Ignored) -> list[PortSpec]:
    """One entry of ``services.X.ports`` (short or long syntax)."""
    if is_int(item):
        return [PortSpec(None, _port_number(item, "target", path), "tcp", "ingress", path)]
    if isinstance(item, str):
        spec, proto = item.strip(), "tcp"
        if "/" in spec:
            spec, _, proto_s = spec.rpartition("/")
            proto = _protocol(proto_s, path)
        spec = _drop_host_ip(spec, item, path, ignored)
        parts = spec.split(":")
        check(len(parts) <= 2, path, f"cannot parse port {item!r}")
        targets = _port_range(parts[-1], "target", path)
        if len(parts) == 1:
            return [PortSpec(None, t, proto, "ingress", path) for t in targets]
        published = _port_range(parts[0], "published", path)
        check(len(published) == len(targets), path,
               f"published and target ranges differ in length in {item!r} "
               f"({len(published)} vs {len(targets)})")
        return [PortSpec(p, t, proto, "ingress", path) for p, t in zip(published, targets)]
    if isinstance(item, Mapping):
        for key in item:
            if key in ("name", "app_protocol"):
                ignored.add(f"{path}.{key}")
            elif key == "host_ip":
                ignored.warnings.append(
                    f"{path}.host_ip: {item[key]!r} ignored, as docker stack deploy does: "
                    "the service listens on every address of every node")
            else:
                check(key in ("target", "published", "protocol", "mode"), path,
                       f"unknown key {key!r} in long port syntax")
        check(item.get("target") is not None, path, "target is required in long port syntax")
        target = _port_number(item["target"], "target", path)
        published = item.get("published")
        if published is not None:
            published = _port_number(published, "published", path)
        proto = _protocol(item.get("protocol", "tcp"), path)
        mode = item.get("mode", "ingress")
        check(mode in PORT_MODES, path,
               f"mode must be one of {', '.join(PORT_MODES)}, got {mode!r}")
        check(mode != "host" or published is not None, path,
               "mode host needs an explicit published port "
               "(Swarm would pick a random one per task)")
        return [PortSpec(published, target, proto, mode, path)]
    raise InvalidConfigError(path, f"must be a string, an integer or a mapping, "
                                   f"got {type_name(item)}")


def assign_ports(specs: list) -> None:
    """Check published-port conflicts, then fill auto-assigned ports in order (``specs``:
    the stack's ``ServiceSpec`` list, each with its ``name`` and ``ports``)."""
    owner: dict[tuple[int, str], tuple[str, str, str]] = {}
    used: dict[str, set[int]] = {proto: set() for proto in PROTOCOLS}
    for s in specs:
        for p in s.ports:
            if p.published is None:
                continue
            key = (p.published, p.protocol)
            used[p.protocol].add(p.published)
            if key in owner:
                other_service, other_path, other_mode = owner[key]
                if p.mode == "host" and other_mode == "host":
                    continue  # host ports clash per node only; placement handles it
                raise InvalidConfigError(
                    p.path, f"published port {p.published}/{p.protocol} of service "
                            f"{s.name!r} conflicts with service {other_service!r} "
                            f"({other_path})")
            owner[key] = (s.name, p.path, p.mode)
    for s in specs:
        for p in s.ports:
            if p.published is not None:
                continue
            free = next((n for n in range(AUTO_PORT_FIRST, AUTO_PORT_LAST + 1)
                         if n not in used[p.protocol]), None)
            check(free is not None, p.path,
                   f"no free {p.protocol} port left in {AUTO_PORT_FIRST}..{AUTO_PORT_LAST}")
            p.published = free
            used[p.protocol].add(free)
