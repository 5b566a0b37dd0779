"""Real Swarm's reads (``service ps`` + task ``inspect``, ``node inspect``) replayed into the
lifecycle experiments' events: which Swarm state is which event, at Swarm's own time."""

from __future__ import annotations

import argparse
import json

import pytest

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import engineargs, timeline
from swarmmesh.testbed import docker_events as de
from swarmmesh.testbed import docker_plan

EPOCH0 = de.epoch("2026-12-05T02:00:00Z")      # the run's zero on the wall clock
IDS = {"svc": "app"}


def stamp(t: float) -> str:
    """The run's second ``t`` as Docker prints a time (nanoseconds)."""
    whole = int(t)
    return f"2026-12-05T02:{whole // 60:02d}:{whole % 60:02d}.{round((t - whole) * 1e9):09d}Z"


def task(tid, slot, node, state, at, desired="running", err="", updated=None):
    return {"ID": tid, "ServiceID": "svc", "Slot": slot, "NodeID": node,
            "DesiredState": desired, "UpdatedAt": stamp(updated if updated is not None else at),
            "Status": {"State": state, "Err": err, "Timestamp": stamp(at),
                       "ContainerStatus": {"ContainerID": f"c-{tid}"}}}


def nodes(down=(), updated=0.0):
    return json.dumps([{"ID": f"n{i}", "Description": {"Hostname": f"node{i}"},
                        "UpdatedAt": stamp(updated),
                        "Status": {"State": "down" if f"node{i}" in down else "ready"}}
                       for i in (1, 2, 3)])


def poll(t, tasks, down=(), node_updated=0.0):
    return de.poll_of(t, docker_plan.parse_tasks(json.dumps(tasks), IDS),
                      nodes(down, node_updated))


def replay(*polls):
    return [(round(t, 2), e, d.split()[0].rstrip(":")) for t, e, d in de.events(polls, EPOCH0)]


A1 = task("a1aaaaaaaaaaaaaa", 1, "n1", "running", -30)
A2 = task("a2aaaaaaaaaaaaaa", 2, "n2", "running", -30)


def test_times_are_swarms_own_when_they_fall_in_the_reads_interval():
    assert de.epoch("2026-12-05T02:00:01.250000000Z") - EPOCH0 == pytest.approx(1.25)
    assert de.epoch("2026-12-05T03:00:01+01:00") - EPOCH0 == pytest.approx(1.0)
    assert de.epoch("0001-01-01T00:00:00Z") is None and de.epoch("") is None
    assert de.when(stamp(4.3), EPOCH0, 4.0, 5.0) == 4.3
    assert de.when(stamp(3.8), EPOCH0, 4.0, 5.0) == 3.8          # within the slack
    assert de.when(stamp(1.0), EPOCH0, 4.0, 5.0) == 5.0          # stale: the read's time
    assert de.when("", EPOCH0, 4.0, 5.0) == 5.0


def test_the_first_read_is_the_baseline_and_a_scale_up_starts_then_joins():
    """A new task is ``starting`` until its first healthy check (Swarm keeps it there), then
    ``running``: started, then joins the load balancer, each at Swarm's timestamp."""
    new = task("a3aaaaaaaaaaaaaa", 3, "n3", "starting", 11.2)
    assert replay(poll(0.0, [A1, A2])) == []
    assert replay(poll(0.0, [A1, A2]),
                  poll(11.6, [A1, A2, new]),
                  poll(42.0, [A1, A2, {**new, "Status": {**new["Status"], "State": "running",
                                                         "Timestamp": stamp(41.7)}}])) == [
        (11.2, "task started", "app.3"), (41.7, "published", "app.3")]


def test_a_scale_down_is_weight_0_at_the_desired_change_then_removal():
    """Desired ``remove`` while it runs: its node deactivates the binding (weight 0), stops
    it 2 s later (``shutdown``); then Swarm deletes the task (no second removal)."""
    leaving = {**A2, "DesiredState": "remove", "UpdatedAt": stamp(50.1)}
    stopped = {**leaving, "Status": {**A2["Status"], "State": "shutdown",
                                     "Timestamp": stamp(52.3)}}
    assert replay(poll(49.9, [A1, A2]), poll(50.8, [A1, leaving]), poll(53.0, [A1, stopped]),
                  poll(54.0, [A1])) == [(50.1, "weight 0", "app.2"),
                                        (52.3, "task removed", "app.2")]
    # deleted before a read saw it shut down: removed at the read that missed it
    assert replay(poll(49.9, [A1, A2]), poll(50.8, [A1, leaving]), poll(53.0, [A1])) == [
        (50.1, "weight 0", "app.2"), (53.0, "task removed", "app.2")]


