"""``--engine docker``, the pure part: what each node's dockerd and the docker client are
told (command lines from the model), and what Swarm says back (``service ps``, task and
network ``inspect``) turned into the model's tasks and addresses.  No I/O here; the engine
(:mod:`swarmmesh.testbed.docker_engine`) runs these commands and feeds their output in.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from swarmmesh.model import INGRESS_NETWORK, Cluster, InvalidConfigError, Network, Service, Task
from swarmmesh.model.objects import docker_mac
from swarmmesh.model.stack import DEFAULT_NETWORK

SWARM_PORT = 2377
SERVICE_ENV = {"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}   # the daemon's: never pull
DAEMON_MARKER = "swarmmesh-dockerd"        # in every dockerd's pid-file path (cleanup)

STACK = "swarmmesh"
"""The stack name the engine's networks take where Swarm's would: the stack's implicit
network ``default`` is ``<stack>_default`` (Docker reserves the bare name ``default``)."""

# What the model can say that `docker service create` cannot (refused, naming the key).
UNSUPPORTED = ("balancing",)


@dataclass(frozen=True)
class DaemonPaths:
    """One node's dockerd: everything under ``run`` (the run's state folder, on tmpfs: the
    socket, exec root, pid file, its empty /etc/docker) and ``data`` (its data root, on
    disk: images and containers)."""

    node: str
    run: Path
    data: Path
    cgroup_parent: str

    @property
    def exec_root(self) -> Path:
        return self.run / "exec"

    @property
    def pidfile(self) -> Path:
        return self.run / f"{DAEMON_MARKER}.pid"

    @property
    def sock(self) -> Path:
        return self.run / "docker.sock"

    @property
    def etc(self) -> Path:
        return self.run / "etc-docker"

    @property
    def config(self) -> Path:
        return self.etc / "daemon.json"

    @property
    def client_config(self) -> Path:
        return self.run / "client"


def daemon_paths(state_dir: Path, data_root: Path, run: str, node: str) -> DaemonPaths:
    return DaemonPaths(node, state_dir / "docker" / node, data_root / node,
                       f"swarmmesh-{run}-{node}")


def dockerd_argv(p: DaemonPaths) -> list[str]:
    """dockerd with its own data root, exec root, pid file, socket, cgroup parent and
    config; vfs (works on any file system, in any namespace); its managed containerd."""
    return ["dockerd", "--data-root", str(p.data), "--exec-root", str(p.exec_root),
            "--pidfile", str(p.pidfile), "-H", f"unix://{p.sock}",
            "--cgroup-parent", p.cgroup_parent, "--storage-driver", "vfs",
            "--config-file", str(p.config), "--log-level", "info"]


def daemon_script(p: DaemonPaths) -> str:
    """Run (by ``unshare --mount --uts``, in the node's network namespace) before dockerd:
    its mounts stay in its own mount namespace (they vanish with it), /etc/docker is an empty
    folder of its own (its key.json is written there), /run/docker an empty tmpfs (its
    plugin folder), any system containerd's socket is hidden (dockerd would use it), cgroup v2 is mounted where none is, and the host name is
    the node's (Swarm's node name, ``{{.Node.Hostname}}``)."""
    q = shlex.quote
    lines = ["set -e", "mount --make-rprivate /",
             f"mkdir -p {q(str(p.etc))} {q(str(p.exec_root))} {q(str(p.data))}",
             f"mount --bind {q(str(p.etc))} /etc/docker",
             "mount -t tmpfs tmpfs /run/docker",
             "[ ! -d /run/containerd ] || mount -t tmpfs tmpfs /run/containerd",
             "[ -e /sys/fs/cgroup/cgroup.controllers ] || [ -d /sys/fs/cgroup/memory ] || "
             "mount -t cgroup2 cgroup2 /sys/fs/cgroup",
             f"echo {q(p.node)} > /proc/sys/kernel/hostname",
             "exec " + " ".join(map(q, dockerd_argv(p)))]
    return "\n".join(lines)


def client_argv(p: DaemonPaths, *args: str) -> list[str]:
    """docker.io's own client (never the one first on PATH) talking to this node only."""
    return ["/usr/bin/docker", "--config", str(p.client_config), "-H", f"unix://{p.sock}",
            *args]


