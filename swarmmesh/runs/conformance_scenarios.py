"""The conformance scenarios, carried out on one running engine (root, a live testbed).

Every scenario takes a :class:`Live` (the testbed, its lifecycle operations, the service
under test) and returns ``{behaviour name: Figure}`` (:mod:`swarmmesh.runs.conformance`
draws the figures from the raw rows, which each scenario also writes to the run folder).
The same code drives both engines: the client, its tools and the load generator run in
the same Mininet hosts; only ``ops`` (the emulated Orchestrator, or the docker engine's
lifecycle object) differs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from swarmmesh.runs import conformance as conf
from swarmmesh.runs import runfolder
from swarmmesh.runs.timeline import Load
from swarmmesh.runs.timeline_metrics import read_timeline

REQUEST_COLUMNS = ["ingress_node", "seq", "task", "seen_source", "port", "ok", "error",
                   "latency_ms"]
UDP_CLIENT = r"""
import json, socket, sys
addr, port, count, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for c in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.bind(("", base + c))                 # a fresh source port: a new flow
    s.connect((addr, port))
    s.send(b"ping")
    try:
        print(json.dumps(json.loads(s.recv(2048))))
    except OSError as e:
        print(json.dumps({"error": type(e).__name__}))
    s.close()
"""


@dataclass
class Live:
    """One engine, up: ``tb`` (the testbed), ``ops`` (scale, kill_task, kill_container,
    node_down), the service under test and where to write raw files."""

    engine: str
    tb: object
    ops: object
    service: str
    published: int
    out: Path
    requests: int = 12
    rate: float = 20.0
    raw: dict = field(default_factory=dict)
    down: set = field(default_factory=set)      # nodes a scenario took down (node_down)

    @property
    def cluster(self):
        return self.tb.cluster

    def nodes(self) -> list[str]:
        return [n.name for n in self.cluster.nodes]

    def up(self) -> list[str]:
        """The nodes still up: what the timed scenarios measure through."""
        return [n for n in self.nodes() if n not in self.down]

    def client(self) -> str:
        return self.cluster.clients[0].name

    def address(self, node: str) -> str:
        return str(self.cluster.node(node).underlay_ip)


def _requests(live: Live) -> list[dict]:
    """``live.requests`` new TCP connections to every node's published port, in turn."""
    rows = []
    for node in live.nodes():
        out = live.tb.run_in(live.client(), [
            "-m", "swarmmesh.agents.httpclient", live.address(node), str(live.published),
            "--count", str(live.requests), "--timeout", "2"],
            timeout=live.requests * 3 + 30)
        for seq, line in enumerate(out.splitlines()):
            r = json.loads(line)
            body = r.get("body") or {}
            rows.append({"ingress_node": node, "seq": seq, "task": body.get("task", ""),
                         "seen_source": body.get("client", ""), "port": body.get("port", ""),
                         "ok": bool(r.get("ok")) and bool(body.get("task")),
                         "error": r.get("error") or "", "latency_ms": r.get("total_ms")})
    runfolder.write_csv(live.out / "mesh.csv", rows, REQUEST_COLUMNS)
    return rows


def mesh(live: Live) -> dict[str, conf.Figure]:
    rows = _requests(live)
    placed = {t.node for t in live.cluster.tasks_of(live.service)}
    empty = [n for n in live.nodes() if n not in placed]
    live.raw["mesh_latency_ms"] = sorted(r["latency_ms"] for r in rows if r["ok"])
    return {"split per node": conf.split_per_node(rows),
            "rotation start per node": conf.rotation_starts(rows),
            "source the task sees": conf.seen_sources(rows),
            "published → target": conf.target_ports(rows, live.published),
            "node with no task answers": conf.node_without_task(rows, empty)}


def udp(live: Live) -> dict[str, conf.Figure]:
    rows = []
    for i, node in enumerate(live.nodes()):
        out = live.tb.run_in(live.client(), ["-c", UDP_CLIENT, live.address(node),
                                             str(live.published), str(live.requests),
                                             str(43000 + 100 * i)], timeout=120)
        for seq, line in enumerate(out.splitlines()):
            body = json.loads(line)
            rows.append({"ingress_node": node, "seq": seq, "task": body.get("task", ""),
                         "seen_source": body.get("client", ""), "port": body.get("port", ""),
                         "ok": "task" in body, "error": body.get("error", ""),
                         "latency_ms": None})
    runfolder.write_csv(live.out / "udp.csv", rows, REQUEST_COLUMNS)
    return {"UDP split per node": conf.udp_split(rows)}


