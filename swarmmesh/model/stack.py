"""A docker stack / compose v3 file, parsed and validated before anything is built.

FAUCET config_parser style: every problem raises :class:`InvalidConfigError`, whose
message starts with the field path; unknown keys are rejected, keys Swarm has but the
testbed ignores are listed.  The result (:class:`ParsedStack`) is plain specs that
:mod:`~swarmmesh.model.placement` turns into nodes, services and tasks.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any, Mapping, Sequence


from swarmmesh.model import balancing, compose, constraints, healthcheck
from swarmmesh.model.balancing import Balancing
from swarmmesh.model.errors import InvalidConfigError, check, is_int, type_name
from swarmmesh.model.healthcheck import HealthCheck
from swarmmesh.model.stackfile import Ignored, as_list, as_mapping, load_stack
from swarmmesh.model.stackports import PortSpec, assign_ports, parse_port
from swarmmesh.model.objects import (DEPLOY_MODES, DNSRR_INGRESS_ERROR, ENDPOINT_MODES,
                                     INGRESS_NETWORK, INGRESS_SUBNET, UNDERLAY_SUBNET)

_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
DEFAULT_NETWORK = "default"      # the stack's implicit network (<stack>_default in Swarm)
_TOP_LEVEL_IGNORED = ("volumes", "configs", "secrets", "name", "include")


HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period",
                    "start_interval", "disable")


def _hc_duration(value: Any, path: str, default: float) -> float:
    try:
        seconds = healthcheck.parse_duration(value)
    except ValueError as exc:
        raise InvalidConfigError(path, str(exc)) from None
    check(seconds >= 0, path, f"must not be negative, got {value!r}")
    check(seconds == 0 or seconds >= healthcheck.MINIMUM_DURATION, path,
           f"must be 0 (the default) or at least 1ms, got {value!r}")
    return seconds or default


def _hc_test(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        check(value.strip() != "", path, "must not be empty")
        return ("CMD-SHELL", value)
    items = as_list(value, path)
    check(len(items) > 0, path, "must not be empty")
    for item in items:
        check(isinstance(item, str), path, f"items must be strings, got {item!r}")
    kind = items[0]
    check(kind in ("CMD", "CMD-SHELL", "NONE"), path,
           f"must start with CMD, CMD-SHELL or NONE, got {kind!r}")
    if kind == "NONE":
        check(len(items) == 1, path, "NONE takes no arguments")
    elif kind == "CMD":
        check(len(items) >= 2, path, "CMD needs a command")
    else:
        check(len(items) == 2 and items[1].strip() != "", path,
               "CMD-SHELL takes exactly one command string")
    return tuple(items)


def _parse_healthcheck(raw: Any, path: str, ignored: Ignored) -> HealthCheck:
    """``services.X.healthcheck`` (compose v3): 0 or a missing key means Docker's default."""
    body = as_mapping(raw, path)
    for key in body:
        check(key in HEALTHCHECK_KEYS, f"{path}.{key}",
               f"unknown key (expected one of {', '.join(HEALTHCHECK_KEYS)})")
    test: tuple[str, ...] = ()
    if body.get("test") is not None:
        test = _hc_test(body["test"], f"{path}.test")
    disable = body.get("disable", False)
    check(isinstance(disable, bool), f"{path}.disable", f"must be true or false, got {disable!r}")
    if disable:
        check(test in ((), ("NONE",)), f"{path}.disable",
               "cannot be used together with a test other than NONE")
        test = ("NONE",)
    if not test:
        ignored.add(f"{path}.test")  # no test: the image's, and ours has no HEALTHCHECK
    retries = body.get("retries")
    if retries is None:
        retries = 0
    check(is_int(retries) and retries >= 0, f"{path}.retries",
           f"must be an integer >= 0, got {retries!r}")
    return HealthCheck(
        test=test,
        interval=_hc_duration(body.get("interval", 0), f"{path}.interval",
                              healthcheck.DEFAULT_INTERVAL),
        timeout=_hc_duration(body.get("timeout", 0), f"{path}.timeout",
                             healthcheck.DEFAULT_TIMEOUT),
        retries=retries or healthcheck.DEFAULT_RETRIES,
        start_period=_hc_duration(body.get("start_period", 0), f"{path}.start_period",
                                  healthcheck.DEFAULT_START_PERIOD),
        start_interval=_hc_duration(body.get("start_interval", 0), f"{path}.start_interval",
                                    healthcheck.DEFAULT_START_INTERVAL),
    )


