"""Unit tests for swarmmesh.model (pure Python, no root)."""

from __future__ import annotations

import json
import pickle
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from swarmmesh.model import (
    DNSRR_INGRESS_ERROR,
    Cluster,
    InvalidConfigError,
    PublishedPort,
    docker_mac,
)

FIXTURES = Path(__file__).parent / "fixtures"


def stack(**services) -> dict:
    """A stack dict with the given services."""
    return {"version": "3.8", "services": services}


def placement(cluster: Cluster) -> dict[str, str]:
    return {t.name: t.node for t in cluster.tasks}


# --------------------------------------------------------------------------
# quick() and placement
# --------------------------------------------------------------------------


def test_quick_3_nodes_2_replicas_spread():
    c = Cluster.quick(3, 2)
    assert [n.name for n in c.nodes] == ["node1", "node2", "node3"]
    assert placement(c) == {"app.1": "node1", "app.2": "node2"}
    assert c.tasks_on("node3") == []
    assert [t.host for t in c.tasks] == ["t1", "t2"]
    assert [t.slot for t in c.tasks] == [1, 2]
    svc = c.service("app")
    assert svc.replicas == 2
    assert svc.ports == (PublishedPort(8000, 80, "tcp", "ingress"),)
    assert svc.endpoint_mode == "vip"
    assert c.ingress_services() == [svc]
    assert [t.name for t in c.tasks_of("app")] == ["app.1", "app.2"]


def test_spread_4_nodes_3_replicas():
    c = Cluster.quick(nodes=4, replicas=3)
    assert placement(c) == {"app.1": "node1", "app.2": "node2", "app.3": "node3"}
    assert c.tasks_on("node4") == []


def test_spread_wraps_around_and_balances():
    c = Cluster.quick(nodes=3, replicas=7)
    counts = {n.name: len(c.tasks_on(n.name)) for n in c.nodes}
    assert counts == {"node1": 3, "node2": 2, "node3": 2}
    assert [t.node for t in c.tasks] == ["node1", "node2", "node3"] * 2 + ["node1"]


def test_spread_ties_broken_by_total_tasks():
    # a's single task lands on node1, so b starts on the emptier node2.
    c = Cluster.from_stack(stack(a={"ports": ["8000:80"]},
                                 b={"ports": ["8001:80"], "deploy": {"replicas": 2}}))
    assert placement(c) == {"a.1": "node1", "b.1": "node2", "b.2": "node3"}


def test_replicas_default_to_one_and_zero_gives_no_tasks():
    c = Cluster.from_stack(stack(one={"image": "x"},
                                 none={"ports": ["8000:80"], "deploy": {"replicas": 0}}))
    assert c.service("one").replicas == 1
    assert c.tasks_of("none") == []
    assert [t.name for t in c.tasks] == ["one.1"]
    assert [s.name for s in c.ingress_services()] == ["none"]


# --------------------------------------------------------------------------
# Addresses and MACs
# --------------------------------------------------------------------------


def test_node_and_client_addresses():
    c = Cluster.quick(3, 2, clients=2)
    n1, n2, n3 = c.nodes
    assert (n1.index, n2.index, n3.index) == (1, 2, 3)
    assert n1.underlay_ip == IPv4Address("192.168.99.1")
    assert n3.underlay_ip == IPv4Address("192.168.99.3")
    assert n1.ingress_ip == IPv4Address("10.0.0.2")       # as measured on moby 20.10.24
    assert n3.ingress_ip == IPv4Address("10.0.0.4")
    assert n1.ingress_mac == "02:42:0a:00:00:02"
    assert n1.lb_ips == {}
    assert [(cl.name, str(cl.underlay_ip)) for cl in c.clients] == [
        ("c1", "192.168.99.201"), ("c2", "192.168.99.202")]
    assert c.node("node2") is n2


