"""The interactive CLI's parsing and docker-style tables, without root: a real
cluster model, a fake orchestrator that changes it as the real one would
(in the background), and a fake Mininet net.  Commands are fed as Mininet's
batch mode does (``script=FILE``), so the CLI's own loop runs them."""

from __future__ import annotations

import io
import os
import re
import threading
import time

import pytest

from swarmmesh.ui import cli as swarmmesh_cli
from swarmmesh.ui.shell_cli import SwarmCLI
from swarmmesh.ui.shell_format import events_text, node_ls, service_ls, service_ps, table
from swarmmesh.ui.shell_ops import unconverged
from swarmmesh.ui.shell_parse import UpdateArgs, parse_kill, parse_scale, parse_update
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.lifecycle.orchestrator import Event


class FakeHost:
    def __init__(self, name):
        self.name, self.calls = name, []

    def ofctl(self, *args):
        self.calls.append(args)
        return f" cookie=0x1, table=0, priority=1 actions=drop ({self.name} {' '.join(args)})\n"


class FakeNet(dict):
    def get(self, name):
        return self[name]


class FakeOrch:
    """The Orchestrator's surface the CLI uses; scale/update change the model
    on a thread after a short delay, as the real one does."""

    def __init__(self, cluster, delay=0.05):
        self.cluster, self.delay = cluster, delay
        self.tb = type("TB", (), {"net": FakeNet({n.name: FakeHost(n.name)
                                                  for n in cluster.nodes})})()
        self.lock, self.build_lock = threading.RLock(), threading.Lock()
        self.events: list[Event] = []
        self.checker = None
        self.profile = type("P", (), {"node_down_after": 15.0})()
        self.busy = 0
        self.calls = []

    def record(self, event, detail=""):
        self.events.append(Event(len(self.events) * 0.1, event, detail))

    def _later(self, fn):
        with self.lock:
            self.busy += 1

        def run():
            time.sleep(self.delay)
            with self.lock:
                fn()
                self.busy -= 1
        threading.Thread(target=run, daemon=True).start()

    def settle(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                raise TimeoutError("busy")
            time.sleep(0.01)

    def scale(self, service, replicas):
        self.calls.append(("scale", service, replicas))
        self.cluster.service(service).replicas = replicas
        self.record("scale", f"{service}: -> {replicas}")

        def apply():
            tasks = self.cluster.tasks_of(service)
            for _ in range(replicas - len(tasks)):
                self.cluster.place_task(service, state="running")
            for t in tasks[replicas:]:
                self.cluster.remove_task(t.name)
        self._later(apply)

    def update(self, service, parallelism=1, delay=0.0, order="stop-first"):
        self.calls.append(("update", service, parallelism, delay, order))
        version = self.cluster.service_version(service) + 1

        def apply():
            for t in self.cluster.tasks_of(service):
                t.version = version
            self.record("update done", f"{service} at version {version}")
        self._later(apply)

    def kill_task(self, name, how="hang"):
        self.calls.append(("kill", name, how))
        task = self.cluster.task(name)
        if self.cluster.service(task.service).healthcheck is not None:
            def replace():
                self.cluster.remove_task(task.name)
                self.cluster.place_task(task.service, state="running", slot=task.slot)
            self._later(replace)
        return task

    def kill_container(self, name):
        self.calls.append(("kill container", name))
        task = self.cluster.task(name)

        def replace():
            self.cluster.remove_task(task.name)
            self.cluster.place_task(task.service, state="running", slot=task.slot)
        self._later(replace)
        return task

    def node_up(self, name):
        self.calls.append(("up", name))

    def healthcheck_of(self, task):
        return self.cluster.service(task.service).healthcheck

    def node_down(self, name):
        self.calls.append(("down", name))

    def node_drain(self, name):
        self.calls.append(("drain", name))
        self.cluster.node(name).availability = "drain"

    def node_activate(self, name):
        self.calls.append(("active", name))
        self.cluster.node(name).availability = "active"

    def node_update(self, name, label_add=(), label_rm=(), role=None, availability=None):
        self.calls.append(("node update", name, tuple(label_add), tuple(label_rm), role,
                           availability))
        node = self.cluster.node(name)
        node.labels.update(label_add)

        def place():
            for p in list(self.cluster.pending):
                if self.cluster.candidates(p.service)[0]:
                    self.cluster.pending.remove(p)
                    self.cluster.place_task(p.service, state="running", slot=p.slot)
        self._later(place)


@pytest.fixture
def orch():
    return FakeOrch(Cluster.quick(nodes=3, replicas=2))


def run_script(orch, tmp_path, text: str) -> str:
    script = tmp_path / "script.txt"
    script.write_text(text)
    out = io.StringIO()
    with open(os.devnull) as devnull:
        SwarmCLI(orch, stdin=devnull, script=str(script), stdout=out)
    return out.getvalue()


def section(out: str, command: str) -> str:
    """The output of one command in a transcript (up to the next prompt)."""
    return out.split(f"swarmmesh> {command}\n", 1)[1].split("swarmmesh> ", 1)[0]


# -- tables -------------------------------------------------------------------------

def test_table_aligns_columns_three_spaces_apart():
    assert table(("A", "LONGER"), [("xyz", 1), ("q", 22)]) == (
        "A     LONGER\n"
        "xyz   1\n"
        "q     22\n")


def test_service_ls_counts_running_over_desired():
    c = Cluster.quick(nodes=3, replicas=3)
    c.tasks[0].state = "starting"                      # not yet healthy: not counted
    c.node(c.tasks[1].node).status = "down"            # on a down node: not counted
    assert service_ls(c) == ("NAME   MODE         REPLICAS   PORTS\n"
                             "app    replicated   1/3        *:8000->80/tcp\n")


def test_service_ls_global_service_wants_one_per_schedulable_node():
    c = Cluster.from_stack({"services": {"web": {"deploy": {"mode": "global"},
                                                 "ports": ["8080:80/udp"]}}}, nodes=3)
    c.node("node3").availability = "drain"
    line = service_ls(c).splitlines()[1].split()
    assert line == ["web", "global", "3/2", "*:8080->80/udp"]


def test_service_ps_states_in_dockers_words():
    c = Cluster.quick(nodes=2, replicas=3)
    c.tasks[1].state = "starting"
    c.tasks[2].state = "draining"
    out = service_ps(c, "app", {"app.1": "healthy", "app.2": "starting"}).splitlines()
    assert re.split(r"\s{3,}", out[0]) == ["ID", "NAME", "VERSION", "NODE", "DESIRED STATE",
                                           "CURRENT STATE", "ERROR", "PORTS"]
    assert out[1].split() == ["t1", "app.1", "1", "node1", "Running", "Running", "(healthy)"]
    assert out[2].split() == ["t2", "app.2", "1", "node2", "Running", "Starting", "(starting)"]
    assert re.split(r"\s{3,}", out[3]) == ["t3", "app.3", "1", "node1", "Shutdown",
                                           "Running (weight 0, leaving)"]


def test_node_ls_status_and_availability():
    c = Cluster.quick(nodes=3, replicas=2)
    c.node("node2").availability = "drain"
    c.node("node3").status = "down"
    c.node("node2").labels.update(zone="east", ssd="")
    lines = node_ls(c).splitlines()
    assert re.split(r"\s{3,}", lines[0]) == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY",
                                             "MANAGER STATUS", "LABELS", "TASKS"]
    assert [line.split() for line in lines[1:]] == [
        [c.node("node1").id, "node1", "Ready", "Active", "Leader", "-", "1"],
        [c.node("node2").id, "node2", "Ready", "Drain", "ssd,zone=east", "1"],
        [c.node("node3").id, "node3", "Down", "Active", "-", "0"]]