def test_an_app_found_unhealthy_is_the_detection_and_its_slot_restarts():
    """The task fails as unhealthy (the detection); its replacement, the same slot and name,
    starts and joins; a failed task is no weight 0 (it is already out)."""
    failed = {**A1, "DesiredState": "shutdown", "UpdatedAt": stamp(84.0),
              "Status": {**A1["Status"], "State": "failed", "Timestamp": stamp(83.9),
                         "Err": "task: unhealthy container"}}
    again = task("b1bbbbbbbbbbbbbb", 1, "n3", "starting", 89.5)
    assert replay(poll(83.0, [A1, A2]), poll(84.5, [failed, A2]),
                  poll(90.0, [failed, A2, again])) == [
        (83.9, "health unhealthy", "app.1"), (89.5, "task started", "app.1")]
    killed = {**failed, "Status": {**failed["Status"], "Err": "task: non-zero exit (137)"}}
    assert replay(poll(83.0, [A1]), poll(84.5, [killed])) == [(83.9, "task failed", "app.1")]


def test_a_node_marked_down_and_its_tasks_to_shut_down():
    """The node's status ``down`` is the mark; its tasks' desired ``shutdown`` is no weight 0
    (that node can take nothing out); the replacement elsewhere starts."""
    orphan = {**A2, "DesiredState": "shutdown", "UpdatedAt": stamp(26.2)}
    repl = task("c2cccccccccccccc", 2, "n3", "starting", 26.4)
    assert replay(poll(24.0, [A1, A2]),
                  poll(27.0, [A1, orphan, repl], down=("node2",), node_updated=26.1),
                  poll(30.0, [A1, orphan, repl], down=("node2",))) == [
        (26.1, "node marked down", "node2"), (26.2, "task to shut down", "app.2"),
        (26.4, "task started", "app.2")]


def test_polls_go_to_swarm_jsonl_and_back():
    p = poll(3.0, [A1, A2], down=("node3",))
    assert de.Poll.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert [(x.name, x.node) for x in p.tasks] == [("app.1", "node1"), ("app.2", "node2")]
    assert [n.status for n in p.nodes] == ["ready", "ready", "down"]


def _lifecycle_args(*argv):
    ap = argparse.ArgumentParser()
    timeline.add_arguments(ap)
    engineargs.add_arguments(ap)
    return ap.parse_args(list(argv))


def test_engine_docker_takes_swarms_timings_and_refuses_another_profile():
    args = _lifecycle_args("--engine", "docker")
    engineargs.check(args, missing=lambda: None)
    timeline.check_arguments(args)
    assert args.profile == "swarm"
    plain = _lifecycle_args()
    timeline.check_arguments(plain)
    assert plain.profile == "fast"
    with pytest.raises(InvalidConfigError, match="^profile: --engine docker: the lifecycle "
                                                 "timings are Swarm's own"):
        engineargs.check(_lifecycle_args("--engine", "docker", "--profile", "fast"),
                         missing=lambda: None)


# -- the experiments' figures from real Swarm's events ------------------------------------
def _ev(t, event, detail):
    return {"t": t, "event": event, "detail": detail, "variant": "swarm"}


def _row(t, task, ok=True, node="node1", error=""):
    return {"t_send": t, "task": task if ok else "", "ok": ok, "ingress_node": node,
            "error": error, "variant": "swarm", "latency_ms": 1.0}


def test_scaling_on_swarm_times_retired_tasks_by_weight_0_and_removal():
    from swarmmesh.runs import experiment
    scaling = experiment.load("scaling")
    events = [_ev(10.0, "scale", "app: 2 -> 3"), _ev(10.4, "task started", "app.3 on node3"),
              _ev(41.0, "published", "app.3 running: joins the load balancer (x)"),
              _ev(50.0, "scale", "app: 3 -> 2"),
              _ev(50.2, "weight 0", "app.3: desired remove: node3 takes it out (x)"),
              _ev(52.5, "task removed", "app.3 on node3 (x shutdown)")]
    rows = [_row(t / 2, f"app.{1 + int(t) % 2}") for t in range(120)]
    rows += [_row(45.0, "app.3"), _row(50.1, "app.3")]
    m = scaling.metrics(rows, events)
    assert m["new_tasks"] == {"app.3": {"started_s": 0.4, "joined_s": 31.0,
                                        "first_request_s": 35.0}}
    assert m["retired_tasks"] == {"app.3": {"weight0_s": 0.2, "converged_s": None,
                                            "removed_s": 2.5, "last_request_s": 0.1}}
    assert list(m["phases"]) == ["before the scale-up", "scaling up", "scaled up",
                                 "scaling down", "scaled down"]
    assert m["phases"]["scaling down"]["to_s"] == 52.5          # the removal, no convergence


