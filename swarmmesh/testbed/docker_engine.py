"""``Testbed(engine="docker")``: real Docker Swarm nodes inside the emulated network.

The same underlay (a Linux bridge in its own namespace), the same clients, the same address
plan as the emulated engine; each node is a Mininet host in which a real ``dockerd``
(Debian's docker.io, moby 20.10) runs, with its own containerd, data root, exec root, pid
file, socket, cgroup parent, /etc/docker and host name.  No switch, no controller: the
underlay is plain L2, and everything above it (overlay VXLAN, ingress sandbox, IPVS, the
embedded DNS) is Swarm's own.  The swarm is made with ``swarm init`` and ``join`` over the
underlay; the services of the model go in with ``docker service create``; once they
converge, where Swarm placed each task (node, address, slot) is read back into
``self.cluster``, as are the ingress subnet and each node's ingress sandbox address.

Cleanup (here, and ``swarmmesh clean`` after a killed run): :mod:`docker_clean`.
The machine's own Docker (its daemon, /var/lib/docker, /run/docker.sock) is never used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from swarmmesh.machine import dockerd
from swarmmesh.model import INGRESS_NETWORK, INGRESS_SUBNET, Cluster, UNDERLAY_SUBNET
from swarmmesh.testbed import agentrun, docker_clean, docker_image, docker_plan as plan
from swarmmesh.testbed.runtime import RunState, clean_all
from swarmmesh.testbed.errors import TestbedError

PRIVATE_PORT = 9999          # as the emulated task server's control port (topology.py)
APP_PORT = 80
START_TIMEOUT = 120.0        # a dockerd under TCG answers after 13-17 s


def check_machine() -> None:
    """Root, Mininet's mnexec and Python package (no Open vSwitch: no switch here)."""
    import shutil
    if os.geteuid() != 0:
        raise TestbedError("the testbed builds namespaces and runs dockerd: run it as root")
    if not shutil.which("mnexec"):
        raise TestbedError("mnexec not found: `sudo make setup` installs Mininet")
    try:
        import mininet.net  # noqa: F401
    except ImportError as e:
        raise TestbedError(f"Mininet is not importable from {sys.executable}; use the venv "
                           "made by `make setup`") from e


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


class DockerError(TestbedError):
    """A docker command failed; the message names the node and the command."""


