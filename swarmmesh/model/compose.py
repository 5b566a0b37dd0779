"""What ``docker stack deploy`` does to stack files before it reads them.

docker/cli loads each ``-c`` file, substitutes variables in it
(``cli/compose/template``, ``cli/compose/interpolation``), casts a few substituted
values back to numbers and booleans (``cli/compose/loader/interpolate.go``), then
merges the files in order (``cli/compose/loader/merge.go``).  This module does the
same to plain mappings, so that :func:`swarmmesh.model.stack.parse` sees what Swarm
would see.  The variables (and the env-file reader, after ``pkg/kvfile``) are
:mod:`swarmmesh.model.interpolation`'s.

Where docker/cli has quirks they are reproduced and marked ``docker quirk``; where
this module departs from it the comment says ``departure``.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Sequence

from swarmmesh.model.errors import check, is_int, type_name
from swarmmesh.model.healthcheck import parse_duration
from swarmmesh.model.interpolation import interpolate, read_env_file  # noqa: F401  (re-exported)

SECTIONS = ("services", "networks", "volumes", "configs", "secrets")
DEFAULT_VERSION = "3.13"  # docker/cli's schema.defaultVersion: what a file without one has

# --------------------------------------------------------------------------
# merge rules (cli/compose/loader/merge.go over mergo)
# --------------------------------------------------------------------------
# docker/cli merges typed structs with mergo (override, append slices, a few
# transformers).  On mappings that comes to: a field absent or null in the later
# file keeps the earlier value; a scalar overrides unless it is empty (0, "", false);
# lists are appended; mappings are merged key by key; the exceptions are below.

Rule = Callable[[Any, Any], Any]


def _empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ("", [], {})


def _default(base: Any, over: Any) -> Any:
    if over is None:
        return base
    if base is None:
        return over
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        return _struct({})(base, over)
    if isinstance(base, list) and isinstance(over, list):
        return base + over
    return base if _empty(over) else over


def _struct(rules: Mapping[str, Rule]) -> Rule:
    """A struct: each field by its rule (the default one if it has none).  Every field
    of the earlier file is visited, as mergo does, even when the later one lacks it."""

    def merge_struct(base: Any, over: Any) -> Any:
        if not (isinstance(base, Mapping) and isinstance(over, Mapping)):
            return _default(base, over)
        result = {k: rules.get(k, _default)(v, over.get(k)) for k, v in base.items()}
        for key, value in over.items():
            if key not in base:
                result[key] = rules.get(key, _default)(None, value)
        return result

    return merge_struct


def _present(base: Any, over: Any) -> Any:
    """A pointer field (``*uint64``): any value given overrides, 0 included."""
    return base if over is None else over


def _duration(base: Any, over: Any) -> Any:
    """A duration: a zero one ("0s") does not override."""
    try:
        zero = parse_duration(over) == 0
    except ValueError:
        zero = False
    return base if over is None or zero or over == "" else over


def _replace(base: Any, over: Any) -> Any:
    """command, entrypoint: replaced by a non-empty value."""
    return base if _empty(over) else over


def _string_list(base: Any, over: Any) -> Any:
    """dns, env_file, tmpfs ...: a string is a one-item list; lists are appended."""
    if base is None or over is None:
        return over if base is None else base
    wrap = (lambda v: [v] if isinstance(v, str) else v)
    return _default(wrap(base), wrap(over))


def _as_mapping(value: Any, missing: Any) -> Any:
    """environment/labels given as ``["K=V", "K"]``: a mapping (a bare K -> missing)."""
    if not isinstance(value, list):
        return value
    result = {}
    for item in value:
        key, has_value, val = str(item).partition("=")
        result[key] = val if has_value else missing
    return result


def _labels(base: Any, over: Any) -> Any:
    """labels, deploy.labels, sysctls: key by key, the later value wins."""
    if base is None or over is None:
        return over if base is None else base
    base, over = _as_mapping(base, ""), _as_mapping(over, "")
    if not (isinstance(base, Mapping) and isinstance(over, Mapping)):
        return over
    return {**base, **over}


def _environment(base: Any, over: Any) -> Any:
    """environment, build.args: key by key; docker quirk: an empty or null value does
    not override a non-empty one."""
    if base is None or over is None:
        return over if base is None else base
    base, over = _as_mapping(base, None), _as_mapping(over, None)
    if not (isinstance(base, Mapping) and isinstance(over, Mapping)):
        return over
    result = dict(base)
    for key, value in over.items():
        if key not in result or result[key] in (None, "") or value not in (None, ""):
            result[key] = value
    return result


def _ulimits(base: Any, over: Any) -> Any:
    """ulimits: each limit replaced whole (single number or soft/hard)."""
    if not (isinstance(base, Mapping) and isinstance(over, Mapping)):
        return _default(base, over)
    result = dict(base)
    result.update({k: v for k, v in over.items() if v is not None or k not in base})
    return result


def _logging(base: Any, over: Any) -> Any:
    """logging: same driver (or one unset) merges the options, else replaced whole."""
    if not (isinstance(base, Mapping) and isinstance(over, Mapping)):
        return _default(base, over)
    b_driver, o_driver = base.get("driver") or "", over.get("driver") or ""
    if b_driver and o_driver and b_driver != o_driver:
        return over
    result = dict(base)
    if o_driver:
        result["driver"] = o_driver
    options = {**(base.get("options") or {}), **(over.get("options") or {})}
    if options:
        result["options"] = options
    return result


def _service_networks(base: Any, over: Any) -> Any:
    """A service's networks: the union by name; for a network in both with settings
    in both, aliases are replaced (even by none), ipv4/ipv6 addresses replaced when
    given; a null (or list-form) entry changes nothing.  Two lists stay a list."""
    if base is None or over is None:
        return over if base is None else base
    if isinstance(base, list) and isinstance(over, list):
        return base + [n for n in over if n not in base]
    b_map, o_map = _net_mapping(base), _net_mapping(over)
    if b_map is None or o_map is None:
        return over
    result = dict(b_map)
    for name, settings in o_map.items():
        result[name] = _network_entry(result.get(name), settings)
    return result


def _net_mapping(value: Any) -> dict | None:
    if isinstance(value, list):
        return {name: None for name in value}
    return dict(value) if isinstance(value, Mapping) else None


def _network_entry(base: Any, over: Any) -> Any:
    """docker/cli's mergeServiceNetworkConfig; driver_opts stay the earlier file's."""
    if not isinstance(base, Mapping) or not isinstance(over, Mapping):
        return over if base is None else base
    result = {k: v for k, v in base.items() if k != "aliases"}
    for key, value in over.items():
        if key != "driver_opts" and value not in (None, ""):
            result[key] = value
    return result


# keyed lists: ports by published port, volumes by target, secrets/configs by source


def _keyed(items: Callable[[Any], list[tuple[Any, Any]]]) -> Rule:
    """docker/cli's mergeSlice: both lists turned into a table by key (later entries
    win, within one file too), written back sorted by key.  docker quirk: this runs
    whenever the earlier file has the list, even if the later file does not."""

    def merge_list(base: Any, over: Any) -> Any:
        if base is None:
            return over
        if not isinstance(base, list) or not isinstance(over, (list, type(None))):
            return _default(base, over)
        table = dict(items(base) + items(over or []))
        return [table[k] for k in sorted(table, key=_sort_key)]

    return merge_list


def _sort_key(key: Any) -> tuple[int, Any]:
    return (0, key) if is_int(key) else (1, str(key))


def _port_items(ports: list) -> list[tuple[Any, Any]]:
    """Each port by its published port (0 when none).  docker quirk (docker/cli#2407,
    #6223): the protocol is not part of the key, so 53/tcp and 53/udp collapse."""
    result: list[tuple[Any, Any]] = []
    for item in ports:
        if isinstance(item, Mapping):
            published = item.get("published")
            result.append((_port_int(published) if published is not None else 0, item))
        elif is_int(item):
            result.append((0, item))
        elif isinstance(item, str):
            result.extend(_short_port_items(item))
        else:
            result.append((repr(item), item))
    return result


def _port_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if is_int(value) else repr(value)


def _short_port_items(item: str) -> list[tuple[Any, Any]]:
    """``[ip:][published:]target[/proto]``; ranges expand to one entry per port, as
    docker/cli's loader does before merging.  What cannot be read keeps its text as
    key (stack.py reports it)."""
    spec, slash, proto = item.rpartition("/") if "/" in item else (item, "", "")
    parts = spec.split(":")
    if spec.startswith("[") or len(parts) > 3:
        return [(item, item)]
    prefix = f"{parts[0]}:" if len(parts) == 3 else ""
    targets = _port_span(parts[-1])
    published = _port_span(parts[-2]) if len(parts) > 1 and parts[-2] else []
    if targets is None or published is None or len(published) not in (0, len(targets)):
        return [(item, item)]
    if len(targets) == 1:
        return [(published[0] if published else 0, item)]
    suffix = f"{slash}{proto}"
    if not published:
        return [(0, f"{t}{suffix}") for t in targets]
    return [(p, f"{prefix}{p}:{t}{suffix}") for p, t in zip(published, targets)]


def _port_span(text: str) -> list[int] | None:
    low, dash, high = text.strip().partition("-")
    if not low.isdigit() or (dash and not high.isdigit()):
        return None
    return list(range(int(low), int(high if dash else low) + 1)) or None


def _volume_items(volumes: list) -> list[tuple[Any, Any]]:
    """Each mount by its target (``src:target[:mode]``, or a lone target)."""
    result = []
    for item in volumes:
        if isinstance(item, Mapping):
            result.append((item.get("target"), item))
        elif isinstance(item, str):
            parts = item.split(":")
            result.append((parts[1] if len(parts) > 1 else parts[0], item))
        else:
            result.append((repr(item), item))
    return result


def _source_items(entries: list) -> list[tuple[Any, Any]]:
    """Each secret or config by its source (a string is its own source)."""
    result = []
    for item in entries:
        if isinstance(item, Mapping):
            result.append((item.get("source"), item))
        else:
            result.append((item if isinstance(item, str) else repr(item), item))
    return result


def _healthcheck_test(base: Any, over: Any) -> Any:
    """docker quirk: the test is a plain list to mergo, so a later test is APPENDED to
    the earlier one (a string being ["CMD-SHELL", string]); stack.py then rejects
    what Docker would run."""
    if base is None or over is None:
        return over if base is None else base
    as_list = (lambda t: ["CMD-SHELL", t] if isinstance(t, str) else list(t))
    return as_list(base) + as_list(over)


_UPDATE = _struct({"parallelism": _present, "delay": _duration, "monitor": _duration})
_DEPLOY = _struct({
    "replicas": _present,
    "labels": _labels,
    "update_config": _UPDATE,
    "rollback_config": _UPDATE,
    "restart_policy": _struct({"max_attempts": _present, "delay": _duration,
                               "window": _duration}),
    # placement: constraints and preferences appended, max_replicas_per_node
    # overridden unless 0; resources: field by field, by the default rule
})
_HEALTHCHECK = _struct({
    "test": _healthcheck_test, "retries": _present, "interval": _duration,
    "timeout": _duration, "start_period": _duration, "start_interval": _duration,
    # disable: a later true overrides, a later false does not
})
_SERVICE = _struct({
    "command": _replace, "entrypoint": _replace,
    "ports": _keyed(_port_items), "volumes": _keyed(_volume_items),
    "secrets": _keyed(_source_items), "configs": _keyed(_source_items),
    "environment": _environment, "build": _struct({"args": _environment}),
    "labels": _labels, "sysctls": _labels,
    "networks": _service_networks, "ulimits": _ulimits, "logging": _logging,
    "deploy": _DEPLOY, "healthcheck": _HEALTHCHECK, "stop_grace_period": _duration,
    "dns": _string_list, "dns_search": _string_list, "env_file": _string_list,
    "tmpfs": _string_list,
})


# --------------------------------------------------------------------------
# merge and prepare
# --------------------------------------------------------------------------


def merge(documents: Sequence[tuple[str, Mapping]]) -> dict:
    """``docker stack deploy -c a.yml -c b.yml``: a new mapping where later files
    override earlier ones.  Services are merged field by field (the rules above);
    networks, volumes, configs and secrets are replaced whole, by name.  Every file
    must have the same ``version`` (as docker/cli requires; a file without one has
    the default); the last one given is kept.  Other top-level keys (``x-*``): the
    first file's value is kept (docker/cli keeps only the first file's)."""
    check(len(documents) > 0, "stack", "no stack files given")
    docs = [(source, _checked(source, doc)) for source, doc in documents]
    first_source, result = docs[0]
    for source, doc in docs[1:]:
        _check_version(first_source, docs[0][1], source, doc)
        _merge_into(result, doc)
    return result


def _checked(source: str, doc: Any) -> dict:
    """A deep copy of ``doc`` after the shape checks merging needs."""
    where = f" (in {source})"
    check(isinstance(doc, Mapping), "stack", f"top level must be a mapping, got "
                                             f"{type_name(doc)}{where}")
    for section in SECTIONS:
        body = doc.get(section)
        check(body is None or isinstance(body, Mapping), section,
              f"must be a mapping, got {type_name(body)}{where}")
    for name, service in (doc.get("services") or {}).items():
        check(service is None or isinstance(service, Mapping), f"services.{name}",
              f"must be a mapping, got {type_name(service)}{where}")
    return copy.deepcopy(dict(doc))


def _version(doc: Mapping) -> str:
    """docker/cli's schema.Version: ``version`` as Go prints it ("3" and none are the
    default)."""
    value = doc.get("version")
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value).removesuffix(".0")
    else:
        text = str(value)
    return DEFAULT_VERSION if text in ("", "3") else text