def test_failover_on_swarm_stops_counting_the_dead_task_once_its_slot_rejoins():
    """Swarm names the replacement as the slot (app.1 again): its answers are not the dead
    task's; refusals before detection are."""
    from swarmmesh.runs.timeline_metrics import failover_metrics
    events = [_ev(10.0, "task killed", "app.1 on node1 (hang)"),
              _ev(85.0, "health unhealthy", "app.1 on node1: task: unhealthy container (x)"),
              _ev(91.0, "task started", "app.1 on node2 (x, starting)"),
              _ev(121.0, "published", "app.1 running: joins the load balancer (x on node2)")]
    rows = [_row(9.0, "app.1"), _row(12.0, "", ok=False, error="refused"),
            _row(84.0, "", ok=False, error="refused"), _row(86.0, "app.2"),
            _row(125.0, "app.1")]
    m = failover_metrics(rows, events)
    assert (m["kill_to_detect_s"], m["kill_to_last_new_connection_s"],
            m["kill_to_replacement_s"], m["t_convergence"]) == (75.0, 74.0, 111.0, None)
    assert m["requests_to_dead_task_after_kill"] == 2


def test_node_loss_on_swarm_counts_failures_after_the_replacements_joined():
    from swarmmesh.runs import experiment
    node_loss = experiment.load("node_loss")
    events = [_ev(10.0, "node down", "node2 (link down: it answers nothing)"),
              _ev(24.0, "node marked down", "node2: Swarm reports it down"),
              _ev(24.3, "task started", "app.2 on node3 (x, starting)"),
              _ev(55.0, "published", "app.2 running: joins the load balancer (x on node3)")]
    rows = [_row(12.0, "", ok=False, node="node1", error="timeout"),
            _row(30.0, "app.1", node="node3"), _row(60.0, "app.2", node="node1"),
            _row(61.0, "", ok=False, node="node2", error="timeout")]
    m = node_loss.metrics(rows, events, "node2", "docker")
    assert (m["down_to_marked_s"], m["down_to_converged_s"], m["down_to_rescheduled_s"],
            m["down_to_recovered_s"]) == (14.0, None, 14.3, 45.0)
    o = m["via_others"]
    assert (o["failed"], o["failed_after_convergence"], o["failed_after_recovered"]) == (1, None, 0)
    # the emulated engine keeps its check: no convergence seen, every failure counts
    assert node_loss.metrics(rows, events, "node2")["via_others"]["failed_after_convergence"] == 1


def _recorded(name: str):
    """The reads of a real run in the guest (moby 20.10.24; consecutive equal reads left
    out), with the run's zero on the wall clock."""
    from pathlib import Path
    lines = (Path(__file__).parent / "fixtures" / "docker" / f"{name}-polls.jsonl").read_text()
    polls = [json.loads(x) for x in lines.splitlines()]
    return [de.Poll.from_dict(p) for p in polls], polls[0]["epoch0"]


def test_a_recorded_node_loss_marks_the_node_down_and_restarts_its_task_elsewhere():
    polls, epoch0 = _recorded("node_loss")
    assert [(round(t, 1), e, d.split()[0].rstrip(":")) for t, e, d in
            de.events(polls, epoch0)] == [
        (26.0, "node marked down", "node2"), (26.1, "task to shut down", "app.2"),
        (31.2, "task started", "app.2"), (77.4, "published", "app.2")]


def test_a_recorded_scale_down_of_tasks_still_starting_takes_nothing_out():
    """2 -> 4 -> 2 under TCG: the two new tasks were still ``starting`` (no healthy check
    yet) when the scale-down came: no weight 0, and gone at the next read."""
    polls, epoch0 = _recorded("scaling")
    assert [(round(t, 1), e, d.split()[0]) for t, e, d in de.events(polls, epoch0)] == [
        (31.0, "task started", "app.3"), (31.2, "task started", "app.4"),
        (53.0, "task to shut down", "app.4"), (53.0, "task to shut down", "app.3"),
        (73.8, "task removed", "app.3"), (73.8, "task removed", "app.4")]


def test_dockers_health_verdicts_name_the_task_and_keep_dockers_time():
    stream = "\n".join(json.dumps(e) for e in [
        {"Type": "container", "Action": "health_status: healthy", "timeNano": 1,
         "Actor": {"Attributes": {"com.docker.swarm.task.name": "app.1.txwz9almz33wq"}}},
        {"Type": "container", "Action": "health_status: unhealthy",
         "timeNano": int((EPOCH0 + 101.25) * 1e9),
         "Actor": {"Attributes": {"com.docker.swarm.task.name": "app.1.txwz9almz33wq",
                                  "com.docker.swarm.service.name": "app"}}},
        {"Type": "container", "Action": "health_status: unhealthy", "timeNano": 1,
         "Actor": {"Attributes": {"name": "not-a-task"}}}]) + "\n"
    [(t, event, detail)] = de.health_events(stream, "node2", EPOCH0)
    assert (round(t, 2), event) == (101.25, "health unhealthy")
    assert detail.startswith("app.1 on node2: Docker found its container unhealthy")
