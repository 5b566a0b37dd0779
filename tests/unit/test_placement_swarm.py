"""Swarm's placement on nodes as Swarm has them: roles, labels, platform, constraints,
spread preferences, pending tasks, and the stack's implicit default network.
No root, no switch: the model alone."""

from __future__ import annotations

import pytest

from swarmmesh.lifecycle import decisions
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.model import constraints, nodes, placement
from swarmmesh.ui.stackcheck import render


def svc(deploy=None, **body):
    return {"image": "nginx", **({"deploy": deploy} if deploy else {}), **body}


def cluster(services, count=3, **setup):
    return Cluster.from_stack({"services": services},
                              nodes=nodes.setup(count=count, **setup))


def where(c, service):
    return sorted(t.node for t in c.tasks_of(service))


# --- nodes ---------------------------------------------------------------------------


def test_defaults_are_a_fresh_swarm_init_and_join():
    c = cluster({"a": svc()})
    assert [(n.name, n.role, n.labels, n.os, n.arch) for n in c.nodes] == [
        ("node1", "manager", {}, "linux", "x86_64"),
        ("node2", "worker", {}, "linux", "x86_64"),
        ("node3", "worker", {}, "linux", "x86_64")]
    assert len({n.id for n in c.nodes}) == 3 and all(len(n.id) == 25 for n in c.nodes)


def test_managers_flag_and_labels_flag():
    s = nodes.setup(count=4, managers=3, labels=["node2:zone=east", "node4:ssd"])
    assert [s.of(i).role for i in range(1, 5)] == ["manager"] * 3 + ["worker"]
    assert s.of(2).labels == {"zone": "east"} and s.of(4).labels == {"ssd": ""}


def test_nodes_file_count_roles_labels_platform_and_flags_win(tmp_path):
    f = tmp_path / "nodes.yml"
    f.write_text("count: 5\nmanagers: 2\nnodes:\n"
                 "  node3: {labels: {zone: west}, platform: {arch: aarch64}}\n"
                 "  node5: {role: manager, availability: drain, engine_labels: {gpu: 1}}\n")
    s = nodes.setup(nodes_file=str(f), labels=["node3:zone=east"])
    assert s.count == 5
    assert [s.of(i).role for i in range(1, 6)] == ["manager", "manager", "worker", "worker",
                                                    "manager"]
    assert s.of(3).labels == {"zone": "east"} and s.of(3).arch == "aarch64"
    assert s.of(5).availability == "drain" and s.of(5).engine_labels == {"gpu": "1"}
    assert nodes.setup(count=2, nodes_file={"count": 5}).count == 2


@pytest.mark.parametrize("kwargs, field, words", [
    ({"labels": ["zone=east"]}, "node_label[0]", "NODE:KEY=VALUE"),
    ({"labels": ["node9:zone=east"]}, "node_label[0]", "node9 does not exist"),
    ({"labels": ["worker1:a=b"]}, "node_label[0]", "node1, node2"),
    ({"labels": ["node1:=b"]}, "node_label[0]", "key must be non-empty"),
    ({"managers": 4}, "managers", "1..3"),
    ({"managers": 0}, "managers", "1..3"),
    ({"nodes_file": {"nodes": {"node2": {"role": "boss"}}}}, "nodes_file.nodes.node2.role",
     "manager, worker"),
    ({"nodes_file": {"nodes": {"node2": {"colour": "red"}}}},
     "nodes_file.nodes.node2.colour", "unknown key"),
    ({"nodes_file": {"nodes": {"node7": {}}}}, "nodes_file.nodes.node7", "does not exist"),
    ({"nodes_file": {"nodes": {"node2": {"availability": "gone"}}}},
     "nodes_file.nodes.node2.availability", "active, pause, drain"),
    ({"nodes_file": {"nodes": {"node2": {"platform": {"os": ""}}}}},
     "nodes_file.nodes.node2.platform.os", "non-empty"),
    ({"nodes_file": {"nodes": {"node1": {"role": "worker"}}}}, "nodes_file.nodes",
     "at least one manager"),
    ({"nodes_file": {"size": 3}}, "nodes_file.size", "unknown key"),
    ({"nodes_file": "/nonexistent/nodes.yml"}, "nodes_file", "cannot read"),
])
def test_node_setup_errors_name_the_field(kwargs, field, words):
    with pytest.raises(InvalidConfigError) as e:
        nodes.setup(count=3, **kwargs) if "nodes_file" not in kwargs or "count" in kwargs \
            else nodes.setup(**kwargs)
    assert e.value.field == field and words in str(e.value), str(e.value)


