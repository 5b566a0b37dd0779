"""The machine's task-server fork server, from the testbed's side.

:class:`ForkServer` starts :mod:`swarmmesh.agents.forkserver` once per testbed (recorded
in the run's state) and asks it for each task server: the child runs in the task host's
namespaces, its output on a pipe of ours. :class:`ForkedProc` stands where a
``subprocess.Popen`` of the task server stood (``pid``, ``stdout``, ``poll``, signals,
``wait``): the child is the fork server's, which reaps it, so "exited" means its PID is
gone or a zombie.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from swarmmesh import agents
from swarmmesh.testbed.runtime import stop_popen
from swarmmesh.testbed.bounds import BuildFailure, log_cause, no_answer
from swarmmesh.testbed.shellbound import proc_state, readable

MARKER = "swarmmesh.agents.forkserver"
START_TIMEOUT = 30.0


class ForkServerError(RuntimeError):
    """The fork server's refusal (``refusal``: its own words, e.g. ``exited 2: ...``), or
    no answer from it."""

    def __init__(self, message: str, refusal: str | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


class ForkedProc:
    """A task server forked by the fork server: enough of ``Popen`` for the testbed."""

    def __init__(self, pid: int, stdout) -> None:
        self.pid, self.stdout = pid, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not _alive(self.pid):
            self.returncode = 0
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                self.returncode = 0

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"task server {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode or 0


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _alive(pid: int) -> bool:
    """Is ``pid`` a running (not zombie) process?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class ForkServer:
    """One fork server for the task servers of this machine's hosts."""

    def __init__(self, state) -> None:
        self.state = state
        self.path = Path(state.dir) / "forkserver.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ForkServer":
        self.path.unlink(missing_ok=True)
        log = open(Path(self.state.dir) / "forkserver.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-m", MARKER, "--socket", str(self.path)],
            env=agents.python_env(), stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        self.state.register(self.proc.pid, MARKER)
        self._wait_output()
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise ForkServerError(f"fork server did not start ({line.strip() or 'no output'});"
                                  f" see {self.state.dir}/forkserver.log")
        return self

    def _wait_output(self) -> None:
        """Until the fork server prints, at most until the build's deadline (a fork server
        that stays silent ends the build with one line, :mod:`swarmmesh.testbed.bounds`)."""
        deadline = getattr(self.state, "deadline", None)
        started = time.monotonic()
        while deadline is not None and not readable(
                self.proc.stdout, max(0.0, min(deadline - time.monotonic(), 0.5))):
            if time.monotonic() >= deadline:
                log = Path(self.state.dir) / "forkserver.log"
                cause = log_cause(log.read_text(errors="replace")) if log.exists() else None
                state = proc_state(self.proc.pid)
                self.stop()
                raise BuildFailure("fork server", "start", no_answer(
                    "fork server", time.monotonic() - started, cause, state))

    def _timeout(self) -> float:
        """The socket's timeout: START_TIMEOUT, or less when the build's deadline is nearer."""
        deadline = getattr(self.state, "deadline", None)
        return START_TIMEOUT if deadline is None else max(
            0.1, min(START_TIMEOUT, deadline - time.monotonic()))

    def spawn(self, netns_pid: int, argv: list[str], program: str = "taskserver",
              output: int | None = None) -> ForkedProc:
        """A task server (``argv``: its arguments), or a node's embedded DNS (``program``
        ``dns``), in the namespaces of ``netns_pid``; its output on a pipe of ours (the
        ForkedProc's ``stdout``), or on the descriptor ``output`` (e.g. a log file's)."""
        read_fd, write_fd = os.pipe() if output is None else (None, output)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self._timeout())
                s.connect(str(self.path))
                req = json.dumps({"pid": netns_pid, "argv": argv, "program": program})
                s.sendmsg([req.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                            array.array("i", [write_fd]).tobytes())])
                s.shutdown(socket.SHUT_WR)
                answer = s.makefile().readline().strip()
        except OSError as exc:
            _close(read_fd)
            raise ForkServerError(f"fork server: {exc}") from exc
        finally:
            if output is None:
                os.close(write_fd)
        if not answer.startswith("pid "):
            _close(read_fd)
            refusal = answer[len("error "):] if answer.startswith("error ") else None
            raise ForkServerError(f"fork server: {answer or 'no answer'}", refusal)
        pid = int(answer.split()[1])
        self.state.register(pid, MARKER)
        return ForkedProc(pid, None if read_fd is None else os.fdopen(read_fd, "r"))

    def stop(self) -> None:
        """Stop the fork server itself (its children are stopped by their own PIDs)."""
        stop_popen(self.proc)
        self.proc = None


def forks_enabled() -> bool:
    """Task servers forked from one Python (the default), or each its own interpreter
    (``SWARMMESH_FORKSERVER=0``: the benchmark's baseline)."""
    value = os.environ.get("SWARMMESH_FORKSERVER", "1")
    if value not in ("0", "1"):
        raise ForkServerError(f"SWARMMESH_FORKSERVER: must be 0 or 1, got {value!r}")
    return value == "1"