def test_task_ingress_addresses_follow_node_sandboxes():
    c = Cluster.quick(3, 2)
    t1, t2 = c.tasks
    assert c.service("app").ingress_vip == IPv4Address("10.0.0.5")   # the VIP, then tasks
    assert t1.addresses == {"ingress": IPv4Address("10.0.0.6")}
    assert t2.addresses == {"ingress": IPv4Address("10.0.0.7")}
    assert t1.macs == {"ingress": "02:42:0a:00:00:06"}
    assert t2.macs == {"ingress": "02:42:0a:00:00:07"}
    ingress = c.networks["ingress"]
    assert ingress.subnet == IPv4Network("10.0.0.0/24")
    assert ingress.vni == 4096 and ingress.ingress
    assert ingress.gateway == IPv4Address("10.0.0.1")


def test_ingress_addresses_depend_on_node_count():
    c = Cluster.quick(nodes=5, replicas=1)
    assert c.service("app").ingress_vip == IPv4Address("10.0.0.7")
    assert c.tasks[0].addresses["ingress"] == IPv4Address("10.0.0.8")


@pytest.mark.parametrize("ip, mac", [
    ("10.255.0.2", "02:42:0a:ff:00:02"),
    ("10.0.0.2", "02:42:0a:00:00:02"),
    ("10.0.1.2", "02:42:0a:00:01:02"),
    ("192.168.99.254", "02:42:c0:a8:63:fe"),
])
def test_docker_mac(ip, mac):
    assert docker_mac(ip) == mac
    assert docker_mac(IPv4Address(ip)) == mac


def test_user_networks_vni_subnets_and_lb_ips():
    c = Cluster.from_stack({
        "services": {
            "web": {"ports": ["8000:80"], "networks": ["front"], "deploy": {"replicas": 2}},
            "api": {"networks": ["front", "back"], "deploy": {"replicas": 1}},
        },
        "networks": {"front": {"driver": "overlay"}, "back": None},
    })
    front, back = c.networks["front"], c.networks["back"]
    assert (front.subnet, front.vni, front.ingress) == (IPv4Network("10.0.1.0/24"), 4097, False)
    assert (back.subnet, back.vni) == (IPv4Network("10.0.2.0/24"), 4098)
    assert placement(c) == {"web.1": "node1", "web.2": "node2", "api.1": "node3"}
    web1, web2, api1 = c.tasks
    assert web1.addresses == {"ingress": IPv4Address("10.0.0.6"),
                              "front": IPv4Address("10.0.1.2")}
    assert web2.addresses["front"] == IPv4Address("10.0.1.3")
    # no ingress port -> no ingress address
    assert api1.addresses == {"front": IPv4Address("10.0.1.4"), "back": IPv4Address("10.0.2.2")}
    assert api1.macs == {"front": "02:42:0a:00:01:04", "back": "02:42:0a:00:02:02"}
    # load-balancer endpoints after the tasks, only where tasks on that network run
    n1, n2, n3 = c.nodes
    assert n1.lb_ips == {"front": IPv4Address("10.0.1.5")}
    assert n2.lb_ips == {"front": IPv4Address("10.0.1.6")}
    assert n3.lb_ips == {"front": IPv4Address("10.0.1.7"), "back": IPv4Address("10.0.2.3")}
    assert c.service("api").networks == ("front", "back")


def test_explicit_subnet_and_default_skips_it():
    c = Cluster.from_stack({
        "services": {"a": {"networks": {"x": None, "y": {"aliases": ["z"]}}}},
        "networks": {"x": {"ipam": {"config": [{"subnet": "10.0.1.0/24"}]}}, "y": {}},
    })
    assert c.networks["x"].subnet == IPv4Network("10.0.1.0/24")
    assert c.networks["y"].subnet == IPv4Network("10.0.2.0/24")
    assert "services.a.networks.y.aliases" in c.ignored_keys


# --------------------------------------------------------------------------
# Constraints and global mode
# --------------------------------------------------------------------------


def test_constraint_equal():
    c = Cluster.from_stack(stack(app={"deploy": {
        "replicas": 2, "placement": {"constraints": ["node.hostname == node3"]}}}))
    assert placement(c) == {"app.1": "node3", "app.2": "node3"}
    assert c.service("app").constraints == (("node.hostname", "==", "node3"),)