@dataclass
class ServiceSpec:
    name: str
    mode: str
    replicas: int | None
    endpoint_mode: str
    networks: list[str]
    constraints: list[tuple[str, str, str]]
    max_replicas_per_node: int
    ports: list[PortSpec]
    depends_on: list[str]
    healthcheck: HealthCheck | None = None
    preferences: list[str] = field(default_factory=list)   # spread descriptors, outermost first
    balancing: Balancing | None = None                     # x-swarmmesh (None: Swarm's rr)


def _parse_service(name: str, raw: Any, networks: Mapping[str, Any],
                   ignored: Ignored) -> ServiceSpec:
    path = f"services.{name}"
    check(_NAME_RE.match(name) is not None, path,
           f"invalid service name {name!r} (must match [a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    body = as_mapping(raw, path)
    spec = ServiceSpec(name, "replicated", None, "vip", [], [], 0, [], [])
    for key, value in body.items():
        kpath = f"{path}.{key}"
        if key == "deploy":
            _parse_deploy(spec, value, kpath, ignored)
        elif key == "ports":
            for i, item in enumerate(as_list(value, kpath)):
                spec.ports.extend(parse_port(item, f"{kpath}[{i}]", ignored))
        elif key == "networks":
            spec.networks = _parse_service_networks(value, kpath, networks, ignored)
        elif key == "depends_on":
            deps = value
            if isinstance(deps, Mapping):
                deps = list(as_mapping(deps, kpath))
            for dep in as_list(deps, kpath):
                check(isinstance(dep, str), kpath, f"must name services, got {dep!r}")
                spec.depends_on.append(dep)
            ignored.add(kpath)  # docker stack deploy ignores depends_on
        elif key == "healthcheck":
            spec.healthcheck = _parse_healthcheck(value, kpath, ignored)
        elif key == balancing.KEY:
            spec.balancing = balancing.parse(value, kpath)
        elif not key.startswith("x-"):           # extension fields: for the user's tools
            ignored.add(kpath)
    return spec


def _parse_deploy(spec: ServiceSpec, raw: Any, path: str, ignored: Ignored) -> None:
    deploy = as_mapping(raw, path)
    for key, value in deploy.items():
        kpath = f"{path}.{key}"
        if key == "mode":
            check(value in DEPLOY_MODES, kpath,
                   f"must be one of {', '.join(DEPLOY_MODES)}, got {value!r}")
            spec.mode = value
        elif key == "replicas":
            check(is_int(value), kpath, f"must be an integer, got {value!r}")
            check(value >= 0, kpath, f"must be >= 0, got {value}")
            spec.replicas = value
        elif key == "endpoint_mode":
            check(value in ENDPOINT_MODES, kpath,
                   f"must be one of {', '.join(ENDPOINT_MODES)}, got {value!r}")
            spec.endpoint_mode = value
        elif key == "placement":
            for pkey, pvalue in as_mapping(value, kpath).items():
                ppath = f"{kpath}.{pkey}"
                if pkey == "constraints":
                    spec.constraints = [constraints.parse(c, f"{ppath}[{i}]")
                                        for i, c in enumerate(as_list(pvalue, ppath))]
                    for i, (key, _, _) in enumerate(spec.constraints):
                        if constraints.unknown_key(key):
                            ignored.warnings.append(f"{ppath}[{i}]: Swarm knows no constraint key "
                                            f"{key!r}: no node satisfies it, the service's "
                                            "tasks stay pending")
                elif pkey == "preferences":
                    spec.preferences = [constraints.parse_preference(p, f"{ppath}[{i}]",
                                                                     ignored.warnings)
                                        for i, p in enumerate(as_list(pvalue, ppath))]
                elif pkey == "max_replicas_per_node":
                    check(is_int(pvalue) and pvalue >= 0, ppath,
                           f"must be an integer >= 0, got {pvalue!r}")
                    spec.max_replicas_per_node = pvalue
                else:  # platforms (no image here to take them from)
                    ignored.add(ppath)
        else:
            ignored.add(kpath)
    if spec.mode == "global":
        check(spec.replicas is None, f"{path}.replicas",
               "replicas can only be used with replicated mode")


def _parse_service_networks(raw: Any, path: str, networks: Mapping[str, Any],
                            ignored: Ignored) -> list[str]:
    if isinstance(raw, Mapping):
        names = list(as_mapping(raw, path))
        for net, opts in raw.items():
            for okey in as_mapping(opts, f"{path}.{net}"):
                ignored.add(f"{path}.{net}.{okey}")  # aliases, ipv4_address, ...
    else:
        names = as_list(raw, path)
    result: list[str] = []
    for net in names:
        check(isinstance(net, str), path, f"network names must be strings, got {net!r}")
        check(net != INGRESS_NETWORK, path,
               f"a service cannot be attached explicitly to the {INGRESS_NETWORK!r} "
               "network (publish a port instead)")
        check(net in networks or net == DEFAULT_NETWORK, path,
               f"unknown network {net!r} (declared: {', '.join(networks) or 'none'}, "
               f"and the stack's implicit {DEFAULT_NETWORK!r})")
        check(net not in result, path, f"network {net!r} listed twice")
        result.append(net)
    return result


@dataclass
class NetworkSpec:
    name: str
    subnet: IPv4Network | None
    subnet_path: str


def _parse_networks(raw: Any, ignored: Ignored) -> dict[str, NetworkSpec]:
    result: dict[str, NetworkSpec] = {}
    for name, body in as_mapping(raw, "networks").items():
        path = f"networks.{name}"
        check(name != INGRESS_NETWORK, path,
               f"the name {INGRESS_NETWORK!r} is reserved for the routing-mesh network")
        check(_NAME_RE.match(name) is not None, path,
               f"invalid network name {name!r} (must match [a-zA-Z0-9][a-zA-Z0-9_.-]*)")
        spec = NetworkSpec(name, None, path)
        for key, value in as_mapping(body, path).items():
            kpath = f"{path}.{key}"
            if key == "driver":
                check(value == "overlay", kpath,
                       f"only the overlay driver is emulated, got {value!r}")
            elif key == "ipam":
                for ikey, ivalue in as_mapping(value, kpath).items():
                    ipath = f"{kpath}.{ikey}"
                    if ikey != "config":
                        ignored.add(ipath)
                        continue
                    for i, entry in enumerate(as_list(ivalue, ipath)):
                        epath = f"{ipath}[{i}]"
                        for ekey, evalue in as_mapping(entry, epath).items():
                            if i == 0 and ekey == "subnet":
                                spec.subnet = _parse_subnet(evalue, f"{epath}.subnet")
                                spec.subnet_path = f"{epath}.subnet"
                            else:
                                ignored.add(f"{epath}.{ekey}")
            elif not key.startswith("x-"):  # attachable, external, internal, labels, ...
                ignored.add(kpath)
        result[name] = spec
    return result


def _parse_subnet(value: Any, path: str) -> IPv4Network:
    check(isinstance(value, str), path, f"must be a CIDR string, got {value!r}")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidConfigError(path, f"invalid subnet {value!r}: {exc}") from None
    check(isinstance(net, IPv4Network), path, f"only IPv4 is emulated, got {value!r}")
    check(net.prefixlen <= 29, path, f"subnet {value!r} is too small (at most /29)")
    check(not net.overlaps(UNDERLAY_SUBNET), path,
          f"subnet {value} overlaps the underlay ({UNDERLAY_SUBNET})")
    return net     # the ingress network's own subnet is checked where it is known (placement)


def ingress_subnet(value: str | IPv4Network | None, path: str = "ingress-subnet"
                   ) -> IPv4Network:
    """The ingress network's subnet: Docker's (``None``), or one given as a user gives it to
    ``docker network create --ingress --subnet``."""
    if value is None:
        return INGRESS_SUBNET
    net = _parse_subnet(str(value), path)
    check(net.prefixlen <= 28, path, f"subnet {value} is too small for an ingress "
                                     "network (at most /28)")
    return net


def _default_network(specs: list[ServiceSpec], net_specs: dict[str, NetworkSpec]) -> None:
    """``docker stack deploy``: a service that lists no network is on the stack's
    ``<stack>_default`` overlay, created when some service is on it (and then
    shaped by a ``networks: default:`` entry, if the file has one)."""
    for s in specs:
        if not s.networks:
            s.networks = [DEFAULT_NETWORK]
    if DEFAULT_NETWORK not in net_specs and any(DEFAULT_NETWORK in s.networks for s in specs):
        net_specs[DEFAULT_NETWORK] = NetworkSpec(DEFAULT_NETWORK, None,
                                                 f"networks.{DEFAULT_NETWORK}")


def _top_level_balancing(data: Mapping, specs: list[ServiceSpec], ignored: Ignored) -> None:
    """``x-swarmmesh`` at the top level (files before 3.7), and a warning where a
    service-level one would make docker stack deploy refuse the file."""
    by_name = {s.name: s for s in specs}
    if balancing.KEY in data:
        for name, options in balancing.top_level(data[balancing.KEY], by_name).items():
            check(by_name[name].balancing is None, f"services.{name}.{balancing.KEY}",
                  f"also set in the top-level {balancing.KEY}.services.{name}: keep one")
            by_name[name].balancing = options
    if not balancing.version_allows_service_key(data.get("version", "3.13")):
        for s in specs:
            if s.balancing is not None and balancing.KEY not in data:
                ignored.warnings.append(
                    f"services.{s.name}.{balancing.KEY}: docker stack deploy refuses x- keys "
                    f"inside a service before version 3.7 (this file: {data.get('version')}); "
                    f"the top-level {balancing.KEY}.services.{s.name} works with every 3.x")


def _source_name(src: Source, i: int) -> str:
    if isinstance(src, (str, os.PathLike)) and "\n" not in str(src):
        return os.fspath(src)
    return f"stack[{i}]"


@dataclass
class ParsedStack:
    """A whole stack file, parsed and validated: nothing is built yet."""

    networks: dict[str, NetworkSpec]
    services: list[ServiceSpec]
    ignored: list[str]
    warnings: list[str] = field(default_factory=list)


Source = str | os.PathLike | Mapping


def parse(stack: Source | Sequence[Source], env: Mapping[str, str] | None = None,
          implicit_network: bool = True) -> ParsedStack:
    """Parse and validate a stack: a file path, YAML text or mapping, or several of them
    merged in order (``docker stack deploy -c a.yml -c b.yml``), after the variables
    are substituted from ``env`` (none set if ``None``).  Every error names its field.
    ``implicit_network=False``: no ``default`` network for services that list none
    (``docker service create``, not ``docker stack deploy``)."""
    sources = list(stack) if isinstance(stack, (list, tuple)) else [stack]
    check(bool(sources), "stack", "no stack file given")
    documents = [(_source_name(src, i), load_stack(src)) for i, src in enumerate(sources)]
    data, warnings = compose.prepare(documents, env or {})

    # 1. parse and validate everything
    ignored = Ignored()
    ignored.warnings.extend(warnings)
    for key in data:
        check(isinstance(key, str), "stack", f"top-level keys must be strings, got {key!r}")
        if key in ("version", "services", "networks") or key.startswith("x-"):
            continue
        check(key in _TOP_LEVEL_IGNORED or key.startswith("x-"), key,
               "unknown top-level key")
        ignored.add(key)
    check("services" in data, "services", "required")
    net_specs = _parse_networks(data.get("networks"), ignored)
    raw_services = data["services"]
    check(isinstance(raw_services, Mapping), "services",
           f"must be a mapping, got {type_name(raw_services)}")
    check(len(raw_services) > 0, "services", "must define at least one service")
    specs: list[ServiceSpec] = []
    for name, body in raw_services.items():
        check(isinstance(name, str), "services", f"service names must be strings, got {name!r}")
        specs.append(_parse_service(name, body, net_specs, ignored))
    if implicit_network:
        _default_network(specs, net_specs)
    _top_level_balancing(data, specs, ignored)
    names = {s.name for s in specs}
    for s in specs:
        for dep in s.depends_on:
            if dep not in names:            # docker stack deploy does not look at depends_on
                ignored.warnings.append(f"services.{s.name}.depends_on: unknown service "
                                        f"{dep!r} (ignored, as by docker stack deploy)")
        if s.endpoint_mode == "dnsrr" and any(p.mode == "ingress" for p in s.ports):
            raise InvalidConfigError(f"services.{s.name}.deploy.endpoint_mode",
                                     DNSRR_INGRESS_ERROR)
    assign_ports(specs)

    return ParsedStack(net_specs, specs, ignored.keys, ignored.warnings)