# --- constraints -------------------------------------------------------------------------


@pytest.mark.parametrize("text, parsed", [
    ("node.role == manager", ("node.role", "==", "manager")),
    ("node.role==manager", ("node.role", "==", "manager")),
    ("node.labels.zone != east", ("node.labels.zone", "!=", "east")),
    ("node.platform.os == linux", ("node.platform.os", "==", "linux")),
    ("engine.labels.storage==ssd", ("engine.labels.storage", "==", "ssd")),
    ("node.ip == 192.168.99.0/24", ("node.ip", "==", "192.168.99.0/24")),
])
def test_constraints_parse_as_swarmkit(text, parsed):
    assert constraints.parse(text, "c") == parsed


@pytest.mark.parametrize("text, words", [
    ("node.role = manager", "expected one operator"),
    ("node.role >= manager", "expected one operator"),
    ('node.role == "manager"', "is invalid"),
    ("== manager", "is invalid"),
    (3, "must be strings"),
])
def test_bad_constraints_are_refused_naming_the_item(text, words):
    stack = {"services": {"a": svc({"placement": {"constraints": ["node.role==worker", text]}})}}
    with pytest.raises(InvalidConfigError) as e:
        Cluster.from_stack(stack)
    assert e.value.field == "services.a.deploy.placement.constraints[1]"
    assert words in str(e.value)


def test_role_constraints_place_on_managers_or_workers():
    c = cluster({"m": svc({"replicas": 2, "placement": {"constraints": ["node.role == manager"]}}),
                 "w": svc({"replicas": 4, "placement": {"constraints": ["node.role!=manager"]}})},
                count=4, managers=2)
    assert where(c, "m") == ["node1", "node2"]
    assert where(c, "w") == ["node3", "node3", "node4", "node4"]


def test_label_constraints_match_values_case_insensitively_and_missing_as_empty():
    c = cluster({"e": svc({"replicas": 2, "placement": {"constraints": ["node.labels.zone==EAST"]}}),
                 "n": svc({"replicas": 2, "placement": {
                     "constraints": ["node.labels.zone != east"]}})},
                labels=["node2:zone=east"])
    assert where(c, "e") == ["node2", "node2"]
    assert where(c, "n") == ["node1", "node3"]          # no zone label: "" != east


def test_label_names_are_case_sensitive():
    c = cluster({"a": svc({"placement": {"constraints": ["node.labels.Zone==east"]}})},
                labels=["node2:zone=east"])
    assert c.tasks_of("a") == [] and len(c.pending_of("a")) == 1


def test_platform_hostname_id_ip_and_engine_labels():
    s = nodes.setup(count=3, nodes_file={"nodes": {
        "node2": {"platform": {"arch": "aarch64"}, "engine_labels": {"disk": "ssd"}}}})
    c = Cluster.from_stack({"services": {
        "arm": svc({"placement": {"constraints": ["node.platform.arch == aarch64",
                                                  "node.platform.os == linux"]}}),
        "ssd": svc({"placement": {"constraints": ["engine.labels.disk == ssd"]}}),
        "h": svc({"placement": {"constraints": ["node.hostname == node3"]}}),
        "ip": svc({"placement": {"constraints": ["node.ip == 192.168.99.1"]}}),
        "net": svc({"replicas": 3, "placement": {"constraints": ["node.ip != 192.168.99.0/31"]}}),
    }}, nodes=s)
    assert where(c, "arm") == ["node2"] and where(c, "ssd") == ["node2"]
    assert where(c, "h") == ["node3"] and where(c, "ip") == ["node1"]
    assert set(where(c, "net")) == {"node2", "node3"}
    node3 = c.node("node3")
    c2 = cluster({"id": svc({"placement": {"constraints": [f"node.id == {node3.id}"]}})})
    assert where(c2, "id") == ["node3"]