def _check_version(first_source: str, first: Mapping, source: str, doc: Mapping) -> None:
    first_version, version = _version(first), _version(doc)
    check(version == first_version, "version",
          f"version mismatched between two composefiles: {first_version} in {first_source} "
          f"and {version} in {source} (docker stack deploy needs the same version, and a "
          f"file without one has {DEFAULT_VERSION})")


def _merge_into(result: dict, doc: Mapping) -> None:
    for key, value in doc.items():
        if key == "version":
            result[key] = value
        elif key == "services":
            result[key] = _merge_services(result.get(key) or {}, value or {})
        elif key in SECTIONS:
            result[key] = {**(result.get(key) or {}), **(value or {})}
        else:
            result.setdefault(key, value)


def _merge_services(base: Mapping, over: Mapping) -> dict:
    result = dict(base)
    for name, body in over.items():
        result[name] = _SERVICE(base[name] or {}, body or {}) if name in base else body
    return result


def prepare(documents: Sequence[tuple[str, Mapping]], env: Mapping[str, str]
            ) -> tuple[dict, list[str]]:
    """What ``docker stack deploy -c ... -c ...`` makes of its files: each one
    interpolated from ``env``, then all merged in order.  Returns the merged mapping
    and the warnings; messages name the file when there is more than one."""
    warnings: list[str] = []
    many = len(documents) > 1
    done = [(source, interpolate(doc, env, source if many else "stack", warnings))
            for source, doc in documents]
    return merge(done), warnings
