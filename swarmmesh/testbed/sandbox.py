"""A node's ingress sandbox with the kernel's IPVS: the reference path's I/O.

The sandbox is a network namespace of its own, held by one recorded process started from
the node's shell (``unshare -n``, then ``sleep`` under the marker
``<run state>/<node>/ingress-sbox``): the namespace, and the two veths whose ends are in it,
go when that process is killed (by the node's teardown, or ``swarmmesh clean`` by record).
Its legs: ``eth1`` (172.18.0.2) to the node's ``gwbr``, ``eth0`` (the node's ingress
address) to the bridge's port 1 ``gwbr-sbox``.  What runs in it comes from
:mod:`swarmmesh.dataplane.ipvs` (pure); this module only carries it out, through
``nsenter`` into the holder's namespace, so any thread may sync it.

Where the kernel has no ``ip_vs`` the path cannot be built:
:func:`swarmmesh.machine.datapath.ipvs_missing` says why, and the callers skip it.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from swarmmesh.dataplane import ipvs, layout
from swarmmesh.model import Cluster
from swarmmesh.testbed.runtime import kill_pid


class SandboxError(RuntimeError):
    """A command in the sandbox failed; the message names the node and the command."""


class IngressSandbox:
    def __init__(self, node) -> None:
        self.node = node                       # the SwarmNode whose sandbox this is
        self.pid: int | None = None
        self.marker = f"{node.state.dir}/{node.name}/ingress-sbox"
        self.marks: dict[ipvs.PortKey, int] = {}
        self.services: dict[int, ipvs.VirtualService] = {}
        self.iptables: str | None = None
        self.lock = threading.Lock()

    # -- building ----------------------------------------------------------------
    def create(self) -> None:
        """The holder process and the sandbox's two legs (their node ends: ``gwbr``, with the
        node's gateway MAC, and ``gwbr-sbox``, the bridge's port 1, added later)."""
        self.node.cmd(f"unshare -n -- bash -c 'exec -a {self.marker} sleep infinity' &")
        pid = self.node.lastPid
        if not pid:
            raise SandboxError(f"{self.node.name}: the ingress sandbox's holder did not start")
        self.pid = pid
        self.node.record(pid, self.marker)
        self._wait_holder()
        self.node.run_all([
            f"ip link add {layout.GW_INTF} address {layout.GW_MAC} type veth "
            f"peer name {ipvs.SBOX_GW_INTF} netns {pid}",
            f"ip link add {layout.GW_OVS_INTF} type veth peer name {ipvs.SBOX_INGRESS_INTF} "
            f"netns {pid}"])

    def _wait_holder(self, timeout: float = 10.0) -> None:
        """Until the holder runs as ``sleep`` under its marker (its first word: the
        command lines of ``unshare`` and ``bash`` before it hold the marker too, before
        the namespace exists), so that it has its own namespace."""
        deadline = time.monotonic() + timeout
        cmdline = Path(f"/proc/{self.pid}/cmdline")
        while time.monotonic() < deadline:
            try:
                if cmdline.read_bytes().split(b"\0")[0].decode() == self.marker:
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise SandboxError(f"{self.node.name}: the ingress sandbox's holder ({self.pid}) "
                           f"has no namespace of its own after {timeout:.0f} s")

    def configure(self, cluster: Cluster) -> None:
        """Addresses, routes and moby's sysctls (the legs are up on the node's side), then
        the marks, the SNAT and the IPVS services of ``cluster``."""
        for cmd in ipvs.setup_commands(cluster, self.node.name):
            self.run(cmd.split())
        if not self.node.offload:                     # as on every leg (userspace OVS)
            for intf in (ipvs.SBOX_GW_INTF, ipvs.SBOX_INGRESS_INTF):
                self.run(["ethtool", "-K", intf, "tx", "off"], check=False)
        self.sync(cluster)

    # -- following the model -------------------------------------------------------
    def sync(self, cluster: Cluster) -> bool:
        """Bring the marks, the SNAT and the IPVS services to what ``cluster`` says: a
        task that drains gets weight 0, a removed task's real server is deleted.  True if
        anything changed."""
        with self.lock:
            marks = ipvs.assign_marks(cluster, self.marks)
            text = ipvs.iptables_text(cluster, self.node.name, marks)
            new = ipvs.services(cluster, marks)
            lines = ipvs.ipvsadm_lines(self.services, new)
            changed = False
            if text != self.iptables:
                self.run(["iptables-restore"], text)
                self.iptables, changed = text, True
            if lines:
                self.run(["ipvsadm", "-R"], "\n".join(lines) + "\n")
                changed = True
            self.marks, self.services = marks, new
            return changed

    def run(self, argv: list[str], stdin: str | None = None, check: bool = True) -> str:
        """One command inside the sandbox; its output (SandboxError if it fails, unless
        not ``check``)."""
        if self.pid is None:
            raise SandboxError(f"{self.node.name}: no ingress sandbox")
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-n", "--", *argv], input=stdin,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0 and check:
            raise SandboxError(f"{self.node.name}: ingress sandbox: `{' '.join(argv)}` "
                               f"failed ({r.returncode}): {(r.stdout + r.stderr).strip()}")
        return r.stdout

    def ipvsadm(self, *args: str) -> str:
        """``ipvsadm -L -n ...`` in the sandbox (for tests and experiments)."""
        return self.run(["ipvsadm", "-L", "-n", *args])

    # -- teardown --------------------------------------------------------------------
    def stop(self) -> None:
        """Kill the holder: the namespace and its legs go with it (idempotent)."""
        if self.pid is not None:
            kill_pid(self.pid, self.marker)
            self.pid = None
