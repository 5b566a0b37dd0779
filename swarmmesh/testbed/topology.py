"""A Docker Swarm cluster as a Mininet topology, built from the cluster model.

Every swarm node, task container, external client and the underlay itself is
a Mininet host in its own network namespace:

* ``underlay``: a Linux bridge in its own namespace, the cluster's L2 network
  (192.168.99.0/24).  Every node and client has one leg on it.
* ``node1..N`` (``SwarmNode``): the node's kernel (its underlay address, an
  nftables DNAT of published ports to the ingress sandbox, and of host-mode
  ports to a local task, a kernel VXLAN device for the ``ingress`` overlay
  with a static FDB) and the node's own ``ovs-vswitchd`` with bridge
  ``br-ingress``, which the controller programs to act as the ingress
  sandbox (IPVS rr + SNAT in Swarm).
* ``t1..`` (``SwarmTask``): one per task container, linked to its node's
  bridge, running the task server; a task with a host-mode port also has a
  leg on docker_gwbridge (a veth straight to its node's kernel).
* ``c1..`` : external clients on the underlay.

Use it from Mininet directly (start the controller first, see docs/cli.md)::

    sudo mn --custom topologies/swarm.py --topo swarm,nodes=3,replicas=2 --controller remote
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import threading
import sys
from pathlib import Path

from mininet.node import Host
from mininet.topo import Topo

from swarmmesh import agents
from swarmmesh.agents import dns
from swarmmesh.control.relay import DEFAULT_UNIX_SOCKET
from swarmmesh.dataplane import kernel, layout, rules
from swarmmesh.model import Cluster, UNDERLAY_SUBNET, docker_mac
from swarmmesh.testbed.runtime import RunState, kill_pid, signal_pid
from swarmmesh.machine.datapath import choose_datapath

PRIVATE_PORT = 9999          # every task also listens here; it is never published
TASKSERVER = "swarmmesh.agents.taskserver"
APP_PORT = 80                # every task's application port (the usual target port)
DNS = "swarmmesh.agents.dns"
VXLAN_PORT = 4789
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class _Quiet:
    """Run a command in a host and fail loudly, naming the host and command."""

    def run(self, *cmd: str) -> str:
        out = self.cmd(*cmd)                   # type: ignore[attr-defined]
        rc = self.cmd("echo $?").strip()       # type: ignore[attr-defined]
        if rc != "0":
            raise RuntimeError(f"{self.name}: `{' '.join(cmd)}` failed ({rc}): {out.strip()}")
        return out

    def run_all(self, cmds: list[str]) -> str:
        """Several commands in as few round trips to the host's shell as its line allows
        (:func:`shell_lines`), stopping at the first that fails (named in the error).
        A build has thousands of them."""
        if not cmds:
            return ""
        parts = [f"{{ {c} || {{ echo \"__failed {i} $?\"; false; }}; }}"
                 for i, c in enumerate(cmds)]
        outs = []
        for line in shell_lines(parts, self.name):
            out = self.cmd(line)               # type: ignore[attr-defined]
            if "__failed " in out:
                i, rc = out.rsplit("__failed ", 1)[1].split()[:2]
                raise RuntimeError(f"{self.name}: `{cmds[int(i)]}` failed ({rc}): "
                                   f"{out.rsplit('__failed ', 1)[0].strip()}")
            outs.append(out)
        return "".join(outs)

    def batch_file(self, name: str, lines: list[str]) -> Path | None:
        """A file of ``lines`` in this host's state folder (for ``bridge -batch``)."""
        if not lines:
            return None
        path = self.state.node_dir(self.name) / name       # type: ignore[attr-defined]
        path.write_text("\n".join(lines) + "\n")
        return path


# A host's shell reads its commands from a pty in canonical mode, where Linux cuts a line
# at 4,095 bytes: a longer command never ends (its sentinel is lost), so no line may
# come near it (a node with 20 tasks made a 5 KB one and hung the build).
LINE_MAX = 3000


