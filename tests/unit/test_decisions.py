"""The orchestrator's decisions on the model alone: no testbed, no thread, no root."""

from __future__ import annotations

import pytest

from swarmmesh.lifecycle import decisions
from swarmmesh.lifecycle.health import HEALTHY, STARTING, UNHEALTHY
from swarmmesh.model import Cluster, InvalidConfigError


def names(tasks) -> list[str]:
    return [t.name for t in tasks]


def global_and_replicated() -> Cluster:
    return Cluster.from_stack({"services": {
        "app": {"deploy": {"replicas": 3}, "ports": ["8000:80"]},
        "agent": {"deploy": {"mode": "global"}}}}, nodes=3)


# -- scale -------------------------------------------------------------------------
def test_scale_up_starts_what_is_missing_and_retires_nothing():
    plan = decisions.plan_scale(Cluster.quick(3, 2), "app", 5)
    assert (plan.start, plan.retire) == (3, ())


def test_scale_down_retires_the_highest_slots():
    c = Cluster.quick(3, 4)
    plan = decisions.plan_scale(c, "app", 1)
    assert plan.start == 0
    assert [t.slot for t in plan.retire] == [2, 3, 4]


def test_scale_does_not_count_leaving_tasks():
    c = Cluster.quick(3, 3)
    c.tasks_of("app")[0].state = "draining"
    plan = decisions.plan_scale(c, "app", 3)
    assert (plan.start, plan.retire) == (1, ())


@pytest.mark.parametrize("service, replicas, field", [
    ("app", -1, "replicas"), ("agent", 2, "services.agent.deploy.mode")])
def test_scale_refuses_bad_input_naming_the_field(service, replicas, field):
    with pytest.raises(InvalidConfigError) as e:
        decisions.plan_scale(global_and_replicated(), service, replicas)
    assert e.value.field == field


# -- update --------------------------------------------------------------------------
def test_update_batches_by_slot_at_the_next_version():
    c = Cluster.quick(3, 5)
    plan = decisions.plan_update(c, "app", parallelism=2, order="start-first")
    assert plan.version == c.service_version("app") + 1
    assert [[t.slot for t in b] for b in plan.batches] == [[1, 2], [3, 4], [5]]


def test_update_orders_start_or_stop_first():
    assert decisions.batch_steps("start-first") == ("start", "wait running", "leave",
                                                    "wait gone")
    assert decisions.batch_steps("stop-first") == ("leave", "wait gone", "start",
                                                   "wait running")


@pytest.mark.parametrize("kw, field", [({"parallelism": 0}, "parallelism"),
                                       ({"delay": -1}, "delay"),
                                       ({"order": "random"}, "order")])
def test_update_refuses_bad_input_naming_the_field(kw, field):
    with pytest.raises(InvalidConfigError) as e:
        decisions.plan_update(Cluster.quick(2, 2), "app", **kw)
    assert e.value.field == field


# -- health, kill --------------------------------------------------------------------
def test_health_transitions_admit_a_starting_task_and_evict_an_unhealthy_one():
    c = Cluster.quick(2, 2)
    task = c.tasks_of("app")[0]
    task.state = "starting"
    assert decisions.on_health(task, HEALTHY) == "admit"
    assert decisions.on_health(task, STARTING) is None
    task.state = "running"
    assert decisions.on_health(task, HEALTHY) is None
    assert decisions.on_health(task, UNHEALTHY) == "leave"
    task.state = "draining"
    assert decisions.on_health(task, UNHEALTHY) is None           # already leaving


def test_kill_modes():
    for how in decisions.KILL_MODES:
        decisions.check_kill(how)
    with pytest.raises(InvalidConfigError, match="how: must be hang or unhealthy"):
        decisions.check_kill("explode")


# -- replacement, node loss, drain ----------------------------------------------------
def test_a_replacement_never_goes_above_the_desired_count():
    c = Cluster.quick(3, 3)
    gone = c.remove_task(c.tasks_of("app")[0].name)
    assert decisions.replace_after_removal(c, gone)
    c.place_task("app")                                 # a scale or another path beat it
    assert not decisions.replace_after_removal(c, gone)


def test_node_loss_reschedules_replicated_tasks_up_to_the_desired_count():
    c = global_and_replicated()
    gone = [c.remove_task(t.name) for t in list(c.tasks_on("node1"))]
    assert {t.service for t in gone} == {"app", "agent"}
    again = decisions.reschedule(c, gone)
    assert names(again) == [t.name for t in gone if t.service == "app"]
    c.service("app").replicas = len(decisions.live_tasks(c, "app"))   # scaled down meanwhile
    assert decisions.reschedule(c, gone) == []


def test_drain_moves_replicated_tasks_and_stops_global_ones():
    c = global_and_replicated()
    plan = decisions.plan_drain(c, "node2")
    assert {t.service: replace for t, replace in plan} == {"app": True, "agent": False}
    assert all(t.node == "node2" for t, _ in plan)
