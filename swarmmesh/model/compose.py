"""What ``docker stack deploy`` does to stack files before it reads them.

docker/cli loads each ``-c`` file, substitutes variables in it
(``cli/compose/template``, ``cli/compose/interpolation``), casts a few substituted
values back to numbers and booleans (``cli/compose/loader/interpolate.go``), then
merges the files in order (``cli/compose/loader/merge.go``).  This module does the
same to plain mappings, so that :func:`swarmmesh.model.stack.parse` sees what Swarm
would see.  Its env-file reader follows ``pkg/kvfile``.

Where docker/cli has quirks they are reproduced and marked ``docker quirk``; where
this module departs from it the comment says ``departure``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from swarmmesh.model.errors import InvalidConfigError, check, is_int, type_name
from swarmmesh.model.healthcheck import parse_duration

Warnings = list[str]  # plain strings, each starting with the field it is about

SECTIONS = ("services", "networks", "volumes", "configs", "secrets")
DEFAULT_VERSION = "3.13"  # docker/cli's schema.defaultVersion: what a file without one has

# --------------------------------------------------------------------------
# env files (pkg/kvfile)
# --------------------------------------------------------------------------


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """``KEY=VALUE`` lines as docker reads them: leading whitespace and a first-line BOM
    dropped, blank lines and ``#`` lines skipped, values kept as they are (quotes and
    trailing spaces included); a bare ``KEY`` takes its value from ``os.environ`` and
    is left out when that has none."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InvalidConfigError("env_file", f"cannot read {name}: {exc.strerror or exc}") \
            from None
    result: dict[str, str] = {}
    for number, line in enumerate(_env_lines(raw, name), start=1):
        if line is not None:
            _env_entry(line, f"{name} line {number}", result)
    return result


def _env_lines(raw: bytes, name: str) -> list[str | None]:
    """Go's bufio.ScanLines: split on LF, drop one trailing CR; None for skipped lines."""
    pieces = raw.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    lines: list[str | None] = []
    for number, piece in enumerate(pieces, start=1):
        if number == 1 and piece.startswith(b"\xef\xbb\xbf"):
            piece = piece[3:]
        try:
            line = piece.removesuffix(b"\r").decode("utf-8").lstrip()
        except UnicodeDecodeError:
            raise InvalidConfigError("env_file", f"{name} line {number}: invalid UTF-8") \
                from None
        lines.append(None if line == "" or line.startswith("#") else line)
    return lines


def _env_entry(line: str, where: str, result: dict[str, str]) -> None:
    key, has_value, value = line.partition("=")
    check(key != "", "env_file", f"{where}: no variable name on line {line!r}")
    check(not any(c in key for c in " \t"), "env_file",
          f"{where}: variable {key!r} contains whitespaces")
    if has_value:
        result[key] = value
    elif key in os.environ:
        result[key] = os.environ[key]


# --------------------------------------------------------------------------
# substitution (cli/compose/template)
# --------------------------------------------------------------------------

_SUBST = r"[_a-z][_a-z0-9]*(?::?[-?][^}]*)?"
_PATTERN = re.compile(
    rf"\$(?:(?P<escaped>\$)|(?P<named>{_SUBST})|{{(?P<braced>{_SUBST})}}|(?P<invalid>))",
    re.IGNORECASE)


class _TemplateError(Exception):
    """docker/cli's InvalidTemplateError; its argument is the text the message quotes."""


def _substitute(template: str, env: Mapping[str, str], unset: list[str]) -> str:
    """One pass over ``template`` as docker/cli's ``template.Substitute``: nothing
    substituted is substituted again, so ``${A:-${B}}`` gives ``${B}`` when A is unset.
    docker quirk: an unbraced name takes a default too (``$A-x`` is ``${A-x}``, and
    with A set the ``-x`` is dropped)."""

    def replace(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        body = match.group("named") or match.group("braced")
        if not body:  # a "$" followed by nothing valid: "$", "${", "${}", "$1" ...
            raise _TemplateError(template)
        return _resolve(body, env, unset)

    # departure: docker/cli keeps only the error of the last substitution in a string,
    # so "${A:?x} $B" passes there with A unset; here any error is raised.
    return _PATTERN.sub(replace, template)


def _resolve(body: str, env: Mapping[str, str], unset: list[str]) -> str:
    """docker/cli's substitute functions, tried in its order on the whole body.
    docker quirk: the first separator found wins, so ``${A:?must-set}`` is a "-"
    default of a variable named ``A:?must`` and always gives ``set``."""
    if ":-" in body:
        name, default = body.split(":-", 1)
        return env.get(name) or default
    if "-" in body:
        name, default = body.split("-", 1)
        return env[name] if name in env else default
    for sep, empty_ok in ((":?", False), ("?", True)):
        if sep in body:
            name, message = body.split(sep, 1)
            if name not in env or (env[name] == "" and not empty_ok):
                raise _TemplateError(f"required variable {name} is missing a value: {message}")
            return env[name]
    if body not in env:
        unset.append(body)
    return env.get(body, "")


def _go_quote(text: str) -> str:
    """About what Go's %#v prints for a string (docker puts the template in quotes)."""
    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------
# casts after substitution (cli/compose/loader/interpolate.go)
# --------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
                       r"|inf|infinity|nan)\Z", re.IGNORECASE)
_TRUE, _FALSE = ("y", "yes", "true", "on"), ("n", "no", "false", "off")


