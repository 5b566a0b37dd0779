"""Cluster model: a Swarm stack file turned into plain, validated data.

Everything is parsed and validated first (FAUCET config_parser style); the
model is only built once the whole input is known to be good. Every problem
raises :class:`InvalidConfigError`, whose message starts with the field path.
The result is deterministic: same input, same placement and addresses.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Iterable, Mapping

import yaml

from swarmmesh.lifecycle import health as _health

__all__ = [
    "InvalidConfigError",
    "PublishedPort",
    "Network",
    "Node",
    "Service",
    "Task",
    "Client",
    "HealthCheck",
    "Cluster",
    "docker_mac",
    "INGRESS_NETWORK",
    "INGRESS_SUBNET",
    "INGRESS_VNI",
    "UNDERLAY_SUBNET",
    "DNSRR_INGRESS_ERROR",
]

INGRESS_NETWORK = "ingress"
INGRESS_SUBNET = IPv4Network("10.255.0.0/16")
INGRESS_VNI = 4096
UNDERLAY_SUBNET = IPv4Network("192.168.99.0/24")
USER_POOL = IPv4Network("10.0.0.0/16")  # default user subnets: 10.0.1.0/24, 10.0.2.0/24, ...
CLIENT_BASE = 200  # client i -> 192.168.99.(200 + i)
MAX_NODES = 200
MAX_CLIENTS = 254 - CLIENT_BASE
AUTO_PORT_FIRST, AUTO_PORT_LAST = 30000, 32767
PROTOCOLS = ("tcp", "udp", "sctp")
PORT_MODES = ("ingress", "host")
ENDPOINT_MODES = ("vip", "dnsrr")
DEPLOY_MODES = ("replicated", "global")
CONSTRAINT_FIELD = "node.hostname"
DNSRR_INGRESS_ERROR = "port published with ingress mode can't be used with dnsrr mode"

_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
_CONSTRAINT_RE = re.compile(r"\s*([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(\S.*?)\s*\Z")
_TOP_LEVEL_IGNORED = ("volumes", "configs", "secrets", "name", "include")


class InvalidConfigError(ValueError):
    """Bad input. ``str(e)`` is ``"<field>: <reason>"``; ``e.field`` is the path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self):  # keep it picklable despite the two-argument constructor
        return (type(self), (self.field, self.reason))


def _check(cond: bool, path: str, reason: str) -> None:
    if not cond:
        raise InvalidConfigError(path, reason)