# -- the swarm ------------------------------------------------------------------------
def init_args(cluster: Cluster) -> list[str]:
    """``swarm init`` on the first manager, over the underlay."""
    first = managers(cluster)[0]
    ip = str(cluster.node(first).underlay_ip)
    return ["swarm", "init", "--advertise-addr", ip, "--listen-addr", f"{ip}:{SWARM_PORT}"]


def join_args(cluster: Cluster, node: str, token: str) -> list[str]:
    ip = str(cluster.node(node).underlay_ip)
    leader = str(cluster.node(managers(cluster)[0]).underlay_ip)
    return ["swarm", "join", "--token", token, "--advertise-addr", ip,
            "--listen-addr", f"{ip}:{SWARM_PORT}", f"{leader}:{SWARM_PORT}"]


def managers(cluster: Cluster) -> list[str]:
    """The managers (node1 when the model names none)."""
    names = [n.name for n in cluster.nodes if n.role == "manager"]
    return names or [cluster.nodes[0].name]


def docker_network(name: str) -> str:
    """The name Swarm knows a model network by: the implicit ``default`` is
    ``<stack>_default``, as ``docker stack deploy`` makes it; the others keep theirs."""
    return f"{STACK}_{DEFAULT_NETWORK}" if name == DEFAULT_NETWORK else name


def model_network(name: str) -> str:
    """The model's name of a network Swarm reports (the inverse of :func:`docker_network`)."""
    return DEFAULT_NETWORK if name == docker_network(DEFAULT_NETWORK) else name


def network_args(net: Network) -> list[str]:
    """A user overlay network of the model (attachable, so a test container may join)."""
    return ["network", "create", "--driver", "overlay", "--attachable",
            docker_network(net.name)]


def service_args(svc: Service, image: str, command: list[str], health: str | None,
                 env: dict[str, str]) -> list[str]:
    """``docker service create`` for one service of the model, detached, never pulling."""
    for key in UNSUPPORTED:
        if key == "balancing" and not svc.balancing.is_swarm():
            raise InvalidConfigError(f"services.{svc.name}.x-swarmmesh",
                                     "--engine docker: Swarm has only its own rr balancing")
    out = ["service", "create", "--detach", "--name", svc.name, "--no-resolve-image",
           "--endpoint-mode", svc.endpoint_mode]
    out += ["--mode", "global"] if svc.mode == "global" else ["--replicas", str(svc.replicas)]
    if svc.max_replicas_per_node:
        out += ["--replicas-max-per-node", str(svc.max_replicas_per_node)]
    for p in svc.ports:
        out += ["--publish", f"published={p.published},target={p.target},"
                             f"protocol={p.protocol},mode={p.mode}"]
    for net in svc.networks:
        out += ["--network", docker_network(net)]
    for key, op, value in svc.constraints:
        out += ["--constraint", f"{key}{op}{value}"]
    for pref in svc.preferences:
        out += ["--placement-pref", f"spread={pref}"]
    for key, value in env.items():
        out += ["--env", f"{key}={value}"]
    hc = svc.healthcheck
    if hc is not None and hc.active:
        out += ["--health-cmd", health or stack_health_cmd(hc.test),
                "--health-interval", _dur(hc.interval), "--health-timeout", _dur(hc.timeout),
                "--health-retries", str(hc.retries),
                "--health-start-period", _dur(hc.start_period)]
    return out + [image, *command]


def stack_health_cmd(test: tuple[str, ...]) -> str:
    """A stack's own test as ``--health-cmd`` (which Docker runs with /bin/sh -c)."""
    if test and test[0] == "CMD-SHELL":
        return test[1]
    if test and test[0] == "CMD":
        return shlex.join(test[1:])
    raise InvalidConfigError("healthcheck.test", f"--engine docker: no command in {list(test)}")


def _dur(seconds: float) -> str:
    return f"{int(round(seconds * 1000))}ms"


# -- what Swarm says back ---------------------------------------------------------------
@dataclass(frozen=True)
class SwarmTask:
    """One task as ``docker inspect <task>`` shows it."""

    id: str
    service: str           # the service's name
    slot: int
    node_id: str
    state: str             # Status.State: running, starting, shutdown, ...
    desired: str           # DesiredState
    container: str         # the container's ID on its node ('' before it has one)
    addresses: dict[str, IPv4Interface]   # network name -> address/prefix
    health: str = ""
    error: str = ""        # Status.Err ("task: non-zero exit (137)", "no suitable node ...")
    timestamp: str = ""    # Status.Timestamp (RFC 3339: sorts as time)
    version: int = 1       # the spec's ForceUpdate + 1: each `update --force` adds one
    updated: str = ""      # UpdatedAt: the task object's last change (e.g. its desired state)


