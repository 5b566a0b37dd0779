"""Parsing the Swarm commands of the interactive CLI (:mod:`swarmmesh.ui.shell`):
pure functions of the words typed, no root, no Mininet.

Bad input raises :class:`~swarmmesh.model.InvalidConfigError` naming the field
or the command, as ``docker`` names the flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from swarmmesh.lifecycle.decisions import KILL_MODES, UPDATE_ORDERS
from swarmmesh.model.healthcheck import parse_duration
from swarmmesh.model import InvalidConfigError
from swarmmesh.model.nodes import split_label
from swarmmesh.model.objects import NODE_AVAILABILITIES, NODE_ROLES


def parse_flags(args: Sequence[str], spec: dict[str, Callable[[str, str], object]],
                defaults: dict[str, object], command: str) -> tuple[list[str], dict]:
    """Split ``args`` into positionals and ``--flag VALUE`` / ``--flag=VALUE``
    options; each option value goes through ``spec[flag](flag, value)``."""
    values = dict(defaults)
    positional: list[str] = []
    it = iter(args)
    for a in it:
        if not a.startswith("--"):
            positional.append(a)
            continue
        name, eq, value = a[2:].partition("=")
        if name not in spec:
            known = ", ".join(f"--{k}" for k in spec) or "none"
            raise InvalidConfigError(a.split("=")[0], f"unknown flag for `{command}` "
                                                      f"(flags: {known})")
        if not eq:
            value = next(it, None)
            if value is None or value.startswith("--"):
                raise InvalidConfigError(f"--{name}", "needs a value")
        values[name] = spec[name](f"--{name}", value)
    return positional, values


def int_at_least(low: int) -> Callable[[str, str], int]:
    def conv(flag: str, value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise InvalidConfigError(flag, f"must be a whole number, got {value!r}") from None
        if n < low:
            raise InvalidConfigError(flag, f"must be >= {low}, got {n}")
        return n
    return conv


def seconds(flag: str, value: str) -> float:
    """Seconds: a bare number (``5``, ``0.5``) or a Docker duration (``10s``, ``1m30s``)."""
    try:
        s = float(value)
    except ValueError:
        try:
            s = parse_duration(value)
        except ValueError as e:
            raise InvalidConfigError(flag, str(e)) from None
    if not s >= 0:                      # negative, or nan
        raise InvalidConfigError(flag, f"must be >= 0 seconds, got {value!r}")
    return s


def choice(choices: Sequence[str]) -> Callable[[str, str], str]:
    def conv(flag: str, value: str) -> str:
        if value not in choices:
            raise InvalidConfigError(flag, f"must be one of {', '.join(choices)}, got {value!r}")
        return value
    return conv


def parse_scale(args: Sequence[str]) -> list[tuple[str, int]]:
    """``SVC=N [SVC=N ...]`` (as ``docker service scale``)."""
    if not args:
        raise InvalidConfigError("service scale", "usage: service scale SERVICE=REPLICAS ...")
    out = []
    for a in args:
        svc, eq, n = a.partition("=")
        if not eq or not svc:
            raise InvalidConfigError("service scale", f"expected SERVICE=REPLICAS, got {a!r}")
        try:
            replicas = int(n)
        except ValueError:
            raise InvalidConfigError(f"services.{svc}.replicas",
                                     f"must be a whole number, got {n!r}") from None
        if replicas < 0:
            raise InvalidConfigError(f"services.{svc}.replicas", f"must be >= 0, got {replicas}")
        out.append((svc, replicas))
    return out


@dataclass(frozen=True)
class UpdateArgs:
    service: str
    parallelism: int = 1
    delay: float = 0.0
    order: str = "stop-first"


def parse_update(args: Sequence[str]) -> UpdateArgs:
    """``SVC [--parallelism N] [--delay S] [--order start-first|stop-first]``."""
    pos, v = parse_flags(args, {"parallelism": int_at_least(1), "delay": seconds,
                                "order": choice(UPDATE_ORDERS)},
                         {"parallelism": 1, "delay": 0.0, "order": "stop-first"},
                         "service update")
    if len(pos) != 1:
        raise InvalidConfigError("service update", "usage: service update SERVICE "
                                 "[--parallelism N] [--delay S] [--order start-first|stop-first]")
    return UpdateArgs(pos[0], v["parallelism"], v["delay"], v["order"])


KILL_USAGE = "usage: task kill TASK [--how hang|unhealthy|container]"


def parse_kill(args: Sequence[str]) -> tuple[str, str]:
    """``TASK [--how hang|unhealthy|container]``: the app hangs or fails its checks, or the
    whole container is killed (``docker kill``)."""
    pos, v = parse_flags(args, {"how": choice(KILL_MODES + ("container",))}, {"how": "hang"},
                         "task kill")
    if len(pos) != 1:
        raise InvalidConfigError("task kill", KILL_USAGE)
    return pos[0], v["how"]


def one_name(args: Sequence[str], usage: str) -> str:
    """The one argument of a command; the error names the command (the
    usage's lower-case words) and shows its usage."""
    if len(args) != 1:
        command = " ".join(w for w in usage.split() if w.islower())
        raise InvalidConfigError(command, f"usage: {usage}")
    return args[0]


@dataclass(frozen=True)
class NodeUpdateArgs:
    node: str
    label_add: tuple[tuple[str, str], ...] = ()
    label_rm: tuple[str, ...] = ()
    role: str | None = None
    availability: str | None = None


NODE_UPDATE_USAGE = ("usage: node update [--label-add KEY[=VALUE]]... [--label-rm KEY]... "
                     "[--role manager|worker] [--availability active|pause|drain] NODE")


def parse_node_update(args: Sequence[str]) -> NodeUpdateArgs:
    """``docker node update``'s flags; ``--label-add`` and ``--label-rm`` repeat."""
    adds: list[tuple[str, str]] = []
    rms: list[str] = []

    def add(flag: str, value: str) -> list:
        adds.append(split_label(value, flag))
        return adds

    def rm(flag: str, value: str) -> list:
        rms.append(split_label(value, flag)[0])
        return rms

    pos, v = parse_flags(args, {"label-add": add, "label-rm": rm,
                                "role": choice(NODE_ROLES),
                                "availability": choice(NODE_AVAILABILITIES)},
                         {"role": None, "availability": None}, "node update")
    if len(pos) != 1:
        raise InvalidConfigError("node update", NODE_UPDATE_USAGE)
    return NodeUpdateArgs(pos[0], tuple(adds), tuple(rms), v["role"], v["availability"])