def test_events_last_n():
    evs = [Event(0.5, "scale", "app: 2 -> 3"), Event(1.25, "task started", "app.3 on node1")]
    assert events_text(evs, last=1) == ("T       EVENT          DETAIL\n"
                                        "1.250   task started   app.3 on node1\n")
    assert len(events_text(evs).splitlines()) == 3


def test_unconverged_names_what_is_moving():
    c = Cluster.quick(nodes=2, replicas=2)
    assert unconverged(c) is None
    c.tasks[0].state = "starting"
    c.service("app").replicas = 3
    assert unconverged(c) == "app.1 starting, app 2/3"


def test_wait_gives_up_naming_what_did_not_converge(orch, tmp_path):
    orch.cluster.tasks[1].state = "draining"
    out = run_script(orch, tmp_path, "wait 0.2\nnode ls\n")
    assert "error: wait: not converged after 0.2s: app.2 draining" in out
    assert "HOSTNAME" in section(out, "node ls")


# -- parsing ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, field, reason", [
    ([], "service scale", "usage"),
    (["app"], "service scale", "expected SERVICE=REPLICAS"),
    (["app=three"], "services.app.replicas", "whole number"),
    (["app=-1"], "services.app.replicas", ">= 0"),
])
def test_parse_scale_errors_name_the_field(args, field, reason):
    with pytest.raises(InvalidConfigError) as e:
        parse_scale(args)
    assert e.value.field == field and reason in e.value.reason


