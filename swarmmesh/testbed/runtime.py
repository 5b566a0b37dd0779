"""What a run leaves on the machine, and how to take it all away again.

Everything a run starts is written down as it is started, in
``/run/swarmmesh/<run>/pids`` (one ``pid<TAB>marker`` line each).  Cleanup
kills only those PIDs, and only while ``/proc/PID/cmdline`` still holds the
marker (so a recycled PID is never hit); it never kills by broad name.
Interfaces and namespaces go with the processes: every node, task, client
and the underlay itself is a Mininet host in its own namespace, so nothing of
ours lives in the root namespace except Mininet's short-lived veth halves
while a link is being made, which are recorded too and deleted by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

STATE_ROOT = Path(os.environ.get("SWARMMESH_STATE", "/run/swarmmesh"))


class RunState:
    """The record of one run: its folder and the PIDs and links it made."""

    def __init__(self, name: str, root: Path = STATE_ROOT) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "owner").write_text(f"{os.getpid()}\n")
        # While the run builds: the time (monotonic) by which every step must be done
        # (testbed.bounds); None once it is built.
        self.deadline: float | None = None
        self.forks = None           # the run's task-server fork server, if it has one

    def register(self, pid: int, marker: str) -> None:
        """Remember that ``pid`` is ours while its command line holds ``marker``."""
        with open(self.dir / "pids", "a") as f:
            f.write(f"{pid}\t{marker}\n")

    def register_links(self, names: list[str]) -> None:
        with open(self.dir / "links", "a") as f:
            f.writelines(f"{n}\n" for n in names)

    def node_dir(self, node: str) -> Path:
        d = self.dir / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def clean(self) -> list[str]:
        return clean_run(self.dir)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stop_popen(proc, timeout: float = 3.0) -> None:
    """SIGTERM a child process of ours (a ``Popen``), wait ``timeout`` s, then SIGKILL."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def signal_pid(pid: int, marker: str, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to a PID of ours (checked by its command line); True if sent."""
    if marker not in _cmdline(pid):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_pid(pid: int, marker: str, timeout: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL, a PID of ours; True if it was alive."""
    if marker not in _cmdline(pid):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker not in _cmdline(pid):
                return True
            try:                     # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.02)
    return True


def sh_pidfile_signal(pidfile: str, marker: str, sig: str = "TERM", wait: float = 0.0) -> str:
    """The shell's :func:`signal_pid` / :func:`kill_pid` for a process on another server:
    the PID read from ``pidfile`` there, signalled only while its command line holds
    ``marker``; with ``wait``, SIGKILL after ``wait`` s if it is still there.  Always
    succeeds (a process already gone is no error)."""
    import shlex
    q, m = shlex.quote(pidfile), shlex.quote(marker)
    ours = f"tr '\\0' ' ' </proc/$p/cmdline 2>/dev/null | grep -qF -- {m}"
    out = f"p=$(cat {q} 2>/dev/null) && [ -n \"$p\" ] && {ours} && kill -{sig} $p 2>/dev/null"
    if wait:
        out += (f" && {{ i=0; while [ $i -lt {int(wait / 0.05)} ] && {ours}; do sleep 0.05; "
                f"i=$((i+1)); done; {ours} && kill -KILL $p 2>/dev/null; }}")
    return f"{{ {out}; true; }}"


def clean_servers(run_dir: Path, timeout: float = 30) -> list[str]:
    """A run spread over servers (``servers.json``, written by ``testbed.servers``): each
    other server cleans its own record of the run (``swarmmesh clean --run-dir`` there,
    over ssh), then its ssh master connection is closed."""
    rec = run_dir / "servers.json"
    if not rec.exists():
        return []
    removed = []
    for s in json.loads(rec.read_text()):
        remote = (f"sudo -n env PYTHONPATH={s['pythonpath']} {s['python']} -m "
                  f"swarmmesh.testbed.runtime --run-dir {s['dir']}")
        try:
            r = subprocess.run(s["ssh"] + [remote], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL,
                               timeout=timeout)
            out = r.stdout.strip().splitlines()
            removed += [f"{s['name']}: {line[len('removed '):]}" for line in out
                        if line.startswith("removed ")]
            if r.returncode != 0:
                removed.append(f"{s['name']}: clean failed ({r.returncode}): "
                               f"{r.stderr.strip()[-300:]}")
        except subprocess.TimeoutExpired:
            removed.append(f"{s['name']}: clean timed out after {timeout:g} s")
        subprocess.run(["ssh", "-o", f"ControlPath={s['control']}", "-O", "exit", "x"],
                       capture_output=True, timeout=10)
    rec.unlink(missing_ok=True)
    return removed


def clean_run(run_dir: Path) -> list[str]:
    """Kill what one run recorded (on every server it spread over), delete its leftover
    links and its folder."""
    from swarmmesh.testbed import docker_clean      # real dockerd nodes (--engine docker)
    removed: list[str] = clean_servers(run_dir) + docker_clean.clean(run_dir)
    pids = run_dir / "pids"
    if pids.exists():
        entries = []
        for line in pids.read_text().splitlines():
            pid, _, marker = line.partition("\t")
            if pid.isdigit():
                entries.append((int(pid), marker))
        # Children before their hosts' shells: reverse order of creation.
        for pid, marker in reversed(entries):
            if kill_pid(pid, marker):
                removed.append(f"process {pid} ({marker})")
    links = run_dir / "links"
    if links.exists():
        for name in sorted(set(links.read_text().split())):
            r = subprocess.run(["ip", "link", "del", name], capture_output=True)
            if r.returncode == 0:
                removed.append(f"link {name}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return removed


def _owner_alive(run_dir: Path) -> bool:
    try:
        pid = int((run_dir / "owner").read_text())
    except (OSError, ValueError):
        return False
    return pid == os.getpid() or (Path(f"/proc/{pid}").exists() and "python" in _cmdline(pid))


def clean_all(root: Path = STATE_ROOT, force: bool = False) -> list[str]:
    """Clean every recorded run whose owner is gone (all of them with force)."""
    removed: list[str] = []
    if not root.exists():
        return removed
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if force or not _owner_alive(run_dir):
            removed += clean_run(run_dir)
            removed.append(f"state {run_dir}")
    return removed


def main() -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="swarmmesh clean",
                                 description="Remove what earlier runs left behind "
                                             "(by recorded PID and name, never by broad name).")
    ap.add_argument("--force", action="store_true",
                    help="also clean runs whose owner process still lives")
    ap.add_argument("--run-dir", type=Path, default=None,
                    help="clean this one record only (what another server runs over ssh)")
    args = ap.parse_args()
    removed = clean_run(args.run_dir) if args.run_dir else clean_all(force=args.force)
    for r in removed:
        print(f"removed {r}")
    print(f"clean: {len(removed)} item(s) removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