def test_unknown_constraint_key_parses_but_stays_pending_with_a_warning():
    c = cluster({"a": svc({"placement": {"constraints": ["node.colour == red"]}})})
    assert c.tasks == [] and c.pending[0].reason == (
        "no suitable node (scheduling constraints not satisfied on 3 nodes)")
    assert any("node.colour" in w for w in c.warnings)


# --- pending tasks ------------------------------------------------------------------------


def test_unsatisfiable_constraint_is_pending_not_an_error():
    c = cluster({"db": svc({"replicas": 2, "placement": {"constraints": [
        "node.labels.disk == ssd"]}}), "web": svc({"replicas": 2})})
    assert [(p.service, p.slot) for p in c.pending] == [("db", 1), ("db", 2)]
    assert c.pending[0].reason == ("no suitable node (scheduling constraints not satisfied "
                                   "on 3 nodes)")
    assert len(c.tasks_of("web")) == 2
    assert Cluster.from_dict(c.to_dict()).pending == c.pending


def test_hostname_of_a_node_that_does_not_exist_is_pending():
    c = cluster({"a": svc({"placement": {"constraints": ["node.hostname == node9"]}})})
    assert c.tasks == [] and len(c.pending) == 1


def test_max_replicas_per_node_and_host_ports_leave_the_rest_pending():
    c = cluster({"a": svc({"replicas": 4, "placement": {"max_replicas_per_node": 1}}),
                 "h": svc({"replicas": 4},
                          ports=[{"target": 80, "published": 8080, "mode": "host"}])})
    assert len(c.tasks_of("a")) == 3 and len(c.tasks_of("h")) == 3
    assert [p.reason for p in c.pending] == [
        "no suitable node (max replicas per node limit exceed)",
        "no suitable node (host-mode port already in use on 3 nodes)"]


def test_reason_counts_each_node_under_the_first_filter_it_fails_most_first():
    s = nodes.setup(count=4, labels=["node4:zone=east"],
                    nodes_file={"nodes": {"node2": {"availability": "drain"}}})
    c = Cluster.from_stack({"services": {"a": svc({"placement": {"constraints": [
        "node.labels.zone == west"]}})}}, nodes=s)
    assert c.pending[0].reason == ("no suitable node (scheduling constraints not satisfied "
                                   "on 3 nodes; 1 node not available for new tasks)")


def test_label_added_at_run_time_makes_the_pending_task_placeable():
    c = cluster({"db": svc({"placement": {"constraints": ["node.labels.disk == ssd"]}})})
    assert decisions.placeable(c) == []
    c.node("node3").labels["disk"] = "ssd"
    (p,) = decisions.placeable(c)
    c.pending.remove(p)
    t = c.place_task("db", slot=p.slot)
    assert t.node == "node3" and t.name == "db.1"


def test_missing_counts_pending_tasks_as_there_and_scale_down_drops_them_first():
    c = cluster({"a": svc({"replicas": 5, "placement": {"max_replicas_per_node": 1}})})
    assert decisions.missing(c, "a") == 0
    plan = decisions.plan_scale(c, "a", 4)
    assert plan.start == 0 and plan.retire == () and plan.drop_pending == (5,)
    plan = decisions.plan_scale(c, "a", 2)
    assert [t.slot for t in plan.retire] == [3] and plan.drop_pending == (4, 5)
    assert decisions.plan_scale(c, "a", 6).start == 1


