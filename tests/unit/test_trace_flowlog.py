"""The flow log (--flows): conntrack events a real node printed -> flows.csv rows."""

from __future__ import annotations

from pathlib import Path

from swarmmesh.model import Cluster
from swarmmesh.trace import flowlog, parse

FIX = Path(__file__).parent / "fixtures" / "trace"


def events(name: str):
    return parse.parse_conntrack((FIX / name).read_text())


def cluster() -> Cluster:
    """The cluster the fixtures were captured on."""
    return Cluster.from_stack(FIX / "stack.yml", nodes=3, implicit_network=False)


def test_a_closed_ingress_connection_becomes_one_row():
    [row] = flowlog.flows({"node3": events("conntrack_ingress_ts.txt")}, cluster())
    assert (row["entry_node"], row["client"], row["client_port"], row["published"]) == \
        ("node3", "192.168.99.201", 51686, 8000)
    assert (row["task"], row["task_address"], row["task_port"]) == ("app.1", "10.0.0.6", 80)
    assert (row["snat_address"], row["snat_port"]) == ("10.0.0.4", 51686)
    assert row["ended"] == "closed" and row["start"] == 1796417929.243514
    assert row["duration_s"] == round(1796417929.248574 - 1796417929.243514, 6)
    assert row["bytes_in"] == ""                       # no DESTROY: no counters


def test_host_mode_row_names_the_task_by_its_gateway_leg():
    [row] = flowlog.flows({"node1": events("conntrack_host.txt")}, cluster())
    assert row["task"] == "web.1" and row["snat_address"] == "" and row["ended"] == "closed"


def test_a_refused_connection_is_kept_only_for_a_published_port():
    assert flowlog.flows({"node3": events("conntrack_refused.txt")}, cluster()) == []
    [row] = flowlog.flows({"node3": events("conntrack_refused.txt")}, cluster(),
                          published={("tcp", 8080)})
    assert row["task"] == "" and row["ended"] == "reset"


def test_counters_come_from_the_destroy_event_and_a_reused_port_starts_a_new_row():
    text = (FIX / "conntrack_ingress_ts.txt").read_text()
    destroy = ("[1796417930.000000]\t[DESTROY] tcp      6 src=192.168.99.201 dst=192.168.99.3 "
               "sport=51686 dport=8000 packets=6 bytes=397 src=10.0.0.6 dst=10.0.0.4 "
               "sport=80 dport=51686 packets=4 bytes=518 [ASSURED] id=3675421273\n")
    again = text.replace("id=3675421273", "id=99").replace("10.0.0.6", "10.0.0.7")
    rows = flowlog.flows({"node3": parse.parse_conntrack(text + destroy + again)}, cluster())
    assert [r["task"] for r in rows] == ["app.1", "app.2"]
    assert (rows[0]["bytes_in"], rows[0]["bytes_out"], rows[0]["packets_in"]) == (397, 518, 6)
    assert rows[1]["bytes_in"] == "" and rows[1]["ended"] == "closed"


def test_matrix_counts_entry_node_by_task():
    rows = [{"entry_node": "node2", "task": "app.1"}, {"entry_node": "node10", "task": "app.2"},
            {"entry_node": "node2", "task": "app.1"}, {"entry_node": "node2", "task": ""}]
    assert flowlog.matrix(rows) == (["node2", "node10"], ["(none)", "app.1", "app.2"],
                                    [[1, 2, 0], [0, 0, 1]])


def test_counters_from_the_final_listing_when_no_destroy_event_came():
    listing = ("tcp      6 118 TIME_WAIT src=192.168.99.201 dst=192.168.99.3 sport=51686 "
               "dport=8000 packets=6 bytes=397 src=10.0.0.6 dst=10.0.0.4 sport=80 "
               "dport=51686 packets=4 bytes=518 [ASSURED] mark=0 use=1 id=3675421273\n")
    listed = parse.parse_conntrack(listing)
    assert listed[0].event == "LIST" and listed[0].ct_id == "3675421273"
    assert listed[0].reply == ("10.0.0.6", "10.0.0.4", 80, 51686)
    [row] = flowlog.flows({"node3": events("conntrack_ingress_ts.txt")}, cluster(),
                          listed={"node3": listed})
    assert (row["bytes_in"], row["bytes_out"], row["packets_out"]) == (397, 518, 4)