def shell_lines(parts: list[str], host: str = "", limit: int = LINE_MAX) -> list[str]:
    """Commands joined with ``&&`` into as few lines as stay within ``limit`` bytes
    each, in order; a single command longer than that is an error naming the host."""
    lines: list[str] = []
    cur = ""
    for p in parts:
        if len(p.encode()) > limit:
            raise ValueError(f"{host}: a command of {len(p.encode())} bytes exceeds the "
                             f"shell's line ({limit}): {p[:120]}...")
        if cur and len((cur + " && " + p).encode()) > limit:
            lines.append(cur)
            cur = p
        else:
            cur = f"{cur} && {p}" if cur else p
    if cur:
        lines.append(cur)
    return lines


def vsctl_batches(args: list[str], prefix: str, limit: int = LINE_MAX - 200) -> list[str]:
    """``ovs-vsctl`` commands (``prefix -- a -- b ...``) of ``args``, one transaction
    each, as few as keep every command line within ``limit`` bytes."""
    out: list[str] = []
    cur: list[str] = []
    for a in args:
        if cur and len(prefix) + sum(len(x) + 4 for x in cur + [a]) > limit:
            out.append(f"{prefix} -- " + " -- ".join(cur))
            cur = []
        cur.append(a)
    if cur:
        out.append(f"{prefix} -- " + " -- ".join(cur))
    return out


class _Recorded(Host):
    """A host whose shell is written down in the run state as it starts.

    Its files and processes are on this machine: the methods below (records, small state
    files, pidfiles, signals) work on this machine's file system and PID space.  A host
    placed on another server (``testbed.servers.RemotePlaced``, in front in the MRO) does
    each of them on its own server instead, through its shell or one ssh session."""

    remote = False            # True for a host on another server (testbed.servers)

    def __init__(self, name, state: RunState | None = None, offload: bool = False, **params):
        self.state = state
        # Checksum/segmentation offload left on (userspace TSO, ``--userspace-tso``): OVS
        # then carries the kernel's offload metadata and fills checksums in itself.
        self.offload = offload
        super().__init__(name, **params)
        if self.state:
            self.record(self.pid, f"mininet:{self.name}")

    def tx_cmd(self, intf: str) -> str:
        """The command that turns checksum offload off on one of this host's legs
        (userspace OVS fills in no checksum), or a no-op with ``offload``."""
        return "true" if self.offload else tx_off_cmd(intf)

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
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()


class Underlay(_Recorded, _Quiet):
    """The underlay L2 segment: a Linux bridge inside its own namespace."""

    def config(self, **params):
        r = super().config(**params)
        self.run("ip link add ul0 type bridge")
        self.run("ip link set ul0 up")
        for intf in self.intfList():
            if intf.name != "lo":
                self.run(f"ip link set {intf.name} master ul0")
                self.run(f"ip link set {intf.name} up")
        return r


def _tx_off(host: Host, intf: str) -> None:
    # Userspace OVS does not fill in checksums that veth leaves to offload
    # (unless its userspace TSO is on: the host's ``offload``).
    if not getattr(host, "offload", False):
        host.cmd(tx_off_cmd(intf))


def tx_off_cmd(intf: str) -> str:
    return f"{{ ethtool -K {intf} tx off >/dev/null 2>&1 || true; }}"


class SwarmClient(_Recorded):
    """An external client on the underlay, outside the cluster."""

    def config(self, **params):
        r = super().config(**params)
        _tx_off(self, self.defaultIntf().name)
        return r


