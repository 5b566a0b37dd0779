"""Can this machine run real Docker Swarm nodes (``--engine docker``)?

Three things: Debian's ``docker.io`` (``dockerd``, ``containerd``, and its own client at
:data:`DOCKER`: a newer client may come first on ``PATH`` and is never used), the kernel's
``ip_vs`` (without it dockerd refuses every published port: the routing mesh is IPVS) and
cgroup v2 (each node's dockerd gets a cgroup parent of its own). :func:`engine_missing` is
what ``--engine docker`` asks before building anything; :func:`checks` are the doctor's
items, optional unless ``swarmmesh doctor --docker``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

from swarmmesh.machine import datapath, deps

DOCKER = "/usr/bin/docker"                 # docker.io's client, whatever PATH says
DOCKERD = "dockerd"
CGROUP_ROOT = Path("/sys/fs/cgroup")
FIX = "sudo make setup-docker (Debian's docker.io: dockerd, containerd, /usr/bin/docker)"


def programs_missing(which: Callable[[str], str | None], exists: Callable[[str], bool]
                     ) -> str | None:
    """Why docker.io's programs are not all here, or None."""
    for prog in ("dockerd", "containerd", "containerd-shim-runc-v2", "runc"):
        if which(prog) is None:
            return f"{prog} not found ({deps.install_hint(prog)}, or {FIX})"
    if not exists(DOCKER):
        return f"{DOCKER} not found (docker.io's own client; {FIX})"
    return None


def cgroup2_missing(filesystems: str) -> str | None:
    """Why there is no cgroup v2 to give each dockerd a cgroup parent, from the text of
    /proc/filesystems; or None."""
    if any(line.split()[-1:] == ["cgroup2"] for line in filesystems.splitlines()):
        return None
    return "this kernel has no cgroup2 file system (dockerd needs cgroup v2 here)"


def engine_missing() -> str | None:
    """Why ``--engine docker`` cannot run on this machine, or None (the first reason)."""
    why = programs_missing(shutil.which, lambda p: Path(p).exists())
    if why:
        return why
    try:
        why = cgroup2_missing(Path("/proc/filesystems").read_text())
    except OSError as e:
        why = f"cannot read /proc/filesystems: {e}"
    if why:
        return why
    ipvs = datapath.ipvs_missing()
    if ipvs:
        return f"{ipvs}; without ip_vs dockerd refuses every published port (the routing mesh)"
    return None


def version() -> str:
    """dockerd's version line (e.g. ``Docker version 20.10.24+dfsg1, build 297e128``)."""
    try:
        out = subprocess.run([DOCKERD, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"
