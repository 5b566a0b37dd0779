"""``swarmmesh cli --engine docker`` without dockerd: what Swarm's JSON becomes (tables,
events, completion tests, the model), what the CLI refuses, and the adaptor driven by a
fake engine whose docker client answers from canned JSON in Swarm's shapes."""

from __future__ import annotations

import argparse
import io
import json
import os

import pytest

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.testbed import docker_plan
from swarmmesh.ui import shell_swarm as view
from swarmmesh.ui.shell_ops import update_done
from swarmmesh.lifecycle.orchestrator import Event

NODES = {"n1id": "node1", "n2id": "node2", "n3id": "node3"}


def task(tid, slot, node, state="running", desired="running", err="", ts="2026-01-01T00:00:01Z",
         force=0, service="svcid"):
    return {"ID": tid, "ServiceID": service, "Slot": slot, "NodeID": node,
            "DesiredState": desired, "Spec": {"ForceUpdate": force},
            "Status": {"State": state, "Err": err, "Timestamp": ts,
                       "ContainerStatus": {"ContainerID": f"c-{tid}"}},
            "NetworksAttachments": [{"Network": {"Spec": {"Name": "front"}},
                                     "Addresses": [f"10.0.1.{slot + 2}/24"]}]}


def service(replicas=2, force=0, update=None, ports=()):
    s = {"ID": "svcid", "Spec": {"Name": "app", "Mode": {"Replicated": {"Replicas": replicas}},
                                 "TaskTemplate": {"ForceUpdate": force},
                                 "EndpointSpec": {"Ports": list(ports)}}}
    if update:
        s["UpdateStatus"] = dict(zip(("State", "StartedAt", "Message"), update))
    return s


def node(nid, name, status="ready", avail="active", leader=False, labels=None):
    n = {"ID": nid, "Description": {"Hostname": name}, "Status": {"State": status},
         "Spec": {"Availability": avail, "Role": "manager" if leader else "worker",
                  "Labels": labels or {}}}
    if leader:
        n["ManagerStatus"] = {"Leader": True, "Reachability": "reachable"}
    return n


def snap(tasks, svc=None, nodes=None) -> view.Snapshot:
    nodes = nodes or [node("n1id", "node1", leader=True), node("n2id", "node2"),
                      node("n3id", "node3")]
    return view.Snapshot(view.parse_services(json.dumps([svc or service()])),
                         tuple(docker_plan.parse_tasks(json.dumps(tasks), {"svcid": "app"})),
                         view.parse_nodes(json.dumps(nodes)))


TWO = [task("aaaaaaaaaaaaaaaa", 1, "n1id"), task("bbbbbbbbbbbbbbbb", 2, "n2id")]


def test_service_ls_counts_what_runs_over_the_spec_and_shows_ingress_ports():
    ports = [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8000,
              "PublishMode": "ingress"},
             {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "host"}]
    s = snap(TWO + [task("cccc", 3, "n3id", state="starting")],
             service(replicas=3, ports=ports))
    assert view.service_ls(s).splitlines() == [
        "NAME   MODE         REPLICAS   PORTS", "app    replicated   2/3        *:8000->80/tcp"]


def test_service_ps_puts_each_slots_history_under_its_newest_task():
    tasks = [task("old1old1old1old1", 1, "n1id", "failed", "shutdown",
                  "task: non-zero exit (137)", ts="2026-01-01T00:00:05Z"),
             task("new1new1new1new1", 1, "n1id", ts="2026-01-01T00:00:09Z", force=1),
             TWO[1]]
    rows = view.service_ps(snap(tasks), "app").splitlines()
    assert rows[0].split() == ["ID", "NAME", "VERSION", "NODE", "DESIRED", "STATE", "CURRENT",
                               "STATE", "ERROR", "PORTS"]
    assert [r.split()[:7] for r in rows[1:]] == [
        ["new1new1new1", "app.1", "2", "node1", "Running", "Running"],
        ["old1old1old1", "\\_", "app.1", "1", "node1", "Shutdown", "Failed"],
        ["bbbbbbbbbbbb", "app.2", "1", "node2", "Running", "Running"]]
    assert '"task: non-zero exit (137)"' in rows[2]
    with pytest.raises(InvalidConfigError, match="service: no service 'web' in Swarm"):
        view.service_ps(snap(tasks), "web")


def test_node_ls_shows_swarms_ids_states_labels_and_running_tasks():
    nodes = [node("n1id", "node1", leader=True, labels={"zone": "a"}),
             node("n2id", "node2", status="down", avail="drain"), node("n3id", "node3")]
    rows = [r.split() for r in view.node_ls(snap(TWO, nodes=nodes)).splitlines()[1:]]
    assert rows == [["n1id", "node1", "Ready", "Active", "Leader", "zone=a", "1"],
                    ["n2id", "node2", "Down", "Drain", "-", "1"],
                    ["n3id", "node3", "Ready", "Active", "-", "0"]]