def _ipv4_of(tb, task) -> list[str]:
    """``a.b.c.d/len`` of every IPv4 address in a task's namespace."""
    out = tb.task_host(task).cmd("ip -4 -o addr show")
    return [w[w.index("inet") + 1] for w in (line.split() for line in out.splitlines())
            if "inet" in w and w[1] != "lo"]


def addresses(live: Live) -> dict[str, conf.Figure]:
    """The ingress subnet and the addresses in it, read from the running engine:
    ``live.ops.ingress_facts()`` where the engine offers it (the docker engine: ``docker
    network inspect ingress``), else the emulation's own: the seen sources (the sandboxes)
    and each task's own ingress address."""
    c = live.cluster
    sandboxes = [str(n.ingress_ip) for n in c.nodes]
    docker = getattr(live.tb, "docker", None)
    if docker is not None:                          # as Swarm tells it (read back, inspect)
        m = live.tb.manager
        ipam = json.loads(docker(m, "network", "inspect", "ingress", "--format",
                                 "{{json .IPAM.Config}}"))
        vips = json.loads(docker(m, "service", "inspect", live.service, "--format",
                                 "{{json .Endpoint.VirtualIPs}}"))
        tasks = [str(t.addresses["ingress"]) for t in c.tasks_of(live.service)]
        vip = next((v["Addr"].split("/")[0] for v in vips or []), "none")
        return {"ingress subnet and VIP": conf.ingress_addresses(
            ipam[0]["Subnet"], sandboxes, f"{vip}/32", tasks)}
    subnet = str(c.networks["ingress"].subnet)
    tasks = []
    for t in c.tasks_of(live.service):
        mine = [a for a in _ipv4_of(live.tb, t) if a.split("/")[0] == str(t.addresses["ingress"])]
        tasks += [a.split("/")[0] for a in mine]
    vip = c.service(live.service).ingress_vip
    return {"ingress subnet and VIP": conf.ingress_addresses(subnet, sandboxes, f"{vip}/32",
                                                              tasks)}


