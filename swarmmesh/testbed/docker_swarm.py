"""The lifecycle operations on real Swarm, under the emulated Orchestrator's names.

``DockerSwarm(tb)`` (``tb`` a :class:`DockerTestbed`) has ``scale``, ``update``,
``kill_task``, ``kill_container``, ``node_down``, ``node_up``, ``node_drain``,
``node_activate``, ``node_update``, ``settle`` and ``events``, so an experiment drives either
engine with the same calls.  Each operation is Swarm's own command; Swarm then does what it
does (rescheduling, health checks, rolling updates) and :meth:`settle` waits until it has
converged and reads the model back (``tb.cluster``).  ``events`` holds what was asked and
when (seconds since the object was made), as the emulated orchestrator's do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from swarmmesh.testbed import docker_plan as plan
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

    def __init__(self, tb: DockerTestbed, t0: float | None = None) -> None:
        self.tb = tb
        self.t0 = time.monotonic() if t0 is None else t0
        self.events: list[Event] = []

    def __enter__(self) -> "DockerSwarm":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, event: str, detail: str = "") -> None:
        self.events.append(Event(round(self.now(), 4), event, detail))

    @property
    def cluster(self):
        return self.tb.cluster

    def _manager(self, *args: str) -> str:
        return self.tb.docker(self.tb.manager, *args)

    # -- services -------------------------------------------------------------------
    def scale(self, service: str, replicas: int) -> None:
        """``docker service scale`` (detached: Swarm places the new tasks)."""
        self.cluster.service(service)
        self._manager("service", "scale", "--detach", f"{service}={replicas}")
        self.tb.cluster.services[service] = _with_replicas(self.cluster.service(service),
                                                           replicas)
        self.record("scale", f"{service}={replicas}")

    def update(self, service: str, parallelism: int = 1, delay: float = 0.0,
               order: str = "stop-first") -> None:
        """``docker service update --force``: every task replaced, ``parallelism`` at a
        time, ``delay`` s apart, in ``order`` (start-first or stop-first)."""
        if order not in ("start-first", "stop-first"):
            raise TestbedError(f"order: must be start-first or stop-first, got {order!r}")
        self._manager("service", "update", "--detach", "--force", "--update-parallelism",
                      str(parallelism), "--update-delay", f"{int(delay * 1000)}ms",
                      "--update-order", order, service)
        self.record("update", f"{service}: parallelism {parallelism}, delay {delay}s, {order}")

    # -- tasks ------------------------------------------------------------------------
    def kill_container(self, name: str) -> None:
        """``docker kill`` of the task's container on its node: the process exits, Swarm
        knows at once and starts a replacement in the same slot."""
        node, cid = self.tb.container_of(name)
        self.tb.docker(node, "kill", cid)
        self.record("kill_container", f"{name} on {node}")

    def kill_task(self, name: str, how: str = "hang") -> None:
        """The application dies inside a container that stays up, as the emulated
        ``kill_task``: ``hang`` (SIGUSR2: the task server closes every socket) or
        ``unhealthy`` (it answers, and fails its health check)."""
        if how not in KILL_HOW:
            raise TestbedError(f"how: must be one of {', '.join(KILL_HOW)}, got {how!r}")
        node, cid = self.tb.container_of(name)
        if how == "hang":
            self.tb.docker(node, "kill", "--signal", "USR2", cid)
        else:
            self.tb.docker(node, "exec", cid, "wget", "-q", "-O", "/dev/null",
                           f"http://127.0.0.1:{PRIVATE_PORT}/control?mode=unhealthy")
        self.record("kill_task", f"{name} ({how}) on {node}")

    # -- nodes ------------------------------------------------------------------------
    def node_down(self, name: str) -> None:
        """The node loses its underlay link (its dockerd keeps running, cut off)."""
        self.cluster.node(name)
        self.tb.host(name).cmd(f"ip link set {name}-eth0 down")
        self.record("node_down", name)

    def node_up(self, name: str) -> None:
        self.cluster.node(name)
        self.tb.host(name).cmd(f"ip link set {name}-eth0 up")
        self.record("node_up", name)

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
        self.record("node_update", f"{name}: {' '.join(args)}")

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

    def tasks(self) -> list[plan.SwarmTask]:
        """Every task Swarm knows of (``docker service ps``), history included."""
        return self.tb.swarm_tasks()


def _with_replicas(svc, replicas: int):
    from dataclasses import replace
    return replace(svc, replicas=replicas)