def test_constraint_not_equal_without_spaces():
    c = Cluster.from_stack(stack(app={"deploy": {
        "replicas": 3, "placement": {"constraints": ["node.hostname!=node1"]}}}))
    assert placement(c) == {"app.1": "node2", "app.2": "node3", "app.3": "node2"}
    assert c.service("app").constraints == (("node.hostname", "!=", "node1"),)


def test_constraint_on_absent_node_with_not_equal_is_fine():
    c = Cluster.from_stack(stack(app={"deploy": {
        "placement": {"constraints": ["node.hostname != node9"]}}}))
    assert placement(c) == {"app.1": "node1"}


def test_max_replicas_per_node():
    c = Cluster.from_stack(stack(app={"deploy": {
        "replicas": 2, "placement": {"max_replicas_per_node": 1,
                                     "constraints": ["node.hostname != node2"]}}}))
    assert placement(c) == {"app.1": "node1", "app.2": "node3"}


def test_global_mode_one_task_per_node():
    c = Cluster.from_stack(stack(agent={"ports": ["9100:9100"], "deploy": {"mode": "global"}}),
                           nodes=4)
    svc = c.service("agent")
    assert svc.mode == "global" and svc.replicas == 4
    assert [t.node for t in c.tasks] == ["node1", "node2", "node3", "node4"]
    assert [t.name for t in c.tasks] == ["agent.1", "agent.2", "agent.3", "agent.4"]


def test_global_mode_respects_constraints():
    c = Cluster.from_stack(stack(agent={"deploy": {
        "mode": "global", "placement": {"constraints": ["node.hostname != node2"]}}}))
    assert [t.node for t in c.tasks] == ["node1", "node3"]
    assert c.service("agent").replicas == 2


def test_host_mode_port_keeps_one_task_per_node():
    c = Cluster.from_stack(stack(app={
        "ports": [{"target": 80, "published": 8080, "mode": "host"}],
        "deploy": {"replicas": 3}}))
    assert sorted(placement(c).values()) == ["node1", "node2", "node3"]
    assert c.ingress_services() == []
    assert list(c.tasks[0].addresses) == ["default"]  # the stack's network, not the mesh


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------


@pytest.mark.parametrize("item, expected", [
    ("8000:80", [(8000, 80, "tcp", "ingress")]),
    ("8000:80/udp", [(8000, 80, "udp", "ingress")]),
    ("8000:80/sctp", [(8000, 80, "sctp", "ingress")]),
    ("8000-8002:80-82", [(8000, 80, "tcp", "ingress"), (8001, 81, "tcp", "ingress"),
                         (8002, 82, "tcp", "ingress")]),
    ("8000-8001:80-81/udp", [(8000, 80, "udp", "ingress"), (8001, 81, "udp", "ingress")]),
    ("80", [(30000, 80, "tcp", "ingress")]),
    (80, [(30000, 80, "tcp", "ingress")]),
    ("80-81", [(30000, 80, "tcp", "ingress"), (30001, 81, "tcp", "ingress")]),
    ({"target": 80, "published": 8000}, [(8000, 80, "tcp", "ingress")]),
    ({"target": 80, "published": "8000", "protocol": "udp", "mode": "ingress"},
     [(8000, 80, "udp", "ingress")]),
    ({"target": 80, "published": 8000, "mode": "host"}, [(8000, 80, "tcp", "host")]),
    ({"target": 80}, [(30000, 80, "tcp", "ingress")]),
])
def test_port_syntax(item, expected):
    c = Cluster.from_stack(stack(app={"ports": [item]}))
    got = [(p.published, p.target, p.protocol, p.mode) for p in c.service("app").ports]
    assert got == expected


def test_sexagesimal_looking_port_stays_a_port():
    # YAML 1.1 would read 22:22 as the integer 1342; Compose users mean 22->22.
    c = Cluster.from_stack("services:\n  ssh:\n    ports:\n      - 22:22\n")
    assert c.service("ssh").ports == (PublishedPort(22, 22),)


