"""The testbed's hosts other than the nodes: every host's base (its shell and processes
written down in the run's record), the underlay bridge, an external client and a task
container with its task server.  (The node is :mod:`swarmmesh.testbed.swarmnode`; the
topology that makes them all, :mod:`swarmmesh.testbed.topology`.)"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from mininet.node import Host

from swarmmesh import agents
from swarmmesh.agents import dns
from swarmmesh.dataplane import nodeplan
from swarmmesh.dataplane.mtu import SWARM, Mtu
from swarmmesh.testbed import netns
from swarmmesh.testbed.runtime import RunState, stop_popen
from swarmmesh.testbed.shell import Quiet as _Quiet, closing_in_popen
from swarmmesh.testbed.shellbound import BoundedShell, first_line


PRIVATE_PORT = 9999          # every task also listens here; it is never published


TASKSERVER = "swarmmesh.agents.taskserver"


APP_PORT = 80                # every task's application port (the usual target port)


class _Recorded(BoundedShell, Host):
    """A host whose shell is written down in the run state as it starts.

    Its files and processes are on this machine: the methods below (records, small state
    files, pidfiles, signals) work on this machine's file system and PID space.  A host
    placed on another server (``testbed.remotehost.RemotePlaced``, in front in the MRO) does
    each of them on its own server instead, through its shell or one ssh session."""

    remote = False            # True for a host on another server (testbed.servers)

    def __init__(self, name, state: RunState | None = None, offload: bool = False,
                 mtu: Mtu = SWARM, **params):
        self.state = state
        self.mtu = mtu            # the underlay's and the overlay's (one derivation: dataplane.mtu)
        # Checksum/segmentation offload left on (userspace TSO, ``--userspace-tso``): OVS
        # then carries the kernel's offload metadata and fills checksums in itself.
        self.offload = offload
        super().__init__(name, **params)
        if self.state:
            self.record(self.pid, f"mininet:{self.name}")

    def _popen(self, cmd, **params):
        if not self.remote:                  # (a remote host's mnexec runs over there)
            cmd, params = closing_in_popen(list(cmd), params)
        return super()._popen(cmd, **params)

    def run_setup(self, cmds: list[str]) -> None:
        """Set-up commands in this host's shell (``run_all``); on this machine, those that
        turn a leg's checksum offload off are done from this process instead, after the
        others (:func:`netns.tx_off`: an ``ioctl`` each, not an ``ethtool`` process).
        Their failures are ignored, as the commands' were."""
        if self.remote:
            self.run_all(cmds)                 # type: ignore[attr-defined]
            return
        intfs, rest = nodeplan.split_tx_off(cmds)
        self.run_all(rest)                     # type: ignore[attr-defined]
        netns.tx_off(self.pid, intfs)

    def tx_cmd(self, intf: str) -> str:
        """The command that turns checksum offload off on one of this host's legs
        (userspace OVS fills in no checksum), or a no-op with ``offload``."""
        return nodeplan.tx_cmd(intf, self.offload)

    def record(self, pid: int, marker: str) -> None:
        """Write a process of this host's server into the run's record there."""
        self.state.register(pid, marker)

    def file_cmds(self, files: dict[Path, str] | None = None,
                  links: dict[Path, str] | None = None) -> list[str]:
        """Small state files (and symlinks) this host needs: written here at once (and no
        command returned); a remote host returns the shell commands that write them on
        its server, to run in its next batch."""
        for path, text in (files or {}).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for path, target in (links or {}).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        return []

    def result_path(self, local) -> str:
        """Where an agent in this host writes a file meant for ``local`` (a result the
        experiment reads here): ``local`` itself; on another server, a file there that
        :meth:`fetch_result` brings back."""
        return str(local)

    def fetch_result(self, local) -> None:
        """Bring ``local`` back once the agent has written it (here: it is there)."""

    def signal_proc(self, proc, marker: str, sig: int = signal.SIGTERM) -> None:
        """Signal a process this host started (``popen``), without waiting."""
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def stop_proc(self, proc, marker: str, timeout: float = 3.0) -> None:
        """SIGTERM a process this host started, wait, then SIGKILL."""
        stop_popen(proc, timeout)


