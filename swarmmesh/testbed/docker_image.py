"""The task image of ``--engine docker``, made from this machine's own files (no registry).

The image holds the smallest Python that runs the project's own task server: this
machine's ``python3`` binary, the shared libraries it and its extension modules load, the
standard-library modules the task server imports (asked of a real interpreter, not guessed)
and ``swarmmesh/agents``.  So a task on real Swarm answers exactly as an emulated one (its
identity, the source it saw, ``/health``, ``/control``, TCP and UDP on every target port),
and the clients, CSVs and figures are the same for both engines.

Its identity comes from Swarm's templates: ``SWARMMESH_TASK={{.Service.Name}}.{{.Task.Slot}}``
and ``SWARMMESH_NODE={{.Node.Hostname}}`` (each node's dockerd has the node's name as host
name).  :func:`rootfs_tar` writes the root file system as one tar with fixed owners and times,
so every node imports the same layer and gets the same image ID.

A user's own image is a ``docker save`` tarball (``--image-tar``), loaded into every node.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterable

from swarmmesh import agents
from swarmmesh.machine import deps

IMAGE = "swarmmesh/taskserver:local"
APP = "/app"                       # where swarmmesh/agents sits in the image
PYTHON = "/usr/bin/python3"
BUSYBOX = "busybox"                # busybox-static: /bin/sh (Docker runs health checks with it)
BUSYBOX_LINKS = ("sh", "wget", "nc")
AGENT_FILES = ("__init__.py", "taskserver.py", "taskserver_http.py", "taskserver_loop.py",
               "taskserver_ports.py")
TASK_ENV = {"SWARMMESH_TASK": "{{.Service.Name}}.{{.Task.Slot}}",
            "SWARMMESH_NODE": "{{.Node.Hostname}}"}

# The container's command: the task server with Swarm's identity (entry.py), and the
# health probe Docker runs in it (health.py: GET /health on the control port, 0 if 200).
ENTRY = """import os, sys
sys.argv = ["taskserver", "--task", os.environ.get("SWARMMESH_TASK", "task"),
            "--node", os.environ.get("SWARMMESH_NODE", "node"), *sys.argv[1:]]
from swarmmesh.agents import taskserver
sys.exit(taskserver.main())
"""
HEALTH = """import socket, sys
port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /health HTTP/1.0\\r\\n\\r\\n")
    ok = s.recv(64).startswith(b"HTTP/1.1 200")
except OSError:
    ok = False
sys.exit(0 if ok else 1)
"""

# Asked of the real interpreter: every module file the task server's start-up loads (its
# arguments parsed, a listener opened on a free port over TCP and UDP, the health probe's).
_PROBE = ("import sys; from swarmmesh.agents import taskserver as t; "
          "a = t.parse_args(['--task', 'x', '--node', 'y', '--udp', '--port', '0']); "
          "s = t.TaskServer('x', 'y', [0], udp=True); s.start(); s.close(); "
          "import encodings.utf_8, encodings.latin_1, encodings.aliases, json, socket; "
          "print(json.dumps(sorted({getattr(m, '__file__', None) or '' "
          "for m in list(sys.modules.values())} - {''})))")
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def image_args(target_ports: Iterable[int], private_port: int, app_port: int) -> list[str]:
    """The task server's arguments after the image name: every target port (and the usual
    application port) over TCP and UDP, and the private control port."""
    ports = sorted({*target_ports, app_port} - {private_port})
    out = ["--udp", "--control-port", str(private_port)]
    for p in ports:
        out += ["--port", str(p)]
    return out


def ldd_paths(text: str) -> list[str]:
    """The library files in ``ldd``'s output (the vDSO has none)."""
    return [m.group(1) for m in map(_LDD_LINE.search, text.splitlines()) if m]


def module_files(probe_output: str, import_root: str) -> list[str]:
    """The standard library's files among the probe's module files (swarmmesh's own come
    from the checkout into :data:`APP`)."""
    return [f for f in json.loads(probe_output) if not f.startswith(import_root + "/")]


