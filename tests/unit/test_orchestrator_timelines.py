"""Whole lifecycle timelines replayed through the pure machine and the real driver, on a
clock moved by hand: no switch, no thread, no root. The engine is a recorder; health
transitions are injected where the checker would report them."""

from __future__ import annotations

import pytest

from swarmmesh.lifecycle import effects as fx
from swarmmesh.lifecycle import profiles
from swarmmesh.lifecycle.health import HEALTHY, UNHEALTHY
from swarmmesh.lifecycle.machine import Machine
from swarmmesh.lifecycle.runner import Runner
from swarmmesh.model import Cluster, InvalidConfigError

HC = {"test": ["CMD", "curl", "-f", "http://localhost/health"], "interval": "1s",
      "timeout": "1s", "retries": 2}


class Recorder:
    """The engine and the health checker, recording what they were asked, in order."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.calls: list[tuple] = []
        self.revision = 0
        self.watched: set[str] = set()

    def publish(self) -> int:
        self.revision += 1
        self.calls.append(("publish", self.revision,
                           tuple(sorted((t.name, t.state) for t in self.cluster.tasks))))
        return self.revision

    def wait_applied(self, revision: int) -> float:
        return 0.001

    def start_task(self, task):
        self.calls.append(("start", task.name, task.node))

    def stop_task(self, task):
        self.calls.append(("stop", task.name))

    def sync_fdb(self):
        self.calls.append(("fdb",))

    def flush_conntrack(self, task):
        self.calls.append(("flush", task.name))

    def kill_app(self, task, how):
        self.calls.append(("kill app", task.name, how))

    def cut_node(self, name):
        self.calls.append(("cut", name))

    def restore_node(self, name):
        self.calls.append(("restore", name))

    def kill_controller(self):
        self.calls.append(("kill controller",))

    def restart_controller(self):
        self.calls.append(("restart controller",))

    def task_netns_pid(self, task):
        return None

    def watch(self, task, hc):
        self.watched.add(task.name)

    def unwatch(self, task):
        self.watched.discard(task)

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


class Timeline:
    """A cluster, its machine, the driver on a hand-moved clock."""

    def __init__(self, cluster: Cluster, profile: str = "swarm") -> None:
        self.t = 0.0
        self.cluster = cluster
        self.engine = Recorder(cluster)
        self.machine = Machine(cluster, profiles.profile(profile))
        self.runner = Runner(self.machine, self.engine, self.engine, lambda: self.t)
        self.runner.carry(self.machine.watch_all())

    def at(self, t: float, event: fx.Event | None = None) -> None:
        """Run every timer due until ``t`` (each at its own time), then ``event`` at ``t``."""
        while (due := self.runner.next_due()) is not None and due <= t:
            self.t = max(self.t, due)
            self.runner.run_timer(self.runner.pop_due())
        self.t = t
        if event is not None:
            self.runner.feed(event)

    def events(self, *kinds: str) -> list[tuple[float, str, str]]:
        return [(e.t, e.event, e.detail) for e in self.runner.events
                if not kinds or e.event in kinds]


def checked(replicas: int = 3, nodes: int = 3) -> Cluster:
    return Cluster.from_stack({"services": {"app": {
        "deploy": {"replicas": replicas}, "ports": ["8000:80"], "healthcheck": HC}}},
        nodes=nodes)


def names(tasks) -> list[str]:
    return sorted(t.name for t in tasks)


# -- failover: the application hangs, its health check notices ------------------------------
@pytest.mark.parametrize("profile, leave", [("swarm", 2.0), ("fast", 0.2)])
def test_failover_weight_zero_then_removed_after_the_profiles_delay_then_replaced(
        profile, leave):
    tl = Timeline(checked(), profile)
    victim = tl.cluster.tasks_of("app")[0]
    tl.at(1.0, fx.KillApp(victim.name, "hang"))
    assert tl.engine.of("kill app") == [("kill app", victim.name, "hang")]
    assert victim.state == "running"                   # nothing knows yet
    tl.at(5.0, fx.HealthChanged(victim.name, UNHEALTHY, 5.0, 2))
    tl.at(5.0)
    assert victim.state == "draining"
    assert ("publish", 1, tuple(sorted((t.name, t.state) for t in tl.cluster.tasks))) \
        in tl.engine.calls                             # weight 0 published while it is there
    tl.at(5.0 + leave - 0.01)
    assert victim in tl.cluster.tasks                   # not before the leave delay
    tl.at(5.0 + leave)
    assert victim not in tl.cluster.tasks
    new = [t for t in tl.cluster.tasks_of("app") if t.slot == victim.slot]
    assert len(new) == 1 and new[0].state == "starting" and new[0].name != victim.name
    assert tl.engine.calls.index(("stop", victim.name)) < \
        tl.engine.calls.index(("start", new[0].name, new[0].node))
    assert ("flush", victim.name) in tl.engine.calls and victim.name not in tl.engine.watched
    tl.at(7.0 + leave, fx.HealthChanged(new[0].name, HEALTHY, 7.0 + leave))
    tl.at(7.0 + leave)
    assert new[0].state == "running"
    kinds = [e[1] for e in tl.events() if e[1] != "published"]
    assert kinds == ["task killed", "health unhealthy", "weight 0", "task removed",
                     "task started", "health healthy"]
    removed = tl.events("task removed")[0][0]
    assert removed == pytest.approx(5.0 + leave)


def test_a_task_without_a_health_check_stays_in_the_balancer_and_the_record_says_so():
    tl = Timeline(Cluster.quick(3, 2))
    victim = tl.cluster.tasks[0]
    tl.at(1.0, fx.KillApp(victim.name, "hang"))
    tl.at(300.0)
    assert victim.state == "running" and victim in tl.cluster.tasks
    assert "has no health check" in tl.events("note")[0][2]


def test_a_bad_kill_mode_changes_nothing_and_names_the_field():
    tl = Timeline(Cluster.quick(3, 2))
    with pytest.raises(InvalidConfigError) as e:
        tl.at(1.0, fx.KillApp(tl.cluster.tasks[0].name, "explode"))
    assert e.value.field == "how" and tl.engine.calls == [] and tl.events() == []


# -- killing the container: Swarm knows at once ------------------------------------------------
@pytest.mark.parametrize("profile", ["swarm", "fast"])
def test_a_killed_container_leaves_after_exit_detect_and_is_replaced_after_restart_delay(
        profile):
    prof = profiles.profile(profile)
    tl = Timeline(Cluster.quick(3, 2), profile)
    victim = tl.cluster.tasks[0]
    tl.at(10.0, fx.KillContainer(victim.name))
    assert tl.engine.of("kill app") == [("kill app", victim.name, "hang")]   # refuses at once
    tl.at(10.0 + prof.exit_detect)
    assert victim not in tl.cluster.tasks
    failed = tl.events("task failed")[0][0]
    assert failed == pytest.approx(10.0 + prof.exit_detect)
    assert len(tl.cluster.tasks_of("app")) == (1 if prof.restart_delay else 2)
    tl.at(10.0 + prof.exit_detect + prof.restart_delay)
    started = tl.events("task started")
    assert len(started) == 1 and started[0][0] == pytest.approx(
        10.0 + prof.exit_detect + prof.restart_delay)
    assert sorted(t.slot for t in tl.cluster.tasks_of("app")) == [1, 2]   # the same slot


# -- rolling updates ---------------------------------------------------------------------------
def update_timeline(order: str):
    tl = Timeline(checked(replicas=2), "fast")
    old = sorted(tl.cluster.tasks_of("app"), key=lambda t: t.slot)
    for t in old:
        t.state = "running"
    tl.at(1.0, fx.Update("app", 1, 0.0, order))
    t = 1.0
    for _ in range(20):                  # admit every new task 0.5 s after it starts
        t += 0.5
        tl.at(t)
        for task in tl.cluster.tasks_of("app"):
            if task.state == "starting":
                tl.at(t, fx.HealthChanged(task.name, HEALTHY, t))
    tl.at(t + 5)
    return tl, old


def test_a_start_first_update_starts_each_new_task_before_its_old_one_leaves():
    tl, old = update_timeline("start-first")
    steps = [(c[0], c[1].split(".")[1]) for c in tl.engine.calls if c[0] in ("start", "stop")]
    assert steps == [("start", "1"), ("stop", "1"), ("start", "2"), ("stop", "2")]
    version = {e[2] for e in tl.events("update done")}
    assert version == {"app at version 2"} and not tl.machine.busy()
    weight0 = [e[0] for e in tl.events("weight 0")]
    healthy = [e[0] for e in tl.events("health healthy")]
    assert healthy[0] <= weight0[0] and healthy[1] <= weight0[1]    # new healthy, then old out
    assert all(t.version == 2 and t.state == "running" for t in tl.cluster.tasks_of("app"))


def test_a_stop_first_update_removes_each_old_task_before_its_new_one_starts():
    tl, old = update_timeline("stop-first")
    steps = [(c[0], c[1].split(".")[1]) for c in tl.engine.calls if c[0] in ("start", "stop")]
    assert steps == [("stop", "1"), ("start", "1"), ("stop", "2"), ("start", "2")]
    assert [e[2] for e in tl.events("update batch done")] == [old[0].name, old[1].name]
    assert all(t.version == 2 for t in tl.cluster.tasks_of("app"))


def test_an_update_waits_between_batches_for_its_delay():
    tl = Timeline(Cluster.quick(3, 2), "fast")
    tl.at(1.0, fx.Update("app", 1, 3.0, "stop-first"))
    tl.at(2.0)
    done = tl.events("update batch done")
    assert len(done) == 1
    tl.at(1.0 + 0.2 + 2.99)
    assert len(tl.events("update batch done")) == 1     # the delay is not over
    tl.at(10.0)
    assert len(tl.events("update batch done")) == 2 and tl.events("update done")


# -- node loss -----------------------------------------------------------------------------------
def test_node_loss_cuts_at_once_then_reschedules_after_the_detection_delay():
    tl = Timeline(Cluster.quick(3, 3), "swarm")
    lost = tl.cluster.tasks_on("node1")
    assert lost
    tl.at(2.0, fx.NodeDown("node1"))
    assert tl.engine.of("cut") == [("cut", "node1")]
    tl.at(2.0 + profiles.NODE_DOWN_AFTER - 0.1)
    assert tl.cluster.node("node1").status == "ready"
    tl.at(2.0 + profiles.NODE_DOWN_AFTER)
    assert tl.cluster.node("node1").status == "down"
    assert not tl.cluster.tasks_on("node1")
    assert len(tl.cluster.tasks_of("app")) == 3
    assert {t.node for t in tl.cluster.tasks_of("app")} <= {"node2", "node3"}
    marked = tl.events("node marked down")[0][0]
    assert marked == pytest.approx(2.0 + profiles.NODE_DOWN_AFTER)
    publishes = tl.engine.of("publish")
    down_pub = publishes[0][2]                 # first publish: node down, tasks still listed
    assert {n for n, _ in down_pub} >= {t.name for t in lost}


def test_a_node_back_before_it_is_marked_down_keeps_its_tasks():
    tl = Timeline(Cluster.quick(3, 3))
    before = names(tl.cluster.tasks)
    tl.at(1.0, fx.NodeDown("node2"))
    tl.at(5.0, fx.NodeUp("node2"))
    tl.at(60.0)
    assert names(tl.cluster.tasks) == before and tl.cluster.node("node2").status == "ready"
    assert tl.engine.of("restore") == [("restore", "node2")] and not tl.events("node marked down")


# -- a scale during a health failure -----------------------------------------------------------
def test_a_scale_down_during_a_health_failure_does_not_replace_beyond_the_new_count():
    tl = Timeline(checked(replicas=3), "fast")
    for t in tl.cluster.tasks:
        t.state = "running"
    sick = tl.cluster.tasks_of("app")[0]
    tl.at(1.0, fx.HealthChanged(sick.name, UNHEALTHY, 1.0, 2))
    tl.at(1.05, fx.Scale("app", 2))
    tl.at(10.0)
    live = [t for t in tl.cluster.tasks_of("app")]
    assert len(live) == 2 and sick not in live
    assert not tl.events("task started")            # nothing replaced the sick one


def test_a_scale_up_during_a_health_failure_replaces_it_and_adds_the_new_ones():
    tl = Timeline(checked(replicas=2), "fast")
    sick = tl.cluster.tasks_of("app")[0]
    tl.at(1.0, fx.HealthChanged(sick.name, UNHEALTHY, 1.0, 2))
    tl.at(1.05, fx.Scale("app", 4))
    tl.at(10.0)
    assert len(tl.cluster.tasks_of("app")) == 4 and sick not in tl.cluster.tasks
    assert len(tl.events("task started")) == 3


# -- the controller restarts -----------------------------------------------------------------------
def test_changes_while_the_controller_is_down_are_published_once_it_is_back():
    tl = Timeline(Cluster.quick(3, 2), "fast")
    tl.at(1.0, fx.ControllerDown())
    tl.at(1.1, fx.Scale("app", 3))
    tl.at(2.0)
    assert len(tl.cluster.tasks_of("app")) == 3
    assert tl.engine.of("publish") == []            # no switch can take it
    tl.at(3.0, fx.ControllerUp())
    (pub,) = tl.engine.of("publish")
    assert tl.engine.calls.index(("restart controller",)) < tl.engine.calls.index(pub)
    assert "app.3 joins" in tl.events("published")[0][2]


# -- pending tasks and node updates ----------------------------------------------------------------
def test_a_pending_task_is_placed_when_a_node_gets_its_label():
    tl = Timeline(Cluster.from_stack({"services": {"db": {"deploy": {
        "replicas": 1, "placement": {"constraints": ["node.labels.disk == ssd"]}}}}}, nodes=2))
    assert tl.cluster.pending_of("db") and not tl.cluster.tasks_of("db")
    tl.at(1.0, fx.NodeUpdate("node2", label_add=(("disk", "ssd"),)))
    tl.at(1.0)
    (task,) = tl.cluster.tasks_of("db")
    assert task.node == "node2" and not tl.cluster.pending_of("db")
    assert [e[1] for e in tl.events() if e[1] != "published"] == [
        "node update", "task placed", "task started"]


def test_drain_moves_every_task_off_the_node():
    tl = Timeline(Cluster.quick(3, 3))
    tl.at(1.0, fx.Drain("node1"))
    tl.at(10.0)
    assert not tl.cluster.tasks_on("node1") and len(tl.cluster.tasks_of("app")) == 3