def test_parse_scale_several():
    assert parse_scale(["app=3", "web=0"]) == [("app", 3), ("web", 0)]


def test_parse_update_flags_both_spellings_and_durations():
    u = parse_update(["app", "--parallelism", "2", "--delay=1m30s", "--order=start-first"])
    assert u == UpdateArgs("app", 2, 90.0, "start-first")
    assert parse_update(["app", "--delay", "0.5"]).delay == 0.5
    assert parse_update(["app"]) == UpdateArgs("app")


@pytest.mark.parametrize("args, field", [
    (["app", "--parallelism", "0"], "--parallelism"),
    (["app", "--parallelism", "two"], "--parallelism"),
    (["app", "--delay", "-1"], "--delay"),
    (["app", "--delay", "3x"], "--delay"),
    (["app", "--order", "random"], "--order"),
    (["app", "--order"], "--order"),
    (["app", "--rollback"], "--rollback"),
    ([], "service update"),
    (["app", "web"], "service update"),
])
def test_parse_update_errors_name_the_field(args, field):
    with pytest.raises(InvalidConfigError) as e:
        parse_update(args)
    assert e.value.field == field


def test_parse_kill():
    assert parse_kill(["app.1"]) == ("app.1", "hang")
    assert parse_kill(["--how", "unhealthy", "t2"]) == ("t2", "unhealthy")
    with pytest.raises(InvalidConfigError, match=r"^--how: must be one of hang, unhealthy"):
        parse_kill(["app.1", "--how", "dead"])


# -- the CLI over a (fake) orchestrator ---------------------------------------------------

def test_script_scale_wait_then_ps_shows_the_new_task(orch, tmp_path):
    out = run_script(orch, tmp_path, "service ls\nservice scale app=3\nwait\nservice ps app\n")
    assert section(out, "service ls").splitlines()[1].split() == [
        "app", "replicated", "2/2", "*:8000->80/tcp"]
    assert section(out, "service scale app=3").startswith("app: scaling to 3 (in the background")
    assert section(out, "wait").startswith("app scaled to 3 (3/3 running) in ")
    ps = section(out, "service ps app").splitlines()
    assert [r.split()[1] for r in ps[1:]] == ["app.1", "app.2", "app.3"]
    assert orch.calls == [("scale", "app", 3)]


