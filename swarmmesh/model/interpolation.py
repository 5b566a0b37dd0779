"""Variables in stack files, as ``docker stack deploy`` substitutes them: the env file
(``pkg/kvfile``), ``${VAR}`` templates (``cli/compose/template``) and the casts of
substituted values back to numbers and booleans (``cli/compose/loader/interpolate.go``).
:mod:`swarmmesh.model.compose` runs this on each file before it merges them.

Where docker/cli has quirks they are reproduced and marked ``docker quirk``; where
this module departs from it the comment says ``departure``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from swarmmesh.model.errors import InvalidConfigError, check, type_name

Warnings = list[str]  # plain strings, each starting with the field it is about

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
