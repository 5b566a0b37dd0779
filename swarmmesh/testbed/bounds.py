"""How long a build may take, and what to say when it does not finish.

Every step of a build (each host's shell, each task server's start, the controller's
programming of every node, every node's embedded DNS) waits against one deadline: the
build's bound, which grows with the cluster (:func:`build_timeout`) and which
``SWARMMESH_BUILD_TIMEOUT`` or ``--build-timeout`` replaces.  A step that fails or runs
out of time ends the build with one line (:class:`BuildFailure`) naming the node (or
task), the step and the cause, read from that process's own log (:func:`log_cause`).

Everything here is pure: the waits and the reading of files are the testbed's.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

ENV = "SWARMMESH_BUILD_TIMEOUT"
# Measured on 2 cores: 3 x 2 builds in ~2 s, 50 x 500 in 40 s, 100 x 1000 in 103 s; the
# guest (QEMU TCG) is 5-10 times slower on small clusters.  The bound leaves room for both.
BASE_S = 60.0
PER_NODE_S = 0.5
PER_TASK_S = 0.15


class BuildFailure(RuntimeError):
    """A build step that failed or never finished: one line, ``who: step: cause``."""

    def __init__(self, who: str, step: str, cause: str) -> None:
        self.who, self.step, self.cause = who, step, cause
        super().__init__(failure_line(who, step, cause))


def failure_line(who: str, step: str, cause: str) -> str:
    """The one line a failed build ends with (no newline inside it)."""
    cause = " ".join(cause.split()) or "no cause in its log"
    return f"{who}: {step}: {cause}"


def default_timeout(nodes: int, tasks: int) -> float:
    """The build's bound for a cluster of this size, in seconds."""
    return BASE_S + PER_NODE_S * nodes + PER_TASK_S * tasks


def build_timeout(nodes: int, tasks: int, given: float | None = None,
                  env: Mapping[str, str] = os.environ) -> float:
    """``given`` (the flag), else ``$SWARMMESH_BUILD_TIMEOUT``, else the default for the
    size; a bad value is an error naming where it came from."""
    if given is not None:
        return _positive("build-timeout", given)
    raw = env.get(ENV, "")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{ENV}: seconds (a number above 0), not {raw!r}") from None
        return _positive(ENV, value)
    return default_timeout(nodes, tasks)


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name}: seconds (a number above 0), not {value!r}")
    return float(value)


# An OVS log line: 2026-12-04T19:11:22.285Z|00055|dpif|WARN|text
_OVS_LINE = re.compile(r"^\S+\|\d+\|([^|]+)\|(EMER|ERR|WARN|INFO|DBG)\|(.*)$")
# Warnings every healthy userspace vswitchd logs (no kernel module to enumerate).
_BENIGN = ("failed to enumerate system datapaths", "terminating with signal")


def _ovs_lines(log: str) -> list[tuple[str, str]]:
    """(level, message) of each line of an OVS daemon's log."""
    return [(m.group(2), m.group(3).strip()) for m in
            (_OVS_LINE.match(line.strip()) for line in log.splitlines()) if m]


def ovs_errors(log: str) -> list[str]:
    """The ERR and EMER messages of an OVS daemon's log, oldest first."""
    return [text for level, text in _ovs_lines(log) if level in ("EMER", "ERR")]


def ovs_failure(log: str, before: int = 2) -> str | None:
    """Why an OVS daemon failed, or None: its first ERR/EMER message, after the warnings
    that led straight to it (up to ``before``: OVS warns of the root cause, e.g.
    ``opening "/dev/net/tun" failed``, then reports what it could not do)."""
    lines = _ovs_lines(log)
    first = next((i for i, (level, _) in enumerate(lines) if level in ("EMER", "ERR")), None)
    if first is None:
        return None
    led = []
    for level, text in reversed(lines[:first]):
        if level != "WARN" or text.startswith(_BENIGN) or len(led) == before:
            break
        led.insert(0, text)
    return "; ".join([*led, lines[first][1]])


def log_cause(log: str) -> str | None:
    """The line of a process's own log that says why it failed, or None:
    an OVS daemon's first ERR/EMER message (else its last WARN that is not routine),
    a Python traceback's last line, else the last line that is not empty."""
    failure = ovs_failure(log)
    if failure:
        return failure
    lines = [l.strip() for l in log.splitlines() if l.strip()]
    warns = [m.group(3).strip() for m in map(_OVS_LINE.match, lines)
             if m and m.group(2) == "WARN" and not m.group(3).startswith(_BENIGN)]
    if warns:
        return warns[-1]
    if any(_OVS_LINE.match(l) for l in lines):
        return None                       # an OVS log with nothing wrong in it
    if "Traceback (most recent call last):" in log and lines:
        return lines[-1]
    return lines[-1] if lines else None


def process_state(stat: str) -> str | None:
    """The state letter of ``/proc/PID/stat`` (R, S, D, T, Z ...), or None."""
    close = stat.rfind(")")
    fields = stat[close + 1:].split() if close >= 0 else []
    return fields[0] if fields else None


_STATES = {"T": "stopped", "t": "stopped (traced)", "Z": "exited (zombie)", "D": "in disk wait"}


def no_answer(what: str, waited: float, log_line: str | None, state: str | None,
              exit_code: int | None = None) -> str:
    """The cause of a process that did not do its part in time (or exited)."""
    if exit_code is not None:
        how = f"{what} exited {exit_code}"
    else:
        how = f"{what} not ready after {waited:.0f}s"
        if state in _STATES:
            how += f", process {_STATES[state]}"
    return f"{how}: {log_line}" if log_line else f"{how}, nothing in its log"