def test_errors_are_one_line_and_the_cli_goes_on(orch, tmp_path):
    out = run_script(orch, tmp_path, "\n".join([
        "service scale app=x", "service ps nope", "service scale nope=2", "node drain node9",
        "task kill app.9", "task kill app.1 --how dead", "service update app --order up",
        "service frobnicate", "service", "node", "events 0", "node ls"]) + "\n")
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: services.app.replicas: must be a whole number, got 'x'",
        "error: services.nope: unknown service",
        "error: services.nope: unknown service",
        "error: nodes.node9: unknown node",
        "error: tasks.app.9: unknown task",
        "error: --how: must be one of hang, unhealthy, container, got 'dead'",
        "error: --order: must be one of stop-first, start-first, got 'up'",
        "error: service: unknown subcommand 'frobnicate' (ls, ps, scale, update)",
        "error: service: usage: service ls | ps SERVICE | scale SERVICE=N ... "
        "| update SERVICE [flags]",
        "error: node: usage: node ls | update [flags] NODE | down NODE | up NODE | drain NODE | "
            "active NODE",
        "error: events N: must be >= 1, got 0"]
    assert "HOSTNAME   STATUS" in section(out, "node ls")          # still alive at the end
    assert orch.calls == []                                          # nothing reached it


def test_scale_checks_every_service_before_changing_any(orch, tmp_path):
    out = run_script(orch, tmp_path, "service scale app=3 nope=1\n")
    assert "error: services.nope: unknown service" in out and orch.calls == []


def test_update_runs_in_the_background_and_says_when_done(orch, tmp_path):
    out = run_script(orch, tmp_path, "service update app --parallelism 2 --order start-first\n"
                                     "wait\nservice ps app\n")
    assert orch.calls == [("update", "app", 2, 0.0, "start-first")]
    assert section(out, "wait").startswith("app updated (at version 2) in ")
    assert [r.split()[2] for r in section(out, "service ps app").splitlines()[1:]] == ["2", "2"]


def test_a_later_scale_supersedes_a_pending_one(orch, tmp_path):
    orch.delay = 0.3
    out = run_script(orch, tmp_path, "service scale app=5\nservice scale app=1\nwait\n")
    assert "scale app=5: superseded by scale app=1" in out
    assert "app scaled to 1 (1/1 running)" in out
    assert len(orch.cluster.tasks_of("app")) == 1


def test_a_failed_step_is_reported_not_waited_for(orch, tmp_path):
    def failing_scale(service, replicas):
        orch.record("error", "_start_task failed; see the log")
    orch.scale = failing_scale
    out = run_script(orch, tmp_path, "service scale app=4\nwait 5\n")
    assert "scale app=4 FAILED: _start_task failed; see the log; see `events` in" in out


def test_task_kill_and_node_commands_reach_the_orchestrator(orch, tmp_path):
    out = run_script(orch, tmp_path, "task kill t1 --how=unhealthy\nnode drain node2\n"
                                     "node active node2\nnode down node3\nnode down node3\n")
    assert orch.calls == [("kill", "t1", "unhealthy"), ("drain", "node2"),
                          ("active", "node2"), ("down", "node3")]
    assert "app.1 killed (unhealthy) on node1; app has no health check: it stays" in out
    assert "node3 down (the cluster notices after 15s)" in out
    assert "error: nodes.node3: already down" in out


def test_a_killed_container_and_a_node_back_up_reach_the_orchestrator(orch, tmp_path):
    out = run_script(orch, tmp_path, "task kill t1 --how container\nwait\nnode up node3\n"
                                     "node down node3\nnode up node3\n")
    assert orch.calls == [("kill container", "t1"), ("down", "node3"), ("up", "node3")]
    assert "app.1's container killed on node1; Swarm knows at once" in out
    assert "app.1 detected, removed and replaced (app 2/2 running)" in out
    assert "error: nodes.node3: not down" in out
    assert "node3 up (ready again" in out


def test_kill_of_a_checked_task_says_when_it_is_replaced(tmp_path):
    orch = FakeOrch(Cluster.from_stack({"services": {"app": {
        "deploy": {"replicas": 2}, "ports": ["8000:80"],
        "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost/health"]}}}}, nodes=2))
    out = run_script(orch, tmp_path, "task kill app.2\nwait\n")
    assert "app.2 killed (hang) on node2; its health check will tell" in out
    assert section(out, "wait").startswith("app.2 detected, removed and replaced "
                                           "(app 2/2 running) in ")
    assert "app.2" not in [t.name for t in orch.cluster.tasks]


