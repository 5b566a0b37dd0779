"""A host of the testbed placed on another server: this testbed's own host class with
Mininet's cluster edition ``RemoteMixin`` in front, and the ssh it goes through.

Its shell is ``ssh ... sudo -E mnexec -cn bash`` there; every command goes down it, every
process is one more ssh session on the server's one ``ControlMaster``.  A remote ``popen``
quotes its arguments (ssh joins them with spaces for the remote shell), carries the
environment the caller gave (``env K=V``: ssh forwards none) and writes its remote PID
into that server's record before it ``exec``s, so ``swarmmesh clean`` kills it there by
record.  :mod:`swarmmesh.testbed.servers` places the hosts and runs the servers.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
from functools import lru_cache
from pathlib import Path

from mininet.examples.cluster import RemoteMixin

from swarmmesh.dataplane.servers import Server
from swarmmesh.testbed.runtime import sh_pidfile_signal


FORWARDED_ENV = ("PYTHONPATH", "OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR")  # ssh forwards none


def ssh_base(server: Server, control_dir: Path, options: list[str]) -> list[str]:
    """ssh up to (not including) the destination: batch mode, one master per server."""
    return ["ssh", "-q", "-o", "BatchMode=yes", *options,
            "-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/{server.name}.ctl",
            "-o", "ControlPersist=600", "-p", str(server.port)]


def ssh_argv(server: Server, control_dir: Path, options: list[str]) -> list[str]:
    return ssh_base(server, control_dir, options) + [f"{server.user}@{server.address}"]


class RemotePlaced(RemoteMixin):
    """The cluster edition's remote host, with our ssh, quoting, environment and records.

    Nothing of it is on this machine but the ssh clients: its records, state files and
    pidfiles are in the run's state folder *on its server* (the same path there), and its
    processes are signalled there.  These override the local versions of
    ``hosts._Recorded`` / ``SwarmNode``; each goes through the host's own shell (a
    round trip on a session that is open anyway) or, where any thread may call it or the
    shell may be gone, one ssh session on the server's master connection."""

    remote = True

    def __init__(self, name, spread=None, where: Server = None, **params):
        self.spread, self.where = spread, where
        self.sshbase = ssh_base(where, spread.control_dir, spread.ssh_options) + ["-tt"]
        super().__init__(name, server=where.name, serverIP=where.address, user=where.user,
                         controlPath=False, **params)

    def _popen(self, cmd, sudo=True, tt=True, **params):
        if not self.isRemote:
            return super()._popen(cmd, sudo=sudo, tt=tt, **params)
        if isinstance(cmd, str):
            cmd = cmd.split()
        marker = pidfile = None
        if tt is False:               # a process, not the shell: recorded there, with its env
            # ssh reads its stdin (the CLI's, the terminal) unless given another
            params.setdefault("stdin", subprocess.DEVNULL)
            env = params.get("env") or {}
            prefix = [f"{k}={v}" for k, v in sorted(env.items()) if k in FORWARDED_ENV]
            marker = _marker(cmd)
            pidfile = f"{self.spread.state.dir}/procs/{self.name}.{next(self.spread.seq)}.pid"
            cmd = ["sh", "-c", f'echo $$ > {pidfile}; echo "$$\t{marker}" >> '
                   f'{self.spread.remote_pids(self.where)}; exec "$@"', "sh",
                   *(["env", *prefix] if prefix else []), *cmd]
        proc = super()._popen([shlex.quote(str(c)) for c in cmd], sudo=sudo, tt=tt, **params)
        proc.remote_pidfile, proc.remote_marker = pidfile, marker   # its PID is there
        return proc

    # -- the host's files and processes, on its server ----------------------------------
    def server_sh(self, script: str, input: str | None = None) -> str:
        """Run ``script`` on this host's server: in its shell when that is idle (no new
        session) and nothing is to be piped in, else in one ssh session."""
        if input is None and self.shell is not None and self.shell.poll() is None \
                and not self.waiting:
            return self.cmd(script)
        return self.spread.run(self.where, script, input=input)

    def result_path(self, local) -> str:
        return self.spread.result_path(self, local)

    def fetch_result(self, local) -> None:
        self.spread.fetch_results([local])

    def record(self, pid: int, marker: str) -> None:
        self.cmd(f"printf '%s\\t%s\\n' {pid} {shlex.quote(marker)} >> "
                 f"{self.spread.remote_pids(self.where)}")

    def file_cmds(self, files=None, links=None) -> list[str]:
        cmds = []
        for path, text in (files or {}).items():
            cmds += [f"mkdir -p {path.parent}",
                     f"printf {shlex.quote(_printf_escape(text))} > {path}"]
        for path, target in (links or {}).items():
            cmds += [f"mkdir -p {path.parent}", f"ln -sfn {target} {path}"]
        return cmds

    def batch_file(self, name: str, lines: list[str]) -> Path | None:
        if not lines:
            return None
        path = self.state.dir / self.name / name
        self.spread.put(self.where, path, "\n".join(lines) + "\n")
        return path

    def load_nft(self, script: str, tmp: Path, path: Path) -> tuple[int, str]:
        r = self.spread.run(self.where, f"mkdir -p {tmp.parent} && cat > {tmp} && "
                            f"mnexec -a {self.pid} nft -f {tmp} 2>&1 && mv {tmp} {path}",
                            input=script, check=False)
        return r.returncode, r.stdout + r.stderr

    def record_pidfiles(self, pidfiles) -> None:
        pids = self.spread.remote_pids(self.where)
        self.cmd("; ".join(f"[ -s {p} ] && printf '%s\\t%s\\n' \"$(cat {p})\" {m} >> {pids}"
                           for p, m in pidfiles) + "; true")

    def signal_pidfiles(self, pidfiles, wait: bool = False) -> None:
        self.server_sh("; ".join(sh_pidfile_signal(str(p), m, "TERM", 3.0 if wait else 0.0)
                                 for p, m in pidfiles))

    def signal_proc(self, proc, marker: str, sig: int = signal.SIGTERM) -> None:
        if proc is None or proc.poll() is not None:
            return
        if getattr(proc, "remote_pidfile", None):
            self.server_sh(sh_pidfile_signal(proc.remote_pidfile, proc.remote_marker,
                                             signal.Signals(sig).name[3:]))
        else:
            proc.send_signal(sig)

    def stop_proc(self, proc, marker: str, timeout: float = 3.0) -> None:
        """SIGTERM the process on its server; its ssh client ends with it."""
        if proc is None or proc.poll() is not None:
            return
        self.signal_proc(proc, marker)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if getattr(proc, "remote_pidfile", None):
                self.server_sh(sh_pidfile_signal(proc.remote_pidfile, proc.remote_marker,
                                                 "KILL"))
            proc.kill()


def tarfile_error() -> type:
    import tarfile
    return tarfile.TarError


def _printf_escape(text: str) -> str:
    """``text`` as a printf format that prints it as is, on one line."""
    return text.replace("\\", "\\\\").replace("%", "%%").replace("\n", "\\n")


def _marker(cmd: list) -> str:
    """What the remote process's command line will hold: the module after ``-m``, else the
    program (after ``mnexec ... PID``)."""
    words = [str(c) for c in cmd]
    if "-m" in words and words.index("-m") + 1 < len(words):
        return words[words.index("-m") + 1]
    if words[0] == "mnexec":
        words = words[next((i + 1 for i, w in enumerate(words) if w.isdigit()), 1):] or words
    return Path(words[0]).name


@lru_cache(maxsize=None)
def remote_class(cls: type) -> type:
    """``cls`` (SwarmNode, SwarmTask, ...) with the cluster edition's RemoteMixin in front."""
    return type(f"Remote{cls.__name__}", (RemotePlaced, cls), {})