def test_auto_assigned_published_ports_skip_used_ones():
    c = Cluster.from_stack(stack(
        a={"ports": ["80", "30001:81"]},
        b={"ports": ["30000:82", {"target": 83}, "84/udp"]},
    ))
    assert [p.published for p in c.service("a").ports] == [30002, 30001]
    assert [p.published for p in c.service("b").ports] == [30000, 30003, 30000]
    assert c.service("b").ports[2].protocol == "udp"


def test_same_port_different_protocols_is_no_conflict():
    c = Cluster.from_stack(stack(a={"ports": ["53:53/udp"]}, b={"ports": ["53:53"]}))
    assert len(c.ingress_services()) == 2


def test_quick_udp():
    c = Cluster.quick(protocol="udp", published=5353, target=53)
    assert c.service("app").ports == (PublishedPort(5353, 53, "udp", "ingress"),)


# --------------------------------------------------------------------------
# Realistic stack file
# --------------------------------------------------------------------------


def test_realistic_stack_fixture():
    c = Cluster.from_stack(FIXTURES / "webstack.yml", nodes=3, clients=2)
    assert list(c.services) == ["web", "api", "dns", "db"]
    assert list(c.networks) == ["ingress", "frontend", "backend", "default"]  # dns lists none
    assert c.networks["backend"].subnet == IPv4Network("10.10.0.0/24")
    assert c.networks["frontend"].subnet == IPv4Network("10.0.1.0/24")

    web, api, dns, db = (c.service(n) for n in ("web", "api", "dns", "db"))
    assert web.ports == (PublishedPort(8080, 80), PublishedPort(8443, 443))
    assert api.ports == (PublishedPort(30000, 5000),)
    assert dns.ports == (PublishedPort(53, 53, "udp"), PublishedPort(9153, 9153, "tcp", "host"))
    assert db.endpoint_mode == "dnsrr" and db.ports == ()
    assert dns.mode == "global" and dns.replicas == 3
    assert api.networks == ("frontend", "backend")

    assert placement(c) == {
        "web.1": "node1", "web.2": "node2",
        "api.1": "node3", "api.2": "node2", "api.3": "node3",
        "dns.1": "node1", "dns.2": "node2", "dns.3": "node3",
        "db.1": "node3",
    }
    assert [s.name for s in c.ingress_services()] == ["web", "api", "dns"]
    assert "ingress" not in c.tasks_of("db")[0].addresses

    assert "x-logging" not in c.ignored_keys        # extension fields are the user's own
    for key in ["volumes", "configs", "secrets",
                "services.web.image", "services.web.logging",
                "services.web.deploy.update_config", "services.web.deploy.restart_policy",
                "services.api.environment", "services.api.command",
                "services.api.depends_on", "services.api.deploy.resources",
                "services.api.networks.frontend.aliases", "services.db.volumes",
                "networks.frontend.attachable", "networks.backend.driver_opts"]:
        assert key in c.ignored_keys, key
    assert len(c.ignored_keys) == len(set(c.ignored_keys))
    assert not any(k.startswith("version") for k in c.ignored_keys)
    assert not any(k.endswith((".ports", ".deploy.replicas", ".networks")) for k in c.ignored_keys)


def test_stack_as_path_string_and_as_text_give_same_cluster():
    path = FIXTURES / "minimal.yml"
    assert Cluster.from_stack(str(path)) == Cluster.from_stack(path.read_text())
    from_file = Cluster.from_stack(path, implicit_network=False)   # as docker service create
    assert from_file.ignored_keys == ["services.app.image"]
    from_file.ignored_keys = []
    assert from_file == Cluster.quick(3, 2)


def test_deterministic():
    a = Cluster.from_stack(FIXTURES / "webstack.yml")
    b = Cluster.from_stack(FIXTURES / "webstack.yml")
    assert a == b and a.to_dict() == b.to_dict()


