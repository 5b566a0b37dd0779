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
from swarmmesh.dataplane import kernel, layout, nodeplan, rules
from swarmmesh.dataplane.mtu import SWARM, Mtu
from swarmmesh.dataplane.nodeplan import is_built, tx_off_cmd  # noqa: F401  (re-exported)
from swarmmesh.model import Cluster, UNDERLAY_SUBNET, docker_mac
from swarmmesh.testbed.runtime import RunState, kill_pid, signal_pid
from swarmmesh.machine.datapath import choose_datapath
from swarmmesh.testbed.shell import LINE_MAX, Quiet as _Quiet, shell_lines, vsctl_batches  # noqa: F401

PRIVATE_PORT = 9999          # every task also listens here; it is never published
TASKSERVER = "swarmmesh.agents.taskserver"
APP_PORT = 80                # every task's application port (the usual target port)
DNS = "swarmmesh.agents.dns"
VXLAN_PORT = nodeplan.VXLAN_PORT
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class _Recorded(Host):
    """A host whose shell is written down in the run state as it starts.

    Its files and processes are on this machine: the methods below (records, small state
    files, pidfiles, signals) work on this machine's file system and PID space.  A host
    placed on another server (``testbed.servers.RemotePlaced``, in front in the MRO) does
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
        self.defer_ready = defer_ready   # start the server, let the builder wait for it
        self.server = None
        super().__init__(name, **params)

    def config(self, **params):
        r = super().config(**params)
        cmds = nodeplan.task_cmds([i.name for i in self.intfList() if i.name != "lo"],
                                  self.gw_intf, self.mtu, self.offload)
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
        if self.ingress == "ipvs":             # a real sandbox between gwbr and the bridge
            from swarmmesh.testbed.sandbox import IngressSandbox
            self.sandbox = IngressSandbox(self)
            self.sandbox.create()
        plan = self.plan()
        self.batch_file(nodeplan.FDB_FILE, list(plan.fdb))
        self.run_all(list(plan.kernel) + list(plan.gw_legs))
        if self.sandbox is not None:
            self.sandbox.configure(self.cluster)
        self.sync_nft(self.cluster)
        self._start_ovs(plan)
        self._start_dns()
        return r

    def plan(self) -> nodeplan.NodePlan:
        """This node's set-up (:func:`nodeplan.node_plan`), with its own paths."""
        ovs = self.state.dir / self.name / "ovs"
        return nodeplan.node_plan(
            self.cluster, self.name, self.mtu, ingress=self.ingress, offload=self.offload,
            datapath=self.datapath, fdb_path=str(self.state.dir / self.name / nodeplan.FDB_FILE),
            controller=f"{ovs}/controller.sock")

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
        self.run_all(nodeplan.gw_leg_cmds(task, self.offload))

    def _start_ovs(self, plan: nodeplan.NodePlan):
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
        # vswitchd only dials unix sockets inside its own run dir: link to the relay.
        link = self.file_cmds(links={d / "controller.sock": self.controller_target})
        # One transaction per node unless its command line would be too long for the shell.
        self.run_all(link + vsctl_batches(list(plan.bridge),
                                          f"{env} ovs-vsctl --db=unix:{d}/db.sock"))

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
        self.run_all(nodeplan.attach_cmds(task, cluster, self.mtu, self.offload))
        for port in nodeplan.attach_ports(task, cluster):
            self.ovs_vsctl(port)

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


def task_params(task, cluster: Cluster, state: RunState | None, offload: bool = False,
                mtu: Mtu = SWARM) -> dict:
    """Mininet host parameters of a task (for addHost, at build or run time)."""
    svc = cluster.service(task.service)
    gw = layout.task_gw_intf(task) if layout.has_gw_leg(task, cluster) else None
    return dict(cls=SwarmTask, task_name=task.name, node_name=task.node,
                ports=[p.target for p in svc.ports], ip=None, state=state, gw_intf=gw,
                offload=offload, mtu=mtu)


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
              userspace_tso: bool = False, ingress: str = "mesh", mtu: Mtu = SWARM):
        """``userspace_tso``: every node's vswitchd starts with
        ``other_config:userspace-tso-enable=true`` and every leg of a node, task or client
        keeps its checksum offload (so the kernels hand OVS segments of up to 64 KiB).
        ``ingress``: ``mesh`` (the emulated pick in each node's kernel) or ``ipvs`` (Swarm's
        own ingress sandbox with the kernel's IPVS per node, :mod:`swarmmesh.dataplane.ipvs`).
        ``mtu``: every leg's (underlay and overlay), Swarm's 1500/1450 unless the servers'
        plan says otherwise."""
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
        self.mtu = mtu
        dp = choose_datapath(datapath)
        self.datapath = dp
        prefix = UNDERLAY_SUBNET.prefixlen
        ul = self.addHost("underlay", cls=Underlay, ip=None, state=state, mtu=mtu)
        for node in cluster.nodes:
            self.addHost(node.name, cls=SwarmNode, ip=f"{node.underlay_ip}/{prefix}",
                         cluster=cluster, state=state, datapath=dp, controller=controller,
                         offload=userspace_tso, ingress=ingress, mtu=mtu)
            self.addLink(node.name, ul, intfName1=f"{node.name}-eth0",
                         intfName2=f"ul-{node.name}")
        for client in cluster.clients:
            self.addHost(client.name, cls=SwarmClient, ip=f"{client.underlay_ip}/{prefix}",
                         state=state, offload=userspace_tso, mtu=mtu)
            self.addLink(client.name, ul, intfName1=f"{client.name}-eth0",
                         intfName2=f"ul-{client.name}")
        for task in cluster.tasks:
            if not is_built(task, cluster):    # no network, no host-mode port: no host
                continue
            self.addHost(task.host, **task_params(task, cluster, state, userspace_tso, mtu),
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