class DockerTestbed:
    """A cluster of real dockerd nodes on Mininet hosts (see the module doc)."""

    __test__ = False
    engine = "docker"
    datapath = "docker"          # no OVS: what summary.json records as the datapath

    def __init__(self, cluster: Cluster, run_dir: Path, datapath: str = "auto",
                 progress: Callable[[str], None] = lambda msg: None,
                 ready_timeout: float = 240.0, servers=None, userspace_tso: bool = False,
                 ingress: str = "mesh", image_tar: Path | None = None,
                 require_ipvs: bool = True, converge: bool = True,
                 build_timeout: float | None = None) -> None:
        if servers is not None:
            raise TestbedError("--engine docker: runs on one server only (--servers)")
        if ingress != "mesh":
            raise TestbedError("--engine docker: the ingress is Swarm's own (--ingress)")
        if cluster.networks[INGRESS_NETWORK].subnet != INGRESS_SUBNET:
            raise TestbedError(f"--engine docker: the ingress network is Docker's own "
                               f"{INGRESS_SUBNET} (--ingress-subnet)")
        self.cluster, self.run_dir = cluster, Path(run_dir)
        # ``build_timeout`` (the emulated engine's bound, --build-timeout) replaces the wait
        # for the services to converge when given.
        self.progress = progress
        self.ready_timeout = ready_timeout if build_timeout is None else build_timeout
        self.image_tar, self.require_ipvs, self.converge = image_tar, require_ipvs, converge
        self.state: RunState | None = None
        self.net = None
        self.daemons: dict[str, plan.DaemonPaths] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.image = docker_image.IMAGE
        self.version = "unknown"
        self.timings: dict[str, float] = {}
        self._old_term = None

    # -- lifecycle ------------------------------------------------------------
    def __enter__(self) -> "DockerTestbed":
        check_machine()
        why = dockerd.engine_missing()
        if why and (self.require_ipvs or "ip_vs" not in why):
            raise TestbedError(f"--engine docker: {why}")
        clean_all()
        import signal
        self._old_term = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        setLogLevel(os.environ.get("SWARMMESH_MN_LOG", "warning"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state = RunState(f"run-{os.getpid()}-docker-{int(time.time() * 1000) % 10**8}")
        (self.run_dir / "model.json").write_text(json.dumps(self.cluster.to_dict(), indent=1))
        docker_clean.prepare(self.state.dir)          # ip_forward, the data folder, recorded
        self.progress("building network")
        topo = DockerTopo(cluster=self.cluster, state=self.state)
        self.state.register_links(topo.planned_links())
        self.net = Mininet(topo=topo, controller=None, build=False, cleanup=False,
                           autoSetMacs=False, waitConnected=False)
        self.net.build()
        self.net.start()
        self.progress("starting one dockerd per node")
        self._timed("dockerd", self.start_daemons)
        self.version = self.docker(self.cluster.nodes[0].name, "version", "--format",
                                   "{{.Server.Version}}").strip()
        self.progress("making the swarm (init, join)")
        self._timed("swarm", self.make_swarm)
        self.progress("loading the task image on every node")
        self._timed("image", self.load_image)
        if not self.converge:
            return
        self.progress("creating the services")
        self._timed("services", self.create_services)
        self.progress("waiting for the services to converge")
        self._timed("converge", self.wait_converged)
        self.read_back()

    def _timed(self, what: str, fn: Callable[[], None]) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[what] = round(time.monotonic() - t0, 2)

    def stop(self) -> None:
        if self.state is not None:
            self._keep_logs()
            docker_clean.stop_daemons(self.state.dir)   # containers, shims, containerd, dockerd
        if self.net is not None:
            for host in self.net.hosts:
                host.terminate()
            self.net = None
        if self.state is not None:
            self.state.clean()                          # + data roots, cgroups, ip_forward
            self.state = None
        if self._old_term is not None:
            import signal
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None

    def _keep_logs(self) -> None:
        for node, p in self.daemons.items():
            log = p.run / "dockerd.log"
            if log.exists():
                dst = self.run_dir / "logs" / f"{node}-dockerd.log"
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(log.read_bytes()[-2_000_000:])

    # -- the daemons ------------------------------------------------------------
    def start_daemons(self) -> None:
        data_root = docker_clean.data_root(self.state.dir)
        for node in self.cluster.nodes:
            p = plan.daemon_paths(self.state.dir, data_root, self.state.dir.name, node.name)
            p.etc.mkdir(parents=True, exist_ok=True)
            p.config.write_text("{}\n")
            p.client_config.mkdir(parents=True, exist_ok=True)
            self.daemons[node.name] = p
            env = {**os.environ, **plan.SERVICE_ENV}
            log = open(p.run / "dockerd.log", "ab")
            proc = self.net.get(node.name).popen(
                ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                 "sh", "-c", plan.daemon_script(p)],
                env=env, stdout=log, stderr=subprocess.STDOUT)
            self.procs[node.name] = proc
            self.state.register(proc.pid, str(p.run))   # exec'd into dockerd: its argv has it
        deadline = time.monotonic() + START_TIMEOUT
        for name, p in self.daemons.items():
            while True:
                r = subprocess.run(plan.client_argv(p, "info", "--format", "{{.ID}}"),
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    break
                if self.procs[name].poll() is not None or time.monotonic() > deadline:
                    tail = (p.run / "dockerd.log").read_text(errors="replace")[-1500:]
                    raise TestbedError(f"{name}: dockerd did not answer: {tail}")
                time.sleep(0.2)

    def docker(self, node: str, *args: str, timeout: float = 120, check: bool = True) -> str:
        """Run the docker client against ``node``'s dockerd; its stdout."""
        argv = plan.client_argv(self.daemons[node], *args)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise DockerError(f"{node}: docker {' '.join(args)}: {r.stderr.strip()[-800:]}")
        return r.stdout

    def api(self, node: str, path: str, timeout: float = 30) -> str:
        """GET ``path`` of ``node``'s Engine API on its socket (what the docker client asks,
        without a client process: a read in milliseconds where the client takes ~1 s
        under TCG); the body."""
        import http.client
        import socket
        sock_path = str(self.daemons[node].sock)

        class _Unix(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(sock_path)

        conn = _Unix("localhost", timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode()
        except http.client.HTTPException as e:
            raise DockerError(f"{node}: GET {path}: {e!r}") from e
        finally:
            conn.close()
        if r.status != 200:
            raise DockerError(f"{node}: GET {path}: {r.status} {body.strip()[-400:]}")
        return body

    # -- the swarm ----------------------------------------------------------------
    @property
    def manager(self) -> str:
        return plan.managers(self.cluster)[0]

    def make_swarm(self) -> None:
        self.docker(self.manager, *plan.init_args(self.cluster))
        tokens = {role: self.docker(self.manager, "swarm", "join-token", "-q", role).strip()
                  for role in ("worker", "manager")}
        for node in self.cluster.nodes:
            if node.name != self.manager:
                role = "manager" if node.name in plan.managers(self.cluster) else "worker"
                self.docker(node.name, *plan.join_args(self.cluster, node.name, tokens[role]))
        for node in self.cluster.nodes:
            if node.labels:
                args = [a for k, v in node.labels.items() for a in ("--label-add", f"{k}={v}")]
                self.docker(self.manager, "node", "update", *args, node.name)
            if node.availability != "active":
                self.docker(self.manager, "node", "update", "--availability",
                            node.availability, node.name)

    def load_image(self) -> None:
        """The project's task image (or the user's ``--image-tar``) on every node."""
        if self.image_tar is not None:
            loaded: list[str] = []
            self._on_every_node(lambda n: loaded.append(
                self.docker(n, "load", "-i", str(self.image_tar), timeout=600)))
            self.image = plan.loaded_image(loaded[0], str(self.image_tar))
            return
        tar = docker_image.build_rootfs(self.state.dir / "docker" / "taskserver-rootfs.tar")
        changes = [a for c in docker_image.image_changes(PRIVATE_PORT) for a in ("--change", c)]
        self._on_every_node(lambda n: self.docker(n, "import", *changes, str(tar), self.image,
                                                  timeout=600))

    def _on_every_node(self, fn: Callable[[str], object]) -> None:
        with ThreadPoolExecutor(max_workers=len(self.cluster.nodes)) as pool:
            list(pool.map(fn, [n.name for n in self.cluster.nodes]))

    def create_services(self) -> None:
        for net in self.cluster.networks.values():
            if not net.ingress:
                self.docker(self.manager, *plan.network_args(net))
        for svc in self.cluster.services.values():
            self.docker(self.manager, *self.service_args(svc))

    def service_args(self, svc) -> list[str]:
        ours = self.image_tar is None
        image = self.image
        command = (docker_image.image_args([p.target for p in svc.ports], PRIVATE_PORT, APP_PORT)
                   if ours else [])
        return plan.service_args(svc, image, command,
                                 docker_image.health_cmd(PRIVATE_PORT) if ours else None,
                                 docker_image.TASK_ENV if ours else {})

    # -- what Swarm made -------------------------------------------------------------
    def swarm_tasks(self) -> list[plan.SwarmTask]:
        services = {s["ID"]: s["Name"] for s in plan.parse_json_lines(
            self.docker(self.manager, "service", "ls", "--format", "{{json .}}"))}
        ids = self.docker(self.manager, "service", "ps", "-q", "--no-trunc", *services.values()
                          ).split() if services else []
        if not ids:
            return []
        full = {s: self.docker(self.manager, "service", "inspect", "--format", "{{.ID}}", s
                               ).strip() for s in services.values()}
        names = {v: k for k, v in full.items()}
        # a task Swarm pruned between `service ps` and `inspect` is missing: the rest count
        return plan.parse_tasks(self.docker(self.manager, "inspect", *sorted(set(ids)),
                                            check=False) or "[]", names)

    def wait_converged(self, timeout: float | None = None) -> float:
        """Until every service runs its replicas (healthy, where it has a check); seconds."""
        t0 = time.monotonic()
        deadline = t0 + (timeout or self.ready_timeout)
        while True:
            tasks = plan.running(self.swarm_tasks())
            have = {}
            for t in tasks:
                have[t.service] = have.get(t.service, 0) + 1
            want = {s.name: (len(self.cluster.nodes) if s.mode == "global" else s.replicas)
                    for s in self.cluster.services.values()}
            if all(have.get(k, 0) >= v for k, v in want.items()) and self._healthy(tasks):
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                raise TestbedError(f"services not converged after {timeout or self.ready_timeout:.0f}"
                                   f" s: running {have}, want {want}; see logs/*-dockerd.log")
            time.sleep(1.0)

    def _healthy(self, tasks: list[plan.SwarmTask]) -> bool:
        """Every running task with a health check has passed it (Swarm's own gate)."""
        checked = [t for t in tasks
                   if (hc := self.cluster.service(t.service).healthcheck) and hc.active]
        if not checked:
            return True
        node_of = plan.node_ids(self.docker(self.manager, "node", "ls", "--format", "{{json .}}"))
        for t in checked:
            if not t.container:
                return False
            state = self.docker(node_of.get(t.node_id, self.manager), "inspect", "--format",
                                "{{.State.Health.Status}}", t.container, check=False).strip()
            if state != "healthy":
                return False
        return True

    def read_back(self) -> Cluster:
        """``self.cluster`` as Swarm made it (tasks, nodes' ingress sandboxes), in model.json."""
        nodes = plan.node_ids(self.docker(self.manager, "node", "ls", "--format", "{{json .}}"))
        subnet, sandboxes = "", {}
        deadline = time.monotonic() + 60
        for n in self.cluster.nodes:
            while True:
                subnet, sbox = plan.ingress_view(self.docker(n.name, "network", "inspect",
                                                             "ingress"))
                if sbox is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if sbox is not None:
                sandboxes[n.name] = sbox
        self.cluster = plan.read_back(self.cluster, self.swarm_tasks(), nodes, subnet, sandboxes)
        (self.run_dir / "model.json").write_text(json.dumps(self.cluster.to_dict(), indent=1))
        return self.cluster

    def summary(self) -> dict:
        """``engines.docker`` of summary.json."""
        return {"version": self.version, "timings_s": dict(self.timings),
                "image": self.image if self.image_tar is None else str(self.image_tar),
                "placement": {t.name: t.node for t in self.cluster.tasks}}

    # -- access, as the emulated Testbed's ---------------------------------------------
    def host(self, name: str):
        return self.net.get(name)

    def run_in(self, host: str, args: list[str], timeout: float = 120) -> str:
        """Run a Python module of ours in a host (a client, a node); its stdout."""
        return agentrun.run_in(self.net.get(host), self.state, args, timeout)

    def container_of(self, task: str) -> tuple[str, str]:
        """(node, container ID) of a running task, by its model name (``app.1``)."""
        ids = plan.node_ids(self.docker(self.manager, "node", "ls", "--format", "{{json .}}"))
        for t in plan.running(self.swarm_tasks()):
            if f"{t.service}.{t.slot}" == task and t.container:
                return ids.get(t.node_id, t.node_id), t.container
        raise TestbedError(f"task {task}: not running (docker service ps)")


class DockerTopo:
    """The underlay bridge, one host per node (its dockerd's network namespace), the
    clients: the emulated topology's addresses, without switches, tasks or controller."""

    def __new__(cls, cluster: Cluster, state: RunState):
        from mininet.topo import Topo
        from swarmmesh.testbed.topology import SwarmClient, Underlay, _Recorded

        class _Topo(Topo):
            def build(self):
                prefix = UNDERLAY_SUBNET.prefixlen
                ul = self.addHost("underlay", cls=Underlay, ip=None, state=state)
                for node in cluster.nodes:
                    self.addHost(node.name, cls=_Recorded, ip=f"{node.underlay_ip}/{prefix}",
                                 state=state)
                    self.addLink(node.name, ul, intfName1=f"{node.name}-eth0",
                                 intfName2=f"ul-{node.name}")
                for client in cluster.clients:
                    self.addHost(client.name, cls=SwarmClient,
                                 ip=f"{client.underlay_ip}/{prefix}", state=state, offload=True)
                    self.addLink(client.name, ul, intfName1=f"{client.name}-eth0",
                                 intfName2=f"ul-{client.name}")

            def planned_links(self) -> list[str]:
                return [n for _a, _b, i in self.links(withInfo=True)
                        for n in (i["intfName1"], i["intfName2"])]

        return _Topo()


