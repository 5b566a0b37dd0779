"""``SwarmCLI``: Mininet's CLI plus Swarm's ``service``, ``task``, ``node``,
``events``, ``flows`` and ``wait``, carried to an Orchestrator (the commands
are described in :mod:`swarmmesh.ui.shell`).

What to type is parsed by :mod:`swarmmesh.ui.shell_parse`, what is shown is
drawn by :mod:`swarmmesh.ui.shell_format`, and when a background operation is
done is told by :mod:`swarmmesh.ui.shell_ops`; this class holds the Mininet
side: the command loop, output from several threads, completion.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Iterable, Sequence

from mininet.cli import CLI

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.ui.shell_format import events_text, node_ls, service_ls, service_ps
from swarmmesh.ui.shell_ops import (OP_TIMEOUT, Op, errors_since, replaced, scale_done,
                                    settled, unconverged, update_done)
from swarmmesh.ui.shell_parse import (KILL_USAGE, NodeUpdateArgs, UpdateArgs, int_at_least, one_name,
                                      parse_kill, parse_node_update, parse_scale, parse_update,
                                      seconds)


class SwarmCLI(CLI):
    """Mininet's CLI plus ``service``, ``task``, ``node``, ``events``, ``flows``
    and a ``wait`` that waits for the orchestrator.

    ``SwarmCLI(orch)`` runs interactively on stdin; ``script=FILE`` runs the
    file's commands and returns (Mininet's batch mode)."""

    prompt = "swarmmesh> "
    swarm_commands = ("service", "task", "node", "events", "flows", "trace", "wait")

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
            "  task kill TASK [--how hang|unhealthy|container]\n"
            "                                              the task's app dies (hang) or fails its checks;\n"
            "                                              container: docker kill, Swarm knows at once\n"
            "  node ls                                     nodes: STATUS, AVAILABILITY, ROLE, LABELS, TASKS\n"
            "  node update [--label-add K=V] [--label-rm K] [--role R] [--availability A] NODE\n"
            "                                              labels, role: pending tasks placed, constraints enforced\n"
            "  node down NODE                              power loss: link down, detected after the profile's delay\n"
            "  node up NODE                                the link comes back: the node is ready again\n"
            "  node drain NODE | node active NODE          availability\n"
            "  events [N]                                  the orchestrator's event log (last N)\n"
            "  flows NODE [MATCH ...]                      ovs-ofctl dump-flows of the node's bridge\n"
            "  trace SOURCE DEST [--json]                  one connection hop by hop, checked by its packets\n"
            "  wait [SECONDS]                              until the background operations are done")

    # -- service -----------------------------------------------------------------
    def do_service(self, line: str) -> None:
        """service ls | ps SVC | scale SVC=N ... | update SVC [flags]  (help swarm)"""
        sub, *args = line.split() or [""]
        if not sub:
            raise InvalidConfigError("service", "usage: service ls | ps SERVICE | scale SERVICE=N ... | update SERVICE [flags]")
        if sub == "ls":
            self._no_args("service ls", args)
            self.say(self.service_ls_text())
        elif sub == "ps":
            self.say(self.service_ps_text(one_name(args, "service ps SERVICE")))
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
            self.start_op(f"scale {svc}={n}", self.scale_check(svc, n), index)

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
        """task kill TASK [--how hang|unhealthy|container]  (help swarm)"""
        sub, *args = line.split() or [""]
        if not sub:
            raise InvalidConfigError("task", KILL_USAGE)
        if sub != "kill":
            raise InvalidConfigError("task", f"unknown subcommand {sub!r} (kill)")
        name, how = parse_kill(args)
        self.cluster.task(name)
        index = len(self.orch.events)
        if how == "container":
            with self.orch.build_lock:
                task = self.orch.kill_container(name)
            self.say(f"{task.name}'s container killed on {task.node}; Swarm knows at once "
                     "(replaced in the background)")
            self.start_op(f"kill {task.name}", self.kill_check(task), index)
            return
        with self.orch.build_lock:                  # its host's shell is shared
            task = self.orch.kill_task(name, how)
        if self.orch.healthcheck_of(task) is None:
            self.say(f"{task.name} killed ({how}) on {task.node}; {task.service} has no health "
                     "check: it stays in the load balancer, as in Swarm")
            return
        self.say(f"{task.name} killed ({how}) on {task.node}; its health check will tell "
                 "(in the background)")
        self.start_op(f"kill {task.name}", self.kill_check(task), index)

    # -- node ------------------------------------------------------------------------
    def do_node(self, line: str) -> None:
        """node ls | update [flags] NODE | down NODE | up NODE | drain NODE | active NODE
        (help swarm)"""
        sub, *args = line.split() or [""]
        usage = ("usage: node ls | update [flags] NODE | down NODE | up NODE | drain NODE | "
                 "active NODE")
        if not sub:
            raise InvalidConfigError("node", usage)
        if sub == "ls":
            self._no_args("node ls", args)
            self.say(self.node_ls_text())
            return
        if sub == "update":
            self._node_update(parse_node_update(args))
            return
        if sub not in ("down", "up", "drain", "active"):
            raise InvalidConfigError("node", f"unknown subcommand {sub!r} "
                                             "(ls, update, down, up, drain, active)")
        node = self.cluster.node(one_name(args, f"node {sub} NODE"))
        if sub == "down":
            if node.name in self.downed or node.status == "down":
                raise InvalidConfigError(f"nodes.{node.name}", "already down")
            with self.orch.build_lock:
                self.orch.node_down(node.name)
            self.downed.add(node.name)
            self.say(f"{node.name} down (the cluster notices after "
                     f"{self.orch.profile.node_down_after:g}s)")
        elif sub == "up":
            if node.name not in self.downed:
                raise InvalidConfigError(f"nodes.{node.name}", "not down")
            with self.orch.build_lock:
                self.orch.node_up(node.name)
            self.downed.discard(node.name)
            self.say(f"{node.name} up (ready again; Swarm moves no running task back)")
        elif sub == "drain":
            self.orch.node_drain(node.name)
            self.say(f"{node.name} drained")
        else:
            self.orch.node_activate(node.name)
            self.say(f"{node.name} active")

    def _node_update(self, u: NodeUpdateArgs) -> None:
        node = self.cluster.node(u.node)
        index = len(self.orch.events)
        with self.orch.lock:
            pending = len(self.cluster.pending)
        self.orch.node_update(node.name, u.label_add, u.label_rm, u.role, u.availability)
        self.say(node.name)
        if pending:
            self.start_op(f"node update {node.name}", self.settled_check(), index)

    # -- events, flows, wait ------------------------------------------------------------
    def do_events(self, line: str) -> None:
        """events [N]: the orchestrator's event log, or its last N lines"""
        args = line.split()
        last = None
        if args:
            last = int_at_least(1)("events N", one_name(args, "events [N]"))
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

    def do_trace(self, line: str) -> None:
        """trace SOURCE DEST [--json]: one real connection from a client or task to
        node:port[/proto], service:port or address:port, hop by hop, each hop checked
        against the packets (swarmmesh trace)"""
        import json

        from swarmmesh.runs import tracing
        from swarmmesh.trace import render
        args = line.split()
        as_json = "--json" in args
        args = [a for a in args if a != "--json"]
        if len(args) != 2:
            raise InvalidConfigError("trace", "usage: trace SOURCE DEST [--json]")
        with self.orch.build_lock:
            path = tracing.trace(self.orch.tb, *args)
        self.say(json.dumps(path.to_dict(), indent=1) if as_json else render.text(path))

    def do_wait(self, line: str) -> None:
        """wait [SECONDS]: until every background operation started here is
        done, the orchestrator has no step pending and no task is starting
        or leaving (default 300 s)"""
        args = line.split()
        timeout = seconds("wait SECONDS", one_name(args, "wait [SECONDS]")) if args else 300.0
        deadline = time.monotonic() + timeout
        for op in list(self.ops):
            if not op.done.wait(max(0.0, deadline - time.monotonic())):
                raise InvalidConfigError("wait", f"{op.what} not done after {timeout:g}s")
        self.converge(timeout, deadline)

    def converge(self, timeout: float, deadline: float) -> None:
        """``wait``'s last step: until the orchestrator is idle and the cluster at rest."""
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

    # -- what the engine shows, and when an operation is done (the docker engine's CLI,
    # swarmmesh.ui.shell_docker, reads them from Swarm instead) ---------------------------
    def service_ls_text(self) -> str:
        with self.orch.lock:
            return service_ls(self.cluster)

    def service_ps_text(self, service: str) -> str:
        health = self.orch.checker.statuses() if self.orch.checker is not None else {}
        with self.orch.lock:
            return service_ps(self.cluster, service, health)

    def node_ls_text(self) -> str:
        with self.orch.lock:
            return node_ls(self.cluster)

    def scale_check(self, service: str, replicas: int) -> Callable[[], str | None]:
        return lambda: scale_done(self.cluster, service, replicas)

    def kill_check(self, task) -> Callable[[], str | None]:
        return lambda: replaced(self.cluster, task)

    def settled_check(self) -> Callable[[], str | None]:
        """Done once the orchestrator has no step pending and the cluster is at rest."""
        return lambda: None if self.orch.busy else settled(self.cluster)

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
        return self._complete(text, line, {"ls": lambda: (), "down": nodes, "up": nodes, "drain": nodes,
                                           "active": nodes})

    def complete_flows(self, text, line, *_):
        return [n.name for n in self.cluster.nodes if n.name.startswith(text)]
