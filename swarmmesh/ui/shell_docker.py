"""``swarmmesh cli --engine docker``: the same commands on real Swarm.

:class:`SwarmAdaptor` gives :class:`~swarmmesh.testbed.docker_swarm.DockerSwarm` what
:class:`~swarmmesh.ui.shell_cli.SwarmCLI` uses of an Orchestrator (``lock``,
``build_lock``, ``events``, ``checker``, ``profile``, ``busy``, ``settle``, the
operations); a thread reads Swarm back about once a second (:class:`shell_swarm.Snapshot`)
and records what Swarm did as events.  :class:`DockerCLI` shows Swarm's own view
(``service ls``, ``service ps`` with each slot's history, ``node ls``), tells when an
operation is done from it, waits for Swarm to converge, and says that ``flows`` and
``trace`` are the emulated engine's.  Mininet's commands (``c1 curl ...``) work as ever.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable

from swarmmesh.lifecycle import profiles
from swarmmesh.model import InvalidConfigError
from swarmmesh.testbed import docker_plan
from swarmmesh.testbed.docker_swarm import DockerSwarm
from swarmmesh.testbed.errors import TestbedError
from swarmmesh.ui import shell_swarm as view
from swarmmesh.ui.shell_cli import SwarmCLI
from swarmmesh.ui.shell_parse import one_name, seconds

POLL_S = 1.0              # how often Swarm is read back while the CLI runs


class SwarmAdaptor:
    """The Orchestrator's surface, over real Swarm (see the module doc)."""

    checker = None             # Docker runs the health checks itself

    def __init__(self, tb, poll: float = POLL_S) -> None:
        self.tb, self.poll = tb, poll
        self.swarm = DockerSwarm(tb)
        self.lock, self.build_lock = threading.RLock(), threading.Lock()
        self.profile = profiles.profile("swarm")
        self.killed: dict[str, str] = {}          # task name -> the Swarm task ID killed
        self.snapshot = self.read()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "SwarmAdaptor":
        self._thread = threading.Thread(target=self._poll, daemon=True, name="swarm-poll")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def cluster(self):
        return self.tb.cluster

    @property
    def events(self):
        return self.swarm.events

    @property
    def busy(self) -> int:
        return 0 if view.unconverged(self.snapshot) is None else 1

    # -- reading Swarm -------------------------------------------------------------
    def read(self) -> view.Snapshot:
        """One snapshot: 4 docker calls on the manager, whatever the cluster's size."""
        tb, mgr = self.tb, self.tb.manager
        names = list(tb.cluster.services)
        services = json.loads(tb.docker(mgr, "service", "inspect", *names)) if names else []
        ids = tb.docker(mgr, "service", "ps", "-q", "--no-trunc", *names).split() if names else []
        tasks = docker_plan.parse_tasks(
            tb.docker(mgr, "inspect", *sorted(set(ids))),
            {s["ID"]: s["Spec"]["Name"] for s in services}) if ids else []
        nodes = view.parse_nodes(tb.docker(mgr, "node", "inspect",
                                           *[n.name for n in tb.cluster.nodes]))
        return view.Snapshot(view.parse_services(json.dumps(services)), tuple(tasks), nodes)

    def refresh(self) -> view.Snapshot:
        """Read Swarm now: record what changed, bring the model up to date."""
        snap = self.read()
        with self.lock:
            for event, detail in view.changes(self.snapshot, snap):
                self.swarm.record(event, detail)
            self.snapshot = snap
            self.tb.cluster = view.model(self.tb.cluster, snap, docker_plan.read_back)
        return snap

    def _poll(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.refresh()
            except (TestbedError, OSError, ValueError) as e:   # e.g. the manager cut off
                self.swarm.record("read failed", str(e).splitlines()[0][:200])
                self._stop.wait(5 * self.poll)

    # -- the operations (DockerSwarm's, under the Orchestrator's names) --------------------
    def scale(self, service: str, replicas: int) -> None:
        with self.lock:
            self.swarm.scale(service, replicas)

    def update(self, service: str, parallelism: int = 1, delay: float = 0.0,
               order: str = "stop-first") -> None:
        self.swarm.update(service, parallelism=parallelism, delay=delay, order=order)

    def _slot_id(self, name: str) -> str:
        task = self.cluster.task(name)
        now = self.refresh()
        ids = [t.id for t in now.running(task.service) if t.slot == task.slot]
        if not ids:
            raise InvalidConfigError("task", f"{name}: not running in Swarm")
        self.killed[name] = ids[0]
        return ids[0]

    def kill_container(self, name: str):
        self._slot_id(name)
        self.swarm.kill_container(name)
        return self.cluster.task(name)

    def kill_task(self, name: str, how: str = "hang"):
        self._slot_id(name)
        self.swarm.kill_task(name, how)
        return self.cluster.task(name)

    def healthcheck_of(self, task):
        hc = self.cluster.service(task.service).healthcheck
        return hc if hc is not None and hc.active else None

    def node_down(self, name: str) -> None:
        self.swarm.node_down(name)

    def node_up(self, name: str) -> None:
        self.swarm.node_up(name)

    def node_drain(self, name: str) -> None:
        self.swarm.node_drain(name)

    def node_activate(self, name: str) -> None:
        self.swarm.node_activate(name)

    def node_update(self, name, label_add=(), label_rm=(), role=None, availability=None):
        self.swarm.node_update(name, label_add, label_rm, role, availability)

    def settle(self, timeout: float = 300.0) -> str:
        """Until Swarm is at rest (tasks it cannot place count as at rest), then, with no
        such task, DockerSwarm.settle (every service running, health checks passed, the
        whole model read back, ingress sandboxes included). The line ``wait`` prints."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.refresh()
            done = view.at_rest(snap)
            if done is not None:
                break
            if time.monotonic() > deadline:
                raise InvalidConfigError("wait", f"not converged after {timeout:g}s: "
                                                 f"{view.unconverged(snap)}")
            time.sleep(min(self.poll, 0.5))
        if not view.waiting(snap):
            self.swarm.settle(timeout=max(1.0, deadline - time.monotonic()))
        return done


class DockerCLI(SwarmCLI):
    """SwarmCLI on real Swarm: Swarm's own tables and convergence (see the module doc)."""

    orch: SwarmAdaptor

    def service_ls_text(self) -> str:
        return view.service_ls(self.orch.refresh())

    def service_ps_text(self, service: str) -> str:
        self.cluster.service(service)
        return view.service_ps(self.orch.refresh(), service)

    def node_ls_text(self) -> str:
        return view.node_ls(self.orch.refresh())

    def scale_check(self, service: str, replicas: int) -> Callable[[], str | None]:
        return lambda: view.scale_done(self.orch.snapshot, service, replicas)

    def kill_check(self, task) -> Callable[[], str | None]:
        old = self.orch.killed[task.name]
        return lambda: view.replaced(self.orch.snapshot, task.service, task.slot, old)

    def settled_check(self) -> Callable[[], str | None]:
        return lambda: view.at_rest(self.orch.snapshot)

    def do_node(self, line: str) -> None:
        """node ls | update [flags] NODE | down NODE | up NODE | drain NODE | active NODE
        (help swarm); a drain says when Swarm has moved the node's tasks"""
        words = line.split()
        super().do_node(line)
        if len(words) == 2 and words[0] == "drain":
            self.start_op(f"drain {words[1]}",
                          lambda: view.drained(self.orch.snapshot, words[1]),
                          len(self.orch.events))

    def converge(self, timeout: float, deadline: float) -> None:
        """``wait``'s last step: until Swarm has converged (SwarmAdaptor.settle)."""
        self.say(self.orch.settle(timeout=max(0.1, deadline - time.monotonic())))

    def do_flows(self, line: str) -> None:
        """flows: the emulated engine's (real Swarm's nodes have no OpenFlow switch)"""
        self.say("flows: the emulated engine's OpenFlow tables; real Swarm's nodes have none "
                 "(`docker NODE ...` runs docker on a node)")

    def do_trace(self, line: str) -> None:
        """trace: the emulated engine's (it predicts hops from the controller's rules)"""
        self.say("trace: the emulated engine's (it follows the controller's rules); "
                 "with --engine docker, send a request: `c1 curl -s NODE_IP:PORT`")

    def do_docker(self, line: str) -> None:
        """docker NODE ARGS...: docker.io's client against that node's dockerd"""
        node, *args = line.split() or [""]
        if not node or not args:
            raise InvalidConfigError("docker", "usage: docker NODE ARGS... "
                                               "(e.g. docker node1 service ps app)")
        self.cluster.node(node)
        self.say(self.orch.tb.docker(node, *args, check=False) or "")

    def help_swarm(self) -> None:
        super().help_swarm()
        self.say("On real Swarm (--engine docker): what Swarm reports (service ps keeps each\n"
                 "slot's history); events add what Swarm did (task/node states, update done);\n"
                 "`docker NODE ARGS...` runs docker on a node; flows and trace are the\n"
                 "emulated engine's.")


def run(args, cluster, run_dir: Path, say: Callable[[str], None], orchs: list) -> None:
    """Build real dockerd nodes, run the CLI on them, stop everything (the exit codes:
    :func:`swarmmesh.ui.shell.session`)."""
    from swarmmesh.testbed.testbed import Testbed
    with Testbed(cluster, run_dir, engine="docker", progress=say, image_tar=args.image_tar,
                 require_ipvs=view.publishes(cluster), build_timeout=args.build_timeout) as tb:
        with SwarmAdaptor(tb) as orch:
            orchs.append(orch)
            from mininet.log import setLogLevel
            setLogLevel("output")
            placed = ", ".join(f"{t.name} on {t.node}" for t in tb.cluster.tasks)
            say(f"real Swarm (dockerd {tb.version}), {len(cluster.nodes)} nodes; "
                f"{placed or 'no task'}. `help swarm` lists the added commands; exit "
                "or Ctrl-D stops and cleans up.")
            DockerCLI(orch)
