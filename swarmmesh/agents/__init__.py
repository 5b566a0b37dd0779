"""What runs inside emulated hosts: the task server, each node's embedded DNS, HTTP and
name-resolving clients, long-lived connections, the lifecycle experiments' open-loop load
generator.  They import the model at most.

Each agent is a module run as ``python -m swarmmesh.agents.<name>`` in a host's namespace;
:func:`python_env` is the environment for it, so that the host runs the very swarmmesh this
process imported (installed, or a checkout on ``sys.path``).
"""

from __future__ import annotations

import os
from pathlib import Path

import swarmmesh


def import_root() -> str:
    """The folder this process imports the ``swarmmesh`` package from."""
    return str(Path(swarmmesh.__file__).resolve().parent.parent)


def python_env(base: dict | None = None) -> dict:
    """``base`` (default: this environment) with :func:`import_root` first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (import_root(), env.get("PYTHONPATH")) if p)
    return env
