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