# --------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: Cluster.quick(3, 2),
    lambda: Cluster.from_stack(FIXTURES / "webstack.yml", nodes=4, clients=3),
])
def test_to_dict_from_dict_round_trip(make):
    c = make()
    d = json.loads(json.dumps(c.to_dict()))
    assert d == c.to_dict()
    back = Cluster.from_dict(d)
    assert back == c
    assert isinstance(back.tasks[0].addresses["ingress"], IPv4Address)
    assert isinstance(back.networks["ingress"].subnet, IPv4Network)
    assert isinstance(back.service(back.tasks[0].service).ports[0], PublishedPort)


def test_from_dict_malformed():
    d = Cluster.quick().to_dict()
    del d["nodes"][0]["ingress_ip"]
    with pytest.raises(InvalidConfigError) as err:
        Cluster.from_dict(d)
    assert err.value.field == "cluster"


# --------------------------------------------------------------------------
# Validation errors
# --------------------------------------------------------------------------


def test_error_is_value_error_and_picklable():
    err = InvalidConfigError("services.app.deploy.replicas", "must be >= 0, got -1")
    assert isinstance(err, ValueError)
    assert str(err) == "services.app.deploy.replicas: must be >= 0, got -1"
    again = pickle.loads(pickle.dumps(err))
    assert (again.field, str(again)) == (err.field, str(err))


@pytest.mark.parametrize("call, field, message", [
    (lambda c: c.service("nope"), "services.nope", "services.nope: unknown service"),
    (lambda c: c.node("node9"), "nodes.node9", "nodes.node9: unknown node"),
    (lambda c: c.tasks_of("nope"), "services.nope", "unknown service"),
    (lambda c: c.tasks_on("node9"), "nodes.node9", "unknown node"),
])
def test_lookup_errors(call, field, message):
    with pytest.raises(InvalidConfigError) as err:
        call(Cluster.quick())
    assert err.value.field == field
    assert message in str(err.value)