def docker_mac(ip: IPv4Address | str) -> str:
    """Docker-style MAC for an IPv4 address: ``02:42`` + the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(ip).packed)


# --------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedPort:
    """One published port of a service."""

    published: int
    target: int
    protocol: str = "tcp"
    mode: str = "ingress"

    def __post_init__(self) -> None:
        for name in ("published", "target"):
            value = getattr(self, name)
            _check(_is_int(value) and 1 <= value <= 65535, name,
                   f"must be an integer in 1..65535, got {value!r}")
        _check(self.protocol in PROTOCOLS, "protocol",
               f"must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        _check(self.mode in PORT_MODES, "mode",
               f"must be one of {', '.join(PORT_MODES)}, got {self.mode!r}")


@dataclass
class Network:
    """An overlay network (the ingress one or a user network)."""

    name: str
    subnet: IPv4Network
    vni: int
    ingress: bool

    @property
    def gateway(self) -> IPv4Address:
        """The ``.1`` address, reserved, never given to a task."""
        return self.subnet.network_address + 1


@dataclass
class Node:
    """A Swarm node (a Mininet host on the underlay)."""

    name: str
    index: int
    underlay_ip: IPv4Address
    ingress_ip: IPv4Address
    ingress_mac: str
    lb_ips: dict[str, IPv4Address] = field(default_factory=dict)
    availability: str = "active"   # "active" | "drain" (no task is scheduled here)
    status: str = "ready"          # "ready" | "down"


@dataclass
class Service:
    """A Swarm service, normalised."""

    name: str
    replicas: int
    ports: tuple[PublishedPort, ...]
    endpoint_mode: str = "vip"
    networks: tuple[str, ...] = ()
    constraints: tuple[tuple[str, str, str], ...] = ()
    mode: str = "replicated"
    max_replicas_per_node: int = 0  # 0 = unlimited
    vips: dict[str, IPv4Address] = field(default_factory=dict)  # user network -> VIP
    healthcheck: HealthCheck | None = None  # None: no healthcheck key (no check runs)

    def ingress_ports(self) -> tuple[PublishedPort, ...]:
        """Ports published through the routing mesh."""
        return tuple(p for p in self.ports if p.mode == "ingress")

    def host_ports(self) -> tuple[PublishedPort, ...]:
        """Ports published in host mode (bound only where a task runs)."""
        return tuple(p for p in self.ports if p.mode == "host")


@dataclass
class Task:
    """One task (container) of a service, placed on a node."""

    name: str
    service: str
    slot: int
    node: str
    host: str
    addresses: dict[str, IPv4Address] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    # Lifecycle: "starting" (not yet healthy: not in the load balancer),
    # "running" (in it), "draining" (weight 0: no new connection, the
    # established ones go on; Swarm's 2 s before removal).
    state: str = "running"
    version: int = 1           # the service spec version the task runs (rolling updates)


TASK_STATES = ("starting", "running", "draining")


@dataclass
class Client:
    """An external client on the underlay, outside the cluster."""

    name: str
    underlay_ip: IPv4Address


# --------------------------------------------------------------------------
# Health checks (services.X.healthcheck; timings live in swarmmesh.lifecycle.health)
# --------------------------------------------------------------------------

HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period",
                    "start_interval", "disable")


@dataclass(frozen=True)
class HealthCheck:
    """A service's health check, with Docker's defaults filled in (seconds).

    ``test`` is Docker's form: ``("CMD", argv...)``, ``("CMD-SHELL", "cmd")``,
    ``("NONE",)`` (disabled), or ``()`` when the stack sets only timings (the
    check would come from the image, and the task server's image has none).
    """

    test: tuple[str, ...] = _health.DEFAULT_TEST
    interval: float = _health.DEFAULT_INTERVAL
    timeout: float = _health.DEFAULT_TIMEOUT
    retries: int = _health.DEFAULT_RETRIES
    start_period: float = _health.DEFAULT_START_PERIOD
    start_interval: float = _health.DEFAULT_START_INTERVAL

    @property
    def active(self) -> bool:
        """True if a check actually runs (a test other than NONE)."""
        return bool(self.test) and self.test[0] != "NONE"

    @classmethod
    def for_profile(cls, name: str, base: "HealthCheck | None" = None) -> "HealthCheck":
        """The check to run under profile ``name``: ``swarm`` keeps ``base``'s
        timings (the stack's, or Swarm's defaults when ``base`` is None);
        ``fast`` takes the fast profile's. The test is ``base``'s, or
        :data:`swarmmesh.lifecycle.health.DEFAULT_TEST`."""
        prof = _health.profile(name)
        hc = base if base is not None else cls()
        return hc if prof.name == "swarm" else _health.replace_timings(hc, prof)

    def to_dict(self) -> dict:
        return {"test": list(self.test), "interval": self.interval, "timeout": self.timeout,
                "retries": self.retries, "start_period": self.start_period,
                "start_interval": self.start_interval}

    @classmethod
    def from_dict(cls, d: Mapping) -> "HealthCheck":
        return cls(test=tuple(d["test"]), interval=float(d["interval"]),
                   timeout=float(d["timeout"]), retries=int(d["retries"]),
                   start_period=float(d["start_period"]),
                   start_interval=float(d["start_interval"]))


def _hc_duration(value: Any, path: str, default: float) -> float:
    try:
        seconds = _health.parse_duration(value)
    except ValueError as exc:
        raise InvalidConfigError(path, str(exc)) from None
    _check(seconds >= 0, path, f"must not be negative, got {value!r}")
    _check(seconds == 0 or seconds >= _health.MINIMUM_DURATION, path,
           f"must be 0 (the default) or at least 1ms, got {value!r}")
    return seconds or default


def _hc_test(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        _check(value.strip() != "", path, "must not be empty")
        return ("CMD-SHELL", value)
    items = _list(value, path)
    _check(len(items) > 0, path, "must not be empty")
    for item in items:
        _check(isinstance(item, str), path, f"items must be strings, got {item!r}")
    kind = items[0]
    _check(kind in ("CMD", "CMD-SHELL", "NONE"), path,
           f"must start with CMD, CMD-SHELL or NONE, got {kind!r}")
    if kind == "NONE":
        _check(len(items) == 1, path, "NONE takes no arguments")
    elif kind == "CMD":
        _check(len(items) >= 2, path, "CMD needs a command")
    else:
        _check(len(items) == 2 and items[1].strip() != "", path,
               "CMD-SHELL takes exactly one command string")
    return tuple(items)


def _parse_healthcheck(raw: Any, path: str, ignored: _Ignored) -> HealthCheck:
    """``services.X.healthcheck`` (compose v3): 0 or a missing key means Docker's default."""
    body = _mapping(raw, path)
    for key in body:
        _check(key in HEALTHCHECK_KEYS, f"{path}.{key}",
               f"unknown key (expected one of {', '.join(HEALTHCHECK_KEYS)})")
    test: tuple[str, ...] = ()
    if body.get("test") is not None:
        test = _hc_test(body["test"], f"{path}.test")
    disable = body.get("disable", False)
    _check(isinstance(disable, bool), f"{path}.disable", f"must be true or false, got {disable!r}")
    if disable:
        _check(test in ((), ("NONE",)), f"{path}.disable",
               "cannot be used together with a test other than NONE")
        test = ("NONE",)
    if not test:
        ignored.add(f"{path}.test")  # no test: the image's, and ours has no HEALTHCHECK
    retries = body.get("retries")
    if retries is None:
        retries = 0
    _check(_is_int(retries) and retries >= 0, f"{path}.retries",
           f"must be an integer >= 0, got {retries!r}")
    return HealthCheck(
        test=test,
        interval=_hc_duration(body.get("interval", 0), f"{path}.interval",
                              _health.DEFAULT_INTERVAL),
        timeout=_hc_duration(body.get("timeout", 0), f"{path}.timeout",
                             _health.DEFAULT_TIMEOUT),
        retries=retries or _health.DEFAULT_RETRIES,
        start_period=_hc_duration(body.get("start_period", 0), f"{path}.start_period",
                                  _health.DEFAULT_START_PERIOD),
        start_interval=_hc_duration(body.get("start_interval", 0), f"{path}.start_interval",
                                    _health.DEFAULT_START_INTERVAL),
    )


# --------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------


class _StackLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 sexagesimal numbers (``22:22`` stays a
    string, as Compose users expect) and with duplicate keys rejected."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # let the base class report it
            if key in seen:
                raise InvalidConfigError(
                    "stack", f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                             f"(first at line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_StackLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StackLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
               r"|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_StackLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
               r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
               r"|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _load_stack(stack: str | os.PathLike | Mapping) -> Mapping:
    """Read a stack from a mapping, a YAML text (a str with a newline) or a file."""
    if isinstance(stack, Mapping):
        return stack
    if isinstance(stack, str) and "\n" in stack:
        text, source = stack, "<string>"
    elif isinstance(stack, (str, os.PathLike)):
        source = os.fspath(stack)
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise InvalidConfigError(
                "stack", f"cannot read {source}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise InvalidConfigError("stack", f"{source} is not UTF-8 text: {exc}") from None
    else:
        raise InvalidConfigError(
            "stack", f"must be a path, YAML text or a mapping, got {type(stack).__name__}")
    try:
        data = yaml.load(text, Loader=_StackLoader)  # noqa: S506 (safe loader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where, snippet = "", ""
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
            lines = text.splitlines()
            if mark.line < len(lines):
                snippet = f" in {lines[mark.line].strip()!r}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidConfigError(
            "stack", f"YAML syntax error in {source}{where}: {problem}{snippet}") from None
    _check(data is not None, "stack", f"{source} is empty")
    _check(isinstance(data, Mapping), "stack",
           f"top level must be a mapping, got {_type_name(data)}")
    return data


# --------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"


def _mapping(value: Any, path: str) -> Mapping:
    """A mapping, or empty for null."""
    if value is None:
        return {}
    _check(isinstance(value, Mapping), path, f"must be a mapping, got {_type_name(value)}")
    for key in value:
        _check(isinstance(key, str), path, f"keys must be strings, got {key!r}")
    return value


def _list(value: Any, path: str) -> list:
    """A list, or empty for null."""
    if value is None:
        return []
    _check(isinstance(value, (list, tuple)), path, f"must be a list, got {_type_name(value)}")
    return list(value)


class _Ignored:
    """Ordered set of dotted paths we parse but do not emulate."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def add(self, path: str) -> None:
        if path not in self.keys:
            self.keys.append(path)


@dataclass
class _PortSpec:
    published: int | None
    target: int
    protocol: str
    mode: str
    path: str


def _port_number(value: Any, what: str, path: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    _check(_is_int(value), path, f"{what} port must be an integer, got {value!r}")
    _check(1 <= value <= 65535, path, f"{what} port must be in 1..65535, got {value}")
    return value


def _port_range(text: str, what: str, path: str) -> list[int]:
    text = text.strip()
    _check(text != "", path, f"empty {what} port")
    if "-" in text:
        lo_s, _, hi_s = text.partition("-")
        lo, hi = _port_number(lo_s, what, path), _port_number(hi_s, what, path)
        _check(lo <= hi, path, f"{what} port range {text!r} is reversed")
        return list(range(lo, hi + 1))
    return [_port_number(text, what, path)]


def _protocol(value: Any, path: str) -> str:
    proto = value.strip().lower() if isinstance(value, str) else value
    _check(proto in PROTOCOLS, path,
           f"protocol must be one of {', '.join(PROTOCOLS)}, got {value!r}")
    return proto


def _parse_port(item: Any, path: str, ignored: _Ignored) -> list[_PortSpec]:
    """One entry of ``services.X.ports`` (short or long syntax)."""
    if _is_int(item):
        return [_PortSpec(None, _port_number(item, "target", path), "tcp", "ingress", path)]
    if isinstance(item, str):
        spec, proto = item.strip(), "tcp"
        if "/" in spec:
            spec, _, proto_s = spec.rpartition("/")
            proto = _protocol(proto_s, path)
        _check(not spec.startswith("["), path,
               f"host IP in {item!r} is not emulated (the mesh listens on every address)")
        parts = spec.split(":")
        _check(len(parts) <= 3, path, f"cannot parse port {item!r}")
        _check(len(parts) < 3, path,
               f"host IP {parts[0]!r} in {item!r} is not emulated "
               "(the mesh listens on every address)")
        targets = _port_range(parts[-1], "target", path)
        if len(parts) == 1:
            return [_PortSpec(None, t, proto, "ingress", path) for t in targets]
        published = _port_range(parts[0], "published", path)
        _check(len(published) == len(targets), path,
               f"published and target ranges differ in length in {item!r} "
               f"({len(published)} vs {len(targets)})")
        return [_PortSpec(p, t, proto, "ingress", path) for p, t in zip(published, targets)]
    if isinstance(item, Mapping):
        for key in item:
            if key in ("name", "app_protocol"):
                ignored.add(f"{path}.{key}")
            elif key == "host_ip":
                raise InvalidConfigError(
                    path, f"host_ip {item[key]!r} is not emulated "
                          "(the mesh listens on every address)")
            else:
                _check(key in ("target", "published", "protocol", "mode"), path,
                       f"unknown key {key!r} in long port syntax")
        _check(item.get("target") is not None, path, "target is required in long port syntax")
        target = _port_number(item["target"], "target", path)
        published = item.get("published")
        if published is not None:
            published = _port_number(published, "published", path)
        proto = _protocol(item.get("protocol", "tcp"), path)
        mode = item.get("mode", "ingress")
        _check(mode in PORT_MODES, path,
               f"mode must be one of {', '.join(PORT_MODES)}, got {mode!r}")
        _check(mode != "host" or published is not None, path,
               "mode host needs an explicit published port "
               "(Swarm would pick a random one per task)")
        return [_PortSpec(published, target, proto, mode, path)]
    raise InvalidConfigError(path, f"must be a string, an integer or a mapping, "
                                   f"got {_type_name(item)}")


def _parse_constraint(text: Any, path: str) -> tuple[str, str, str]:
    _check(isinstance(text, str), path, f"constraints must be strings, got {text!r}")
    match = _CONSTRAINT_RE.match(text)
    _check(match is not None, path,
           f"cannot parse constraint {text!r} (expected 'node.hostname == NAME' "
           "or 'node.hostname != NAME')")
    fld, op, value = match.groups()
    _check(fld.lower() == CONSTRAINT_FIELD, path,
           f"constraint field {fld!r} in {text!r} is not emulated "
           f"(only {CONSTRAINT_FIELD} is)")
    return CONSTRAINT_FIELD, op, value.strip("\"'")


def _satisfies(constraints: Iterable[tuple[str, str, str]], node: Node) -> bool:
    for _, op, value in constraints:
        same = node.name.lower() == value.lower()
        if same != (op == "=="):
            return False
    return True


@dataclass
class _ServiceSpec:
    name: str
    mode: str
    replicas: int | None
    endpoint_mode: str
    networks: list[str]
    constraints: list[tuple[str, str, str]]
    max_replicas_per_node: int
    ports: list[_PortSpec]
    depends_on: list[str]
    healthcheck: HealthCheck | None = None


def _parse_service(name: str, raw: Any, networks: Mapping[str, Any],
                   ignored: _Ignored) -> _ServiceSpec:
    path = f"services.{name}"
    _check(_NAME_RE.match(name) is not None, path,
           f"invalid service name {name!r} (must match [a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    body = _mapping(raw, path)
    spec = _ServiceSpec(name, "replicated", None, "vip", [], [], 0, [], [])
    for key, value in body.items():
        kpath = f"{path}.{key}"
        if key == "deploy":
            _parse_deploy(spec, value, kpath, ignored)
        elif key == "ports":
            for i, item in enumerate(_list(value, kpath)):
                spec.ports.extend(_parse_port(item, f"{kpath}[{i}]", ignored))
        elif key == "networks":
            spec.networks = _parse_service_networks(value, kpath, networks, ignored)
        elif key == "depends_on":
            deps = value
            if isinstance(deps, Mapping):
                deps = list(_mapping(deps, kpath))
            for dep in _list(deps, kpath):
                _check(isinstance(dep, str), kpath, f"must name services, got {dep!r}")
                spec.depends_on.append(dep)
            ignored.add(kpath)  # docker stack deploy ignores depends_on
        elif key == "healthcheck":
            spec.healthcheck = _parse_healthcheck(value, kpath, ignored)
        else:
            ignored.add(kpath)
    return spec


def _parse_deploy(spec: _ServiceSpec, raw: Any, path: str, ignored: _Ignored) -> None:
    deploy = _mapping(raw, path)
    for key, value in deploy.items():
        kpath = f"{path}.{key}"
        if key == "mode":
            _check(value in DEPLOY_MODES, kpath,
                   f"must be one of {', '.join(DEPLOY_MODES)}, got {value!r}")
            spec.mode = value
        elif key == "replicas":
            _check(_is_int(value), kpath, f"must be an integer, got {value!r}")
            _check(value >= 0, kpath, f"must be >= 0, got {value}")
            spec.replicas = value
        elif key == "endpoint_mode":
            _check(value in ENDPOINT_MODES, kpath,
                   f"must be one of {', '.join(ENDPOINT_MODES)}, got {value!r}")
            spec.endpoint_mode = value
        elif key == "placement":
            for pkey, pvalue in _mapping(value, kpath).items():
                ppath = f"{kpath}.{pkey}"
                if pkey == "constraints":
                    spec.constraints = [_parse_constraint(c, ppath)
                                        for c in _list(pvalue, ppath)]
                elif pkey == "max_replicas_per_node":
                    _check(_is_int(pvalue) and pvalue >= 0, ppath,
                           f"must be an integer >= 0, got {pvalue!r}")
                    spec.max_replicas_per_node = pvalue
                else:  # preferences: no node labels here, so spreading is unchanged
                    ignored.add(ppath)
        else:
            ignored.add(kpath)
    if spec.mode == "global":
        _check(spec.replicas is None, f"{path}.replicas",
               "replicas can only be used with replicated mode")


def _parse_service_networks(raw: Any, path: str, networks: Mapping[str, Any],
                            ignored: _Ignored) -> list[str]:
    if isinstance(raw, Mapping):
        names = list(_mapping(raw, path))
        for net, opts in raw.items():
            for okey in _mapping(opts, f"{path}.{net}"):
                ignored.add(f"{path}.{net}.{okey}")  # aliases, ipv4_address, ...
    else:
        names = _list(raw, path)
    result: list[str] = []
    for net in names:
        _check(isinstance(net, str), path, f"network names must be strings, got {net!r}")
        _check(net != INGRESS_NETWORK, path,
               f"a service cannot be attached explicitly to the {INGRESS_NETWORK!r} "
               "network (publish a port instead)")
        _check(net in networks, path,
               f"unknown network {net!r} (declared: {', '.join(networks) or 'none'})")
        _check(net not in result, path, f"network {net!r} listed twice")
        result.append(net)
    return result


@dataclass
class _NetworkSpec:
    name: str
    subnet: IPv4Network | None
    subnet_path: str


def _parse_networks(raw: Any, ignored: _Ignored) -> dict[str, _NetworkSpec]:
    result: dict[str, _NetworkSpec] = {}
    for name, body in _mapping(raw, "networks").items():
        path = f"networks.{name}"
        _check(name != INGRESS_NETWORK, path,
               f"the name {INGRESS_NETWORK!r} is reserved for the routing-mesh network")
        _check(_NAME_RE.match(name) is not None, path,
               f"invalid network name {name!r} (must match [a-zA-Z0-9][a-zA-Z0-9_.-]*)")
        spec = _NetworkSpec(name, None, path)
        for key, value in _mapping(body, path).items():
            kpath = f"{path}.{key}"
            if key == "driver":
                _check(value == "overlay", kpath,
                       f"only the overlay driver is emulated, got {value!r}")
            elif key == "ipam":
                for ikey, ivalue in _mapping(value, kpath).items():
                    ipath = f"{kpath}.{ikey}"
                    if ikey != "config":
                        ignored.add(ipath)
                        continue
                    for i, entry in enumerate(_list(ivalue, ipath)):
                        epath = f"{ipath}[{i}]"
                        for ekey, evalue in _mapping(entry, epath).items():
                            if i == 0 and ekey == "subnet":
                                spec.subnet = _parse_subnet(evalue, f"{epath}.subnet")
                                spec.subnet_path = f"{epath}.subnet"
                            else:
                                ignored.add(f"{epath}.{ekey}")
            else:  # attachable, external, internal, labels, driver_opts, name, ...
                ignored.add(kpath)
        result[name] = spec
    return result


def _parse_subnet(value: Any, path: str) -> IPv4Network:
    _check(isinstance(value, str), path, f"must be a CIDR string, got {value!r}")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidConfigError(path, f"invalid subnet {value!r}: {exc}") from None
    _check(isinstance(net, IPv4Network), path, f"only IPv4 is emulated, got {value!r}")
    _check(net.prefixlen <= 29, path, f"subnet {value!r} is too small (at most /29)")
    for other, what in ((INGRESS_SUBNET, "the ingress network"),
                        (UNDERLAY_SUBNET, "the underlay")):
        _check(not net.overlaps(other), path, f"subnet {value} overlaps {what} ({other})")
    return net


# --------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------


@dataclass
class Cluster:
    """Nodes, networks, services, placed tasks and clients of one testbed."""

    nodes: list[Node]
    networks: dict[str, Network]
    services: dict[str, Service]
    tasks: list[Task]
    clients: list[Client]
    ignored_keys: list[str] = field(default_factory=list)
    retired: set[str] = field(default_factory=set)         # removed tasks' names (run time only)
    retired_hosts: set[str] = field(default_factory=set)   # and their host names

    # ---- construction ---------------------------------------------------

    @classmethod
    def from_stack(cls, stack: str | os.PathLike | Mapping, nodes: int = 3,
                   clients: int = 1) -> "Cluster":
        """Build a cluster from a stack file path, YAML text or parsed mapping."""
        _check(_is_int(nodes), "nodes", f"must be an integer, got {nodes!r}")
        _check(nodes >= 1, "nodes", f"must be >= 1, got {nodes}")
        _check(nodes <= MAX_NODES, "nodes",
               f"at most {MAX_NODES} nodes fit the address plan, got {nodes}")
        _check(_is_int(clients), "clients", f"must be an integer, got {clients!r}")
        _check(clients >= 0, "clients", f"must be >= 0, got {clients}")
        _check(clients <= MAX_CLIENTS, "clients",
               f"at most {MAX_CLIENTS} clients fit the address plan, got {clients}")
        data = _load_stack(stack)

        # 1. parse and validate everything
        ignored = _Ignored()
        for key in data:
            _check(isinstance(key, str), "stack", f"top-level keys must be strings, got {key!r}")
            if key in ("version", "services", "networks"):
                continue
            _check(key in _TOP_LEVEL_IGNORED or key.startswith("x-"), key,
                   "unknown top-level key")
            ignored.add(key)
        _check("services" in data, "services", "required")
        net_specs = _parse_networks(data.get("networks"), ignored)
        raw_services = data["services"]
        _check(isinstance(raw_services, Mapping), "services",
               f"must be a mapping, got {_type_name(raw_services)}")
        _check(len(raw_services) > 0, "services", "must define at least one service")
        specs: list[_ServiceSpec] = []
        for name, body in raw_services.items():
            _check(isinstance(name, str), "services", f"service names must be strings, got {name!r}")
            specs.append(_parse_service(name, body, net_specs, ignored))
        names = {s.name for s in specs}
        for s in specs:
            for dep in s.depends_on:
                _check(dep in names, f"services.{s.name}.depends_on", f"unknown service {dep!r}")
            if s.endpoint_mode == "dnsrr" and any(p.mode == "ingress" for p in s.ports):
                raise InvalidConfigError(f"services.{s.name}.deploy.endpoint_mode",
                                         DNSRR_INGRESS_ERROR)
        _assign_ports(specs)

        node_list = [_make_node(i) for i in range(1, nodes + 1)]
        services: dict[str, Service] = {}
        for s in specs:
            _check_placement(s, node_list)
            services[s.name] = Service(
                name=s.name,
                replicas=s.replicas if s.replicas is not None else 1,
                ports=tuple(PublishedPort(p.published, p.target, p.protocol, p.mode)
                            for p in s.ports),  # type: ignore[arg-type]
                endpoint_mode=s.endpoint_mode,
                networks=tuple(s.networks),
                constraints=tuple(s.constraints),
                mode=s.mode,
                max_replicas_per_node=s.max_replicas_per_node,
                healthcheck=s.healthcheck,
            )
        placement = _place(specs, services, node_list)
        networks = _allocate_networks(net_specs)

        # 2. build
        tasks = _make_tasks(placement, services, node_list, networks, net_specs)
        client_list = [Client(f"c{i}", UNDERLAY_SUBNET.network_address + CLIENT_BASE + i)
                       for i in range(1, clients + 1)]
        return cls(node_list, networks, services, tasks, client_list, ignored.keys)

    @classmethod
    def quick(cls, nodes: int = 3, replicas: int = 2, published: int = 8000,
              target: int = 80, service: str = "app", clients: int = 1,
              protocol: str = "tcp") -> "Cluster":
        """One service with one ingress-published port (the classic demo)."""
        stack = {"services": {service: {
            "deploy": {"replicas": replicas},
            "ports": [{"target": target, "published": published,
                       "protocol": protocol, "mode": "ingress"}],
        }}}
        return cls.from_stack(stack, nodes=nodes, clients=clients)

    # ---- lookups --------------------------------------------------------

    def service(self, name: str) -> Service:
        """The service called *name*."""
        try:
            return self.services[name]
        except KeyError:
            raise InvalidConfigError(f"services.{name}", "unknown service") from None

    def node(self, name: str) -> Node:
        """The node called *name*."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise InvalidConfigError(f"nodes.{name}", "unknown node")

    def tasks_of(self, service: str) -> list[Task]:
        """Tasks of a service, in slot order (unknown service: error)."""
        self.service(service)
        return [t for t in self.tasks if t.service == service]

    def tasks_on(self, node: str) -> list[Task]:
        """Tasks placed on a node, in task order (unknown node: error)."""
        self.node(node)
        return [t for t in self.tasks if t.node == node]

    def ingress_services(self) -> list[Service]:
        """Services with at least one ingress-mode published port."""
        return [s for s in self.services.values() if s.ingress_ports()]

    # ---- changes at run time (the orchestrator's decisions) ---------------

    def task(self, name: str) -> Task:
        """The task called *name* (its task name or its host name)."""
        for t in self.tasks:
            if t.name == name or t.host == name:
                return t
        raise InvalidConfigError(f"tasks.{name}", "unknown task")

    def _used_addresses(self) -> set[IPv4Address]:
        used = {a for t in self.tasks for a in t.addresses.values()}
        used |= {a for n in self.nodes for a in n.lb_ips.values()}
        used |= {n.ingress_ip for n in self.nodes}
        used |= {v for s in self.services.values() for v in s.vips.values()}
        return used

    def _free_address(self, net_name: str) -> IPv4Address:
        net = self.networks[net_name]
        used = self._used_addresses()
        for addr in net.subnet.hosts():
            if addr != net.gateway and addr not in used:
                return addr
        raise InvalidConfigError(f"networks.{net_name}",
                                 f"subnet {net.subnet} has no free address left")

    def schedulable_nodes(self, service: str) -> list[Node]:
        """Nodes a new task of *service* may go to: active, ready, constraints met,
        under max_replicas_per_node."""
        svc = self.service(service)
        out = []
        for n in self.nodes:
            if n.availability != "active" or n.status != "ready":
                continue
            if not _satisfies(svc.constraints, n):
                continue
            mine = sum(1 for t in self.tasks_of(service) if t.node == n.name)
            if svc.max_replicas_per_node and mine >= svc.max_replicas_per_node:
                continue
            out.append(n)
        return out

    def place_task(self, service: str, node: str | None = None, state: str = "starting",
                   version: int | None = None, slot: int | None = None) -> Task:
        """A new task of *service* (scale up, replacement, rolling update), placed
        by Swarm's spread (fewest tasks of the service, then fewest tasks) unless
        *node* is given; new addresses on every network of the service."""
        svc = self.service(service)
        _check(state in TASK_STATES, "state", f"must be one of {', '.join(TASK_STATES)}, "
                                              f"got {state!r}")
        if node is None:
            candidates = self.schedulable_nodes(service)
            _check(bool(candidates), f"services.{service}",
                   "no node can take a new task (all drained, down or constrained)")
            target = min(candidates, key=lambda n: (
                sum(1 for t in self.tasks_of(service) if t.node == n.name),
                sum(1 for t in self.tasks if t.node == n.name), n.index))
        else:
            target = self.node(node)
        slots = [t.slot for t in self.tasks_of(service)]
        if slot is None:
            slot = max(slots, default=0) + 1
        hosts = [t.host for t in self.tasks] + list(self.retired_hosts)
        number = max((int(h[1:]) for h in hosts), default=0) + 1   # never reused
        name = f"{service}.{slot}"
        if name in self.retired or any(t.name == name for t in self.tasks):
            name = f"{service}.{slot}.t{number}"    # a replacement: a new task id, as in Swarm
        addresses: dict[str, IPv4Address] = {}
        if svc.ingress_ports():
            addresses[INGRESS_NETWORK] = self._free_address(INGRESS_NETWORK)
        for net in svc.networks:
            addresses[net] = self._free_address(net)
        task = Task(name=name, service=service, slot=slot, node=target.name, host=f"t{number}",
                    addresses={}, macs={}, state=state,
                    version=version if version is not None else self.service_version(service))
        task.addresses = addresses
        task.macs = {k: docker_mac(v) for k, v in addresses.items()}
        self.tasks.append(task)
        for net in svc.networks:                          # the node's LB endpoint, if new
            if net not in target.lb_ips:
                target.lb_ips[net] = self._free_address(net)
        return task

    def service_version(self, service: str) -> int:
        return max((t.version for t in self.tasks_of(service)), default=1)

    def remove_task(self, name: str) -> Task:
        task = self.task(name)
        self.tasks.remove(task)
        self.retired.add(task.name)           # names and host names are never used twice
        self.retired_hosts.add(task.host)
        return task

    def in_balancer(self, task: Task) -> bool:
        """Does the task take new connections (state running, node not down)?"""
        return task.state == "running" and self.node(task.node).status == "ready"

    # ---- serialisation --------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-serialisable form (addresses as strings)."""
        return {
            "nodes": [{
                "name": n.name, "index": n.index, "underlay_ip": str(n.underlay_ip),
                "ingress_ip": str(n.ingress_ip), "ingress_mac": n.ingress_mac,
                "lb_ips": {k: str(v) for k, v in n.lb_ips.items()},
                "availability": n.availability, "status": n.status,
            } for n in self.nodes],
            "networks": {k: {"name": n.name, "subnet": str(n.subnet), "vni": n.vni,
                             "ingress": n.ingress} for k, n in self.networks.items()},
            "services": {k: {
                "name": s.name, "replicas": s.replicas,
                "ports": [{"published": p.published, "target": p.target,
                           "protocol": p.protocol, "mode": p.mode} for p in s.ports],
                "endpoint_mode": s.endpoint_mode, "networks": list(s.networks),
                "constraints": [list(c) for c in s.constraints], "mode": s.mode,
                "max_replicas_per_node": s.max_replicas_per_node,
                "vips": {n: str(v) for n, v in s.vips.items()},
                "healthcheck": s.healthcheck.to_dict() if s.healthcheck else None,
            } for k, s in self.services.items()},
            "tasks": [{
                "name": t.name, "service": t.service, "slot": t.slot, "node": t.node,
                "host": t.host, "addresses": {k: str(v) for k, v in t.addresses.items()},
                "macs": dict(t.macs), "state": t.state, "version": t.version,
            } for t in self.tasks],
            "clients": [{"name": c.name, "underlay_ip": str(c.underlay_ip)}
                        for c in self.clients],
            "ignored_keys": list(self.ignored_keys),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Cluster":
        """Inverse of :meth:`to_dict` (no re-placement; data taken as is)."""
        try:
            return cls(
                nodes=[Node(n["name"], int(n["index"]), IPv4Address(n["underlay_ip"]),
                            IPv4Address(n["ingress_ip"]), n["ingress_mac"],
                            {k: IPv4Address(v) for k, v in n.get("lb_ips", {}).items()},
                            n.get("availability", "active"), n.get("status", "ready"))
                       for n in d["nodes"]],
                networks={k: Network(n["name"], IPv4Network(n["subnet"]), int(n["vni"]),
                                     bool(n["ingress"])) for k, n in d["networks"].items()},
                services={k: Service(
                    name=s["name"], replicas=int(s["replicas"]),
                    ports=tuple(PublishedPort(**p) for p in s["ports"]),
                    endpoint_mode=s.get("endpoint_mode", "vip"),
                    networks=tuple(s.get("networks", ())),
                    constraints=tuple(tuple(c) for c in s.get("constraints", ())),
                    mode=s.get("mode", "replicated"),
                    max_replicas_per_node=int(s.get("max_replicas_per_node", 0)),
                    vips={n: IPv4Address(v) for n, v in s.get("vips", {}).items()},
                    healthcheck=(HealthCheck.from_dict(s["healthcheck"])
                                 if s.get("healthcheck") else None),
                ) for k, s in d["services"].items()},
                tasks=[Task(t["name"], t["service"], int(t["slot"]), t["node"], t["host"],
                            {k: IPv4Address(v) for k, v in t["addresses"].items()},
                            dict(t["macs"]), t.get("state", "running"),
                            int(t.get("version", 1))) for t in d["tasks"]],
                clients=[Client(c["name"], IPv4Address(c["underlay_ip"]))
                         for c in d["clients"]],
                ignored_keys=list(d.get("ignored_keys", [])),
            )
        except InvalidConfigError as exc:
            raise InvalidConfigError("cluster", f"malformed cluster dict: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidConfigError(
                "cluster", f"malformed cluster dict: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------
# Building steps
# --------------------------------------------------------------------------


def _make_node(index: int) -> Node:
    ingress_ip = INGRESS_SUBNET.network_address + 1 + index
    return Node(name=f"node{index}", index=index,
                underlay_ip=UNDERLAY_SUBNET.network_address + index,
                ingress_ip=ingress_ip, ingress_mac=docker_mac(ingress_ip))


def _assign_ports(specs: list[_ServiceSpec]) -> None:
    """Check published-port conflicts, then fill auto-assigned ports in order."""
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
            _check(free is not None, p.path,
                   f"no free {p.protocol} port left in {AUTO_PORT_FIRST}..{AUTO_PORT_LAST}")
            p.published = free
            used[p.protocol].add(free)


def _check_placement(s: _ServiceSpec, nodes: list[Node]) -> None:
    path = f"services.{s.name}.deploy.placement.constraints"
    known = {n.name.lower() for n in nodes}
    for fld, op, value in s.constraints:
        _check(op != "==" or value.lower() in known, path,
               f"{fld} {op} {value}: no such node "
               f"(nodes are {nodes[0].name}..{nodes[-1].name})")
    _check(any(_satisfies(s.constraints, n) for n in nodes), path,
           "no node satisfies " + " and ".join(f"{f} {o} {v}" for f, o, v in s.constraints))


def _place(specs: list[_ServiceSpec], services: dict[str, Service],
           nodes: list[Node]) -> list[tuple[str, int, Node]]:
    """Swarm's spread: (service, slot, node) in creation order."""
    total = {n.name: 0 for n in nodes}
    host_ports = {n.name: set() for n in nodes}  # (published, protocol) bound on the node
    result: list[tuple[str, int, Node]] = []
    for s in specs:
        svc = services[s.name]
        eligible = [n for n in nodes if _satisfies(s.constraints, n)]
        mine = {n.name: 0 for n in nodes}
        wanted = [(p.published, p.protocol, p.path) for p in s.ports if p.mode == "host"]
        if s.mode == "global":
            svc.replicas = len(eligible)
        for slot in range(1, svc.replicas + 1):
            if s.mode == "global":
                candidates = [eligible[slot - 1]]
            else:
                candidates = [n for n in eligible if not s.max_replicas_per_node
                              or mine[n.name] < s.max_replicas_per_node]
                _check(bool(candidates),
                       f"services.{s.name}.deploy.placement.max_replicas_per_node",
                       f"task {s.name}.{slot} cannot be placed: every eligible node "
                       f"already runs {s.max_replicas_per_node} replicas")
            for pub, proto, ppath in wanted:
                before = candidates
                candidates = [n for n in candidates if (pub, proto) not in host_ports[n.name]]
                _check(bool(candidates), ppath,
                       f"task {s.name}.{slot} cannot be placed: host-mode port "
                       f"{pub}/{proto} is already bound on "
                       + ", ".join(n.name for n in before))
            node = min(candidates, key=lambda n: (mine[n.name], total[n.name], n.index))
            mine[node.name] += 1
            total[node.name] += 1
            host_ports[node.name].update((pub, proto) for pub, proto, _ in wanted)
            result.append((s.name, slot, node))
    return result


def _allocate_networks(specs: dict[str, _NetworkSpec]) -> dict[str, Network]:
    """Ingress first, then user networks (given subnet or next free 10.0.k.0/24)."""
    networks = {INGRESS_NETWORK: Network(INGRESS_NETWORK, INGRESS_SUBNET, INGRESS_VNI, True)}
    explicit = [s for s in specs.values() if s.subnet is not None]
    for i, a in enumerate(explicit):
        for b in explicit[:i]:
            _check(not a.subnet.overlaps(b.subnet), a.subnet_path,
                   f"subnet {a.subnet} overlaps network {b.name!r} ({b.subnet})")
    taken = [s.subnet for s in explicit]
    candidates = USER_POOL.subnets(new_prefix=24)
    next(candidates)  # 10.0.0.0/24 is skipped, as by Docker
    for vni, spec in enumerate(specs.values(), start=INGRESS_VNI + 1):
        subnet = spec.subnet
        if subnet is None:
            subnet = next((c for c in candidates
                           if not any(c.overlaps(t) for t in taken)), None)
            _check(subnet is not None, spec.subnet_path,
                   f"no free /24 left in {USER_POOL} for a default subnet")
            taken.append(subnet)
        networks[spec.name] = Network(spec.name, subnet, vni, False)
    return networks


def _make_tasks(placement: list[tuple[str, int, Node]], services: dict[str, Service],
                nodes: list[Node], networks: dict[str, Network],
                net_specs: dict[str, _NetworkSpec]) -> list[Task]:
    """Tasks with host names and addresses; nodes' lb_ips after the tasks."""
    nxt: dict[str, IPv4Address] = {
        INGRESS_NETWORK: INGRESS_SUBNET.network_address + 2 + len(nodes)}
    for name, net in networks.items():
        if not net.ingress:
            nxt[name] = net.subnet.network_address + 2

    def take(net_name: str) -> IPv4Address:
        net = networks[net_name]
        addr = nxt[net_name]
        path = net_specs[net_name].subnet_path if net_name in net_specs else "services"
        _check(addr < net.subnet.broadcast_address, path,
               f"subnet {net.subnet} of network {net_name!r} has too few addresses "
               "for its tasks and load-balancer endpoints")
        nxt[net_name] = addr + 1
        return addr

    tasks: list[Task] = []
    for number, (sname, slot, node) in enumerate(placement, start=1):
        svc = services[sname]
        addresses: dict[str, IPv4Address] = {}
        if svc.ingress_ports():
            addresses[INGRESS_NETWORK] = take(INGRESS_NETWORK)
        for net in svc.networks:
            addresses[net] = take(net)
        tasks.append(Task(name=f"{sname}.{slot}", service=sname, slot=slot, node=node.name,
                          host=f"t{number}", addresses=addresses,
                          macs={k: docker_mac(v) for k, v in addresses.items()}))
    for name, net in networks.items():
        if net.ingress:
            continue
        for node in nodes:
            if any(t.node == node.name and name in t.addresses for t in tasks):
                node.lb_ips[name] = take(name)
    for svc in services.values():          # endpoint_mode vip: one VIP per user network
        if svc.endpoint_mode == "vip":
            svc.vips = {net: take(net) for net in svc.networks}
    return tasks
