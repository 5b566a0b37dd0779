"""Reading a stack file: YAML as compose reads it, and the shape checks every parser uses."""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Mapping

from swarmmesh.model.errors import InvalidConfigError, check, type_name


# --------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _stack_loader():
    """The YAML loader stack files are read with, made on first use: PyYAML is imported
    only by what reads YAML (the nodes' embedded DNS imports the model and starts without
    site-packages, ``python -S``)."""
    import yaml

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
    return _StackLoader


def load_stack(stack: str | os.PathLike | Mapping, what: str = "stack") -> Mapping:
    """Read a stack from a mapping, a YAML text (a str with a newline) or a file;
    errors name ``what`` (the flag or field the file came from)."""
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
                what, f"cannot read {source}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise InvalidConfigError(what, f"{source} is not UTF-8 text: {exc}") from None
    else:
        raise InvalidConfigError(
            what, f"must be a path, YAML text or a mapping, got {type(stack).__name__}")
    import yaml
    try:
        data = yaml.load(text, Loader=_stack_loader())  # noqa: S506 (safe loader subclass)
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
            what, f"YAML syntax error in {source}{where}: {problem}{snippet}") from None
    check(data is not None, what, f"{source} is empty")
    check(isinstance(data, Mapping), what,
           f"top level must be a mapping, got {type_name(data)}")
    return data


# --------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------


def as_mapping(value: Any, path: str) -> Mapping:
    """A mapping, or empty for null."""
    if value is None:
        return {}
    check(isinstance(value, Mapping), path, f"must be a mapping, got {type_name(value)}")
    for key in value:
        check(isinstance(key, str), path, f"keys must be strings, got {key!r}")
    return value


def as_list(value: Any, path: str) -> list:
    """A list, or empty for null."""
    if value is None:
        return []
    check(isinstance(value, (list, tuple)), path, f"must be a list, got {type_name(value)}")
    return list(value)


class Ignored:
    """Ordered set of dotted paths we parse but do not emulate, and the warnings."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.warnings: list[str] = []   # accepted, but not as the user may think

    def add(self, path: str) -> None:
        if path not in self.keys:
            self.keys.append(path)
