"""A production-style stack on a real network (tests/stackfiles/): two files merged,
${VAR} from an env file, four nodes from a nodes file (two managers, two zones).

Swarm's placement (node.role, node.labels, spread over a label, max_replicas_per_node)
is checked on the packets: who answers through the mesh, from which node; the
host-mode proxy answers only on the managers, from the local task, which sees the
client's own address; services reach each other by name on the stack's implicit
default network; the pending db is placed once `node update --label-add` gives a node
its label.  Then routing_mesh runs on the same files, on the ingress and the
host-mode service."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from swarmmesh.model import Cluster
from swarmmesh.model import compose, nodes

from .conftest import PY, REPO, http
from .test_mncli import section, transcript

FILES = REPO / "tests" / "stackfiles"
STACKS = [FILES / "shop.yml", FILES / "shop.override.yml"]
CLIENT_IP = "192.168.99.201"
PLACED = {"proxy": ["node1", "node2"], "web": ["node2", "node2", "node3", "node4"],
          "api": ["node3", "node4"]}


def shop() -> Cluster:
    return Cluster.from_stack(STACKS, nodes=nodes.setup(nodes_file=str(FILES / "nodes.yml")),
                              env=compose.read_env_file(FILES / "shop.env"))


@pytest.fixture(scope="module")
def tb(testbed_factory):
    return testbed_factory(shop())


def names(tb, service: str, via: str, count: int) -> list[dict]:
    """``count`` requests by name from a task of ``via`` (one new connection each)."""
    host = tb.cluster.tasks_of(via)[0].host
    out = tb.run_in(host, ["-m", "swarmmesh.agents.nameclient", service, "80",
                           "--count", str(count)])
    return [json.loads(line) for line in out.splitlines()]


def test_the_model_places_as_swarm_would():
    c = shop()
    assert {s: sorted(t.node for t in c.tasks_of(s)) for s in PLACED} == PLACED
    assert [(p.service, p.reason) for p in c.pending] == [
        ("db", "no suitable node (scheduling constraints not satisfied on 4 nodes)")]
    assert c.service("web").replicas == 4                     # ${...:-4} from the override
    assert c.service("web").networks == ("default", "back")
    assert c.service("api").networks == ("default", "back")   # merged over the base file


def test_the_mesh_reaches_the_web_tasks_where_they_were_placed(tb):
    web = {t.name: t.node for t in tb.cluster.tasks_of("web")}
    answers = http(tb, "c1", "192.168.99.1", 8000, count=8)     # node1: manager, no web task
    assert all(a["ok"] for a in answers), answers
    assert Counter(a["body"]["task"] for a in answers) == {name: 2 for name in web}
    assert {a["body"]["task"]: a["body"]["node"] for a in answers} == web


def test_the_host_mode_proxy_answers_only_on_managers_with_the_clients_address(tb):
    for node in ("node1", "node2"):
        [a] = http(tb, "c1", str(tb.cluster.node(node).underlay_ip), 8080)
        assert a["ok"] and a["body"]["node"] == node and a["body"]["task"].startswith("proxy")
        assert a["body"]["client"] == CLIENT_IP
    for node in ("node3", "node4"):
        [a] = http(tb, "c1", str(tb.cluster.node(node).underlay_ip), 8080, timeout=1.0)
        assert not a["ok"] and "refused" in (a.get("error") or "").lower(), a


def test_services_reach_each_other_by_name_on_the_default_network(tb):
    got = names(tb, "web", via="api", count=8)
    assert all(r["ok"] for r in got), got
    assert {r["used"] for r in got} == {str(tb.cluster.service("web").vips["default"])}
    assert Counter(r["body"]["task"] for r in got) == {t.name: 2
                                                       for t in tb.cluster.tasks_of("web")}
    back = names(tb, "api", via="proxy", count=2)             # proxy: default network only
    assert all(r["ok"] for r in back) and {r["body"]["task"] for r in back} <= {"api.1", "api.2"}


def test_the_pending_db_is_placed_when_a_node_gets_its_label(tb, tmp_path):
    out = transcript(tb, "service ps db\nnode update --label-add disk=ssd node3\nwait\n"
                         "service ps db\nnode ls\n", tmp_path)
    before = section(out, "service ps db").splitlines()[1]
    assert "Pending" in before and "scheduling constraints not satisfied on 4 nodes" in before
    assert section(out, "wait").startswith("converged; no task pending")
    after = out.rsplit("swarmmesh> service ps db\n", 1)[1].splitlines()[1].split()
    assert after[1:6] == ["db.1", "1", "node3", "Running", "Running"]
    assert "disk=ssd,zone=east" in section(out, "node ls")
    got = names(tb, "db", via="api", count=2)                  # api shares `back` with db
    assert all(r["ok"] and r["body"]["task"] == "db.1" for r in got), got


@pytest.mark.parametrize("service, mode", [("web", "ingress"), ("proxy", "host")])
def test_routing_mesh_runs_on_the_stack_files(tmp_path, service, mode):
    r = subprocess.run(
        [PY, "experiments/routing_mesh.py", *sum((["--stack", str(s)] for s in STACKS), []),
         "--env-file", str(FILES / "shop.env"), "--nodes-file", str(FILES / "nodes.yml"),
         "--service", service, "--requests", "8", "--out", str(tmp_path), "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / r.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failed"] == 0, summary
    assert summary["stack"]["pending"] == [{"task": "db.1", "reason": (
        "no suitable node (scheduling constraints not satisfied on 4 nodes)")}]
    assert summary["stack"]["nodes"]["node2"] == {"role": "manager", "labels": {"zone": "west"},
                                                  "availability": "active"}
    assert "**Pending tasks**" in (run_dir / "report.md").read_text()
    if mode == "host":
        assert summary["port_mode"] == "host"
        assert summary["refused"] == {"node1": 0, "node2": 0, "node3": 8, "node4": 8}
    else:
        assert summary.get("port_mode", "ingress") == "ingress"
        assert set(summary["counts"]) == {"node1", "node2", "node3", "node4"}