BAD_STACKS = [
    # (id, stack, kwargs, field, message fragment)
    ("replicas-negative", stack(app={"deploy": {"replicas": -1}}), {},
     "services.app.deploy.replicas", "must be >= 0, got -1"),
    ("replicas-string", stack(app={"deploy": {"replicas": "3"}}), {},
     "services.app.deploy.replicas", "must be an integer"),
    ("replicas-bool", stack(app={"deploy": {"replicas": True}}), {},
     "services.app.deploy.replicas", "must be an integer"),
    ("replicas-float", stack(app={"deploy": {"replicas": 2.5}}), {},
     "services.app.deploy.replicas", "must be an integer"),
    ("port-conflict", stack(a={"ports": ["8000:80"]}, b={"ports": ["9000:90", "8000:81"]}), {},
     "services.b.ports[1]", "8000/tcp"),
    ("port-conflict-same-service", stack(a={"ports": ["8000:80", "8000:81"]}), {},
     "services.a.ports[1]", "conflicts with service 'a'"),
    ("port-conflict-host-vs-ingress",
     stack(a={"ports": ["8000:80"]},
           b={"ports": [{"target": 80, "published": 8000, "mode": "host"}]}), {},
     "services.b.ports[0]", "conflicts with service 'a'"),
    ("published-out-of-range", stack(app={"ports": ["70000:80"]}), {},
     "services.app.ports[0]", "published port must be in 1..65535, got 70000"),
    ("target-out-of-range", stack(app={"ports": ["8000:0"]}), {},
     "services.app.ports[0]", "target port must be in 1..65535, got 0"),
    ("long-published-out-of-range", stack(app={"ports": [{"target": 80, "published": 65536}]}),
     {}, "services.app.ports[0]", "published port must be in 1..65535, got 65536"),
    ("long-target-missing", stack(app={"ports": [{"published": 8000}]}), {},
     "services.app.ports[0]", "target is required"),
    ("port-not-a-number", stack(app={"ports": ["web:80"]}), {},
     "services.app.ports[0]", "published port must be an integer"),
    ("bad-protocol-short", stack(app={"ports": ["8000:80/icmp"]}), {},
     "services.app.ports[0]", "protocol must be one of tcp, udp, sctp, got 'icmp'"),
    ("bad-protocol-long", stack(app={"ports": [{"target": 80, "protocol": "http"}]}), {},
     "services.app.ports[0]", "protocol must be one of tcp, udp, sctp"),
    ("bad-port-mode", stack(app={"ports": [{"target": 80, "mode": "local"}]}), {},
     "services.app.ports[0]", "mode must be one of ingress, host"),
    ("host-mode-needs-published", stack(app={"ports": [{"target": 80, "mode": "host"}]}), {},
     "services.app.ports[0]", "mode host needs an explicit published port"),
    ("range-mismatch", stack(app={"ports": ["8000-8002:80-81"]}), {},
     "services.app.ports[0]", "ranges differ in length"),
    ("range-reversed", stack(app={"ports": ["8001-8000:81-80"]}), {},
     "services.app.ports[0]", "reversed"),
    ("port-item-type", stack(app={"ports": [[8000, 80]]}), {},
     "services.app.ports[0]", "must be a string, an integer or a mapping"),
    ("ports-not-list", stack(app={"ports": "8000:80"}), {},
     "services.app.ports", "must be a list"),
    ("dnsrr-ingress", stack(app={"ports": ["8000:80"], "deploy": {"endpoint_mode": "dnsrr"}}),
     {}, "services.app.deploy.endpoint_mode", DNSRR_INGRESS_ERROR),
    ("bad-endpoint-mode", stack(app={"deploy": {"endpoint_mode": "lb"}}), {},
     "services.app.deploy.endpoint_mode", "must be one of vip, dnsrr"),
    ("placement-syntax",
     stack(app={"deploy": {"placement": {"constraints": ["node.hostname = node1"]}}}), {},
     "services.app.deploy.placement.constraints[0]", "expected one operator from ==, !="),
    ("global-with-replicas", stack(app={"deploy": {"mode": "global", "replicas": 2}}), {},
     "services.app.deploy.replicas", "replicas can only be used with replicated mode"),
    ("bad-deploy-mode", stack(app={"deploy": {"mode": "replicated-job"}}), {},
     "services.app.deploy.mode", "must be one of replicated, global"),
    ("bad-service-name", stack(**{"-app": {}}), {},
     "services.-app", "invalid service name"),
    ("service-not-mapping", stack(app=["nginx"]), {}, "services.app", "must be a mapping"),
    ("deploy-not-mapping", stack(app={"deploy": 3}), {},
     "services.app.deploy", "must be a mapping"),
    ("services-not-mapping", {"services": ["app"]}, {}, "services", "must be a mapping"),
    ("services-missing", {"version": "3.8"}, {}, "services", "required"),
    ("services-empty", {"services": {}}, {}, "services", "at least one service"),
    ("networks-not-mapping", {"services": {"app": {}}, "networks": ["front"]}, {},
     "networks", "must be a mapping"),
    ("unknown-top-level-key", {"services": {"app": {}}, "servces": {}}, {},
     "servces", "unknown top-level key"),
    ("unknown-network", stack(app={"networks": ["front"]}), {},
     "services.app.networks", "unknown network 'front'"),
    ("attach-to-ingress", stack(app={"networks": ["ingress"]}), {},
     "services.app.networks", "cannot be attached explicitly"),
    ("ingress-reserved", {"services": {"app": {}}, "networks": {"ingress": {}}}, {},
     "networks.ingress", "reserved"),
    ("network-driver", {"services": {"app": {}}, "networks": {"n": {"driver": "bridge"}}}, {},
     "networks.n.driver", "only the overlay driver"),
    ("subnet-invalid",
     {"services": {"app": {}}, "networks": {"n": {"ipam": {"config": [{"subnet": "10.1.0.1/24"}]}}}},
     {}, "networks.n.ipam.config[0].subnet", "invalid subnet"),
    ("subnet-overlaps-ingress",
     {"services": {"app": {}}, "networks": {"n": {"ipam": {"config": [{"subnet": "10.0.0.128/25"}]}}}},
     {}, "networks.n.ipam.config[0].subnet", "overlaps the ingress network"),
    ("subnets-overlap",
     {"services": {"app": {}}, "networks": {
         "a": {"ipam": {"config": [{"subnet": "10.20.0.0/16"}]}},
         "b": {"ipam": {"config": [{"subnet": "10.20.5.0/24"}]}}}},
     {}, "networks.b.ipam.config[0].subnet", "overlaps network 'a'"),
    ("subnet-too-small",
     {"services": {"app": {"networks": ["n"], "deploy": {"replicas": 6}}},
      "networks": {"n": {"ipam": {"config": [{"subnet": "10.20.0.0/29"}]}}}},
     {}, "networks.n.ipam.config[0].subnet", "too few addresses"),
    ("nodes-zero", stack(app={}), {"nodes": 0}, "nodes", "must be >= 1, got 0"),
    ("nodes-too-many", stack(app={}), {"nodes": 201}, "nodes", "at most 200 nodes"),
    ("nodes-not-int", stack(app={}), {"nodes": "3"}, "nodes", "must be an integer"),
    ("clients-negative", stack(app={}), {"clients": -1}, "clients", "must be >= 0, got -1"),
    ("clients-too-many", stack(app={}), {"clients": 55}, "clients", "at most 54 clients"),
    ("top-level-number", 42, {}, "stack", "must be a path, YAML text or a mapping"),
    ("top-level-yaml-list", "- a\n- b\n", {}, "stack", "top level must be a mapping"),
    ("duplicate-key", "services:\n  app: {}\n  app: {}\n", {}, "stack", "duplicate key 'app'"),
    ("missing-file", str(FIXTURES / "does-not-exist.yml"), {}, "stack", "cannot read"),
    ("empty-file", "# nothing\n\n", {}, "stack", "is empty"),
]


