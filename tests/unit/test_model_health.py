"""services.X.healthcheck in the model: parsing, defaults, errors, serialisation."""

from __future__ import annotations

import json

import pytest

from swarmmesh.lifecycle import probes, profiles
from swarmmesh.lifecycle.profiles import check_for
from swarmmesh.model import healthcheck
from swarmmesh.model import Cluster, HealthCheck, InvalidConfigError


def cluster_with(hc) -> Cluster:
    return Cluster.from_stack(
        {"services": {"app": {"ports": ["8000:80"], "healthcheck": hc}}}, nodes=2)


def parsed(hc) -> HealthCheck:
    return cluster_with(hc).services["app"].healthcheck


def error(hc) -> str:
    with pytest.raises(InvalidConfigError) as exc:
        cluster_with(hc)
    return str(exc.value)


def test_no_healthcheck_key_is_none():
    c = Cluster.quick(nodes=2, replicas=1)
    assert c.services["app"].healthcheck is None


def test_defaults_are_swarms():
    hc = parsed({"test": ["CMD", "curl", "-f", "http://localhost/health"]})
    assert (hc.interval, hc.timeout, hc.retries, hc.start_period, hc.start_interval) == \
        (30.0, 30.0, 3, 0.0, 5.0)
    assert hc.active


def test_all_fields_and_durations():
    hc = parsed({"test": ["CMD-SHELL", "curl -f http://localhost/health || exit 1"],
                 "interval": "1m30s", "timeout": "500ms", "retries": 5,
                 "start_period": "1h", "start_interval": "1.5s"})
    assert hc.test == ("CMD-SHELL", "curl -f http://localhost/health || exit 1")
    assert hc.interval == 90.0 and hc.timeout == 0.5 and hc.retries == 5
    assert hc.start_period == 3600.0 and hc.start_interval == 1.5


def test_string_test_is_cmd_shell():
    assert parsed({"test": "wget -q --spider http://localhost"}).test == \
        ("CMD-SHELL", "wget -q --spider http://localhost")


@pytest.mark.parametrize("hc", [{"test": ["NONE"]}, {"disable": True},
                                {"disable": True, "test": ["NONE"]}])
def test_disabled(hc):
    got = parsed(hc)
    assert got.test == ("NONE",) and not got.active


def test_zero_means_default_as_in_docker():
    hc = parsed({"test": "true", "interval": "0s", "timeout": 0, "retries": 0})
    assert (hc.interval, hc.timeout, hc.retries) == (30.0, 30.0, 3)


def test_timings_without_test_run_no_check_and_are_reported():
    c = cluster_with({"interval": "5s"})
    hc = c.services["app"].healthcheck
    assert hc.test == () and not hc.active and hc.interval == 5.0
    assert "services.app.healthcheck.test" in c.ignored_keys


@pytest.mark.parametrize("hc, message", [
    ({"test": "true", "interval": "3x"},
     "services.app.healthcheck.interval: invalid duration '3x'"),
    ({"test": "true", "timeout": 30},
     "services.app.healthcheck.timeout: must be a duration string"),
    ({"test": "true", "start_period": "-1s"},
     "services.app.healthcheck.start_period: must not be negative"),
    ({"test": "true", "interval": "500us"},
     "services.app.healthcheck.interval: must be 0 (the default) or at least 1ms"),
    ({"test": "true", "retries": -1},
     "services.app.healthcheck.retries: must be an integer >= 0, got -1"),
    ({"test": "true", "retries": "3"},
     "services.app.healthcheck.retries: must be an integer >= 0, got '3'"),
    ({"test": ["curl", "x"]},
     "services.app.healthcheck.test: must start with CMD, CMD-SHELL or NONE, got 'curl'"),
    ({"test": ["CMD"]}, "services.app.healthcheck.test: CMD needs a command"),
    ({"test": ["CMD-SHELL", "a", "b"]},
     "services.app.healthcheck.test: CMD-SHELL takes exactly one command string"),
    ({"test": ["NONE", "x"]}, "services.app.healthcheck.test: NONE takes no arguments"),
    ({"test": []}, "services.app.healthcheck.test: must not be empty"),
    ({"test": ""}, "services.app.healthcheck.test: must not be empty"),
    ({"test": ["CMD", 1]}, "services.app.healthcheck.test: items must be strings"),
    ({"test": "true", "disable": True},
     "services.app.healthcheck.disable: cannot be used together with a test"),
    ({"test": "true", "disable": "yes"},
     "services.app.healthcheck.disable: must be true or false"),
    ({"test": "true", "intervall": "1s"},
     "services.app.healthcheck.intervall: unknown key"),
    ("curl x", "services.app.healthcheck: must be a mapping"),
])
def test_errors_name_the_field(hc, message):
    assert error(hc).startswith(message)


def test_yaml_stack_and_round_trip():
    text = """
services:
  web:
    ports: ["8000:80"]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost/health"]
      interval: 2s
      timeout: 1s
      retries: 2
      start_period: 10s
"""
    c = Cluster.from_stack(text, nodes=2)
    hc = c.services["web"].healthcheck
    assert (hc.interval, hc.timeout, hc.retries, hc.start_period) == (2.0, 1.0, 2, 10.0)
    again = Cluster.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again.services["web"].healthcheck == hc
    plain = Cluster.quick(nodes=2, replicas=1)
    assert Cluster.from_dict(plain.to_dict()).services["app"].healthcheck is None


def test_for_profile():
    base = HealthCheck(test=("CMD-SHELL", "true"), interval=5.0, retries=4)
    assert check_for("swarm", base) is base
    swarm = check_for("swarm")
    assert swarm.test == healthcheck.DEFAULT_TEST and swarm.interval == 30.0 and swarm.retries == 3
    fast = check_for("fast", base)
    assert fast.test == base.test
    assert (fast.interval, fast.timeout, fast.retries) == (
        profiles.FAST_PROFILE.interval, profiles.FAST_PROFILE.timeout, profiles.FAST_PROFILE.retries)
    with pytest.raises(InvalidConfigError, match="^profile: must be one of swarm, fast"):
        check_for("turbo")


def test_realistic_fixture_healthchecks_parse():
    from pathlib import Path
    fixture = Path(__file__).parent / "fixtures" / "webstack.yml"
    c = Cluster.from_stack(fixture, nodes=3)
    web, api = c.services["web"].healthcheck, c.services["api"].healthcheck
    assert web.test == ("CMD", "wget", "-qO-", "http://localhost/healthz")
    assert (web.interval, web.timeout, web.retries) == (10.0, 3.0, 3)
    assert api.test == ("CMD-SHELL", "curl -fsS http://localhost:5000/health || exit 1")
    assert (api.interval, api.timeout, api.start_period) == (15.0, 30.0, 20.0)
    assert probes.probe_for(web.test) == probes.HttpProbe(port=80, path="/healthz")
    assert probes.probe_for(api.test) == probes.HttpProbe(port=5000, path="/health")
    assert "services.web.healthcheck" not in c.ignored_keys