def _to_int(text: str) -> int:  # strconv.Atoi: no spaces, no underscores, 64 bits
    if _INT_RE.match(text) and -2**63 <= int(text) < 2**63:
        return int(text)
    raise ValueError("an integer")


def _to_float(text: str) -> float:  # strconv.ParseFloat, decimal forms
    if _FLOAT_RE.match(text):
        return float(text)
    raise ValueError("a number")


def _to_bool(text: str) -> bool:  # the YAML 1.1 words docker/cli accepts
    if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    raise ValueError("a boolean (true/false, yes/no, on/off, y/n)")


def _service(*parts: str) -> tuple[str, ...]:
    return ("services", "*") + parts


# "*" matches any one key (or list item), "[]" any list item
_CASTS: dict[tuple[str, ...], Callable[[str], Any]] = {
    _service("configs", "[]", "mode"): _to_int,
    _service("secrets", "[]", "mode"): _to_int,
    _service("healthcheck", "retries"): _to_int,
    _service("healthcheck", "disable"): _to_bool,
    _service("deploy", "replicas"): _to_int,
    _service("deploy", "update_config", "parallelism"): _to_int,
    _service("deploy", "update_config", "max_failure_ratio"): _to_float,
    _service("deploy", "rollback_config", "parallelism"): _to_int,
    _service("deploy", "rollback_config", "max_failure_ratio"): _to_float,
    _service("deploy", "restart_policy", "max_attempts"): _to_int,
    _service("deploy", "placement", "max_replicas_per_node"): _to_int,
    _service("ports", "[]", "target"): _to_int,
    _service("ports", "[]", "published"): _to_int,
    _service("ulimits", "*"): _to_int,
    _service("ulimits", "*", "hard"): _to_int,
    _service("ulimits", "*", "soft"): _to_int,
    _service("privileged"): _to_bool,
    _service("oom_score_adj"): _to_int,
    _service("read_only"): _to_bool,
    _service("stdin_open"): _to_bool,
    _service("tty"): _to_bool,
    _service("volumes", "[]", "read_only"): _to_bool,
    _service("volumes", "[]", "volume", "nocopy"): _to_bool,
    ("networks", "*", "external"): _to_bool,
    ("networks", "*", "internal"): _to_bool,
    ("networks", "*", "attachable"): _to_bool,
    ("volumes", "*", "external"): _to_bool,
    ("secrets", "*", "external"): _to_bool,
    ("configs", "*", "external"): _to_bool,
}


def _caster(parts: tuple[str, ...]) -> Callable[[str], Any] | None:
    for pattern, cast in _CASTS.items():
        if len(pattern) == len(parts) and all(p in ("*", part)
                                              for p, part in zip(pattern, parts)):
            return cast
    return None


# --------------------------------------------------------------------------
# interpolate (cli/compose/interpolation)
# --------------------------------------------------------------------------


@dataclass
class _Context:
    env: Mapping[str, str]
    where: str  # "" or " (in b.yml)"
    warnings: list[str]


def _where(source: str) -> str:
    return "" if source == "stack" else f" (in {source})"


def interpolate(data: Mapping, env: Mapping[str, str], source: str = "stack",
                warnings: list[str] | None = None) -> dict:
    """A new copy of ``data`` with every string value substituted from ``env`` (keys
    are left alone), and the values docker/cli casts cast.  ``source`` is named in
    messages unless it is the default ``"stack"``; warnings about unset variables
    are appended to ``warnings``, once per variable."""
    check(isinstance(data, Mapping), "stack",
          f"top level must be a mapping, got {type_name(data)}{_where(source)}")
    ctx = _Context(env, _where(source), warnings if warnings is not None else [])
    # docker/cli substitutes under every top-level key (version and x-* too), not
    # only under the five sections; so does this.
    return {key: _walk(value, str(key), (str(key),), ctx) for key, value in data.items()}


def _walk(value: Any, path: str, parts: tuple[str, ...], ctx: _Context) -> Any:
    if isinstance(value, str):
        return _interpolate_string(value, path, parts, ctx)
    if isinstance(value, Mapping):
        return {k: _walk(v, f"{path}.{k}", parts + (str(k),), ctx) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, f"{path}[{i}]", parts + ("[]",), ctx) for i, v in enumerate(value)]
    return value


def _interpolate_string(value: str, path: str, parts: tuple[str, ...], ctx: _Context) -> Any:
    unset: list[str] = []
    try:
        result = _substitute(value, ctx.env, unset)
    except _TemplateError as exc:
        raise InvalidConfigError(
            path, f"invalid interpolation format: {_go_quote(exc.args[0])}; "
                  f"you may need to escape any $ with another ${ctx.where}") from None
    for name in unset:
        _warn_unset(name, path, ctx)
    cast = _caster(parts)
    if result == value or cast is None:  # as docker/cli: an unchanged string is not cast
        return result
    try:
        return cast(result)
    except ValueError as exc:
        raise InvalidConfigError(
            path, f"must be {exc.args[0]} after interpolation, got {result!r}{ctx.where}") \
            from None


def _warn_unset(name: str, path: str, ctx: _Context) -> None:
    # docker stack deploy substitutes "" silently (docker/cli has no such warning;
    # docker-compose has); the testbed warns anyway, with docker-compose's words.
    text = f'The "{name}" variable is not set. Defaulting to a blank string.'
    if not any(text in w for w in ctx.warnings):
        ctx.warnings.append(f"{path}: {text}{ctx.where}")


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
