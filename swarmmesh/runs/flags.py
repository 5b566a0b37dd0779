"""The checks every experiment's flags need, written once: each raises
:class:`InvalidConfigError` naming the flag (``load-repeats``, as typed), before anything
is built, and returns the value checked.

    def validate(args):
        flags.positive(args, "repeats")                 # an int >= 1
        flags.int_in(args, "load_seconds", 1, 60)       # an int in 1..60
        flags.seconds(args, "timeout", most=60)         # a float in (0, 60]
        flags.seconds(args, "settle_timeout", zero=True)  # >= 0
        flags.number(args, "rate", most=1000, unit=" requests/s")   # (0, 1000] requests/s
        flags.at_least(args, "requests", 10)
        sizes = flags.sizes(args.sizes)                 # "3x2,50x10" -> [(3, 2), (50, 10)]
        streams = flags.int_list(args.streams, "streams", 1, 128)

(argparse itself names a flag whose value is not even a number.)
"""

from __future__ import annotations

import argparse
import re

from swarmmesh.model import InvalidConfigError
from swarmmesh.model.objects import MAX_NODES


def flag(dest: str) -> str:
    """The flag's name as typed, without dashes: ``load_repeats`` -> ``load-repeats``."""
    return dest.replace("_", "-")


def positive(args: argparse.Namespace, dest: str, most: int | None = None) -> int:
    """An integer flag >= 1 (and <= ``most``)."""
    value = getattr(args, dest)
    if value < 1 or (most is not None and value > most):
        limit = f"in 1..{most}" if most is not None else ">= 1"
        raise InvalidConfigError(flag(dest), f"must be {limit}, got {value}")
    return value


def int_in(args: argparse.Namespace, dest: str, least: int, most: int) -> int:
    """An integer flag in ``least..most``."""
    value = getattr(args, dest)
    if not least <= value <= most:
        raise InvalidConfigError(flag(dest), f"must be in {least}..{most}, got {value}")
    return value


def at_least(args: argparse.Namespace, dest: str, least: int) -> int:
    """An integer flag >= ``least``."""
    value = getattr(args, dest)
    if value < least:
        raise InvalidConfigError(flag(dest), f"must be >= {least}, got {value}")
    return value


def number(args: argparse.Namespace, dest: str, most: float | None = None,
           zero: bool = False, unit: str = "") -> float:
    """A number flag (a rate, a share): > 0 (>= 0 with ``zero``), and <= ``most`` if
    given; ``unit`` follows the limit in the message (`` requests/s``)."""
    value = getattr(args, dest)
    if value < 0 or (value == 0 and not zero) or (most is not None and value > most):
        low = "[0" if zero else "(0"
        limit = (f"in {low}, {most:g}]" if most is not None
                 else (">= 0" if zero else "> 0"))
        raise InvalidConfigError(flag(dest), f"must be {limit}{unit}, got {value:g}")
    return value


def seconds(args: argparse.Namespace, dest: str, most: float | None = None,
            zero: bool = False) -> float:
    """A duration flag: > 0 (>= 0 with ``zero``), and <= ``most`` if given."""
    return number(args, dest, most, zero)


def int_list(text: str, name: str, least: int = 1, most: int | None = None,
             unique: bool = True) -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]``: integers in ``least..most``, in the order given,
    none twice; errors name ``name``."""
    out: list[int] = []
    for item in str(text).split(","):
        item = item.strip()
        if not re.fullmatch(r"-?\d+", item) or int(item) < least or (
                most is not None and int(item) > most):
            span = f"{least}..{most}" if most is not None else f">= {least}"
            raise InvalidConfigError(name, f"expected integers in {span}, got {item!r}")
        if unique and int(item) in out:
            raise InvalidConfigError(name, f"{int(item)} is given twice")
        out.append(int(item))
    return out


def sizes(text: str, name: str = "sizes", min_nodes: int = 1, max_nodes: int = MAX_NODES,
          min_tasks: int = 1, max_tasks: int = 100, unique: bool = True,
          tasks_word: str = "tasks per node") -> list[tuple[int, int]]:
    """``"3x2,50x10"`` -> ``[(3, 2), (50, 10)]``: cluster sizes NODESxTASKS, nodes in
    ``min_nodes..max_nodes``, tasks in ``min_tasks..max_tasks``; errors name ``name``."""
    out: list[tuple[int, int]] = []
    for item in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", item)
        if not m:
            raise InvalidConfigError(name, f"expected NODESxTASKS[,...], got {item.strip()!r}")
        n, t = int(m.group(1)), int(m.group(2))
        if not min_nodes <= n <= max_nodes:
            raise InvalidConfigError(name, f"{item.strip()}: nodes must be in "
                                           f"{min_nodes}..{max_nodes}")
        if not min_tasks <= t <= max_tasks:
            raise InvalidConfigError(name, f"{item.strip()}: {tasks_word} must be in "
                                           f"{min_tasks}..{max_tasks}")
        if unique and (n, t) in out:
            raise InvalidConfigError(name, f"{item.strip()} is given twice")
        out.append((n, t))
    return out


def size_tag(nodes: int, tasks: int) -> str:
    """``(3, 2)`` -> ``"3x2"``, as the flag writes a size."""
    return f"{nodes}x{tasks}"