class SwarmTask(_Recorded, _Quiet):
    """A task container: one leg per network it is on, its resolver
    configuration (the embedded DNS at 127.0.0.11) and the task server."""

    def __init__(self, name, task_name="", node_name="", ports=(), gw_intf=None,
                 defer_ready=False, **params):
        self.task_name, self.node_name = task_name, node_name
        self.target_ports = tuple(ports)
        self.gw_intf = gw_intf           # the docker_gwbridge leg (host-mode ports), or None
        self.defer_ready = defer_ready   # start the server, let the builder wait for it
        self.server = None
        super().__init__(name, **params)

    def config(self, **params):
        r = super().config(**params)
        cmds = []
        for intf in self.intfList():
            if intf.name != "lo":
                cmds.append(self.tx_cmd(intf.name))
                if intf.name != self.gw_intf:      # docker_gwbridge is no overlay: 1500
                    cmds.append(f"ip link set {intf.name} mtu 1450")
        if self.gw_intf:             # as a container's: the default route is docker_gwbridge
            cmds.append(f"ip route replace default via {layout.GW_IP} dev {self.gw_intf}")
        cmds += self._resolver()
        self.run_all(cmds)
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
        cmd = [sys.executable, "-S", "-m", "swarmmesh.agents.taskserver", "--task",
               self.task_name, "--node", self.node_name, "--udp",
               "--control-port", str(PRIVATE_PORT)]
        for p in ports:
            cmd += ["--port", str(p)]
        self.server = self.popen(cmd, env=agents.python_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        if self.state:                        # (for a remote task: the local ssh client)
            self.state.register(self.server.pid, TASKSERVER)

    def wait_ready(self):
        """Until the task server listens (its first line)."""
        line = self.server.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"{self.name}: task server did not start: {line.strip()}")

    def stop_server(self):
        """Ask the task server to stop (SIGTERM), without waiting."""
        self.signal_proc(self.server, TASKSERVER)

    def signal_server(self, sig: int) -> None:
        """Signal the task server (on this task's server: ``kill_app``'s SIGUSR2)."""
        self.signal_proc(self.server, TASKSERVER, sig)

    def terminate(self):
        self.stop_proc(self.server, TASKSERVER)
        super().terminate()