def dnsrr(live: Live) -> dict[str, conf.Figure]:
    """A dnsrr service with an ingress port: the engine's own answer."""
    docker = getattr(live.tb, "docker", None)
    if docker is not None:
        import subprocess
        from swarmmesh.testbed.docker_plan import client_argv
        r = subprocess.run(client_argv(live.tb.daemons[live.tb.manager], "service", "create",
                                       "--name", "dnsrrprobe", "--endpoint-mode", "dnsrr",
                                       "--publish", "8100:80", "--no-resolve-image",
                                       "--detach", live.tb.image),
                           capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            docker(live.tb.manager, "service", "rm", "dnsrrprobe", check=False)
            return {"ingress + dnsrr refused": conf.refused(None)}
        return {"ingress + dnsrr refused": conf.refused(r.stderr.strip().splitlines()[-1])}
    from swarmmesh.model import Cluster, InvalidConfigError
    try:
        Cluster.from_stack({"services": {"x": {"ports": ["8100:80"],
                                               "deploy": {"endpoint_mode": "dnsrr"}}}})
    except InvalidConfigError as e:
        return {"ingress + dnsrr refused": conf.refused(e.reason)}
    return {"ingress + dnsrr refused": conf.refused(None)}


STACK_PROBE = {"version": "3.8", "services": {"probe": {"image": "swarmmesh/task",
                                                        "deploy": {"replicas": 0}}}}


def stack(live: Live) -> dict[str, conf.Figure]:
    """What a service of the stack ``shop`` is called: ``docker stack deploy`` on real Swarm
    (a service with no replica), the stack's own model on the emulation."""
    docker = getattr(live.tb, "docker", None)
    if docker is None:
        from swarmmesh.model import Cluster
        names = list(Cluster.from_stack(STACK_PROBE, nodes=1).services)
        return {"stack name prefix": conf.service_names(names)}
    path = live.out / "shop-probe.json"           # JSON is YAML
    path.write_text(json.dumps(STACK_PROBE))
    manager = live.tb.manager
    docker(manager, "stack", "deploy", "--resolve-image", "never", "-c", str(path), "shop")
    out = docker(manager, "service", "ls", "--format", "{{.Name}}")
    docker(manager, "stack", "rm", "shop", check=False)
    names = [n for n in out.split() if n.endswith("probe")]
    return {"stack name prefix": conf.service_names(names)}


REUSE_PORTS, REUSE_RATE, REUSE_SECONDS = (40100, 40120), 30, 6     # 21 ports: odd


def reuse(live: Live) -> dict[str, conf.Figure]:
    """180 new connections at 30/s through the last node from 21 client ports, each coming
    back every ~0.7 s: how many reuses reached another task than the port's last use."""
    import subprocess
    import sys
    from swarmmesh.agents import python_env
    client = live.tb.host(live.client())
    node = live.nodes()[-1]
    path = live.out / "reuse.csv"
    client.cmd("sysctl -qw net.ipv4.ip_local_port_range='%d %d'" % REUSE_PORTS)
    try:
        proc = client.popen([sys.executable, "-m", "swarmmesh.agents.loadgen", "--target",
                             f"{node}={live.address(node)}", "--port", str(live.published),
                             "--rate", str(REUSE_RATE), "--duration", str(REUSE_SECONDS),
                             "--t0", str(time.monotonic() + 0.5), "--csv", str(path)],
                            env=python_env(), stdout=subprocess.PIPE, text=True)
        live.tb.state.register(proc.pid, "swarmmesh.agents.loadgen")
        proc.communicate(timeout=REUSE_SECONDS + 60)
    finally:
        client.cmd("sysctl -qw net.ipv4.ip_local_port_range='32768 60999'")
    rows = sorted(runfolder.read_csv(path), key=lambda r: int(r["seq"]))
    return {"reused client port": conf.reused_ports(rows)}


# -- timed scenarios: the load generator through every node while something happens --------


def _timed(live: Live, name: str, duration: float, at: float,
           action: Callable[[], None]) -> tuple[list[dict], float]:
    """Load through every node for ``duration`` s, ``action()`` at ``at`` s; the rows and
    the action's time (both on the load's clock)."""
    path = live.out / f"{name}.csv"
    t0 = time.monotonic() + 1.0
    load = Load(live.tb, path, live.rate, duration, t0, timeout=1.0, service=live.service)
    load.start()
    try:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        t_action = time.monotonic() - t0
        action()
        load.wait()
    finally:
        load.stop()
    return [r for r in read_timeline(path) if r["ingress_node"] in live.up()], t_action


def _new_tasks(rows: list[dict], before: set[str], t: float) -> list[str]:
    return sorted({r["task"] for r in rows if r["ok"] and r["t_send"] >= t} - before)


def _replacement(live: Live, rows: list[dict], before: set[str], victim: str, t: float,
                 nodes: list[str]) -> conf.Figure:
    """When the replacement of ``victim`` had answered through every node: a task with a
    new name (the emulation), or the victim's own name coming back after a silence
    (Swarm names a slot's task ``<service>.<slot>`` again)."""
    new = _new_tasks(rows, before, t)
    if new:
        return conf.first_answer_everywhere(rows, new[0], t, nodes)
    back = conf.second_life(rows, victim, t)
    if back is None:
        return conf.Figure(f"no replacement of {victim} answered", None)
    later = [r for r in rows if r["t_send"] >= back]
    f = conf.first_answer_everywhere(later, victim, t, nodes)
    return f


def scale(live: Live, duration: float = 20.0) -> dict[str, conf.Figure]:
    before = {t.name for t in live.cluster.tasks_of(live.service)}
    rows, t = _timed(live, "scale", duration, 2.0,
                     lambda: live.ops.scale(live.service, len(before) + 1))
    new = _new_tasks(rows, before, t)
    return {"scale up: new task answers through every node":
            conf.first_answer_everywhere(rows, new[0] if new else None, t, live.up())}


def _victim(live: Live, off_manager: bool = False) -> str:
    """The task a scenario kills: the first by name (``off_manager``: on a worker, so that
    taking its node down leaves the swarm's manager up)."""
    managers = {n.name for n in live.cluster.nodes if n.role == "manager"}
    names = sorted(t.name for t in live.cluster.tasks_of(live.service)
                   if not (off_manager and t.node in managers) and t.node not in live.down)
    if not names:
        raise RuntimeError("no task to pick" + (" off the manager" if off_manager else ""))
    return names[0]


def kill_container(live: Live, duration: float = 30.0) -> dict[str, conf.Figure]:
    victim = _victim(live)
    before = {t.name for t in live.cluster.tasks_of(live.service)}
    rows, t = _timed(live, "kill_container", duration, 2.0,
                     lambda: live.ops.kill_container(victim))
    stats = conf.failures_after(rows, t, live.up())
    live.raw["kill_container"] = {"task": victim, **stats}
    return {"kill container: most failed per node": conf.failed_per_node(stats),
            "kill container: last failure starts": conf.last_failure(stats),
            "kill container: replacement answers":
                _replacement(live, rows, before, victim, t, live.up())}


def kill_app(live: Live, duration: float = 20.0) -> dict[str, conf.Figure]:
    victim = _victim(live)
    rows, t = _timed(live, "kill_app", duration, 2.0,
                     lambda: live.ops.kill_task(victim, "hang"))
    stats = conf.failures_after(rows, t, live.up())
    live.raw["kill_app"] = {"task": victim, **stats}
    return {"kill app: most failed per node": conf.failed_per_node(stats),
            "kill app: last failure starts": conf.last_failure(stats)}


def node_down(live: Live, duration: float = 45.0) -> dict[str, conf.Figure]:
    """A node with a task loses its underlay link; measured through the other nodes."""
    victim = live.cluster.task(_victim(live, off_manager=True))
    before = {t.name for t in live.cluster.tasks_of(live.service)}
    others = [n for n in live.nodes() if n != victim.node]
    live.down.add(victim.node)          # from now on, measured through the others only
    rows, t = _timed(live, "node_down", duration, 2.0, lambda: live.ops.node_down(victim.node))
    stats = conf.failures_after(rows, t, others)
    live.raw["node_down"] = {"node": victim.node, "task": victim.name, **stats}
    return {"node down: its task leaves every rotation (last failure)":
                conf.last_failure(stats),
            "node down: rescheduled task answers":
                _replacement(live, rows, before, victim.name, t, others)}


def longlived(live: Live, duration: float = 16.0) -> dict[str, conf.Figure]:
    """Two keep-alive connections through every node, asking every 0.2 s, while the
    service scales up by one (at 3 s) and a task's container is killed (at 8 s)."""
    import subprocess
    import sys
    from swarmmesh.agents import python_env
    victim = _victim(live)
    tasks = len(live.cluster.tasks_of(live.service))
    h = live.tb.host(live.client())
    proc = h.popen([sys.executable, "-m", "swarmmesh.agents.holdconn",
                    *[live.address(n) for n in live.nodes()], "--port", str(live.published),
                    "--connections", str(2 * len(live.nodes())), "--interval", "0.2",
                    "--duration", str(duration)], env=python_env(),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    live.tb.state.register(proc.pid, "swarmmesh.agents.holdconn")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    time.sleep(3.0)
    live.ops.scale(live.service, tasks + 1)
    time.sleep(max(0.0, t0 + 8.0 - time.monotonic()))
    live.ops.kill_container(victim)
    out, _err = proc.communicate(timeout=duration + 60)
    conns = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    runfolder.write_json(live.out / "longlived.json", {"victim": victim, "connections": conns})
    return {"long-lived connections across a scale and a kill": conf.long_lived(conns, victim)}


SCENARIOS: dict[str, Callable[[Live], dict[str, conf.Figure]]] = {
    "mesh": mesh, "udp": udp, "addresses": addresses, "dnsrr": dnsrr, "stack": stack,
    "reuse": reuse, "longlived": longlived,
    "scale": scale, "kill_container": kill_container, "kill_app": kill_app,
    "node_down": node_down}