def test_events_and_flows(orch, tmp_path):
    orch.record("scale", "app: 2 -> 3")
    orch.record("task started", "app.3 on node1")
    out = run_script(orch, tmp_path, "events\nevents 1\nflows node2 table=13\nflows\n")
    assert section(out, "events").splitlines() == [
        "T       EVENT          DETAIL", "0.000   scale          app: 2 -> 3",
        "0.100   task started   app.3 on node1"]
    assert section(out, "events 1").splitlines()[1:] == ["0.100   task started   app.3 on node1"]
    assert orch.tb.net["node2"].calls == [("dump-flows", "table=13")]
    assert "(node2 dump-flows table=13)" in section(out, "flows node2 table=13")
    assert "error: flows: usage: flows NODE [MATCH ...]" in out


def test_completion(orch):
    with open(os.devnull) as devnull:
        c = SwarmCLI(orch, stdin=devnull, script=os.devnull, stdout=io.StringIO())
    assert c.complete_service("s", "service s", 8, 9) == ["scale"]
    assert c.complete_service("a", "service ps a", 11, 12) == ["app"]
    assert c.complete_node("", "node drain ", 11, 11) == ["node1", "node2", "node3"]
    assert c.complete_task("app.2", "task kill app.2", 10, 15) == ["app.2"]


# -- `swarmmesh cli`: bad input exits 2 before anything is built ---------------------------

@pytest.mark.parametrize("argv, message", [
    (["--profile", "slow"], "error: profile: must be one of swarm, fast, got 'slow'"),
    (["--nodes", "0"], "error: nodes: must be in 1..200, got 0"),
    (["--node-label", "node4:zone=e"], "error: node_label[0]: node4 does not exist"),
    (["--managers", "5"], "error: managers: must be an integer in 1..3"),
    (["--replicas", "-1"], "error: services.app.deploy.replicas: must be >= 0, got -1"),
    (["--stack", "x.yml", "--replicas", "2"], "error: replicas: not with --stack"),
])
def test_cli_subcommand_bad_input_exits_2_naming_the_field(argv, message, capsys, tmp_path):
    assert swarmmesh_cli.main(["cli", *argv, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "out").exists()                   # nothing made


def test_node_update_places_the_pending_task_and_shows_it(tmp_path):
    stack = {"services": {"app": {"deploy": {"replicas": 1}}, "db": {"deploy": {
        "placement": {"constraints": ["node.labels.disk == ssd"]}}}}}
    orch = FakeOrch(Cluster.from_stack(stack, nodes=3))
    out = run_script(orch, tmp_path, "service ps db\nservice ls\n"
                     "node update --label-add disk=ssd --label-add zone node2\nwait\n"
                     "node ls\nnode update node2 --role boss\nnode update\n")
    print(out)
    ps = section(out, "service ps db").splitlines()
    assert re.split(r"\s{3,}", ps[1]) == [
        "-", "db.1", "1", "Running", "Pending",
        '"no suitable node (scheduling constraints not satisfied on 3 nodes)"']
    assert "db     replicated   0/1" in section(out, "service ls")
    assert orch.calls == [("node update", "node2", (("disk", "ssd"), ("zone", "")), (),
                           None, None)]
    assert section(out, "wait").startswith("converged; no task pending")
    assert [t.node for t in orch.cluster.tasks_of("db")] == ["node2"]
    assert "disk=ssd,zone" in section(out, "node ls")
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors == ["error: --role: must be one of manager, worker, got 'boss'",
                      "error: node update: usage: node update [--label-add KEY[=VALUE]]... "
                      "[--label-rm KEY]... [--role manager|worker] "
                      "[--availability active|pause|drain] NODE"]