@pytest.mark.parametrize("data, kwargs, field, message",
                         [case[1:] for case in BAD_STACKS],
                         ids=[case[0] for case in BAD_STACKS])
def test_validation_errors(data, kwargs, field, message):
    with pytest.raises(InvalidConfigError) as err:
        Cluster.from_stack(data, **kwargs)
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")
    assert message in str(err.value)


def test_replicas_negative_exact_message():
    with pytest.raises(InvalidConfigError) as err:
        Cluster.quick(replicas=-1)
    assert str(err.value) == "services.app.deploy.replicas: must be >= 0, got -1"


def test_dnsrr_exact_swarm_message():
    with pytest.raises(InvalidConfigError) as err:
        Cluster.from_stack(stack(app={"ports": ["8000:80"],
                                      "deploy": {"endpoint_mode": "dnsrr"}}))
    assert str(err.value) == (
        "services.app.deploy.endpoint_mode: "
        "port published with ingress mode can't be used with dnsrr mode")


def test_dnsrr_with_host_mode_port_is_allowed():
    c = Cluster.from_stack(stack(app={
        "ports": [{"target": 80, "published": 8080, "mode": "host"}],
        "deploy": {"endpoint_mode": "dnsrr"}}))
    assert c.service("app").endpoint_mode == "dnsrr"


def test_port_conflict_names_both_services():
    with pytest.raises(InvalidConfigError) as err:
        Cluster.from_stack(stack(first={"ports": ["8000:80"]}, second={"ports": ["8000:90"]}))
    msg = str(err.value)
    assert err.value.field == "services.second.ports[0]"
    assert "'first'" in msg and "'second'" in msg and "services.first.ports[0]" in msg


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(InvalidConfigError) as err:
        Cluster.from_stack(FIXTURES / "bad-syntax.yml")
    assert err.value.field == "stack"
    assert "YAML syntax error" in str(err.value)
    assert "line 7" in str(err.value)
    assert "deploy:" in str(err.value)


def test_nothing_is_built_from_a_bad_stack():
    # The port error is in the last service: no partial cluster leaks out.
    with pytest.raises(InvalidConfigError):
        Cluster.from_stack(stack(a={"deploy": {"replicas": 2}}, b={"ports": ["x:80"]}))


