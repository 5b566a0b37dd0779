"""A swarm node of the testbed: it runs its set-up plan (``dataplane.nodeplan``: kernel
legs, VXLAN devices and FDB, MTUs, the bridge's ports), its nftables table (Swarm's
DOCKER-INGRESS chain and host-mode ports, ``dataplane.kernel``), its own ``ovsdb-server``
and ``ovs-vswitchd`` with bridge ``br-ingress`` (programmed by the controller to act as
the ingress sandbox), and its embedded DNS server; and it plugs tasks in and out at run
time."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from swarmmesh import agents
from swarmmesh.control.relay import DEFAULT_UNIX_SOCKET
from swarmmesh.dataplane import kernel, layout, nodeplan, rules
from swarmmesh.model import Cluster
from swarmmesh.testbed.bounds import BuildFailure
from swarmmesh.testbed.forks import ForkServerError
from swarmmesh.testbed.hosts import _Recorded
from swarmmesh.testbed.runtime import kill_pid, signal_pid
from swarmmesh.testbed.shell import Quiet as _Quiet, vsctl_batches


DNS = "swarmmesh.agents.dns"


VXLAN_PORT = nodeplan.VXLAN_PORT


OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


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
        self.link_cmds: list[str] | None = []  # its legs' (links.PairIntf), until config
        super().__init__(name, **params)

    # -- configuration ---------------------------------------------------
    def config(self, **params):
        legs, self.link_cmds = self.link_cmds or [], None
        self.run_all(legs)                     # its legs up, as the links left them
        r = super().config(**params)
        if self.ingress == "ipvs":             # a real sandbox between gwbr and the bridge
            from swarmmesh.testbed.sandbox import IngressSandbox
            self.sandbox = IngressSandbox(self)
            self.sandbox.create()
        plan = self.plan()
        self.batch_file(nodeplan.FDB_FILE, list(plan.fdb))
        self.run_setup(list(plan.kernel) + list(plan.gw_legs))
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
        args = ["--node", self.name, "--state-dir", str(self.state.dir)]
        forks = None if self.remote else getattr(self.state, "forks", None)
        if forks is not None:                 # a fork of the machine's one agent Python
            try:
                self.dns = forks.spawn(self.pid, args, program="dns", output=log.fileno())
            except ForkServerError as e:
                raise BuildFailure(self.name, "embedded DNS",
                                   f"embedded DNS {e.refusal or e}") from None
            finally:
                log.close()
            return
        # ``-S``: the standard library and swarmmesh (PYTHONPATH) are all it imports; no
        # site start-up (about 65 ms of a node's 180 ms start here, certifi's .pth among it).
        self.dns = self.popen([sys.executable, "-S", "-m", "swarmmesh.agents.dns", *args],
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
        node's kernel picked the task and NATed the connection (ingress and
        VIPs alike): its entries whose reply comes from the task."""
        for ip in addresses:
            self.cmd(f"conntrack -D --reply-src {ip} >/dev/null 2>&1")

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