def test_constraint_enforcer_and_global_gaps_after_a_label_change():
    c = cluster({"e": svc({"replicas": 1, "placement": {"constraints": ["node.labels.zone==e"]}}),
                 "g": svc({"mode": "global", "placement": {"constraints": [
                     "node.labels.zone == e"]}})},
                labels=["node2:zone=e"])
    assert where(c, "e") == ["node2"] and where(c, "g") == ["node2"]
    c.node("node3").labels["zone"] = "e"
    assert decisions.global_gaps(c) == [("g", "node3")]
    del c.node("node2").labels["zone"]
    assert sorted(t.name for t in decisions.violations(c, "node2")) == ["e.1", "g.1"]


def test_node_update_checks_its_flags():
    c = cluster({"a": svc()})
    n1, n2 = c.node("node1"), c.node("node2")
    assert decisions.plan_node_update(n2, [("zone", "e")], role="manager") == \
        "label zone=e, role manager"
    for args, field in (({"label_rm": ["nope"]}, "nodes.node2.labels.nope"),
                        ({"role": "boss"}, "--role"),
                        ({"availability": "off"}, "--availability")):
        with pytest.raises(InvalidConfigError) as e:
            decisions.plan_node_update(n2, **args)
        assert e.value.field == field
    with pytest.raises(InvalidConfigError, match="last manager"):
        decisions.plan_node_update(n1, role="worker", managers=1)


# --- spread preferences ---------------------------------------------------------------------


def test_spread_over_a_label_splits_evenly_per_value_not_per_node():
    c = cluster({"a": svc({"replicas": 6, "placement": {"preferences": [
        {"spread": "node.labels.zone"}]}})}, count=4,
        labels=["node1:zone=a", "node2:zone=b", "node3:zone=b", "node4:zone=b"])
    per_zone = {"a": 0, "b": 0}
    for t in c.tasks:
        per_zone[c.node(t.node).labels["zone"]] += 1
    assert per_zone == {"a": 3, "b": 3}
    assert where(c, "a").count("node1") == 3


def test_nodes_without_the_label_form_one_branch_and_nested_preferences():
    c = cluster({"a": svc({"replicas": 4, "placement": {"preferences": [
        {"spread": "node.labels.dc"}, {"spread": "node.labels.rack"}]}})}, count=4,
        labels=["node1:dc=x", "node1:rack=1", "node2:dc=x", "node2:rack=2"])
    assert where(c, "a") == ["node1", "node2", "node3", "node4"]


def test_spread_counts_a_branch_on_all_its_nodes_even_those_that_cannot_take_the_task():
    c = cluster({"w": svc({"replicas": 2, "placement": {"preferences": [
        {"spread": "node.labels.zone"}]}}, ports=[{"target": 80, "published": 8080,
                                                    "mode": "host"}])}, count=4,
        labels=["node1:zone=a", "node2:zone=a", "node3:zone=b", "node4:zone=b"])
    assert [c.node(n).labels["zone"] for n in where(c, "w")] == ["a", "b"]
    t = c.place_task("w")                          # at run time too: back to zone a
    assert c.node(t.node).labels["zone"] == "a" and t.node == "node2"


def test_spread_over_something_not_a_label_warns_and_spreads_nothing():
    c = cluster({"a": svc({"replicas": 3, "placement": {"preferences": [
        {"spread": "node.role"}]}})})
    assert where(c, "a") == ["node1", "node2", "node3"]
    assert any("spreads nothing" in w for w in c.warnings)


@pytest.mark.parametrize("pref, field", [
    ({"binpack": "x"}, "services.a.deploy.placement.preferences[0]"),
    ("spread", "services.a.deploy.placement.preferences[0]"),
    ({"spread": ""}, "services.a.deploy.placement.preferences[0].spread"),
])
def test_bad_preferences_name_the_field(pref, field):
    with pytest.raises(InvalidConfigError) as e:
        cluster({"a": svc({"placement": {"preferences": [pref]}})})
    assert e.value.field == field