class Underlay(_Recorded, _Quiet):
    """The underlay L2 segment: a Linux bridge inside its own namespace."""

    def config(self, **params):
        r = super().config(**params)
        self.run("ip link add ul0 type bridge")
        self.run("ip link set ul0 up")
        for intf in self.intfList():
            if intf.name != "lo":
                self.run(f"ip link set {intf.name} mtu {self.mtu.underlay}")
                self.run(f"ip link set {intf.name} master ul0")
                self.run(f"ip link set {intf.name} up")
        return r


class SwarmClient(_Recorded):
    """An external client on the underlay, outside the cluster."""

    def config(self, **params):
        r = super().config(**params)
        eth0 = self.defaultIntf().name
        self.cmd(f"{self.tx_cmd(eth0)} ; ip link set {eth0} mtu {self.mtu.underlay}")
        return r


class SwarmTask(_Recorded, _Quiet):
    """A task container: one leg per network it is on, its resolver
    configuration (the embedded DNS at 127.0.0.11) and the task server."""

    def __init__(self, name, task_name="", node_name="", ports=(), gw_intf=None,
                 defer_ready=False, **params):
        self.task_name, self.node_name = task_name, node_name
        self.target_ports = tuple(ports)
        self.gw_intf = gw_intf           # the docker_gwbridge leg (host-mode ports), or None
        self.defer_ready = defer_ready   # start the task server, let the builder wait for it
        self.server = None
        self.link_cmds: list[str] | None = []    # its legs' (links.PairIntf), until config
        super().__init__(name, **params)

    def config(self, **params):
        # Mininet's own configuration of a host with no address, MAC or route of its own
        # (a task's addresses are on its legs) is one command, ``ifconfig lo up``: it
        # goes with the others into one round trip (a thousand tasks, a thousand fewer).
        own = any(params.get(k) is not None for k in ("mac", "ip", "defaultRoute"))
        r = super().config(**params) if own else {}
        legs, self.link_cmds = self.link_cmds or [], None
        intfs = [i.name for i in self.intfList() if i.name != "lo"]
        cmds = nodeplan.task_cmds(intfs, self.gw_intf, self.mtu, self.offload,
                                  lo=None if own else params.get("lo") or "up", legs=legs)
        cmds += self._resolver()
        self.run_setup(cmds)
        self.start_server()
        if not self.defer_ready:
            self.wait_ready()
        return r

    def _resolver(self) -> list[str]:
        """/etc/resolv.conf -> 127.0.0.11, in this host's own mount namespace."""
        if not self.state:
            return []
        conf = self.state.dir / self.node_name / f"{self.name}.resolv.conf"
        return self.file_cmds({conf: dns.RESOLV_CONF}) + [f"mount --bind {conf} /etc/resolv.conf"]

    def start_server(self):
        """Start the task server (``-S``: it needs the standard library and swarmmesh,
        which PYTHONPATH gives; no site start-up, a third of the time per task)."""
        ports = sorted({*self.target_ports, APP_PORT} - {PRIVATE_PORT})
        args = ["--task", self.task_name, "--node", self.node_name, "--udp",
                "--control-port", str(PRIVATE_PORT)]
        for p in ports:
            args += ["--port", str(p)]
        forks = getattr(self.state, "forks", None)
        if forks is not None:                 # a fork of the machine's one task-server Python
            self.server = forks.spawn(self.pid, args)
            return
        cmd = [sys.executable, "-S", "-m", "swarmmesh.agents.taskserver", *args]
        self.server = self.popen(cmd, env=agents.python_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        if self.state:                        # (for a remote task: the local ssh client)
            self.state.register(self.server.pid, TASKSERVER)

    def wait_ready(self):
        """Until the task server listens (its first line), by the build's deadline."""
        first_line(self.server, getattr(self.state, "deadline", None), "task server",
                   f"{self.name} (task {self.task_name} on {self.node_name})", "task server")

    def stop_server(self):
        """Ask the task server to stop (SIGTERM), without waiting."""
        self.signal_proc(self.server, TASKSERVER)

    def signal_server(self, sig: int) -> None:
        """Signal the task server (on this task's server: ``kill_app``'s SIGUSR2)."""
        self.signal_proc(self.server, TASKSERVER, sig)

    def terminate(self):
        self.stop_proc(self.server, TASKSERVER)
        super().terminate()