def image_changes(health_port: int) -> list[str]:
    """``docker import --change`` lines: the command, the environment, the health check's
    probe left to the service (``--health-cmd``), so a stack's own timings apply."""
    entry = json.dumps([PYTHON, "-S", f"{APP}/entry.py"])
    return [f"ENTRYPOINT {entry}", f"ENV PYTHONPATH={APP}", "ENV PYTHONDONTWRITEBYTECODE=1",
            f"LABEL swarmmesh.health-port={health_port}"]


def health_cmd(port: int) -> str:
    """``--health-cmd`` for a service on the project's image."""
    return f"{PYTHON} -S {APP}/health.py {port}"


def _add_file(tar: tarfile.TarFile, src: Path, arcname: str) -> None:
    info = tar.gettarinfo(str(src), arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    if info.isfile():
        with open(src, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def _add_text(tar: tarfile.TarFile, arcname: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(arcname)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def rootfs_tar(out: Path, system_files: Iterable[str], agent_dir: Path,
               busybox: bool = True) -> Path:
    """Write the root file system: ``system_files`` at their own paths (a symlink as a
    symlink, and its target too), the task server under :data:`APP`, its two scripts; with
    ``busybox`` (one of ``system_files`` is ``/usr/bin/busybox``), ``/bin/sh``, ``wget`` and
    ``nc`` as links to it and ``/bin`` as a link to ``/usr/bin``."""
    seen: set[str] = set()
    with tarfile.open(out, "w") as tar:
        for f in sorted(set(system_files)):
            for path in _with_link_targets(Path(f)):
                arc = str(path).lstrip("/")
                for parent in reversed(Path(arc).parents[:-1]):
                    if str(parent) not in seen:
                        seen.add(str(parent))
                        info = tarfile.TarInfo(str(parent))
                        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                        tar.addfile(info)
                if arc not in seen:
                    seen.add(arc)
                    _add_file(tar, path, arc)
        app = APP.lstrip("/")
        for name in AGENT_FILES:
            _add_file(tar, agent_dir / name, f"{app}/swarmmesh/agents/{name}")
        _add_text(tar, f"{app}/swarmmesh/__init__.py", "")
        _add_text(tar, f"{app}/entry.py", ENTRY)
        _add_text(tar, f"{app}/health.py", HEALTH)
        for d in ("tmp", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, 0
            tar.addfile(info)
        links = {"bin": "usr/bin"} if busybox else {}
        links.update({f"usr/bin/{name}": "busybox" for name in BUSYBOX_LINKS if busybox})
        for arc, target in links.items():
            info = tarfile.TarInfo(arc)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
            tar.addfile(info)
    return out


def _with_link_targets(path: Path) -> list[Path]:
    """``path`` and, while it is a symlink, what it points to (ld.so follows them)."""
    out = [path]
    while out[-1].is_symlink() and len(out) < 8:
        target = Path(out[-1].parent, out[-1].readlink())
        out.append(Path(*target.parts) if target.is_absolute() else target.resolve())
    return out


def system_files(python: str = sys.executable) -> list[str]:
    """The interpreter, its libraries and the standard-library files the task server loads
    (this machine's, asked of ``python``)."""
    real = str(Path(python).resolve())
    probe = subprocess.run([real, "-S", "-c", _PROBE], env=agents.python_env(),
                           capture_output=True, text=True, check=True).stdout
    mods = module_files(probe, agents.import_root())
    # The prefix's landmark (os.py) lets the interpreter find its standard library.
    stdlib = str(Path(json.__file__).resolve().parent.parent)
    busybox = shutil.which(BUSYBOX)
    if busybox is None:
        raise FileNotFoundError(f"{BUSYBOX} not found ({deps.install_hint(BUSYBOX)}): the task "
                                "image's /bin/sh")
    files = [real, PYTHON, *mods, f"{stdlib}/os.py", str(Path(busybox).resolve())]
    for binary in [real, *[m for m in mods if m.endswith(".so")]]:
        files += ldd_paths(subprocess.run(["ldd", binary], capture_output=True,
                                          text=True).stdout)
    return files


def build_rootfs(out: Path) -> Path:
    """The project's task image as a tar, from this machine's files (see the module doc)."""
    return rootfs_tar(out, system_files(), Path(agents.__file__).parent)