def parse_tasks(inspect_json: str, service_names: dict[str, str]) -> list[SwarmTask]:
    """``docker inspect`` of task IDs (a JSON list); ``service_names``: service ID -> name."""
    out = []
    for t in json.loads(inspect_json):
        status = t.get("Status") or {}
        cstat = status.get("ContainerStatus") or {}
        addrs = {}
        for att in t.get("NetworksAttachments") or []:
            name = model_network(att["Network"]["Spec"]["Name"])
            if att.get("Addresses"):
                addrs[name] = IPv4Interface(att["Addresses"][0])
        out.append(SwarmTask(t["ID"], service_names.get(t["ServiceID"], t["ServiceID"]),
                             int(t.get("Slot") or 0), t.get("NodeID", ""),
                             status.get("State", ""), t.get("DesiredState", ""),
                             cstat.get("ContainerID", ""), addrs, error=status.get("Err", ""),
                             timestamp=status.get("Timestamp", ""),
                             version=int((t.get("Spec") or {}).get("ForceUpdate") or 0) + 1,
                             updated=t.get("UpdatedAt", "")))
    return out


def loaded_image(load_output: str, source: str) -> str:
    """The image ``docker load`` loaded (``Loaded image: name:tag`` or ``Loaded image ID:
    sha256:...``): the first one; every service of the run gets it."""
    for line in load_output.splitlines():
        for head in ("Loaded image: ", "Loaded image ID: "):
            if line.startswith(head):
                return line[len(head):].strip()
    raise InvalidConfigError("image-tar", f"{source}: docker load named no image")


def parse_json_lines(text: str) -> list[dict]:
    """``--format '{{json .}}'`` output: one JSON object a line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def node_ids(node_ls: str) -> dict[str, str]:
    """``docker node ls --format '{{json .}}'``: node ID -> host name (the node's name)."""
    return {n["ID"]: n["Hostname"] for n in parse_json_lines(node_ls)}


def ingress_view(network_inspect: str) -> tuple[str, IPv4Interface | None]:
    """``docker network inspect ingress`` on one node: the ingress subnet and that node's
    ingress sandbox address (``ingress-sbox``), or None before it has one."""
    net = json.loads(network_inspect)[0]
    subnet = net["IPAM"]["Config"][0]["Subnet"]
    sbox = (net.get("Containers") or {}).get("ingress-sbox")
    return subnet, IPv4Interface(sbox["IPv4Address"]) if sbox else None


def running(tasks: list[SwarmTask]) -> list[SwarmTask]:
    """The tasks Swarm wants running and that run, one per (service, slot): the newest."""
    return [t for t in tasks if t.desired == "running" and t.state == "running"]


def read_back(cluster: Cluster, tasks: list[SwarmTask], nodes: dict[str, str],
              ingress_subnet: str, sandboxes: dict[str, IPv4Interface]) -> Cluster:
    """The model as real Swarm made it: every running task on the node Swarm chose, with the
    addresses Swarm gave it; the ingress subnet and each node's sandbox address."""
    from ipaddress import IPv4Network
    nets = dict(cluster.networks)
    if INGRESS_NETWORK in nets:
        nets[INGRESS_NETWORK] = replace(nets[INGRESS_NETWORK], subnet=IPv4Network(ingress_subnet))
    new_nodes = [replace(n, ingress_ip=sandboxes[n.name].ip,
                         ingress_mac=docker_mac(sandboxes[n.name].ip))
                 if n.name in sandboxes else n for n in cluster.nodes]
    old = {(t.service, t.slot): t for t in cluster.tasks}
    new_tasks = []
    for t in sorted(running(tasks), key=lambda t: (t.service, t.slot)):
        name = f"{t.service}.{t.slot}"
        prev = old.get((t.service, t.slot))
        addrs = {net: a.ip for net, a in t.addresses.items()}
        new_tasks.append(Task(name, t.service, t.slot, nodes.get(t.node_id, t.node_id),
                              prev.host if prev else f"d{t.id[:8]}", addrs,
                              {net: docker_mac(a) for net, a in addrs.items()},
                              version=prev.version if prev else 1))
    return replace(cluster, networks=nets, nodes=new_nodes, tasks=new_tasks, pending=[])
