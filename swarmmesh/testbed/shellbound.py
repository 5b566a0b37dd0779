"""The build's deadline where a build waits on a process: a host's shell, a task server's
first line, a small program (:mod:`swarmmesh.testbed.bounds` says how long and what to say).

Mininet waits on a host's shell for ever (``Node.waitOutput``); during a build every host of
ours waits only until the run's deadline (``RunState.deadline``, set by the testbed while it
builds, None after), then kills that shell's process group (the command that hung with it)
and fails with one line naming the host and the command.
"""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path

from swarmmesh.testbed.bounds import BuildFailure, log_cause, no_answer, process_state

POLL_S = 0.5              # how often a waiting shell looks at the clock


def deadline_of(host) -> float | None:
    state = getattr(host, "state", None)
    return getattr(state, "deadline", None)


class BoundedShell:
    """A Mininet host whose shell answers by the build's deadline, or is killed."""

    def waitOutput(self, verbose: bool = False, findPid: bool = True) -> str:
        deadline = deadline_of(self)
        if deadline is None:
            return super().waitOutput(verbose, findPid)      # type: ignore[misc]
        output = ""
        started = time.monotonic()
        while self.waiting:                                  # type: ignore[attr-defined]
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill_shell()
                raise BuildFailure(self.name, "shell",       # type: ignore[attr-defined]
                                   shell_cause(self.lastCmd, time.monotonic() - started,
                                               output))
            # Mininet's own poll also asks for POLLOUT (always true on the pty), so its
            # timeout never applies and its read blocks: look for input here first.
            if not self.readbuf and not readable(                 # type: ignore[attr-defined]
                    self.stdout, min(left, POLL_S)):                 # type: ignore[attr-defined]
                continue
            output += self.monitor(findPid=findPid)              # type: ignore[attr-defined]
        return output

    def kill_shell(self) -> None:
        """SIGKILL the shell and what it runs (one process group: the shell runs without
        job control), and reap it; the testbed's teardown then cleans by record."""
        shell = self.shell                                   # type: ignore[attr-defined]
        if shell is None or shell.poll() is not None:
            return
        try:
            os.killpg(shell.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shell.wait()


def shell_cause(command: str | None, waited: float, output: str) -> str:
    cmd = " ".join((command or "?").split())
    cmd = cmd if len(cmd) <= 160 else cmd[:157] + "..."
    said = " ".join(output.replace("\x7f", "").split())[-200:]
    return (f"`{cmd}` did not return within {waited:.0f}s"
            + (f" (it printed: {said})" if said else " (it printed nothing)"))


def proc_state(pid: int) -> str | None:
    try:
        return process_state(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def readable(fileobj, timeout: float) -> bool:
    """Has ``fileobj`` something to read (or its end) within ``timeout`` seconds? By
    ``poll``, not ``select``, whose descriptors must be below 1,024: a build of 500 tasks
    holds a pipe per task server, and later pipes are numbered past it."""
    poller = select.poll()
    poller.register(fileobj, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def first_line(proc, deadline: float | None, what: str, who: str, step: str) -> str:
    """The first line ``proc`` prints on its stdout (a pipe), waiting until ``deadline``
    at most; a process that exits or stays silent is a :class:`BuildFailure` with the
    cause its own output gives."""
    started = time.monotonic()
    while deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BuildFailure(who, step, no_answer(what, time.monotonic() - started, None,
                                                    proc_state(proc.pid)))
        if readable(proc.stdout, min(left, POLL_S)):
            break
    line = proc.stdout.readline()
    if line.startswith("ready"):
        return line
    rest = line + _rest(proc)
    raise BuildFailure(who, step, no_answer(what, time.monotonic() - started, log_cause(rest),
                                            None, proc.poll()))


def _rest(proc, timeout: float = 2.0) -> str:
    """What a process that did not say ready printed after that (it has exited, or
    exits within ``timeout``)."""
    try:
        proc.wait(timeout=timeout)
    except Exception:                                       # noqa: BLE001 (still running)
        return ""
    return proc.stdout.read() or ""
