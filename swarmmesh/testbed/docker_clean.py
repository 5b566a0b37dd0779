"""What ``--engine docker`` leaves on the machine, and how it goes away (a normal stop, or
``swarmmesh clean`` after a killed run).

Every process is found through a file of the run's own: each node's dockerd writes its pid
file, its containerd ``containerd.pid``, each shim ``shim.pid`` and each container's init
``init.pid``, all under the node's exec root in the run's state folder.  A PID is signalled
only while it is still ours: its command line names the run's folder (dockerd, containerd,
shims) or it sits in one of the run's cgroups (a container's processes).  Then the run's
cgroups are removed, its data roots deleted, and ``net.ipv4.ip_forward`` of the root
namespace put back as it was.  The machine's own Docker is never looked at.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

DATA_BASE = Path(os.environ.get("SWARMMESH_DOCKER_DATA", "/var/tmp/swarmmesh-docker"))
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
# Covered in each dockerd's mount namespace (so that it writes nothing there); made empty
# for the run, and removed after, where the machine has none.
COVERED = (Path("/etc/docker"), Path("/run/docker"))
CGROUP_ROOT = Path("/sys/fs/cgroup")
_RECORD = "docker-engine"            # file in the run's state folder: what to undo


def data_root(state_dir: Path) -> Path:
    """The run's data roots' parent, on disk (images and containers; vfs copies them)."""
    return DATA_BASE / state_dir.name


def prepare(state_dir: Path) -> None:
    """Record what the run changes before it does: the root namespace's ip_forward (set to 1:
    a new namespace, e.g. Swarm's ingress sandbox, copies it from there, and without it no
    published port answers) and the data folder."""
    old = IP_FORWARD.read_text().strip()
    made = [d for d in COVERED if not d.exists()]
    (state_dir / _RECORD).write_text(f"ip_forward {old}\ndata {data_root(state_dir)}\n" +
                                     "".join(f"made {d}\n" for d in made))
    data_root(state_dir).mkdir(parents=True, exist_ok=True)
    for d in made:
        d.mkdir(mode=0o700)
    if old != "1":
        IP_FORWARD.write_text("1\n")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _cgroups(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def _pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_prefix(state_dir: Path) -> str:
    return f"swarmmesh-{state_dir.name}-"


def ours(pid: int, state_dir: Path) -> bool:
    """A process of this run: its command line names the run's folder, or it runs in one
    of the run's cgroups."""
    return str(state_dir) in _cmdline(pid) or cgroup_prefix(state_dir) in _cgroups(pid)


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def recorded_pids(state_dir: Path) -> list[int]:
    """Containers' inits, their shims (each init's parent), containerds, dockerds: in the
    order to kill them."""
    inits, daemons = [], []
    for node in sorted((state_dir / "docker").glob("*/")):
        tasks = node / "exec" / "containerd" / "daemon" / "io.containerd.runtime.v2.task"
        inits += [p for p in map(_pid, sorted(tasks.glob("*/*/init.pid"))) if p]
        daemons += [p for p in map(_pid, [node / "exec" / "containerd" / "containerd.pid",
                                          *sorted(node.glob("*.pid"))]) if p]
    shims = [p for p in map(_parent, inits) if p]
    return [*inits, *shims, *daemons]


def stop_daemons(state_dir: Path, timeout: float = 10.0) -> list[str]:
    """SIGKILL every recorded process that is still ours (no graceful stop: the data goes
    too); wait until they are gone."""
    if not (state_dir / "docker").exists():
        return []
    killed = []
    for pid in recorded_pids(state_dir):
        if ours(pid, state_dir):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for pid in killed:
        while ours(pid, state_dir) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.02)
    return [f"process {pid} (docker engine)" for pid in killed]


def _remove_cgroups(state_dir: Path) -> list[str]:
    removed = []
    prefix = cgroup_prefix(state_dir)
    tops = [*CGROUP_ROOT.glob(prefix + "*"), *CGROUP_ROOT.glob("*/" + prefix + "*")]
    for top in tops:
        for d, _subdirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if not top.exists():
            removed.append(f"cgroup {top}")
    return removed


def clean(state_dir: Path) -> list[str]:
    """Undo a docker-engine run (see the module doc); nothing if it was none."""
    record = state_dir / _RECORD
    if not record.exists():
        return []
    removed = stop_daemons(state_dir)
    removed += _remove_cgroups(state_dir)
    for line in record.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "data" and value.startswith(str(DATA_BASE) + "/"):
            shutil.rmtree(value, ignore_errors=True)
            removed.append(f"data {value}")
        elif key == "made" and Path(value) in COVERED:
            try:
                Path(value).rmdir()                 # only while empty
                removed.append(f"folder {value}")
            except OSError:
                pass
        elif key == "ip_forward" and value in ("0", "1") and \
                IP_FORWARD.read_text().strip() != value:
            IP_FORWARD.write_text(value + "\n")
            removed.append(f"ip_forward back to {value}")
    record.unlink()
    return removed
