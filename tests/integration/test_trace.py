"""``swarmmesh trace`` on a real cluster: one connection per case, each hop predicted by
the model and checked against the packets (tcpdump in each namespace crossed, the nft
trace and conntrack of the node that picks: the entry node, or a VIP's caller's node,
ofproto/trace of the very packet on each bridge, the task's answer).  One cluster for the
module."""

from __future__ import annotations

import json
import subprocess

import pytest

from swarmmesh.model import Cluster
from swarmmesh.runs import tracing
from swarmmesh.trace import render

from .conftest import PY, REPO

STACK = REPO / "tests" / "unit" / "fixtures" / "trace" / "stack.yml"


@pytest.fixture(scope="module")
def tb(testbed_factory):
    return testbed_factory(Cluster.from_stack(STACK, nodes=3, implicit_network=False))


def run(tb, source: str, dest: str):
    path = tracing.trace(tb, source, dest)
    assert path.verified, render.text(path)
    return path


def nodes(tb, service: str, has: bool) -> list[str]:
    on = {t.node for t in tb.cluster.tasks_of(service)}
    return [n.name for n in tb.cluster.nodes if (n.name in on) == has]


def stages(path) -> list[str]:
    return [h.stage for h in path.hops]


def test_ingress_via_a_node_without_a_task_crosses_the_overlay(tb):
    entry = nodes(tb, "app", has=False)[0]
    path = run(tb, "c1", f"{entry}:8000")
    assert path.pick in ("app.1", "app.2") and path.candidates == ("app.1", "app.2")
    vx = [h for h in path.hops if h.stage == "vxlan"]
    assert [h.capture.vni for h in vx] == [4096, 4096]            # there and back
    task = next(h for h in path.hops if h.stage == "task")
    assert task.packet.src == str(tb.cluster.node(entry).ingress_ip)   # SNATed
    kinds = [r.kind for h in path.hops for r in h.rewrites]
    assert kinds[:2] == ["dnat", "snat"] and kinds[-2:] == ["un-snat", "un-dnat"]


def test_ingress_via_a_node_with_a_task_can_stay_on_it(tb):
    entry = nodes(tb, "app", has=True)[0]
    local = next(t.name for t in tb.cluster.tasks_of("app") if t.node == entry)
    paths = [run(tb, "c1", f"{entry}:8000") for _ in range(2)]       # rr: both tasks
    assert {p.pick for p in paths} == {"app.1", "app.2"}
    here = next(p for p in paths if p.pick == local)
    assert "vxlan" not in stages(here) and stages(here).count("bridge") == 2


def test_host_mode_keeps_the_client_and_is_refused_without_a_task(tb):
    [web] = tb.cluster.tasks_of("web")
    path = run(tb, "c1", f"{web.node}:8080")
    assert stages(path) == ["client", "nft", "task", "reply"]
    assert path.hops[2].packet.src == str(tb.cluster.clients[0].underlay_ip)
    other = nodes(tb, "web", has=False)[0]
    refused = run(tb, "c1", f"{other}:8080")
    assert "host mode" in refused.refused and stages(refused) == ["client", "refused"]


def test_east_west_through_the_vip_and_dnsrr(tb):
    vip = run(tb, "app.1", "db:80")
    nft = [h for h in vip.hops if h.stage == "nft"]          # the source node's kernel
    assert [r.kind for h in nft for r in h.rewrites] == ["dnat", "snat"]
    assert {h.host for h in nft} == {tb.cluster.task("app.1").node}
    lb = str(tb.cluster.node(tb.cluster.task("app.1").node).lb_ips["back"])
    assert next(h for h in vip.hops if h.stage == "task").packet.src == lb
    rr = run(tb, "app.1", "dns:80")
    assert rr.hops[1].rewrites == () and rr.pick in ("dns.1", "dns.2")
    assert next(h for h in rr.hops if h.stage == "task").packet.src == \
        str(tb.cluster.task("app.1").addresses["back"])


def test_local_traffic_policy_keeps_the_client_or_refuses(tb):
    [near] = tb.cluster.tasks_of("near")
    path = run(tb, "c1", f"{near.node}:8090")
    assert path.hops[2].packet.src == str(tb.cluster.clients[0].underlay_ip)
    other = nodes(tb, "near", has=False)[0]
    assert "traffic_policy local" in run(tb, "c1", f"{other}:8090").refused


def test_an_isolated_network_is_refused_by_name_and_by_address(tb):
    by_name = run(tb, "app.1", "lone:80")
    assert by_name.refused.startswith("isolated")
    [lone] = tb.cluster.tasks_of("lone")
    by_address = run(tb, "app.1", f"{lone.addresses['front']}:80")
    assert by_address.hops[-1].evidence.startswith("the connection: unreachable")


def test_a_udp_port_and_a_port_nobody_publishes(tb):
    path = run(tb, "c1", f"{nodes(tb, 'dgram', has=False)[0]}:5353/udp")
    assert all(h.packet.proto == "udp" for h in path.hops if h.packet)
    assert "no service publishes 9999/tcp" in run(tb, "c1", "node1:9999").refused


def restorable(dump: str) -> str:
    """A dump-flows line as add-flow takes it back (counters and ages left out)."""
    line = next(l for l in dump.splitlines() if "table=40" in l).strip()
    parts = [p.replace("reset_counts ", "") for p in line.split(", ")
             if not p.startswith(("duration=", "n_packets=", "n_bytes=", "idle_age=",
                                  "hard_age="))]
    return ", ".join(parts)


def test_a_path_the_packets_did_not_take_is_named(tb):
    """The task's node loses the flow that delivers to it: the trace fails at that hop."""
    entry = nodes(tb, "app", has=False)[0]
    task = tb.cluster.tasks_of("app")[0]
    node = tb.host(task.node)
    match = f"table=40,ip,nw_dst={task.addresses['ingress']}"
    saved = node.ofctl("dump-flows", match)
    node.ofctl("del-flows", match)
    try:
        paths = [tracing.trace(tb, "c1", f"{entry}:8000", timeout=1.0) for _ in range(2)]
    finally:
        node.ofctl("add-flow", f"'{restorable(saved)}'")
    broken = [p for p in paths if not p.verified]
    assert broken, [render.text(p) for p in paths]
    bad = broken[0].first_disagreement()
    assert bad.host in (task.node, task.host, "c1", entry), render.text(broken[0])


def test_the_command_builds_traces_and_tears_down(tmp_path):
    png = tmp_path / "trace.png"
    r = subprocess.run([PY, "-m", "swarmmesh.ui.cli", "trace", "--nodes", "3", "--replicas",
                        "2", "--json", "--figure", str(png), "--out", str(tmp_path),
                        "c1", "node3:8000"], cwd=REPO, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["verified"] is True and len(out["hops"]) == 11
    assert png.stat().st_size > 20_000