def test_changes_name_each_new_task_state_node_change_and_a_finished_update():
    before = snap(TWO, service(update=("updating", "t1", "")))
    after = snap([task("aaaaaaaaaaaaaaaa", 1, "n1id", "failed", "shutdown", "exit 137"),
                  TWO[1], task("cccccccccccccccc", 1, "n3id", "starting", ts="2026-01-01T00:00:09Z")],
                 service(force=1, update=("completed", "t1", "update completed")),
                 [node("n1id", "node1", leader=True), node("n2id", "node2", avail="drain"),
                  node("n3id", "node3", status="down")])
    got = view.changes(before, after)
    assert got == [("task failed", "app.1 aaaaaaaaaaaa on node1: exit 137"),
                   ("task starting", "app.1 cccccccccccc on node3"),
                   ("node drain", "node2"), ("node down", "node3"),
                   ("update done", "app at version 2")]
    assert view.changes(after, after) == []
    events = [Event(0, e, d) for e, d in got]
    assert update_done(events, 0, "app") == "app updated (at version 2)"
    paused = snap(TWO, service(update=("paused", "t2", "task failed")))
    assert view.changes(after, paused)[-1] == ("error", "update failed: app paused: task failed")


def test_scale_is_done_when_swarm_runs_them_all_or_says_why_not():
    assert view.scale_done(snap(TWO, service(3)), "app", 3) is None
    starting = TWO + [task("c", 3, "n3id", "starting")]
    assert view.scale_done(snap(starting, service(3)), "app", 3) is None
    assert view.unconverged(snap(starting, service(3))) == "app.3 starting, app 2/3"
    three = TWO + [task("c", 3, "n3id")]
    assert view.scale_done(snap(three, service(3)), "app", 3) == "app scaled to 3 (3/3 running)"
    assert view.scale_done(snap(three, service(2)), "app", 3) is None   # spec not yet read
    pending = TWO + [task("c", 3, "", "pending", err="no suitable node (1 node not available)")]
    s = snap(pending, service(3))
    assert view.unconverged(s) is None and view.at_rest(s) == "converged; pending: app.3"
    assert view.scale_done(s, "app", 3) == ("app scaled to 3 (2/3 running, 1 pending: "
                                            "no suitable node (1 node not available))")
    leaving = [TWO[0], task("bbbbbbbbbbbbbbbb", 2, "n2id", "running", "shutdown")]
    assert view.scale_done(snap(leaving, service(1)), "app", 1) is None


def test_a_killed_task_is_replaced_once_its_slot_runs_a_new_task():
    old = "aaaaaaaaaaaaaaaa"
    assert view.replaced(snap(TWO), "app", 1, old) is None                 # not seen dying
    dead = task(old, 1, "n1id", "failed", "shutdown", "exit 137")
    assert view.replaced(snap([dead, TWO[1]]), "app", 1, old) is None      # nothing in its slot
    starting = [dead, TWO[1], task("cccccccccccccccc", 1, "n1id", "starting")]
    assert view.replaced(snap(starting), "app", 1, old) is None
    done = [dead, TWO[1], task("cccccccccccccccc", 1, "n1id")]
    assert view.replaced(snap(done), "app", 1, old) == (
        "app.1 replaced by task cccccccccccc on node1 (app 2/2 running)")


def test_a_drain_is_done_when_nothing_runs_there_and_swarm_is_at_rest():
    moving = [TWO[0], task("bbbbbbbbbbbbbbbb", 2, "n2id", "running", "shutdown"),
              task("c", 2, "n3id", "starting")]
    assert view.drained(snap(moving), "node2") is None
    done = [TWO[0], task("bbbbbbbbbbbbbbbb", 2, "n2id", "shutdown", "shutdown"),
            task("c", 2, "n3id")]
    assert view.drained(snap(done), "node2") == "node2 drained: its tasks run elsewhere (2 running)"


def test_the_model_follows_swarm_tasks_nodes_and_replicas():
    cluster = Cluster.quick(nodes=3, replicas=2)
    s = snap([TWO[0], task("c", 3, "n3id"), task("d", 4, "n3id")], service(3),
             [node("n1id", "node1", leader=True), node("n2id", "node2", avail="drain",
                                                        labels={"zone": "b"}),
              node("n3id", "node3", status="down")])
    m = view.model(cluster, s, docker_plan.read_back)
    assert [(t.name, t.node) for t in m.tasks] == [("app.1", "node1"), ("app.3", "node3"),
                                                    ("app.4", "node3")]
    assert m.service("app").replicas == 3
    assert (m.node("node2").availability, m.node("node2").labels) == ("drain", {"zone": "b"})
    assert m.node("node3").status == "down" and m.node("node1").role == "manager"
    assert cluster.service("app").replicas == 2                    # the old model untouched


