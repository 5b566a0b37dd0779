"""One running cluster: controller process + Mininet network, and its teardown.

``Testbed`` is a context manager.  On the way in it checks the machine,
starts the controller, builds the network from the model and waits until
every node's bridge is programmed; on the way out (normal exit, exception,
Ctrl-C or SIGTERM) it stops everything it started and removes its records.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from swarmmesh import agents
from swarmmesh.model import Cluster, Task
from swarmmesh.machine.datapath import choose_datapath
from swarmmesh.testbed import readiness
from swarmmesh.testbed.bounds import BuildFailure
# What a build checks before it starts (re-exported: the CLIs check the machine first).
from swarmmesh.testbed.checks import (REQUIRED, build_bound, check_datapath,  # noqa: F401
                                      check_ingress, check_machine)
from swarmmesh.testbed.errors import TestbedError
from swarmmesh.testbed.forks import ForkServer, forks_enabled
from swarmmesh.testbed.lc import LeastConnections
from swarmmesh.testbed.runtime import RunState, clean_all, stop_popen

_RUN_SEQ = itertools.count(1)          # several testbeds may live in one process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def versions() -> dict[str, str]:
    """Versions of what ran, for summary.json."""
    out = {"python": sys.version.split()[0]}
    for name, cmd in (("ovs", ["ovs-vswitchd", "--version"]), ("kernel", ["uname", "-r"])):
        try:
            out[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.split("\n")[0]
        except OSError:
            out[name] = "unknown"
    for mod in ("mininet.net", "os_ken", "scapy", "matplotlib"):
        try:
            m = __import__(mod, fromlist=["x"])
            out[mod.split(".")[0]] = getattr(m, "VERSION", None) or getattr(m, "__version__", "?")
        except Exception:                                  # noqa: BLE001
            out[mod.split(".")[0]] = "unavailable"
    try:
        from importlib.metadata import version
        out["os_ken"] = version("os-ken")
    except Exception:                                      # noqa: BLE001
        pass
    return out


DATAPATH_LOG = "SWARMMESH_DATAPATH_LOG"


def record_datapath(datapath: str) -> None:
    """Append the datapath a testbed ran on, and the pytest test that built it, to the file
    named by $SWARMMESH_DATAPATH_LOG (set by the test suite, which reports it at its end)."""
    path = os.environ.get(DATAPATH_LOG)
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "-").split(" ")[0]
        with open(path, "a") as f:
            f.write(f"{datapath}\t{test}\n")


class Testbed:
    """A cluster running on Mininet + per-node Open vSwitch + the controller."""

    __test__ = False      # not a pytest test class, despite its name
    engine = "emulated"

    def __new__(cls, *args, engine: str = "emulated", **kwargs):
        """``engine="docker"``: real dockerd nodes instead (:mod:`docker_engine`)."""
        if engine == "docker":
            from swarmmesh.testbed.docker_engine import DockerTestbed
            return DockerTestbed(*args, **kwargs)
        if engine != "emulated":
            raise TestbedError(f"engine: must be emulated or docker, got {engine!r}")
        return super().__new__(cls)

    def __init__(self, cluster: Cluster, run_dir: Path, datapath: str = "auto",
                 progress: Callable[[str], None] = lambda msg: None,
                 build_timeout: float | None = None, servers=None,
                 userspace_tso: bool = False, ingress: str = "mesh",
                 engine: str = "emulated") -> None:
        self.cluster, self.run_dir = cluster, Path(run_dir)
        # "mesh": the emulated pick in each node's kernel; "ipvs": Swarm's own ingress
        # sandbox with the kernel's IPVS on every node (the reference path).
        self.ingress = ingress
        self.userspace_tso = userspace_tso  # every vswitchd with userspace TSO, offload kept
        self.servers = servers      # a testbed.servers.Spread, or None: this machine
        self.requested_datapath = datapath
        self.progress = progress
        # The build's bound (testbed.bounds): given, $SWARMMESH_BUILD_TIMEOUT, or by size.
        self.build_timeout_given = build_timeout
        self.build_timeout = 0.0
        self.state: RunState | None = None
        self.net = None
        self.controller: subprocess.Popen | None = None
        self.datapath = "unknown"
        self._old_term = None
        self._kernel_lock = threading.Lock()
        self._published: dict[int, dict] = {}    # revision -> the model, until the kernels have it
        self._kernel_revision = 0                # the revision every node's nft table follows
        self.lc = None                           # the least-connections loop, if a service
        # Told of every task started (``task_started``) or about to stop (``task_stopping``)
        # at run time, e.g. an external balancer's pool that follows the tasks (extlb).
        self.task_watchers: list = []

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self) -> "Testbed":
        check_machine()
        if self.ingress != "mesh":
            check_ingress(self.ingress, self.cluster, self.servers)
        self.build_timeout = build_bound(self.cluster, self.build_timeout_given)
        if self.servers is None:       # (on several servers, each checks its own)
            check_datapath(choose_datapath(self.requested_datapath))
        clean_all()                        # what a killed earlier run left behind
        self._old_term = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            self._start()
        except BuildFailure as e:
            self.stop()
            raise TestbedError(str(e)) from None
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        from mininet.log import setLogLevel
        from swarmmesh.testbed import parallel
        from swarmmesh.testbed.links import PairIntf, PairLink
        from swarmmesh.testbed.topology import SwarmTopo

        setLogLevel(os.environ.get("SWARMMESH_MN_LOG", "warning"))
        workers = parallel.workers()            # a bad value fails before anything is built
        use_forks = self.servers is None and forks_enabled()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state = RunState(f"run-{os.getpid()}-{next(_RUN_SEQ)}")
        deadline = self.state.deadline = time.monotonic() + self.build_timeout
        model = self.run_dir / "model.json"
        model.write_text(json.dumps(self.cluster.to_dict(), indent=1))
        # The live model: the controller and the nodes' DNS follow this file.
        self.model_path = self.state.dir / "model.json"
        self.revision = 0
        self.model_path.write_text(json.dumps({**self.cluster.to_dict(), "revision": 0}))
        if use_forks:
            self.progress("starting the fork server")
            self.state.forks = ForkServer(self.state).start()
        sock = str(self.state.dir / "openflow.sock")
        self.progress("starting controller")
        self.controller = self.start_controller(sock)
        if self.servers is not None:
            self.progress("checking the other servers, starting their relays")
            self.servers.start(self)
        self.progress("building network")
        topo = (SwarmTopo if self.servers is None else self.servers.topo_class)(
                         cluster=self.cluster, state=self.state,
                         datapath=self.requested_datapath, controller=sock, defer_ready=True,
                         userspace_tso=self.userspace_tso, ingress=self.ingress)
        self.datapath = topo.datapath
        self.state.register_links(topo.planned_links())
        local = self.servers is None
        self.net = parallel.mininet_class(workers, build=local)(
            topo=topo, controller=None, build=False, cleanup=False, autoSetMacs=False,
            waitConnected=False,
            # (both: Mininet's addLink gives every link its ``intf``, the class's default)
            **({"link": PairLink, "intf": PairIntf} if local else {}))
        self.net.build()
        if self.servers is not None:
            self.servers.connect(self)        # the tunnels between the servers' underlays
        self.net.start()
        self.progress("waiting for the task servers")
        readiness.wait_task_servers(self)
        self.progress("waiting for the controller to program every node")
        readiness.wait_programmed(self, deadline)
        readiness.wait_dns(self, deadline)
        self.state.deadline = None          # from here on, commands wait as long as they take
        self.lc = LeastConnections(self).__enter__()   # a no-op without an lc service
        record_datapath(self.datapath)

    def start_controller(self, sock: str) -> subprocess.Popen:
        ctl_dir = self.state.dir / "ctl"
        port = _free_port()
        log = self.run_dir / "controller.log"      # appended to by a restarted controller
        cmd = [sys.executable, "-m", "swarmmesh.control.app", "--model", str(self.model_path),
               "--port", str(port), "--unix-socket", sock, "--state-dir", str(ctl_dir),
               "--log-file", str(log)]
        proc = subprocess.Popen(cmd, env=agents.python_env(),
                                stdout=subprocess.DEVNULL, stderr=open(self.run_dir / "controller.err", "a"),
                                start_new_session=True)
        self.state.register(proc.pid, "swarmmesh.control.app")
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = (self.run_dir / "controller.err").read_text()[-2000:]
                raise TestbedError(f"controller did not start: {err}")
            time.sleep(0.05)
        return proc

    def wait_programmed(self) -> None:
        """Until the controller has programmed every node (within the build's bound)."""
        readiness.wait_programmed(self, time.monotonic() + self.build_timeout)

    def stop(self) -> None:
        if self.lc is not None:
            self.lc.__exit__(None, None, None)
            self.lc = None
        if self.net is not None:
            try:
                # Switches first, so that no vswitchd sees its ports vanish; every
                # process is signalled before any is waited for.
                for host in self.net.hosts:
                    for ask in ("signal_ovs", "stop_server", "stop_dns"):
                        if hasattr(host, ask):
                            getattr(host, ask)()
                for host in self.net.hosts:
                    if hasattr(host, "stop_ovs"):
                        host.stop_ovs()
                # A host's shell that died (killed from outside, or by the build's bound)
                # is not waited on; its namespace went with it, and the recorded PIDs
                # are cleaned below.  The others stop as usual.
                dead = [h.name for h in self.net.hosts if h.shell is None or
                        h.shell.poll() is not None]
                if dead:
                    print(f"warning: the shells of {', '.join(dead)} died; cleaning by "
                          "record", file=sys.stderr)
                self._stop_hosts()
            except Exception as e:                          # noqa: BLE001
                print(f"warning: network stop: {e}", file=sys.stderr)
            self.net = None
        if self.state is not None and self.state.forks is not None:
            self.state.forks.stop()
            self.state.forks = None
        stop_popen(self.controller, timeout=5)
        self.controller = None
        if self.servers is not None and self.state is not None:
            self.servers.stop(self)
        if self.state is not None:
            self._keep_logs()
            self.state.clean()          # anything the steps above missed
            self.state = None
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None

    def _stop_hosts(self) -> None:
        """Mininet's ``net.stop()`` without deleting the links one by one: every
        interface lives in a host's namespace and goes with it when its last process
        exits (the shells are the last), which takes one signal per host."""
        for host in self.net.hosts:
            if host.shell is not None and host.shell.poll() is None:
                host.terminate()
            elif host.shell is not None:        # dead (and reaped): close its pty only
                host.cleanup()

    def _keep_logs(self) -> None:
        """Copy the nodes' OVS logs and configs into the run folder."""
        for log in [*self.state.dir.glob("*/ovs/*.log"), *self.state.dir.glob("*/dns.log")]:
            node = log.parent.name if log.name == "dns.log" else log.parent.parent.name
            dst = self.run_dir / "logs" / f"{node}-{log.name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, dst)

    # -- the cluster at run time ----------------------------------------------
    def publish(self) -> int:
        """Write ``self.cluster`` as the live model, one revision up; the
        controller and every node's DNS follow the file, and every node's kernel
        (its nftables table: the round-robin pick, host-mode ports) follows it in
        :meth:`wait_applied`, once every switch has it.  Returns the revision."""
        with self._kernel_lock:
            self.revision += 1
            model = {**self.cluster.to_dict(), "revision": self.revision}
            self._published[self.revision] = model
            text = json.dumps(model)
            tmp = self.model_path.with_name(".model.json.tmp")
            tmp.write_text(text)
            tmp.replace(self.model_path)
            if self.servers is not None:       # the other servers' nodes follow theirs
                self.servers.publish(text)
            return self.revision

    def sync_kernels(self, revision: int) -> list[str]:
        """Every node whose nftables table differs from revision ``revision`` of the model
        reloads it (one transaction each), unless a later revision is loaded already;
        returns those nodes.  Called once the switches have the revision, so that the
        kernel never picks a task whose flows are not there yet."""
        with self._kernel_lock:
            if revision <= self._kernel_revision or revision not in self._published:
                return []
            cluster = Cluster.from_dict(self._published[revision])
            for rev in [r for r in self._published if r <= revision]:
                del self._published[rev]
            self._kernel_revision = revision
            return [n.name for n in cluster.nodes if self.net.get(n.name).sync_nft(cluster)]

    def wait_applied(self, revision: int, timeout: float = 15.0) -> float:
        """Until every switch has applied ``revision`` (after a barrier), then every
        node's kernel follows it (:meth:`sync_kernels`); returns the seconds waited."""
        t0 = time.monotonic()
        ready = self.state.dir / "ctl" / "ready"
        while True:
            late = []
            for n in self.cluster.nodes:
                try:
                    if int((ready / n.name).read_text()) >= revision:
                        continue
                except (OSError, ValueError):
                    pass
                late.append(n.name)
            if not late:
                self.sync_kernels(revision)
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise TestbedError(f"revision {revision} not applied after {timeout:.0f}s on "
                                   f"{late}; see controller.log")
            time.sleep(0.01)

    def start_task(self, task: Task) -> None:
        """Build a task added to ``self.cluster`` at run time: its host, its
        legs, its bridge ports, its server; every node's FDB learns it, and its
        node binds its host-mode ports once the server listens."""
        from swarmmesh.testbed.topology import task_legs, task_params
        node = self.net.get(task.node)
        params = task_params(task, self.cluster, self.state, self.userspace_tso, node.mtu)
        if self.servers is not None:            # on its node's server
            params = self.servers.host_opts(task.host, params)
        host = self.net.addHost(task.host, **params)
        legs = task_legs(task, self.cluster)
        self.state.register_links([n for leg in legs for n in (leg["intfName1"], leg["intfName2"])])
        for leg in legs:
            self.net.addLink(host, node, **leg)
        node.attach_task(task, self.cluster)
        host.configDefault()
        self.sync_fdb()
        for w in self.task_watchers:
            w.task_started(task)
        # The node binds its host-mode ports, and every kernel may pick the task, once
        # the model that says so is published and the switches have it (wait_applied).

    def stop_task(self, task: Task) -> None:
        """Stop a task's container: its server, its host and its legs (the kernels
        follow the model that says it is gone, once published)."""
        for w in self.task_watchers:
            w.task_stopping(task)
        host = self.net.get(task.host) if task.host in self.net else None
        node = self.net.get(task.node)
        node.detach_task(task, self.cluster)
        if host is not None:
            for link in [l for l in self.net.links if host in (l.intf1.node, l.intf2.node)]:
                self.net.delLink(link)          # while the host's shell still runs
            self.net.delHost(host)

    def flush_conntrack(self, task: Task) -> None:
        """Every node forgets the connections to a task that was removed."""
        addrs = [str(a) for a in task.addresses.values()]
        for n in self.cluster.nodes:
            self.net.get(n.name).flush_conntrack(addrs)

    def sync_fdb(self) -> None:
        for n in self.cluster.nodes:
            self.net.get(n.name).sync_fdb(self.cluster)

    def kill_app(self, task: Task, how: str) -> None:
        """The task's application dies inside its container: ``hang`` (SIGUSR2: the task
        server closes every socket, connections are refused) or ``unhealthy`` (it still
        answers, and fails its health check)."""
        from swarmmesh.testbed.topology import PRIVATE_PORT   # Mininet only once running
        host = self.net.get(task.host)
        if how == "hang":                       # on the task's own server
            host.signal_server(signal.SIGUSR2)
        else:
            host.cmd(f"curl -s -m 2 'http://127.0.0.1:{PRIVATE_PORT}/control?mode=unhealthy' "
                     ">/dev/null")

    def cut_node(self, name: str) -> None:
        """The node loses power: its underlay link goes down, it answers nothing."""
        self.net.get(name).cmd(f"ip link set {name}-eth0 down")

    def restore_node(self, name: str) -> None:
        """The node's underlay link comes back up."""
        self.net.get(name).cmd(f"ip link set {name}-eth0 up")

    def task_netns_pid(self, task: Task) -> int | None:
        """A process in the task's network namespace (where its health probe runs)."""
        return self.net.get(task.host).pid if task.host in self.net else None

    def kill_controller(self) -> None:
        """SIGKILL the controller (a crash): the switches keep their flows."""
        self.controller.kill()
        self.controller.wait()

    def restart_controller(self) -> None:
        """Start a new controller process; it reads each switch's table back
        and sends only the difference.  Returns once every node is in sync."""
        if self.controller is not None and self.controller.poll() is None:
            self.kill_controller()
        sock = self.state.dir / "openflow.sock"
        sock.unlink(missing_ok=True)
        shutil.rmtree(self.state.dir / "ctl" / "ready", ignore_errors=True)
        self.controller = self.start_controller(str(sock))
        self.wait_programmed()

    # -- access --------------------------------------------------------------
    def host(self, name: str):
        return self.net.get(name)

    def task_host(self, task: Task):
        return self.net.get(task.host)

    def controller_log(self) -> str:
        p = self.run_dir / "controller.log"
        return p.read_text() if p.exists() else ""

    def run_in(self, host: str, args: list[str], timeout: float = 120) -> str:
        """Run a Python module of ours in a host; return its stdout."""
        from swarmmesh.testbed.agentrun import run_in
        return run_in(self.net.get(host), self.state, args, timeout)


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)
