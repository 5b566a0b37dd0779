"""`swarmmesh run conformance --behaviours eastwest` on the emulated engine: a client task
of the stack resolves and calls services by name (real Mininet, OVS, the embedded DNS); what
it measured is what real Swarm showed (docs/departures.md)."""

from __future__ import annotations

from .test_conformance import _run


def test_east_west_from_a_client_task_gives_swarms_answers(tmp_path):
    _run_dir, s = _run(tmp_path, "--behaviours", "eastwest", "--engines", "emulated",
                       timeout=900)
    rows = {r["behaviour"]: r["detail"]["emulated"] for r in s["conformance"]}
    assert rows["east-west: a VIP service's name answers"] == "the VIP"
    assert rows["east-west: split over the tasks through the VIP"] == [True, True, True]
    assert rows["east-west: source the task sees"] == "the client node's load-balancer address"
    assert rows["east-west: tasks.<service> answers"][0] is True
    assert rows["east-west: dnsrr service answers"] == [True, "varies"]


def test_ingress_against_host_mode_reaches_the_one_task_on_every_path(tmp_path):
    """The routing mesh through the task's node and through another node, against the
    host-mode port of the same task: all three answered by it, none failed, and the
    mesh costs more than the host-mode DNAT (ratios on this run's own direct path)."""
    _run_dir, s = _run(tmp_path, "--behaviours", "ingress_overhead", "--engines",
                       "emulated", timeout=900)
    raw = s["raw"]["emulated"]["ingress_overhead"]
    for path in ("direct", "with", "without"):
        assert raw[path]["tasks"] == [raw["task"]] and raw[path]["failed"] == 0, raw
    node = raw["paths"]["direct"].split(":")[0]
    assert raw["paths"]["with"] == f"{node}:8001" and raw["paths"]["direct"] == f"{node}:8002"
    assert raw["paths"]["without"].split(":")[0] != node
    rows = {r["behaviour"]: r["detail"]["emulated"] for r in s["conformance"]}
    assert len(rows) == 4 and all(isinstance(v, float) and v > 0 for v in rows.values()), rows
