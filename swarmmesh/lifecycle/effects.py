"""The orchestrator's seam: the events it takes, the effects it gives back, and the engine
that carries the effects out.

:class:`swarmmesh.lifecycle.machine.Machine` is Swarm's manager as a pure state machine,
``step(now, event) -> effects``, as FAUCET's valve takes ``now`` and an event and returns
the messages to send. The effects are plain data; an :class:`Engine` (the emulated
testbed, or a test's recorder) carries out the ones that change the world, and the
driver (:mod:`swarmmesh.lifecycle.runner`) keeps the clock: timers, continuations and
the record of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

from swarmmesh.model import HealthCheck, Task

# -- events: what happens to the cluster -----------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """``docker service scale SERVICE=N``."""
    service: str
    replicas: int


@dataclass(frozen=True)
class Update:
    """``docker service update``: every task replaced by one of the next version."""
    service: str
    parallelism: int = 1
    delay: float = 0.0
    order: str = "stop-first"


@dataclass(frozen=True)
class KillApp:
    """The application in a task dies; its container stays (only a health check tells)."""
    task: str
    how: str = "hang"


@dataclass(frozen=True)
class KillContainer:
    """``docker kill`` of the task's container: its process exits, Swarm knows at once."""
    task: str


@dataclass(frozen=True)
class NodeDown:
    """The node loses power (its underlay link goes down)."""
    node: str


@dataclass(frozen=True)
class NodeUp:
    """A node that was down comes back (its underlay link goes up)."""
    node: str


@dataclass(frozen=True)
class NodeUpdate:
    """``docker node update``: labels, role, availability."""
    node: str
    label_add: tuple[tuple[str, str], ...] = ()
    label_rm: tuple[str, ...] = ()
    role: str | None = None
    availability: str | None = None


@dataclass(frozen=True)
class Drain:
    node: str


@dataclass(frozen=True)
class Activate:
    node: str


@dataclass(frozen=True)
class HealthChanged:
    """A task's health status changed (from the health checker), at ``t`` on the clock."""
    task: str
    status: str
    t: float
    failing_streak: int = 0


@dataclass(frozen=True)
class ControllerDown:
    """The controller process dies (a crash): the switches keep their flows."""


@dataclass(frozen=True)
class ControllerUp:
    """A new controller process starts, reads every switch back and sends the difference."""


@dataclass(frozen=True)
class Internal:
    """One of the machine's own steps, come back by a timer or as a continuation."""
    what: str
    args: tuple = ()


Event = Union[Scale, Update, KillApp, KillContainer, NodeDown, NodeUp, NodeUpdate, Drain,
              Activate, HealthChanged, ControllerDown, ControllerUp, Internal]

# -- effects: what the machine asks for ------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """An event for ``events.csv``; ``t`` (clock time) where it happened earlier than now."""
    event: str
    detail: str = ""
    t: float | None = None


@dataclass(frozen=True)
class Publish:
    """Publish the model as it is now; the switches and kernels follow it by difference."""
    why: str


@dataclass(frozen=True)
class StartTask:
    """Build a task the model has just placed (its container, its legs, its server)."""
    task: Task


@dataclass(frozen=True)
class StopTask:
    """Stop a task's container (its server, its host, its legs)."""
    task: Task


@dataclass(frozen=True)
class SyncFdb:
    """Every node's forwarding database follows the model's tasks."""


@dataclass(frozen=True)
class FlushConntrack:
    """Every node forgets the connections to a removed task (IPVS expire_nodest_conn)."""
    task: Task


@dataclass(frozen=True)
class KillAppIn:
    """The task's application dies: ``hang`` (refuses) or ``unhealthy`` (fails its check)."""
    task: Task
    how: str


@dataclass(frozen=True)
class CutNode:
    node: str


@dataclass(frozen=True)
class RestoreNode:
    node: str


@dataclass(frozen=True)
class KillController:
    pass


@dataclass(frozen=True)
class RestartController:
    pass


@dataclass(frozen=True)
class WatchHealth:
    """Run the task's health check (the profile's timings in ``hc``)."""
    task: Task
    hc: HealthCheck


@dataclass(frozen=True)
class UnwatchHealth:
    task: str


@dataclass(frozen=True)
class Timer:
    """Step the machine with ``event`` ``delay`` seconds from now."""
    delay: float
    event: Event


@dataclass(frozen=True)
class Then:
    """Step the machine with ``event`` right after this step's effects, before anything else
    (a step whose model changes must come after what it has asked for so far)."""
    event: Event


Effect = Union[Record, Publish, StartTask, StopTask, SyncFdb, FlushConntrack, KillAppIn,
               CutNode, RestoreNode, KillController, RestartController, WatchHealth,
               UnwatchHealth, Timer, Then]

ENGINE_EFFECTS = (StartTask, StopTask, SyncFdb, FlushConntrack, KillAppIn, CutNode,
                  RestoreNode, KillController, RestartController)
"""The effects an :class:`Engine` carries out (one method each, see :func:`carry_out`)."""


class Engine(Protocol):
    """What carries the effects out: the emulated testbed (``Testbed``) implements it; a
    test's recorder does too. Each call returns once the change is made."""

    def publish(self) -> int: ...                          # the revision published
    def wait_applied(self, revision: int) -> float: ...    # seconds until the switches had it
    def start_task(self, task: Task) -> None: ...
    def stop_task(self, task: Task) -> None: ...
    def sync_fdb(self) -> None: ...
    def flush_conntrack(self, task: Task) -> None: ...
    def kill_app(self, task: Task, how: str) -> None: ...
    def cut_node(self, name: str) -> None: ...
    def restore_node(self, name: str) -> None: ...
    def kill_controller(self) -> None: ...
    def restart_controller(self) -> None: ...
    def task_netns_pid(self, task: Task) -> int | None: ...   # where its health probe runs


def carry_out(engine: Engine, effect: Effect) -> None:
    """One of :data:`ENGINE_EFFECTS` on ``engine``."""
    if isinstance(effect, StartTask):
        engine.start_task(effect.task)
    elif isinstance(effect, StopTask):
        engine.stop_task(effect.task)
    elif isinstance(effect, SyncFdb):
        engine.sync_fdb()
    elif isinstance(effect, FlushConntrack):
        engine.flush_conntrack(effect.task)
    elif isinstance(effect, KillAppIn):
        engine.kill_app(effect.task, effect.how)
    elif isinstance(effect, CutNode):
        engine.cut_node(effect.node)
    elif isinstance(effect, RestoreNode):
        engine.restore_node(effect.node)
    elif isinstance(effect, KillController):
        engine.kill_controller()
    elif isinstance(effect, RestartController):
        engine.restart_controller()
    else:
        raise TypeError(f"not an engine effect: {effect!r}")

