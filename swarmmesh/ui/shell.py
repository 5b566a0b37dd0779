"""Mininet's CLI with Swarm's runtime operations, over an Orchestrator.

    mininet> service ls
    NAME   MODE         REPLICAS   PORTS
    app    replicated   2/2        *:8000->80/tcp
    mininet> service scale app=3
    app scaled to 3 (in the background; `events` shows progress, `wait` waits)
    mininet> task kill app.1 --how hang
    mininet> node drain node2
    mininet> flows node1 table=13

Every Mininet command still works (``c1 curl -s 192.168.99.1:8000``,
``py net``, ...).  The added commands (``help swarm`` lists them) change the
cluster only through the Orchestrator, so every change follows Swarm's
lifecycle.  Scale and update run in the background; a line says when each
is done, and ``wait`` blocks until everything started here is done.

The module has two layers: pure parsing and docker-style formatting of the
model (no root, no Mininet: unit-tested), and ``SwarmCLI``, the Mininet CLI
subclass that carries the commands to an Orchestrator.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from mininet.cli import CLI

from swarmmesh.lifecycle import profiles
from swarmmesh.lifecycle.decisions import KILL_MODES, UPDATE_ORDERS
from swarmmesh.model.healthcheck import parse_duration
from swarmmesh.model import Cluster, InvalidConfigError, Task

OP_TIMEOUT = 600.0          # a background operation not done by then is reported as stuck


# ---------------------------------------------------------------------------
# Parsing (raises InvalidConfigError naming the field)
# ---------------------------------------------------------------------------

def parse_flags(args: Sequence[str], spec: dict[str, Callable[[str, str], object]],
                defaults: dict[str, object], command: str) -> tuple[list[str], dict]:
    """Split ``args`` into positionals and ``--flag VALUE`` / ``--flag=VALUE``
    options; each option value goes through ``spec[flag](flag, value)``."""
    values = dict(defaults)
    positional: list[str] = []
    it = iter(args)
    for a in it:
        if not a.startswith("--"):
            positional.append(a)
            continue
        name, eq, value = a[2:].partition("=")
        if name not in spec:
            known = ", ".join(f"--{k}" for k in spec) or "none"
            raise InvalidConfigError(a.split("=")[0], f"unknown flag for `{command}` "
                                                      f"(flags: {known})")
        if not eq:
            value = next(it, None)
            if value is None or value.startswith("--"):
                raise InvalidConfigError(f"--{name}", "needs a value")
        values[name] = spec[name](f"--{name}", value)
    return positional, values


def _int_at_least(low: int) -> Callable[[str, str], int]:
    def conv(flag: str, value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise InvalidConfigError(flag, f"must be a whole number, got {value!r}") from None
        if n < low:
            raise InvalidConfigError(flag, f"must be >= {low}, got {n}")
        return n
    return conv


def _seconds(flag: str, value: str) -> float:
    """Seconds: a bare number (``5``, ``0.5``) or a Docker duration (``10s``, ``1m30s``)."""
    try:
        s = float(value)
    except ValueError:
        try:
            s = parse_duration(value)
        except ValueError as e:
            raise InvalidConfigError(flag, str(e)) from None
    if not s >= 0:                      # negative, or nan
        raise InvalidConfigError(flag, f"must be >= 0 seconds, got {value!r}")
    return s


def _choice(choices: Sequence[str]) -> Callable[[str, str], str]:
    def conv(flag: str, value: str) -> str:
        if value not in choices:
            raise InvalidConfigError(flag, f"must be one of {', '.join(choices)}, got {value!r}")
        return value
    return conv


def parse_scale(args: Sequence[str]) -> list[tuple[str, int]]:
    """``SVC=N [SVC=N ...]`` (as ``docker service scale``)."""
    if not args:
        raise InvalidConfigError("service scale", "usage: service scale SERVICE=REPLICAS ...")
    out = []
    for a in args:
        svc, eq, n = a.partition("=")
        if not eq or not svc:
            raise InvalidConfigError("service scale", f"expected SERVICE=REPLICAS, got {a!r}")
        try:
            replicas = int(n)
        except ValueError:
            raise InvalidConfigError(f"services.{svc}.replicas",
                                     f"must be a whole number, got {n!r}") from None
        if replicas < 0:
            raise InvalidConfigError(f"services.{svc}.replicas", f"must be >= 0, got {replicas}")
        out.append((svc, replicas))
    return out


@dataclass(frozen=True)
class UpdateArgs:
    service: str
    parallelism: int = 1
    delay: float = 0.0
    order: str = "stop-first"


def parse_update(args: Sequence[str]) -> UpdateArgs:
    """``SVC [--parallelism N] [--delay S] [--order start-first|stop-first]``."""
    pos, v = parse_flags(args, {"parallelism": _int_at_least(1), "delay": _seconds,
                                "order": _choice(UPDATE_ORDERS)},
                         {"parallelism": 1, "delay": 0.0, "order": "stop-first"},
                         "service update")
    if len(pos) != 1:
        raise InvalidConfigError("service update", "usage: service update SERVICE "
                                 "[--parallelism N] [--delay S] [--order start-first|stop-first]")
    return UpdateArgs(pos[0], v["parallelism"], v["delay"], v["order"])


def parse_kill(args: Sequence[str]) -> tuple[str, str]:
    """``TASK [--how hang|unhealthy]``."""
    pos, v = parse_flags(args, {"how": _choice(KILL_MODES)}, {"how": "hang"}, "task kill")
    if len(pos) != 1:
        raise InvalidConfigError("task kill", "usage: task kill TASK [--how hang|unhealthy]")
    return pos[0], v["how"]


def one_name(args: Sequence[str], usage: str) -> str:
    """The one argument of a command; the error names the command (the
    usage's lower-case words) and shows its usage."""
    if len(args) != 1:
        command = " ".join(w for w in usage.split() if w.islower())
        raise InvalidConfigError(command, f"usage: {usage}")
    return args[0]


# ---------------------------------------------------------------------------
# Formatting: docker's columns, as far as the model has them
# ---------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns three spaces apart, as docker's tabwriter."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [list(headers), *rows]]
    return "\n".join(lines) + "\n"


def ports_text(ports) -> str:
    return ", ".join(f"*:{p.published}->{p.target}/{p.protocol}" for p in ports)


def desired_replicas(cluster: Cluster, service: str) -> int:
    svc = cluster.service(service)
    if svc.mode == "global":
        return len(cluster.schedulable_nodes(service))
    return svc.replicas


def running_count(cluster: Cluster, service: str) -> int:
    return sum(1 for t in cluster.tasks_of(service) if cluster.in_balancer(t))


def service_ls(cluster: Cluster) -> str:
    """``docker service ls``: NAME MODE REPLICAS (running/desired) PORTS.
    (The model has no service IDs or images.)"""
    rows = [(s.name, s.mode, f"{running_count(cluster, s.name)}/{desired_replicas(cluster, s.name)}",
             ports_text(s.ingress_ports())) for s in cluster.services.values()]
    return table(("NAME", "MODE", "REPLICAS", "PORTS"), rows)


def task_states(task: Task, node_status: str, health: str | None) -> tuple[str, str]:
    """DESIRED STATE and CURRENT STATE of a task, in docker's words."""
    if task.state == "draining":               # weight 0, removal pending
        return "Shutdown", "Running (weight 0, leaving)"
    current = {"starting": "Starting", "running": "Running"}.get(task.state, task.state)
    notes = []
    if health is not None:
        notes.append(health)
    if node_status != "ready":
        notes.append(f"node {node_status}")
    return "Running", current + (f" ({', '.join(notes)})" if notes else "")


def service_ps(cluster: Cluster, service: str, health: dict[str, str] | None = None) -> str:
    """``docker service ps SVC``: ID (the task's host) NAME VERSION NODE
    DESIRED STATE CURRENT STATE PORTS (host-mode ports)."""
    svc = cluster.service(service)
    health = health or {}
    rows = []
    for t in sorted(cluster.tasks_of(service), key=lambda t: (t.slot, t.name)):
        desired, current = task_states(t, cluster.node(t.node).status, health.get(t.name))
        rows.append((t.host, t.name, t.version, t.node, desired, current,
                     ports_text(svc.host_ports())))
    return table(("ID", "NAME", "VERSION", "NODE", "DESIRED STATE", "CURRENT STATE", "PORTS"),
                 rows)


def node_ls(cluster: Cluster) -> str:
    """``docker node ls``: HOSTNAME STATUS AVAILABILITY, plus the tasks on it."""
    rows = [(n.name, n.status.capitalize(), n.availability.capitalize(),
             len(cluster.tasks_on(n.name))) for n in cluster.nodes]
    return table(("HOSTNAME", "STATUS", "AVAILABILITY", "TASKS"), rows)


def events_text(events: Sequence, last: int | None = None) -> str:
    """The orchestrator's event log: T (s from its start), EVENT, DETAIL."""
    shown = list(events)[-last:] if last else list(events)
    return table(("T", "EVENT", "DETAIL"), [(f"{e.t:.3f}", e.event, e.detail) for e in shown])


# ---------------------------------------------------------------------------
# Background operations: when is a scale or an update done?
# ---------------------------------------------------------------------------

@dataclass
class Op:
    """A background operation started from the CLI and its completion test."""
    what: str
    check: Callable[[], str | None]     # None: not yet; else the line to print
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: str = ""
    superseded: str | None = None       # a later operation on the same service replaced it


def scale_done(cluster: Cluster, service: str, replicas: int) -> str | None:
    """Done when exactly ``replicas`` tasks exist and all are in the balancer."""
    tasks = cluster.tasks_of(service)
    if len(tasks) == replicas and all(cluster.in_balancer(t) for t in tasks):
        return f"{service} scaled to {replicas} ({replicas}/{replicas} running)"
    return None


def replaced(cluster: Cluster, task: Task) -> str | None:
    """Done when the killed task is gone and its service is back to its
    desired count, all in the balancer."""
    if task in cluster.tasks:
        return None
    tasks = cluster.tasks_of(task.service)
    want = desired_replicas(cluster, task.service)
    if len(tasks) != want or not all(cluster.in_balancer(t) for t in tasks):
        return None
    return (f"{task.name} detected, removed and replaced "
            f"({task.service} {want}/{want} running)")


def unconverged(cluster: Cluster) -> str | None:
    """Why the cluster is not at rest (a task starting or leaving, a
    replicated service off its count), or None."""
    moving = [f"{t.name} {t.state}" for t in cluster.tasks if t.state != "running"]
    off = [f"{s.name} {len(cluster.tasks_of(s.name))}/{s.replicas}"
           for s in cluster.services.values()
           if s.mode != "global" and len(cluster.tasks_of(s.name)) != s.replicas]
    return ", ".join(moving + off) or None


def errors_since(events: Sequence, index: int) -> list:
    return [e for e in list(events)[index:] if e.event == "error"]


def update_done(events: Sequence, index: int, service: str) -> str | None:
    """Done when the orchestrator records ``update done`` for ``service``
    (after event ``index``), or the update failed."""
    for e in list(events)[index:]:
        if e.event == "update done" and e.detail.split(" ")[0] == service:
            return f"{service} updated ({e.detail.split(' ', 1)[1]})"
        if e.event == "error" and e.detail.startswith("update failed"):
            return f"{service} update FAILED: {e.detail}"
    return None


# ---------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------

class SwarmCLI(CLI):
    """Mininet's CLI plus ``service``, ``task``, ``node``, ``events``, ``flows``
    and a ``wait`` that waits for the orchestrator.

    ``SwarmCLI(orch)`` runs interactively on stdin; ``script=FILE`` runs the
    file's commands and returns (Mininet's batch mode)."""

    prompt = "swarmmesh> "
    swarm_commands = ("service", "task", "node", "events", "flows", "wait")

    def __init__(self, orch, stdin=sys.stdin, script: str | None = None, stdout=None,
                 **kwargs) -> None:
        self.orch = orch
        self.ops: list[Op] = []
        self.out_lock = threading.Lock()
        self.in_command = False
        self.downed: set[str] = set()
        if stdout is not None:
            kwargs["stdout"] = stdout
        super().__init__(orch.tb.net, stdin=stdin, script=script, **kwargs)

    @property
    def cluster(self) -> Cluster:
        return self.orch.cluster

    # -- output --------------------------------------------------------------
    def say(self, text: str) -> None:
        if text and not text.endswith("\n"):
            text += "\n"
        with self.out_lock:
            self.stdout.write(text)
            self.stdout.flush()

    def fail(self, e: Exception) -> None:
        self.say(f"error: {e}")

    def notify(self, line: str) -> None:
        """A line from a background operation; at an idle interactive prompt,
        redraw the prompt and what was typed so far below it."""
        if self.in_command or self.transcript():
            self.say(line)
            return
        try:
            import readline
            typed = readline.get_line_buffer()
        except ImportError:
            typed = ""
        with self.out_lock:
            self.stdout.write(f"\r\n{line}\n{self.prompt}{typed}")
            self.stdout.flush()

    def _tty(self) -> bool:
        try:
            return self.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    # -- the command loop ----------------------------------------------------
    def transcript(self) -> bool:
        """Commands from a pipe or a script file: echo each one, no prompt."""
        return bool(self.inputFile) or not self._tty()

    def run(self) -> None:
        """Interactive: Mininet's loop (Ctrl-C interrupts the command, not the
        CLI).  Stdin not a terminal: Ctrl-C ends the CLI like ``exit``."""
        if self._tty():
            super().run()
        else:
            self.prompt = ""
            self.cmdloop()

    def waitForNode(self, node) -> None:
        """Mininet's version forwards stdin to the node's command: right at a
        terminal, wrong when stdin is the script itself.  Then: print the
        command's output, in order with ours."""
        if not self.transcript():
            return super().waitForNode(node)
        while node.waiting:
            try:
                data = node.monitor(timeoutms=500)
            except KeyboardInterrupt:
                node.sendInt()
                raise
            if data:
                with self.out_lock:
                    self.stdout.write(data)
                    self.stdout.flush()
        return None

    def onecmd(self, line: str):
        """One command (from the loop, or from a script: Mininet's ``source``
        calls this directly); an error prints one line and the CLI goes on."""
        if self.inputFile:                          # comments, as in the loop
            line = self.precmd(line)
        if self.transcript() and line.strip() and line.strip() != "EOF":
            self.say(f"{SwarmCLI.prompt}{line.strip()}")
        self.in_command = True
        try:
            return super().onecmd(line)
        except InvalidConfigError as e:
            self.fail(e)
        except Exception as e:                         # noqa: BLE001 - keep the CLI alive
            self.say(f"error: {type(e).__name__}: {e}")
        finally:
            self.in_command = False
        return None

    def default(self, line: str) -> None:
        """Mininet's ``<host> command``; on a node or a task, one at a time
        with the orchestrator's changes to those hosts (a host's shell serves
        one command at a time)."""
        first = line.split(" ", 1)[0] if line else ""
        if first in self.orch_hosts():
            with self.orch.build_lock:
                return super().default(line)
        return super().default(line)

    def orch_hosts(self) -> set[str]:
        return {n.name for n in self.cluster.nodes} | {t.host for t in self.cluster.tasks}

    # -- help ------------------------------------------------------------------
    def help_swarm(self) -> None:
        self.say(
            "Swarm commands (Mininet's own: `help`):\n"
            "  service ls                                  services: MODE, REPLICAS running/desired, PORTS\n"
            "  service ps SVC                              its tasks: NODE, DESIRED/CURRENT STATE\n"
            "  service scale SVC=N [SVC=N ...]             start/retire tasks (background)\n"
            "  service update SVC [--parallelism N] [--delay S] [--order start-first|stop-first]\n"
            "                                              rolling update to the next version (background)\n"
            "  task kill TASK [--how hang|unhealthy]      the task's app dies (hang) or fails its checks\n"
            "  node ls                                     nodes: STATUS, AVAILABILITY, TASKS\n"
            "  node down NODE                              power loss: link down, detected after the profile's delay\n"
            "  node drain NODE | node active NODE          availability\n"
            "  events [N]                                  the orchestrator's event log (last N)\n"
            "  flows NODE [MATCH ...]                      ovs-ofctl dump-flows of the node's bridge\n"
            "  wait [SECONDS]                              until the background operations are done")

    # -- service -----------------------------------------------------------------
    def do_service(self, line: str) -> None:
        """service ls | ps SVC | scale SVC=N ... | update SVC [flags]  (help swarm)"""
        sub, *args = line.split() or [""]
        if not sub:
            raise InvalidConfigError("service", "usage: service ls | ps SERVICE | scale SERVICE=N ... | update SERVICE [flags]")
        if sub == "ls":
            self._no_args("service ls", args)
            with self.orch.lock:
                self.say(service_ls(self.cluster))
        elif sub == "ps":
            svc = one_name(args, "service ps SERVICE")
            health = self.orch.checker.statuses() if self.orch.checker is not None else {}
            with self.orch.lock:
                self.say(service_ps(self.cluster, svc, health))
        elif sub == "scale":
            self._scale(parse_scale(args))
        elif sub == "update":
            self._update(parse_update(args))
        else:
            raise InvalidConfigError("service", f"unknown subcommand {sub!r} "
                                                "(ls, ps, scale, update)")

    def _scale(self, targets: list[tuple[str, int]]) -> None:
        for svc, _ in targets:                  # every name checked before anything changes
            if self.cluster.service(svc).mode == "global":
                raise InvalidConfigError(f"services.{svc}", "scale can only be used with "
                                                            "replicated mode")
        for svc, n in targets:
            for op in list(self.ops):
                if op.what.startswith(f"scale {svc}="):
                    op.superseded = f"{op.what}: superseded by scale {svc}={n}"
            index = len(self.orch.events)
            self.orch.scale(svc, n)
            self.say(f"{svc}: scaling to {n} (in the background; `events` shows progress, "
                     "`wait` waits)")
            self.start_op(f"scale {svc}={n}",
                          lambda svc=svc, n=n: scale_done(self.cluster, svc, n), index)

    def _update(self, u: UpdateArgs) -> None:
        self.cluster.service(u.service)
        index = len(self.orch.events)
        self.orch.update(u.service, parallelism=u.parallelism, delay=u.delay, order=u.order)
        self.say(f"{u.service}: rolling update started ({u.order}, parallelism "
                 f"{u.parallelism}, delay {u.delay:g}s; in the background)")
        self.start_op(f"update {u.service}", lambda: update_done(self.orch.events, index,
                                                                 u.service), index)

    # -- task ----------------------------------------------------------------------
    def do_task(self, line: str) -> None:
        """task kill TASK [--how hang|unhealthy]  (help swarm)"""
        sub, *args = line.split() or [""]
        if not sub:
            raise InvalidConfigError("task", "usage: task kill TASK [--how hang|unhealthy]")
        if sub != "kill":
            raise InvalidConfigError("task", f"unknown subcommand {sub!r} (kill)")
        name, how = parse_kill(args)
        self.cluster.task(name)
        index = len(self.orch.events)
        with self.orch.build_lock:                  # its host's shell is shared
            task = self.orch.kill_task(name, how)
        if self.orch.healthcheck_of(task) is None:
            self.say(f"{task.name} killed ({how}) on {task.node}; {task.service} has no health "
                     "check: it stays in the load balancer, as in Swarm")
            return
        self.say(f"{task.name} killed ({how}) on {task.node}; its health check will tell "
                 "(in the background)")
        self.start_op(f"kill {task.name}", lambda: replaced(self.cluster, task), index)

    # -- node ------------------------------------------------------------------------
    def do_node(self, line: str) -> None:
        """node ls | down NODE | drain NODE | active NODE  (help swarm)"""
        sub, *args = line.split() or [""]
        if not sub:
            raise InvalidConfigError("node", "usage: node ls | down NODE | drain NODE | active NODE")
        if sub == "ls":
            self._no_args("node ls", args)
            with self.orch.lock:
                self.say(node_ls(self.cluster))
            return
        if sub not in ("down", "drain", "active"):
            raise InvalidConfigError("node", f"unknown subcommand {sub!r} "
                                             "(ls, down, drain, active)")
        node = self.cluster.node(one_name(args, f"node {sub} NODE"))
        if sub == "down":
            if node.name in self.downed or node.status == "down":
                raise InvalidConfigError(f"nodes.{node.name}", "already down")
            with self.orch.build_lock:
                self.orch.node_down(node.name)
            self.downed.add(node.name)
            self.say(f"{node.name} down (the cluster notices after "
                     f"{self.orch.profile.node_down_after:g}s)")
        elif sub == "drain":
            self.orch.node_drain(node.name)
            self.say(f"{node.name} drained")
        else:
            self.orch.node_activate(node.name)
            self.say(f"{node.name} active")

    # -- events, flows, wait ------------------------------------------------------------
    def do_events(self, line: str) -> None:
        """events [N]: the orchestrator's event log, or its last N lines"""
        args = line.split()
        last = None
        if args:
            last = _int_at_least(1)("events N", one_name(args, "events [N]"))
        with self.orch.lock:
            events = list(self.orch.events)
        self.say(events_text(events, last))

    def do_flows(self, line: str) -> None:
        """flows NODE [MATCH ...]: ovs-ofctl dump-flows of the node's bridge"""
        args = line.split()
        if not args:
            raise InvalidConfigError("flows", "usage: flows NODE [MATCH ...]")
        node = self.cluster.node(args[0])
        if node.name in self.downed:
            self.say(f"note: {node.name} is down (link only: its switch still runs)")
        with self.orch.build_lock:
            self.say(self.mn.get(node.name).ofctl("dump-flows", *args[1:]))

    def do_wait(self, line: str) -> None:
        """wait [SECONDS]: until every background operation started here is
        done, the orchestrator has no step pending and no task is starting
        or leaving (default 300 s)"""
        args = line.split()
        timeout = _seconds("wait SECONDS", one_name(args, "wait [SECONDS]")) if args else 300.0
        deadline = time.monotonic() + timeout
        for op in list(self.ops):
            if not op.done.wait(max(0.0, deadline - time.monotonic())):
                raise InvalidConfigError("wait", f"{op.what} not done after {timeout:g}s")
        while True:
            self.orch.settle(timeout=max(0.1, deadline - time.monotonic()))
            with self.orch.lock:
                why = unconverged(self.cluster)
            if why is None:
                return
            if time.monotonic() > deadline:
                raise InvalidConfigError("wait", f"not converged after {timeout:g}s: {why}")
            time.sleep(0.05)

    # -- background operations -------------------------------------------------------
    def start_op(self, what: str, check: Callable[[], str | None], index: int) -> Op:
        op = Op(what, check)
        self.ops.append(op)
        threading.Thread(target=self._watch, args=(op, index), daemon=True,
                         name=f"cli-{what}").start()
        return op

    def _watch(self, op: Op, index: int) -> None:
        deadline = op.started + OP_TIMEOUT
        while True:
            with self.orch.lock:
                line = op.superseded or op.check()
                errors = errors_since(self.orch.events, index)
            if line is None and errors and not self.orch.busy:
                line = f"{op.what} FAILED: {errors[0].detail}; see `events`"
            if line is None and time.monotonic() > deadline:
                line = f"{op.what}: not done after {OP_TIMEOUT:g}s; see `events`"
            if line is not None:
                op.result = f"{line} in {time.monotonic() - op.started:.1f}s"
                self.notify(op.result)
                op.done.set()
                self.ops.remove(op)
                return
            time.sleep(0.05)

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _no_args(command: str, args: Sequence[str]) -> None:
        if args:
            raise InvalidConfigError(command, f"takes no arguments, got {' '.join(args)!r}")

    def _complete(self, text: str, line: str, subs: dict[str, Callable[[], Iterable[str]]]):
        words = line.split()
        if len(words) <= 1 or (len(words) == 2 and not line.endswith(" ")):
            return [s for s in subs if s.startswith(text)]
        names = subs.get(words[1], lambda: ())()
        return [n for n in names if n.startswith(text)]

    def complete_service(self, text, line, *_):
        svcs = lambda: list(self.cluster.services)             # noqa: E731
        return self._complete(text, line, {"ls": lambda: (), "ps": svcs, "scale": svcs,
                                           "update": svcs})

    def complete_task(self, text, line, *_):
        return self._complete(text, line, {"kill": lambda: [t.name for t in self.cluster.tasks]})

    def complete_node(self, text, line, *_):
        nodes = lambda: [n.name for n in self.cluster.nodes]   # noqa: E731
        return self._complete(text, line, {"ls": lambda: (), "down": nodes, "drain": nodes,
                                           "active": nodes})

    def complete_flows(self, text, line, *_):
        return [n.name for n in self.cluster.nodes if n.name.startswith(text)]


# ---------------------------------------------------------------------------
# `swarmmesh cli`: build, run the CLI, clean up
# ---------------------------------------------------------------------------

def plan(args) -> Cluster:
    """The cluster the flags ask for; bad input raises InvalidConfigError
    before anything is built."""
    profiles.profile(args.profile)
    if args.stack is not None:
        if args.replicas is not None:
            raise InvalidConfigError("replicas", "not with --stack (the stack file sets them)")
        cluster = Cluster.from_stack(args.stack, nodes=3 if args.nodes is None else args.nodes)
    else:
        cluster = Cluster.quick(nodes=3 if args.nodes is None else args.nodes,
                                replicas=2 if args.replicas is None else args.replicas)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidConfigError("out", f"{out} exists and is not a folder")
    return cluster


def run_cli(args) -> int:
    """``swarmmesh cli``: exit 0 after ``exit``/EOF, 2 bad input, 130 Ctrl-C
    (outside an interactive prompt), 143 SIGTERM; everything stopped each time."""
    from swarmmesh.runs import runfolder as results
    from swarmmesh.lifecycle.orchestrator import Orchestrator
    from swarmmesh.testbed.testbed import Testbed, TestbedError, check_machine
    try:
        cluster = plan(args)
        check_machine()
    except (InvalidConfigError, TestbedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_dir = results.new_run_dir(args.out, "cli")
    say = (lambda msg: print(f"[cli] {msg}", file=sys.stderr, flush=True))
    orch = None
    code = 0
    try:
        with Testbed(cluster, run_dir, datapath=args.datapath, progress=say) as tb:
            with Orchestrator(tb, profile=args.profile) as orch:
                from mininet.log import setLogLevel
                setLogLevel("output")              # `<host> cmd` prints through Mininet's log
                svcs = ", ".join(f"{s.name} ({s.replicas} replicas)"
                                 for s in cluster.services.values())
                say(f"{len(cluster.nodes)} nodes, {svcs}; profile {args.profile}, "
                    f"{tb.datapath} datapath. `help swarm` lists the added commands; "
                    "exit or Ctrl-D stops and cleans up.")
                SwarmCLI(orch)
    except TestbedError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except SystemExit as e:                            # SIGTERM, raised by the Testbed
        code = e.code if isinstance(e.code, int) else 1
    finally:
        if orch is not None:
            results.write_csv(run_dir / "events.csv", [vars(e) for e in orch.events],
                              ["t", "event", "detail"])
    say("stopped; everything cleaned up" + (" (interrupted)" if code == 130 else ""))
    print(run_dir, flush=True)
    return code