def test_choose_ties_break_by_node_index():
    c = cluster({"a": svc({"replicas": 3})})
    load = placement.Load.of(c.services, c.tasks)
    assert placement.choose(c.service("a"), c.nodes, load).name == "node1"


# --- compose: default network, host IP, extension fields -------------------------------------


def test_services_that_list_no_network_share_the_default_network():
    c = Cluster.from_stack({"networks": {"back": {}}, "services": {
        "web": svc({"replicas": 2}, ports=["8080:80"]), "db": svc(),
        "api": svc(networks=["default", "back"])}})
    assert c.service("web").networks == ("default",) and c.service("db").networks == ("default",)
    assert c.service("api").networks == ("default", "back")
    assert "default" in c.networks and set(c.service("db").vips) == {"default"}


def test_quick_service_has_no_stack_network():
    assert list(Cluster.quick().networks) == ["ingress"]


def test_default_network_declared_in_the_file_shapes_it():
    c = Cluster.from_stack({"networks": {"default": {"ipam": {"config": [
        {"subnet": "10.9.0.0/24"}]}}}, "services": {"a": svc()}})
    assert str(c.networks["default"].subnet) == "10.9.0.0/24"


@pytest.mark.parametrize("port, published, target", [
    ("127.0.0.1:9229:9229", 9229, 9229),
    ("0.0.0.0:80:8080/udp", 80, 8080),
    ("[::1]:8443:443", 8443, 443),
    ("127.0.0.1::80", None, 80),
])
def test_host_ip_in_a_port_is_ignored_with_a_warning(port, published, target):
    c = cluster({"a": svc(ports=[port])})
    (p,) = c.service("a").ports
    assert p.target == target and (published is None or p.published == published)
    assert any("services.a.ports[0]" in w and "ignored" in w for w in c.warnings)


def test_host_ip_long_syntax_is_ignored_with_a_warning():
    c = cluster({"a": svc(ports=[{"target": 80, "published": 81, "host_ip": "127.0.0.1"}])})
    assert c.service("a").ports[0].published == 81
    assert any("host_ip" in w for w in c.warnings)


def test_extension_fields_are_dropped_silently_and_merge_keys_work():
    text = ("version: '3.8'\nx-common: &common\n  deploy:\n    replicas: 2\n"
            "  x-note: mine\nservices:\n  a:\n    <<: *common\n    image: nginx\n"
            "networks:\n  n:\n    x-owner: me\n")
    c = Cluster.from_stack(text)
    assert len(c.tasks_of("a")) == 2
    assert not [k for k in c.ignored_keys if "x-" in k], c.ignored_keys


def test_stack_check_report_shows_nodes_tasks_pending_and_warnings():
    c = cluster({"web": svc({"replicas": 2}, ports=["127.0.0.1:8080:80",
                                                    {"target": 9000, "published": 9000,
                                                     "mode": "host"}]),
                 "db": svc({"placement": {"constraints": ["node.labels.disk==ssd"]}})},
                labels=["node2:zone=east"])
    text = render(c, ["s.yml"])
    for words in ("node2", "zone=east", "manager", "Leader", "8080:80/tcp ingress",
                  "9000:9000/tcp host", "db.1: no suitable node", "host IP 127.0.0.1",
                  "ok: 2 service(s), 2 task(s) placed, 1 pending, on 3 node(s)"):
        assert words in text, (words, text)


@pytest.mark.parametrize("deps", [["db"], {"db": {"condition": "service_started"}}])
def test_depends_on_an_unknown_service_is_a_warning_as_docker_ignores_it(deps):
    c = cluster({"a": svc(depends_on=deps)})
    assert any("services.a.depends_on" in w and "'db'" in w for w in c.warnings)