class SwarmNode(_Recorded, _Quiet):
    """A swarm node: kernel DNAT + VXLAN, and its own vswitchd for the mesh."""

    def __init__(self, name, cluster: Cluster | None = None, datapath: str = "netdev",
                 controller: str = DEFAULT_UNIX_SOCKET, ingress: str = "mesh", **params):
        self.cluster, self.datapath = cluster, datapath
        self.ingress = ingress                 # "ipvs": a real ingress sandbox (testbed.sandbox)
        self.sandbox = None
        self.controller_target = controller
        self.ovs_dir: Path | None = None
        self.nft_loaded: str | None = None     # the nft script last loaded
        self.nft_cluster: Cluster | None = None  # and the model it came from
        self.nft_lock = threading.Lock()
        self.lc_weights: dict | None = None    # least connections: task -> weight
        super().__init__(name, **params)

    # -- configuration ---------------------------------------------------
    def config(self, **params):
        r = super().config(**params)
        node = self.cluster.node(self.name)
        eth0 = self.defaultIntf().name
        cmds = ["sysctl -qw net.ipv4.ip_forward=1"]
        # Swarm's docker_gwbridge leg to the ingress sandbox: the bridge's port 1 plays the
        # sandbox, or (ingress "ipvs") a real sandbox sits between gwbr and that port.
        if self.ingress == "ipvs":
            from swarmmesh.testbed.sandbox import IngressSandbox
            self.sandbox = IngressSandbox(self)
            self.sandbox.create()
        else:
            cmds.append(f"ip link add {layout.GW_INTF} type veth peer name {layout.GW_OVS_INTF}")
        cmds.append(f"ip link set {layout.GW_INTF} address {layout.GW_MAC}")
        cmds.append(f"ip addr add {layout.GW_IP}/{layout.GW_PREFIX} dev {layout.GW_INTF}")
        for intf in (layout.GW_INTF, layout.GW_OVS_INTF):
            cmds.append(f"ip link set {intf} up")
            cmds.append(self.tx_cmd(intf))
        # The kernel DNATs a published connection to the task it picked: the ingress
        # network is routed via the sandbox (the bridge), and nothing else goes there.
        # (A real sandbox picks itself: the node reaches no task, as in Swarm.)
        if self.sandbox is None:
            cmds.append(f"ip route add {self.cluster.networks['ingress'].subnet} "
                        f"via {layout.SBOX_GW_IP} dev {layout.GW_INTF}")
        else:
            cmds.append(f"ip link set {layout.GW_OVS_INTF} mtu 1450")
        # The ingress overlay: kernel VXLAN, no learning, static FDB from the model.
        cmds.append(f"ip link add {layout.VXLAN_INTF} type vxlan id "
                    f"{self.cluster.networks['ingress'].vni} dstport {VXLAN_PORT} "
                    f"local {node.underlay_ip} dev {eth0} nolearning")
        cmds.append(f"ip link set {layout.VXLAN_INTF} mtu 1450 up")
        fdb = [f"fdb append {mac} dev {layout.VXLAN_INTF} dst {remote}"
               for mac, remote in rules.overlay_fdb(self.cluster, self.name)]
        # One more VXLAN device (its own VNI) per user overlay network.
        for net in layout.user_networks(self.cluster):
            vx = layout.vxlan_intf(net)
            cmds.append(f"ip link add {vx} type vxlan id {net.vni} dstport {VXLAN_PORT} "
                        f"local {node.underlay_ip} dev {eth0} nolearning")
            cmds.append(f"ip link set {vx} mtu 1450 up")
            fdb += [f"fdb append {mac} dev {vx} dst {remote}"
                    for mac, remote in rules.overlay_fdb(self.cluster, self.name, net.name)]
        batch = self.batch_file("fdb.batch", fdb)     # one process for the whole FDB
        if batch is not None:
            cmds.append(f"bridge -batch {batch}")
        gw_legs = {layout.gw_intf(t) for t in kernel.gw_legs(self.cluster, self.name)}
        for intf in self.intfList():
            if intf.name != "lo" and intf != self.defaultIntf():
                cmds.append(self.tx_cmd(intf.name))
                if intf.name not in gw_legs:
                    cmds.append(f"ip link set {intf.name} mtu 1450")
        cmds.append(f"sysctl -qw net.ipv4.conf.{layout.GW_INTF}.route_localnet=1")
        self.run_all(cmds)
        for task in kernel.gw_legs(self.cluster, self.name):
            self.plug_gw_leg(task)
        if self.sandbox is not None:
            self.sandbox.configure(self.cluster)
        self.sync_nft(self.cluster)
        self._start_ovs()
        self._start_dns()
        return r

    def _start_dns(self):
        """The node's embedded DNS server (Swarm's daemon answers on 127.0.0.11
        in every task); it follows the model file in the run's state folder."""
        if not self.state or not (self.remote or (self.state.dir / "model.json").exists()):
            raise RuntimeError(f"{self.name}: no model.json in the run state")
        log = open(self.state.node_dir(self.name) / "dns.log", "w")
        # ``-S``: the standard library and swarmmesh (PYTHONPATH) are all it imports; no
        # site start-up (about 65 ms of a node's 180 ms start here, certifi's .pth among it).
        self.dns = self.popen([sys.executable, "-S", "-m", "swarmmesh.agents.dns",
                               "--node", self.name,
                               "--state-dir", str(self.state.dir)],
                              env=agents.python_env(),
                              stdout=log, stderr=subprocess.STDOUT)
        log.close()                           # (a remote DNS's output comes back over ssh)
        self.state.register(self.dns.pid, DNS)

    def sync_nft(self, cluster: Cluster | None = None, lc: dict | None = None) -> bool:
        """Load the node's nftables table as ``cluster`` says (Swarm's DOCKER-INGRESS
        chain with the round-robin pick, and the host-mode ports of its local tasks), in
        one transaction, unless it is loaded already.  True if it was (re)loaded.  Runs
        ``nft`` as a process of its own in the node (not through the node's shell), so
        that any thread may call it.  ``lc``: new least-connections weights (kept for
        later loads); no ``cluster``: the one loaded last (the lc loop's case)."""
        with self.nft_lock:
            if lc is not None:
                self.lc_weights = lc
            cluster = cluster or self.nft_cluster
            if cluster is None:
                return False
            self.nft_cluster = cluster
            sbox = self.sandbox is not None and self.sandbox.sync(cluster)
            return self._load_nft(kernel.nft_script(cluster, self.name, self.lc_weights,
                                                    self.ingress)) or sbox

    def _load_nft(self, script: str) -> bool:
        if script == self.nft_loaded:
            return False
        if self.state is None:
            raise RuntimeError(f"{self.name}: no run state")
        path = self.state.dir / self.name / "nft.conf"
        tmp = path.with_name(".nft.conf.tmp")
        rc, out = self.load_nft(script, tmp, path)
        if rc != 0:
            raise RuntimeError(f"{self.name}: `nft -f {tmp}` failed ({rc}): {out.strip()}")
        self.nft_loaded = script
        return True

    def load_nft(self, script: str, tmp: Path, path: Path) -> tuple[int, str]:
        """Write ``script`` to ``tmp``, load it into the node's kernel and keep it as
        ``path`` once loaded; the exit status and output of ``nft``."""
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(script)
        proc = self.popen(["nft", "-f", str(tmp)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate()
        if proc.returncode == 0:
            tmp.replace(path)
        return proc.returncode, out

    def plug_gw_leg(self, task) -> None:
        """The node's end of a task's docker_gwbridge leg: up, a /32 route to the task
        (the node answers ARP for its gateway address on it, as for any local address),
        and localhost allowed out as on gwbr."""
        intf = layout.gw_intf(task)
        _tx_off(self, intf)
        self.run(f"ip link set {intf} up")
        self.run(f"ip route replace {layout.task_gw_ip(task)}/32 dev {intf}")
        self.run(f"sysctl -qw net.ipv4.conf.{intf}.route_localnet=1")

    def _start_ovs(self):
        d = self.state.dir / self.name / "ovs"
        if self.remote:
            mkdir = [f"mkdir -p {d}"]
        else:
            d.mkdir(parents=True, exist_ok=True)
            mkdir = []
        self.ovs_dir = d
        env = f"OVS_RUNDIR={d} OVS_LOGDIR={d} OVS_DBDIR={d}"
        try:
            self.run_all(mkdir + [
                f"ovsdb-tool create {d}/conf.db {OVS_SCHEMA}",
                f"{env} ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock "
                f"--pidfile={d}/ovsdb-server.pid --detach --log-file={d}/ovsdb-server.log",
                f"{env} ovs-vsctl --db=unix:{d}/db.sock --no-wait init" + (
                    " -- set Open_vSwitch . other_config:userspace-tso-enable=true"
                    if self.offload else ""),
                f"{env} ovs-vswitchd unix:{d}/db.sock --pidfile={d}/ovs-vswitchd.pid "
                f"--detach --log-file={d}/ovs-vswitchd.log"])
        finally:
            self.record_pidfiles([(d / "ovsdb-server.pid", "ovsdb-server"),
                                  (d / "ovs-vswitchd.pid", "ovs-vswitchd")])
        node = self.cluster.node(self.name)
        cmd = [f"add-br {layout.BRIDGE}",
               f"set bridge {layout.BRIDGE} datapath_type={self.datapath} fail-mode=secure "
               f"protocols=OpenFlow13 other-config:datapath-id={layout.dpid_of(node):016x}",
               f"add-port {layout.BRIDGE} {layout.GW_OVS_INTF} "
               f"-- set interface {layout.GW_OVS_INTF} ofport_request={layout.PORT_GW}",
               f"add-port {layout.BRIDGE} {layout.VXLAN_INTF} "
               f"-- set interface {layout.VXLAN_INTF} ofport_request={layout.PORT_VXLAN}"]
        for net in layout.user_networks(self.cluster):
            vx = layout.vxlan_intf(net)
            cmd.append(f"add-port {layout.BRIDGE} {vx} -- set interface {vx} "
                       f"ofport_request={layout.vxlan_port(net)}")
        for task in self.cluster.tasks_on(self.name):
            port = layout.task_ports(self.cluster, self.name).get(task.host)
            if port is not None:
                intf = layout.task_intf(task)
                cmd.append(f"add-port {layout.BRIDGE} {intf} -- set interface {intf} "
                           f"ofport_request={port}")
            for name in task.addresses:
                net = self.cluster.networks[name]
                if not net.ingress:
                    intf = layout.net_intf(task, net)
                    cmd.append(f"add-port {layout.BRIDGE} {intf} -- set interface {intf} "
                               f"ofport_request={layout.net_port(task, net)}")
        # vswitchd only dials unix sockets inside its own run dir: link to the relay.
        link = self.file_cmds(links={d / "controller.sock": self.controller_target})
        cmd.append(f"set-controller {layout.BRIDGE} unix:{d}/controller.sock")
        cmd.append(f"set controller {layout.BRIDGE} max_backoff=1000 inactivity_probe=0")
        # One transaction per node unless its command line would be too long for the shell.
        self.run_all(link + vsctl_batches(cmd, f"{env} ovs-vsctl --db=unix:{d}/db.sock"))

    def sync_fdb(self, cluster: Cluster) -> None:
        """Bring every VXLAN device's static FDB to what ``cluster`` says
        (tasks and LB endpoints come and go at run time)."""
        self.cluster = cluster
        for net in cluster.networks.values():
            vx = layout.vxlan_intf(net)
            want = {(m.lower(), ip) for m, ip in rules.overlay_fdb(cluster, self.name, net.name)}
            have = set()
            for line in self.cmd(f"bridge fdb show dev {vx}").splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[1] == "dst":
                    have.add((parts[0].lower(), parts[2]))
            for mac, ip in sorted(have - want):
                self.cmd(f"bridge fdb del {mac} dev {vx} dst {ip}")
            for mac, ip in sorted(want - have):
                self.run(f"bridge fdb append {mac} dev {vx} dst {ip}")

    def ovs_vsctl(self, *args: str) -> str:
        d = self.ovs_dir
        return self.run(f"OVS_RUNDIR={d} ovs-vsctl --db=unix:{d}/db.sock " + " ".join(args))

    def attach_task(self, task, cluster: Cluster) -> None:
        """Plug a task started at run time into the bridge (its legs exist), and its
        docker_gwbridge leg into the node's kernel (the nft table follows apart)."""
        if layout.has_gw_leg(task, cluster):
            self.plug_gw_leg(task)
        for name in task.addresses:
            net = cluster.networks[name]
            if net.ingress:
                intf, port = layout.task_intf(task), layout.ingress_port(task)
            else:
                intf, port = layout.net_intf(task, net), layout.net_port(task, net)
            _tx_off(self, intf)
            self.run(f"ip link set {intf} mtu 1450 up")
            self.ovs_vsctl(f"--may-exist add-port {layout.BRIDGE} {intf} -- set interface {intf} "
                           f"ofport_request={port}")

    def detach_task(self, task, cluster: Cluster) -> None:
        for name in task.addresses:
            net = cluster.networks[name]
            intf = layout.task_intf(task) if net.ingress else layout.net_intf(task, net)
            if self.ovs_dir is not None:
                self.cmd(f"OVS_RUNDIR={self.ovs_dir} ovs-vsctl --db=unix:{self.ovs_dir}/db.sock "
                         f"--if-exists del-port {layout.BRIDGE} {intf}")

    def appctl(self, *args: str) -> str:
        """``ovs-appctl`` against this node's vswitchd."""
        d = self.ovs_dir                     # the pidfile read where vswitchd runs
        return self.cmd(f"ovs-appctl -t {d}/ovs-vswitchd.$(cat {d}/ovs-vswitchd.pid).ctl "
                        + " ".join(args))

    def flush_conntrack(self, addresses) -> None:
        """Forget every connection to these (task) addresses, as Swarm's IPVS
        does for a removed backend (``expire_nodest_conn``): else a client
        that reuses a source port would follow a stale entry to it.  The
        node's kernel (ingress: it picked the task and NATed the connection)
        and the bridge's VIP zones: DNAT zones match the reply's source,
        SNAT zones the original destination."""
        for ip in addresses:
            self.cmd(f"conntrack -D --reply-src {ip} >/dev/null 2>&1")
        if self.ovs_dir is None:
            return
        for ip in addresses:
            self.appctl(f"dpctl/flush-conntrack zone={rules.ZONE_VIP_DNAT} '' 'ct_nw_src={ip}'")
            self.appctl(f"dpctl/flush-conntrack zone={rules.ZONE_LB_SNAT} 'ct_nw_dst={ip}'")

    def record_pidfiles(self, pidfiles: list[tuple[Path, str]]) -> None:
        """Write the daemons' PIDs (from their pidfiles) into the run's record."""
        for path, marker in pidfiles:
            if self.state and path.exists():
                self.state.register(int(path.read_text().strip()), marker)

    def signal_pidfiles(self, pidfiles: list[tuple[Path, str]], wait: bool = False) -> None:
        """SIGTERM the daemons named by their pidfiles (checked by command line); with
        ``wait``, until they are gone (SIGKILL after 3 s)."""
        for path, marker in pidfiles:
            if path.exists():
                pid = int(path.read_text().strip())
                kill_pid(pid, marker) if wait else signal_pid(pid, marker)

    # -- helpers for experiments and tests ---------------------------------
    def ofctl(self, *args: str) -> str:
        """Run ``ovs-ofctl`` against this node's bridge."""
        mgmt = f"unix:{self.ovs_dir}/{layout.BRIDGE}.mgmt"
        return self.cmd(f"ovs-ofctl -O OpenFlow13 {' '.join(args[:1])} {mgmt} "
                        f"{' '.join(args[1:])}")

    def signal_ovs(self) -> None:
        """Ask this node's vswitchd and ovsdb-server to stop (SIGTERM), without waiting:
        a cluster's teardown signals every node first, then waits (:meth:`stop_ovs`)."""
        if self.ovs_dir is None:
            return
        self.signal_pidfiles([(self.ovs_dir / f"{n}.pid", n)
                              for n in ("ovs-vswitchd", "ovsdb-server")])

    def stop_ovs(self):
        """Stop this node's vswitchd and ovsdb-server (idempotent)."""
        if self.ovs_dir is None:
            return
        self.signal_pidfiles([(self.ovs_dir / f"{n}.pid", n)
                              for n in ("ovs-vswitchd", "ovsdb-server")], wait=True)
        self.ovs_dir = None

    def stop_dns(self) -> None:
        """Ask the node's DNS server to stop (SIGTERM), without waiting."""
        self.signal_proc(getattr(self, "dns", None), DNS)

    def terminate(self):
        self.stop_ovs()
        self.stop_proc(getattr(self, "dns", None), DNS)
        if self.sandbox is not None:
            self.sandbox.stop()
        super().terminate()


def task_params(task, cluster: Cluster, state: RunState | None, offload: bool = False) -> dict:
    """Mininet host parameters of a task (for addHost, at build or run time)."""
    svc = cluster.service(task.service)
    gw = layout.task_gw_intf(task) if layout.has_gw_leg(task, cluster) else None
    return dict(cls=SwarmTask, task_name=task.name, node_name=task.node,
                ports=[p.target for p in svc.ports], ip=None, state=state, gw_intf=gw,
                offload=offload)


def is_built(task, cluster: Cluster) -> bool:
    """Is the task a host at all?  Not if it is on no network and has no host-mode port."""
    return bool(task.addresses) or layout.has_gw_leg(task, cluster)


def task_legs(task, cluster: Cluster) -> list[dict]:
    """addLink arguments of a task's legs to its node: ingress first, then
    one per user network, then its docker_gwbridge leg if it publishes a host-mode port."""
    legs = []
    for name, addr in task.addresses.items():
        net = cluster.networks[name]
        leg = {"params1": {"ip": f"{addr}/{net.subnet.prefixlen}"}, "addr1": task.macs[name]}
        if net.ingress:
            leg.update(intfName1=f"{task.host}-eth0", intfName2=layout.task_intf(task))
        else:
            leg.update(intfName1=layout.task_net_intf(task, net),
                       intfName2=layout.net_intf(task, net))
        legs.append(leg)
    if layout.has_gw_leg(task, cluster):
        ip = layout.task_gw_ip(task)
        legs.append({"params1": {"ip": f"{ip}/{layout.GW_PREFIX}"}, "addr1": docker_mac(ip),
                     "intfName1": layout.task_gw_intf(task), "intfName2": layout.gw_intf(task)})
    return legs


class SwarmTopo(Topo):
    """Nodes, tasks, clients and the underlay, all derived from one Cluster."""

    def build(self, nodes: int = 3, replicas: int = 2, stack: str | None = None,
              clients: int = 1, cluster: Cluster | None = None,
              state: RunState | None = None, datapath: str = "auto",
              controller: str = DEFAULT_UNIX_SOCKET, defer_ready: bool = False,
              userspace_tso: bool = False, ingress: str = "mesh"):
        """``userspace_tso``: every node's vswitchd starts with
        ``other_config:userspace-tso-enable=true`` and every leg of a node, task or client
        keeps its checksum offload (so the kernels hand OVS segments of up to 64 KiB).
        ``ingress``: ``mesh`` (the emulated pick in each node's kernel) or ``ipvs`` (Swarm's
        own ingress sandbox with the kernel's IPVS per node, :mod:`swarmmesh.dataplane.ipvs`)."""
        if cluster is None:
            cluster = (Cluster.from_stack(stack, nodes=nodes, clients=clients) if stack
                       else Cluster.quick(nodes=nodes, replicas=replicas, clients=clients))
        if state is None:                      # run by `mn --custom`: we own the records
            state = RunState(f"mn-{os.getpid()}")
            atexit.register(state.clean)
        model = state.dir / "model.json"
        if not model.exists():                 # the Testbed writes it before the controller
            model.write_text(json.dumps({**cluster.to_dict(), "revision": 0}))
        self.cluster, self.state = cluster, state
        self.userspace_tso = userspace_tso
        dp = choose_datapath(datapath)
        self.datapath = dp
        prefix = UNDERLAY_SUBNET.prefixlen
        ul = self.addHost("underlay", cls=Underlay, ip=None, state=state)
        for node in cluster.nodes:
            self.addHost(node.name, cls=SwarmNode, ip=f"{node.underlay_ip}/{prefix}",
                         cluster=cluster, state=state, datapath=dp, controller=controller,
                         offload=userspace_tso, ingress=ingress)
            self.addLink(node.name, ul, intfName1=f"{node.name}-eth0",
                         intfName2=f"ul-{node.name}")
        for client in cluster.clients:
            self.addHost(client.name, cls=SwarmClient, ip=f"{client.underlay_ip}/{prefix}",
                         state=state, offload=userspace_tso)
            self.addLink(client.name, ul, intfName1=f"{client.name}-eth0",
                         intfName2=f"ul-{client.name}")
        for task in cluster.tasks:
            if not is_built(task, cluster):    # no network, no host-mode port: no host
                continue
            self.addHost(task.host, **task_params(task, cluster, state, userspace_tso),
                         defer_ready=defer_ready)
            for leg in task_legs(task, cluster):
                self.addLink(task.host, task.node, **leg)

    def planned_links(self) -> list[str]:
        """Every interface name Mininet will create in the root namespace
        on the way into a host, for cleanup after a kill mid-build."""
        names = []
        for _a, _b, info in self.links(withInfo=True):
            names += [info["intfName1"], info["intfName2"]]
        return names

