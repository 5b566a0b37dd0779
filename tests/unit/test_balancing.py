"""A service's balancing options (issue 14's model): the x-swarmmesh key where docker
stack deploy accepts it, Swarm's rr by default, and every error naming its field."""

from __future__ import annotations

import pytest

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.model.balancing import AFFINITY_DEFAULT, Balancing


def options(version="3.8", **svc_keys):
    stack = {"version": version, "services": {"web": {"ports": ["8000:80"], **svc_keys}}}
    return Cluster.from_stack(stack)


def test_default_is_swarms_round_robin():
    b = options().service("web").balancing
    assert b == Balancing() and b.is_swarm() and b.scheduler == "rr"
    assert Cluster.quick().service("app").balancing.is_swarm()


@pytest.mark.parametrize("raw, want", [
    ({"scheduler": "sh"}, Balancing("sh")),
    ({"scheduler": "maglev", "affinity": True}, Balancing("maglev", {}, AFFINITY_DEFAULT)),
    ({"scheduler": "wrr", "weights": {1: 3, "2": 0}}, Balancing("wrr", {1: 3, 2: 0})),
    ({"affinity": "30m"}, Balancing("rr", {}, 1800.0)),
    ({"affinity": 90}, Balancing("rr", {}, 90.0)),
    ({"traffic_policy": "local"}, Balancing("rr", {}, 0.0, "local")),
    ({"scheduler": "lc", "affinity": False}, Balancing("lc")),
])
def test_service_level_key(raw, want):
    c = options(**{"x-swarmmesh": raw})
    assert c.service("web").balancing == want
    assert Cluster.from_dict(c.to_dict()).service("web").balancing == want
    assert c.warnings == [] and not any("x-swarmmesh" in k for k in c.ignored_keys)


def test_top_level_key_for_files_before_3_7_and_the_warning_otherwise():
    c = Cluster.from_stack({"version": "3.4", "x-swarmmesh": {"services": {"web": {
        "scheduler": "sh"}}}, "services": {"web": {"ports": ["8000:80"]}}})
    assert c.service("web").balancing.scheduler == "sh" and c.warnings == []
    c = options(version="3.6", **{"x-swarmmesh": {"scheduler": "sh"}})
    assert c.service("web").balancing.scheduler == "sh"
    assert any("before version 3.7" in w for w in c.warnings)


def test_weight_of_a_slot_defaults_to_one():
    assert Balancing("wrr", {2: 5}).weight(1) == 1 and Balancing("wrr", {2: 5}).weight(2) == 5


@pytest.mark.parametrize("raw, field, words", [
    ("sh", "services.web.x-swarmmesh", "must be a mapping"),
    ({"schedular": "sh"}, "services.web.x-swarmmesh.schedular", "unknown key"),
    ({"scheduler": "random"}, "services.web.x-swarmmesh.scheduler", "rr, wrr, sh, maglev, lc"),
    ({"scheduler": "rr", "weights": {1: 2}}, "services.web.x-swarmmesh.weights",
     "for the wrr scheduler"),
    ({"scheduler": "wrr", "weights": {0: 2}}, "services.web.x-swarmmesh.weights", "task slots"),
    ({"scheduler": "wrr", "weights": {1: 101}}, "services.web.x-swarmmesh.weights.1", "0..100"),
    ({"scheduler": "wrr", "weights": [1, 2]}, "services.web.x-swarmmesh.weights", "must map"),
    ({"affinity": "forever"}, "services.web.x-swarmmesh.affinity", "duration"),
    ({"affinity": "48h"}, "services.web.x-swarmmesh.affinity", "0..86400"),
    ({"traffic_policy": "nearest"}, "services.web.x-swarmmesh.traffic_policy",
     "cluster, local"),
])
def test_errors_name_the_field(raw, field, words):
    with pytest.raises(InvalidConfigError) as e:
        options(**{"x-swarmmesh": raw})
    assert e.value.field == field and words in str(e.value), str(e.value)


@pytest.mark.parametrize("top, field", [
    ({"services": {"nope": {}}}, "x-swarmmesh.services.nope"),
    ({"service": {}}, "x-swarmmesh.service"),
    ("sh", "x-swarmmesh"),
])
def test_top_level_errors_name_the_field(top, field):
    with pytest.raises(InvalidConfigError) as e:
        Cluster.from_stack({"version": "3.4", "x-swarmmesh": top,
                            "services": {"web": {"ports": ["8000:80"]}}})
    assert e.value.field == field


def test_both_places_for_one_service_is_an_error():
    with pytest.raises(InvalidConfigError) as e:
        Cluster.from_stack({"version": "3.8", "x-swarmmesh": {"services": {"web": {}}},
                            "services": {"web": {"x-swarmmesh": {}}}})
    assert e.value.field == "services.web.x-swarmmesh"


def test_flags_apply_to_every_published_service_and_errors_name_the_flag():
    import argparse

    from swarmmesh.runs import stackargs
    from swarmmesh.ui.stackcheck import render
    ap = argparse.ArgumentParser()
    stackargs.add_arguments(ap)
    args = ap.parse_args(["--scheduler", "maglev", "--affinity", "2h"])
    c = stackargs.cluster(args)
    assert c.service("app").balancing == Balancing("maglev", {}, 7200.0)
    assert "maglev affinity 7200s" in render(c, ["-"])
    for flags, field in ((["--scheduler", "fifo"], "scheduler"),
                         (["--affinity", "soon"], "affinity"),
                         (["--traffic-policy", "near"], "traffic_policy")):
        with pytest.raises(InvalidConfigError) as e:
            stackargs.cluster(ap.parse_args(flags))
        assert e.value.field == field, e.value
    assert stackargs.cluster(ap.parse_args([])).service("app").balancing.is_swarm()
