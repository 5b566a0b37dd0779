"""Run one of our agents (a Python module) in a Mininet host and return its stdout: the
same for every engine."""

from __future__ import annotations

import subprocess
import sys

from swarmmesh import agents
from swarmmesh.testbed.errors import TestbedError


def run_in(h, state, args: list[str], timeout: float = 120) -> str:
    """``python args...`` in host ``h``, its PID recorded in ``state``; TestbedError on a
    timeout or a non-zero exit, naming the host and the command."""
    proc = h.popen([sys.executable, *args], env=agents.python_env(),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state.register(proc.pid, args[1] if args[0] == "-m" else sys.executable)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise TestbedError(f"{h.name}: {' '.join(args)} timed out after {timeout}s")
    if proc.returncode != 0:
        raise TestbedError(f"{h.name}: {' '.join(args)} exited {proc.returncode}: {err[-1000:]}")
    return out