def args(**kw):
    base = {"profile": "swarm", "datapath": "auto", "build_timeout": None}
    return argparse.Namespace(**{**base, **kw})


NO_IPVS = "this kernel has no ip_vs (...); without ip_vs dockerd refuses every published port"


@pytest.mark.parametrize("kw, flag", [({"profile": "fast"}, "profile"),
                                      ({"datapath": "netdev"}, "datapath"),
                                      ({"build_timeout": 0.0}, "build-timeout")])
def test_the_cli_refuses_what_real_swarm_lacks_naming_the_flag(kw, flag):
    unpublished = Cluster.from_stack({"services": {"app": {}}}, nodes=2)
    with pytest.raises(InvalidConfigError) as e:
        view.refuse(args(**kw), unpublished, None)
    assert str(e.value).split(":")[0] == flag


def test_ip_vs_is_needed_only_when_a_port_is_published():
    unpublished = Cluster.from_stack({"services": {"app": {}}}, nodes=2)
    view.refuse(args(), unpublished, NO_IPVS)                       # no mesh: runs here
    with pytest.raises(InvalidConfigError, match="^engine: docker: this kernel has no ip_vs"):
        view.refuse(args(), Cluster.quick(nodes=2), NO_IPVS)
    with pytest.raises(InvalidConfigError, match="engine: docker: dockerd not found"):
        view.refuse(args(), unpublished, "dockerd not found (apt install docker.io)")


# -- the adaptor and the CLI, on a fake engine ---------------------------------------------
class FakeEngine:
    """A DockerTestbed whose docker client answers from ``self.state`` (Swarm's JSON)."""

    manager = "node1"

    def __init__(self, tasks, svc):
        self.cluster = Cluster.from_stack({"services": {"app": {"deploy": {"replicas": 2}}}},
                                          nodes=3)
        self.tasks, self.svc, self.calls = tasks, svc, []
        self.net = {}

    def docker(self, on, *a, check=True, timeout=120):
        self.calls.append(a)
        if a[:2] == ("service", "inspect"):
            return json.dumps([self.svc])
        if a[:2] == ("service", "ps"):
            return "\n".join(t["ID"] for t in self.tasks)
        if a[:1] == ("inspect",):
            return json.dumps([t for t in self.tasks if t["ID"] in a[1:]])
        if a[:2] == ("node", "inspect"):
            return json.dumps([node(f"n{i}id", f"node{i}", leader=i == 1) for i in (1, 2, 3)])
        if a[:2] == ("service", "scale"):
            self.svc = service(int(a[-1].split("=")[1]))
            return ""
        raise AssertionError(a)


def test_the_adaptor_reads_swarm_in_four_calls_and_records_what_it_did(tmp_path):
    from swarmmesh.ui.shell_docker import SwarmAdaptor
    eng = FakeEngine(list(TWO), service(2))
    orch = SwarmAdaptor(eng)
    assert len(eng.calls) == 4 and orch.busy == 0
    assert [(t.name, t.node) for t in orch.cluster.tasks] == [("app.1", "node1"),
                                                              ("app.2", "node2")]
    orch.refresh()
    assert orch.events == []
    orch.scale("app", 3)
    eng.tasks.append(task("cccccccccccccccc", 3, "n3id", "starting"))
    orch.refresh()
    assert orch.busy == 1 and orch.cluster.service("app").replicas == 3
    assert [(e.event, e.detail) for e in orch.events] == [
        ("scale", "app: 2 -> 3"), ("task starting", "app.3 cccccccccccc on node3")]
    eng.tasks[-1] = task("cccccccccccccccc", 3, "n3id")
    assert view.at_rest(orch.refresh()) == "converged; no task pending"
    assert [t.name for t in orch.cluster.tasks] == ["app.1", "app.2", "app.3"]


def test_the_docker_cli_shows_swarms_tables_and_says_flows_and_trace_are_emulated(tmp_path):
    from swarmmesh.ui.shell_docker import DockerCLI, SwarmAdaptor
    eng = FakeEngine([task("old1old1old1old1", 1, "n1id", "failed", "shutdown", "exit 137"),
                      *TWO], service(2))
    script = tmp_path / "script.txt"
    script.write_text("service ls\nservice ps app\nnode ls\nflows node1\ntrace c1 app:80\n"
                      "trace\nservice ps web\n")
    out = io.StringIO()
    with open(os.devnull) as devnull:
        DockerCLI(SwarmAdaptor(eng), stdin=devnull, script=str(script), stdout=out)
    text = out.getvalue()
    assert "app    replicated   2/2\n" in text
    assert "old1old1old1   \\_ app.1" in text
    assert "n3id   node3      Ready    Active                          -        0" in text
    assert text.count("the emulated engine's") == 3            # flows, trace, trace
    assert "swarmmesh> service ps web\nerror: services.web: unknown service\n" in text
