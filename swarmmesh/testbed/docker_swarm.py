"""The lifecycle operations on real Swarm, under the emulated Orchestrator's names.

``DockerSwarm(tb)`` (``tb`` a :class:`DockerTestbed`) has ``scale``, ``update``,
``kill_task``, ``kill_container``, ``node_down``, ``node_up``, ``node_drain``,
``node_activate``, ``node_update``, ``settle`` and ``events``, so an experiment drives either
engine with the same calls.  Each operation is Swarm's own command; Swarm then does what it
does (rescheduling, health checks, rolling updates) and :meth:`settle` waits until it has
converged and reads the model back (``tb.cluster``).  ``events`` holds what was asked and
when (seconds since ``t0``), under the emulated orchestrator's names (``scale``, ``task
killed``, ``container killed``, ``node down`` ...).

``watch=S``: while the object is entered, a thread reads Swarm on the manager every ``S``
seconds (:meth:`poll`: the Engine API's tasks and nodes); ``polls`` keeps each read, and
:meth:`settle` also reads every node's health-check verdicts (:meth:`read_health`);
``events`` then also holds what Swarm did, mapped onto the orchestrator's events by
:mod:`swarmmesh.testbed.docker_events`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass

from swarmmesh.testbed import docker_events, docker_plan as plan
from swarmmesh.testbed.docker_engine import PRIVATE_PORT, DockerTestbed
from swarmmesh.testbed.errors import TestbedError

KILL_HOW = ("hang", "unhealthy")


@dataclass(frozen=True)
class Event:
    t: float
    event: str
    detail: str = ""


class DockerSwarm:
    """Operations on the swarm of ``tb`` (see the module doc)."""

    def __init__(self, tb: DockerTestbed, t0: float | None = None, watch: float = 0.0) -> None:
        self.tb = tb
        self.t0 = time.monotonic() if t0 is None else t0
        self.epoch0 = time.time() - (time.monotonic() - self.t0)   # t0 on the wall clock
        self.asked: list[Event] = []
        self.watch = watch
        self.polls: list[docker_events.Poll] = []
        self.read_errors = 0
        self._service_ids: dict[str, str] = {}
        self.health: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "DockerSwarm":
        if self.watch > 0:
            self.poll()                                  # the baseline: what ran before
            self._thread = threading.Thread(target=self._watch, daemon=True,
                                            name="swarm-watch")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, event: str, detail: str = "", t: float | None = None) -> None:
        """What was asked, at ``t`` (default now): an operation's moment is when its
        command was sent, as Swarm's own times of what followed may come before the
        command returns."""
        self.asked.append(Event(round(self.now() if t is None else t, 4), event, detail))

    @property
    def events(self) -> list[Event]:
        """What was asked, and (watching) what Swarm did, in time order."""
        seen = [Event(t, e, d) for t, e, d in
                docker_events.events(self.polls, self.epoch0) + self.health]
        return sorted(self.asked + seen, key=lambda e: e.t)

    # -- watching ---------------------------------------------------------------------
    def poll(self) -> None:
        """One read of Swarm on the manager's Engine API (``GET /tasks``: what ``service
        ps`` lists, as ``inspect`` shows it; ``GET /nodes``), kept in ``polls``."""
        tasks = self._api_tasks()
        t = self.now()
        self.polls.append(docker_events.poll_of(t, tasks, self.tb.api(self.tb.manager,
                                                                      "/nodes")))

    def _api_tasks(self) -> list[plan.SwarmTask]:
        """Every task Swarm keeps (``GET /tasks``), with its service's name."""
        self._service_ids = self._service_ids or {
            s["ID"]: s["Spec"]["Name"] for s in json.loads(self.tb.api(self.tb.manager,
                                                                       "/services"))}
        return plan.parse_tasks(self.tb.api(self.tb.manager, "/tasks"), self._service_ids)

    def container_of(self, task: str) -> tuple[str, str]:
        """(node, container ID) of a running task (``app.1``), from the Engine API: two
        reads in milliseconds, so an operation lands when the script asks for it."""
        tasks = self._api_tasks()
        nodes, _ = docker_events.parse_nodes(self.tb.api(self.tb.manager, "/nodes"))
        for t in plan.running(tasks):
            if f"{t.service}.{t.slot}" == task and t.container:
                return nodes.get(t.node_id, t.node_id), t.container
        raise TestbedError(f"task {task}: not running (docker service ps)")

    def read_health(self) -> None:
        """Every node's health-check verdicts since ``t0`` (``GET /events``, as ``docker
        events --filter event=health_status``): Docker's own times of each container found
        unhealthy, which a task's states do not show (a task stopped as unhealthy whose
        process exits 0 ends ``complete``)."""
        since, until = self.epoch0, time.time()
        query = urllib.parse.urlencode({"since": f"{since:.3f}", "until": f"{until:.3f}",
                                        "filters": json.dumps({"type": ["container"],
                                                               "event": ["health_status"]})})
        found = []
        for n in self.cluster.nodes:
            found += docker_events.health_events(self.tb.api(n.name, f"/events?{query}"),
                                                 n.name, self.epoch0)
        self.health = found

    def _watch(self) -> None:
        while not self._stop.wait(self.watch):
            try:
                self.poll()
            except (TestbedError, OSError, ValueError):     # a read cut short: the next one
                self.read_errors += 1

    @property
    def cluster(self):
        return self.tb.cluster

    def _manager(self, *args: str) -> str:
        return self.tb.docker(self.tb.manager, *args)

    # -- services -------------------------------------------------------------------
    def scale(self, service: str, replicas: int) -> None:
        """``docker service scale`` (detached: Swarm places the new tasks)."""
        before = self.cluster.service(service).replicas
        t = self.now()
        self._manager("service", "scale", "--detach", f"{service}={replicas}")
        self.tb.cluster.services[service] = _with_replicas(self.cluster.service(service),
                                                           replicas)
        self.record("scale", f"{service}: {before} -> {replicas}", t)

    def update(self, service: str, parallelism: int = 1, delay: float = 0.0,
               order: str = "stop-first") -> None:
        """``docker service update --force``: every task replaced, ``parallelism`` at a
        time, ``delay`` s apart, in ``order`` (start-first or stop-first)."""
        if order not in ("start-first", "stop-first"):
            raise TestbedError(f"order: must be start-first or stop-first, got {order!r}")
        t = self.now()
        self._manager("service", "update", "--detach", "--force", "--update-parallelism",
                      str(parallelism), "--update-delay", f"{int(delay * 1000)}ms",
                      "--update-order", order, service)
        self.record("update", f"{service}: parallelism {parallelism}, delay {delay}s, {order}",
                    t)

    # -- tasks ------------------------------------------------------------------------
    def kill_container(self, name: str) -> None:
        """``docker kill`` of the task's container on its node: the process exits, Swarm
        knows at once and starts a replacement in the same slot."""
        node, cid = self.container_of(name)
        t = self.now()
        self.tb.docker(node, "kill", cid)
        self.record("container killed", f"{name} on {node}", t)

    def kill_task(self, name: str, how: str = "hang") -> None:
        """The application dies inside a container that stays up, as the emulated
        ``kill_task``: ``hang`` (SIGUSR2: the task server closes every socket) or
        ``unhealthy`` (it answers, and fails its health check)."""
        if how not in KILL_HOW:
            raise TestbedError(f"how: must be one of {', '.join(KILL_HOW)}, got {how!r}")
        node, cid = self.container_of(name)
        t = self.now()
        if how == "hang":
            self.tb.docker(node, "kill", "--signal", "USR2", cid)
        else:
            self.tb.docker(node, "exec", cid, "wget", "-q", "-O", "/dev/null",
                           f"http://127.0.0.1:{PRIVATE_PORT}/control?mode=unhealthy")
        self.record("task killed", f"{name} on {node} ({how})", t)

    # -- nodes ------------------------------------------------------------------------
    def node_down(self, name: str) -> None:
        """The node loses its underlay link (its dockerd keeps running, cut off)."""
        self.cluster.node(name)
        t = self.now()
        self.tb.host(name).cmd(f"ip link set {name}-eth0 down")
        self.record("node down", f"{name} (link down: it answers nothing)", t)

    def node_up(self, name: str) -> None:
        self.cluster.node(name)
        self.tb.host(name).cmd(f"ip link set {name}-eth0 up")
        self.record("node up", f"{name} (link up)")

    def node_update(self, name: str, label_add=(), label_rm=(), role: str | None = None,
                    availability: str | None = None) -> None:
        """``docker node update``: labels, role, availability."""
        args = [a for k, v in label_add for a in ("--label-add", f"{k}={v}")]
        args += [a for k in label_rm for a in ("--label-rm", k)]
        if role:
            args += ["--role", role]
        if availability:
            args += ["--availability", availability]
        self._manager("node", "update", *args, name)
        self.record("node update", f"{name}: {' '.join(args)}")

    def node_drain(self, name: str) -> None:
        self.node_update(name, availability="drain")

    def node_activate(self, name: str) -> None:
        self.node_update(name, availability="active")

    # -- waiting --------------------------------------------------------------------
    def settle(self, timeout: float = 120.0) -> None:
        """Until every service runs its replicas (healthy where checked), then the model
        is read back from Swarm."""
        waited = self.tb.wait_converged(timeout)
        self.tb.read_back()
        self.record("settled", f"after {waited:.1f}s")
        if self.watch > 0:
            self.poll()                                  # what Swarm did up to now
            self.read_health()

    def tasks(self) -> list[plan.SwarmTask]:
        """Every task Swarm knows of (``docker service ps``), history included."""
        return self.tb.swarm_tasks()


def _with_replicas(svc, replicas: int):
    from dataclasses import replace
    return replace(svc, replicas=replicas)