def test_a_second_published_service_gets_its_vip_after_the_first_ones_tasks():
    c = Cluster.from_stack({"services": {
        "web": {"ports": ["8000:80"], "deploy": {"replicas": 2}},
        "api": {"ports": ["9000:80"], "deploy": {"replicas": 1}},
        "db": {}}})
    assert c.service("web").ingress_vip == IPv4Address("10.0.0.5")
    assert [str(t.addresses["ingress"]) for t in c.tasks_of("web")] == ["10.0.0.6", "10.0.0.7"]
    assert c.service("api").ingress_vip == IPv4Address("10.0.0.8")
    assert c.tasks_of("api")[0].addresses["ingress"] == IPv4Address("10.0.0.9")
    assert c.service("db").ingress_vip is None
    again = Cluster.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again.service("web").ingress_vip == IPv4Address("10.0.0.5")
    assert again.place_task("web").addresses["ingress"] == IPv4Address("10.0.0.10")


def test_a_cluster_larger_than_dockers_ingress_24_is_refused_naming_the_field():
    assert len(Cluster.quick(200, 50).tasks) == 50       # 200 + 1 VIP + 50 = 251 addresses
    with pytest.raises(InvalidConfigError) as err:
        Cluster.quick(200, 53)
    assert err.value.field == "services"
    assert "10.0.0.0/24" in str(err.value) and "200 nodes" in str(err.value)


def test_a_larger_ingress_subnet_holds_what_dockers_does_not():
    """``--ingress-subnet``: the ingress network as re-created by ``docker network create
    --ingress --subnet``; the same plan (sandboxes, the VIP, the tasks) in it."""
    c = Cluster.quick(100, 1000, ingress_subnet="10.255.0.0/16")
    assert c.networks["ingress"].subnet == IPv4Network("10.255.0.0/16")
    assert c.nodes[0].ingress_ip == IPv4Address("10.255.0.2")
    assert c.service("app").ingress_vip == IPv4Address("10.255.0.102")
    assert max(t.addresses["ingress"] for t in c.tasks) == IPv4Address("10.255.4.78")
    assert len({t.addresses["ingress"] for t in c.tasks}) == 1000
    again = Cluster.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again.place_task("app").addresses["ingress"] == IPv4Address("10.255.4.79")


@pytest.mark.parametrize("value, reason", [
    ("10.9.0.0/29", "too small for an ingress network"),
    ("10.9.0.1/16", "invalid subnet"),
    ("fd00::/64", "only IPv4"),
    ("192.168.99.0/25", "overlaps the underlay"),
])
def test_a_bad_ingress_subnet_is_refused_naming_the_flag(value, reason):
    with pytest.raises(InvalidConfigError, match=reason) as err:
        Cluster.quick(3, 2, ingress_subnet=value)
    assert err.value.field == "ingress-subnet"


def test_a_user_network_may_not_overlap_a_custom_ingress_and_defaults_go_around_it():
    net = {"services": {"app": {"networks": ["n"]}},
           "networks": {"n": {"ipam": {"config": [{"subnet": "10.9.1.0/24"}]}}}}
    with pytest.raises(InvalidConfigError, match=r"overlaps the ingress network \(10.9.0.0/16\)") as err:
        Cluster.from_stack(net, ingress_subnet="10.9.0.0/16")
    assert err.value.field == "networks.n.ipam.config[0].subnet"
    # Docker's own ingress subnet is free for a user network once the ingress moved away
    moved = {"services": {"app": {"networks": ["n"]}},
             "networks": {"n": {"ipam": {"config": [{"subnet": "10.0.0.0/24"}]}}}}
    assert Cluster.from_stack(moved, ingress_subnet="10.9.0.0/16").networks["n"].subnet \
        == IPv4Network("10.0.0.0/24")
    auto = Cluster.from_stack({"services": {"app": {"networks": ["n"]}}, "networks": {"n": {}}},
                              ingress_subnet="10.0.1.0/24")
    assert auto.networks["n"].subnet == IPv4Network("10.0.2.0/24")
