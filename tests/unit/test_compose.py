"""Unit tests for swarmmesh.model.compose: docker stack deploy's interpolation, casts,
env files and multi-file merge (pure Python, no root)."""

from __future__ import annotations

import copy

import pytest

from swarmmesh.model.compose import interpolate, merge, prepare, read_env_file
from swarmmesh.model.errors import InvalidConfigError


def image(value: str, env: dict | None = None, warnings: list | None = None) -> object:
    """The image of service web after interpolating ``value`` there."""
    data = {"services": {"web": {"image": value}}}
    return interpolate(data, env or {}, warnings=warnings)["services"]["web"]["image"]


def web(**fields) -> dict:
    return {"services": {"web": fields}}


def merged_web(*bodies: dict) -> dict:
    docs = [(f"f{i}.yml", web(**body)) for i, body in enumerate(bodies)]
    return merge(docs)["services"]["web"]


def error_of(call, *args, **kwargs) -> InvalidConfigError:
    with pytest.raises(InvalidConfigError) as info:
        call(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------
# substitution syntax
# --------------------------------------------------------------------------


@pytest.mark.parametrize("text, env, expected", [
    ("$TAG", {"TAG": "1.2"}, "1.2"),
    ("${TAG}", {"TAG": "1.2"}, "1.2"),
    ("nginx:${TAG}-alpine", {"TAG": "1.2"}, "nginx:1.2-alpine"),
    ("$HOST/path", {"HOST": "h"}, "h/path"),
    ("$HOST.local", {"HOST": "h"}, "h.local"),
    ("${lower}", {"lower": "x"}, "x"),
    ("${TAG:-d}", {}, "d"),
    ("${TAG:-d}", {"TAG": ""}, "d"),
    ("${TAG:-d}", {"TAG": "v"}, "v"),
    ("${TAG-d}", {}, "d"),
    ("${TAG-d}", {"TAG": ""}, ""),
    ("${TAG-d}", {"TAG": "v"}, "v"),
    ("${TAG:-}", {}, ""),
    ("${TAG:-a b:c}", {}, "a b:c"),
    ("${TAG:?e}", {"TAG": "v"}, "v"),
    ("${TAG?e}", {"TAG": ""}, ""),
    ("$$", {}, "$"),
    ("$$TAG", {"TAG": "v"}, "$TAG"),
    ("$${TAG}", {"TAG": "v"}, "${TAG}"),
    ("a $$ b $$$TAG", {"TAG": "v"}, "a $ b $v"),
    ("no dollar", {}, "no dollar"),
    ("${TAG}}", {"TAG": "v"}, "v}"),
])
def test_substitution(text, env, expected):
    assert image(text, env) == expected


def test_nested_default_is_not_substituted_again():
    # docker/cli's pattern stops a braced body at the first "}": ${A:-${B} is the
    # default "${B" and the last "}" stays; nothing is substituted twice
    assert image("${A:-${B}}", {"B": "b"}) == "${B}"
    assert image("${A:-${B}}", {"A": "a", "B": "b"}) == "a}"


def test_unbraced_name_takes_a_default_too():
    # docker quirk: "$A-x" reads as ${A-x}, so with A set the "-x" is dropped
    assert image("$A-x", {"A": "a"}) == "a"
    assert image("$A-x", {}) == "x"
    assert image("$A:-x y", {}) == "x y"


def test_required_message_with_a_dash_is_a_default():
    # docker quirk: ":-" then "-" are looked for before ":?", so the body
    # "A:?must-set" is a variable "A:?must" (never set) with the default "set"
    assert image("${A:?must-set}", {"A": "a"}) == "set"


def test_unset_variable_is_blank_and_warned_once():
    warnings: list[str] = []
    data = {"services": {"web": {"image": "x:$TAG", "hostname": "${TAG}",
                                 "user": "$OTHER", "labels": {"a": "${D:-1}"}}}}
    out = interpolate(data, {}, warnings=warnings)
    assert out["services"]["web"]["image"] == "x:"
    assert out["services"]["web"]["hostname"] == ""
    assert warnings == [
        'services.web.image: The "TAG" variable is not set. Defaulting to a blank string.',
        'services.web.user: The "OTHER" variable is not set. Defaulting to a blank string.',
    ]


def test_name_runs_to_the_end_of_the_identifier():
    warnings: list[str] = []
    assert image("$TAGx", {"TAG": "v"}, warnings) == ""
    assert warnings and '"TAGx"' in warnings[0]


def test_set_but_empty_variable_is_not_warned():
    warnings: list[str] = []
    assert image("a${E}b", {"E": ""}, warnings) == "ab"
    assert warnings == []


def test_keys_are_not_touched_and_input_is_not_changed():
    data = {"services": {"$web": {"labels": {"$key": "$$v", "${k}": "${V}"},
                                  "ports": [80, "$P:80"], "read_only": True}}}
    before = copy.deepcopy(data)
    out = interpolate(data, {"V": "v", "P": "8080"})
    assert out == {"services": {"$web": {"labels": {"$key": "$v", "${k}": "v"},
                                         "ports": [80, "8080:80"], "read_only": True}}}
    assert data == before
    assert out["services"] is not data["services"]


def test_every_top_level_key_is_interpolated():
    out = interpolate({"version": "${V:-3.8}", "x-common": {"a": "$X"},
                       "networks": {"n": {"labels": ["a=$X"]}}}, {"X": "x"})
    assert out == {"version": "3.8", "x-common": {"a": "x"},
                   "networks": {"n": {"labels": ["a=x"]}}}


@pytest.mark.parametrize("text", ["$", "price 5$", "${VAR", "${}", "$1", "${VAR:x}", "$ x",
                                  "${-x}", "ok $$ then ${"])
def test_invalid_syntax_names_the_field(text):
    exc = error_of(image, text)
    assert exc.field == "services.web.image"
    assert exc.reason == (f'invalid interpolation format: "{text}"; '
                          "you may need to escape any $ with another $")


def test_error_in_a_list_item_names_its_index():
    data = {"services": {"web": {"ports": ["80:80", {"target": 80, "published": "${P"}]}}}
    exc = error_of(interpolate, data, {})
    assert exc.field == "services.web.ports[1].published"


@pytest.mark.parametrize("text, env", [
    ("${TAG:?set TAG}", {}), ("${TAG:?set TAG}", {"TAG": ""}), ("${TAG?set TAG}", {}),
])
def test_required_variable(text, env):
    exc = error_of(image, text, env)
    assert exc.field == "services.web.image"
    assert str(exc) == ('services.web.image: invalid interpolation format: '
                        '"required variable TAG is missing a value: set TAG"; '
                        "you may need to escape any $ with another $")


def test_required_error_is_raised_even_if_later_substitutions_succeed():
    # docker/cli would keep only the last substitution's error (none here)
    exc = error_of(image, "${TAG:?} $OTHER", {"OTHER": "o"})
    assert '"required variable TAG is missing a value: "' in exc.reason


def test_source_is_named_when_given():
    warnings: list[str] = []
    exc = error_of(interpolate, web(image="$"), {}, "b.yml")
    assert exc.reason.endswith("another $ (in b.yml)")
    interpolate(web(image="$U"), {}, "b.yml", warnings)
    assert warnings == ['services.web.image: The "U" variable is not set. '
                        "Defaulting to a blank string. (in b.yml)"]


def test_top_level_must_be_a_mapping():
    assert error_of(interpolate, ["a"], {}).field == "stack"


# --------------------------------------------------------------------------
# casts
# --------------------------------------------------------------------------


def test_casts_of_substituted_values():
    data = {
        "services": {"web": {
            "deploy": {"replicas": "${N:-3}",
                       "placement": {"max_replicas_per_node": "$M"},
                       "update_config": {"parallelism": "$M", "max_failure_ratio": "${F}"},
                       "restart_policy": {"max_attempts": "+$M"}},
            "ports": [{"target": "${T}", "published": "${P}"}, "${P}:${T}"],
            "healthcheck": {"retries": "${M}", "disable": "${D:-yes}"},
            "ulimits": {"nproc": "${M}", "nofile": {"soft": "$M", "hard": "-$M"}},
            "read_only": "$OFF", "privileged": "${ON}", "tty": "Y$E",
        }},
        "networks": {"n": {"external": "$ON", "internal": "${OFF}", "attachable": "TRUE$E"}},
        "volumes": {"v": {"external": "$OFF"}},
    }
    env = {"M": "2", "F": "0.5", "T": "80", "P": "8080", "ON": "on", "OFF": "False", "E": ""}
    out = interpolate(data, env)
    svc = out["services"]["web"]
    assert svc["deploy"] == {"replicas": 3, "placement": {"max_replicas_per_node": 2},
                             "update_config": {"parallelism": 2, "max_failure_ratio": 0.5},
                             "restart_policy": {"max_attempts": 2}}
    assert svc["ports"] == [{"target": 80, "published": 8080}, "8080:80"]
    assert svc["healthcheck"] == {"retries": 2, "disable": True}
    assert svc["ulimits"] == {"nproc": 2, "nofile": {"soft": 2, "hard": -2}}
    assert (svc["read_only"], svc["privileged"], svc["tty"]) == (False, True, True)
    assert out["networks"]["n"] == {"external": True, "internal": False, "attachable": True}
    assert out["volumes"]["v"] == {"external": False}


def test_plain_strings_are_not_cast():
    data = {"services": {"web": {"deploy": {"replicas": "3"}, "healthcheck": {"disable": "no"},
                                 "ports": [{"target": "80"}]}}}
    out = interpolate(data, {})["services"]["web"]
    assert out == data["services"]["web"]  # stack.py decides about "3"


@pytest.mark.parametrize("field, text, env, reason", [
    ("deploy.replicas", "${N}", {"N": "abc"}, "must be an integer after interpolation, got 'abc'"),
    ("deploy.replicas", "${N}", {"N": " 3"}, "must be an integer after interpolation, got ' 3'"),
    ("deploy.replicas", "${N}", {"N": "1_000"},
     "must be an integer after interpolation, got '1_000'"),
    ("deploy.replicas", "$N", {}, "must be an integer after interpolation, got ''"),
    ("healthcheck.disable", "$D", {"D": "maybe"},
     "must be a boolean (true/false, yes/no, on/off, y/n) after interpolation, got 'maybe'"),
    ("deploy.update_config.max_failure_ratio", "$F", {"F": "half"},
     "must be a number after interpolation, got 'half'"),
])
def test_cast_failure_names_the_field(field, text, env, reason):
    data: dict = {"services": {"web": {}}}
    node = data["services"]["web"]
    *parents, last = field.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = text
    exc = error_of(interpolate, data, env)
    assert exc.field == f"services.web.{field}"
    assert exc.reason == reason


def test_cast_failure_in_a_list_item():
    data = {"services": {"web": {"ports": [{"target": 80}, {"target": "${T}"}]}}}
    exc = error_of(interpolate, data, {"T": "http"})
    assert exc.field == "services.web.ports[1].target"


def test_published_dollar_left_alone_is_cast():
    # "$$" became "$": the value changed, so docker casts it and fails
    data = {"services": {"web": {"ports": [{"target": 80, "published": "$$"}]}}}
    exc = error_of(interpolate, data, {})
    assert exc.field == "services.web.ports[0].published"


# --------------------------------------------------------------------------
# env files
# --------------------------------------------------------------------------


def test_env_file_format(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_ENV", "outside")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = tmp_path / "stack.env"
    path.write_bytes(
        b"\xef\xbb\xbfFIRST=1\n"
        b"# a comment\n"
        b"\n"
        b"   INDENTED=yes\n"
        b"QUOTED=\"a b\" \n"
        b"EQ=a=b\n"
        b"EMPTY=\n"
        b"HASH=x # not a comment\n"
        b"CRLF=v\r\n"
        b"   # indented comment\n"
        b"FROM_ENV\n"
        b"NOT_SET_ANYWHERE\n"
        b"FIRST=2\n"
        b"LAST=no newline")
    assert read_env_file(path) == {
        "FIRST": "2", "INDENTED": "yes", "QUOTED": '"a b" ', "EQ": "a=b", "EMPTY": "",
        "HASH": "x # not a comment", "CRLF": "v", "FROM_ENV": "outside",
        "LAST": "no newline"}


@pytest.mark.parametrize("content, reason", [
    (b"A=1\n\nA B=2\n", "line 3: variable 'A B' contains whitespaces"),
    (b"A\t=1\n", "line 1: variable 'A\\t' contains whitespaces"),
    (b"BARE WORD\n", "line 1: variable 'BARE WORD' contains whitespaces"),
    (b"# c\n=value\n", "line 2: no variable name on line '=value'"),
    (b"A=1\nB=\xff\n", "line 2: invalid UTF-8"),
])
def test_env_file_errors(tmp_path, content, reason):
    path = tmp_path / "stack.env"
    path.write_bytes(content)
    exc = error_of(read_env_file, str(path))
    assert exc.field == "env_file"
    assert exc.reason == f"{path} {reason}"


def test_env_file_missing(tmp_path):
    exc = error_of(read_env_file, tmp_path / "nope.env")
    assert exc.field == "env_file" and "cannot read" in exc.reason and "nope.env" in exc.reason


# --------------------------------------------------------------------------
# merge: ports, networks, deploy, healthcheck
# --------------------------------------------------------------------------


def test_ports_same_published_port_is_replaced():
    # docker/cli's TestLoadMultipleConfigs: keyed by published port, sorted
    ports = merged_web({"ports": ["9090:90", "8080:80"]},
                       {"ports": [{"target": 81, "published": 8080}]})["ports"]
    assert ports == [{"target": 81, "published": 8080}, "9090:90"]


def test_ports_different_published_ports_are_kept_sorted():
    assert merged_web({"ports": ["8081:80"]}, {"ports": ["8080:80"]})["ports"] == \
        ["8080:80", "8081:80"]


def test_ports_tcp_and_udp_collapse_even_without_override():
    # docker/cli#6223: the key is the published port alone, and the merge runs as soon
    # as the earlier file has ports
    ports = merged_web({"ports": ["443:443", "443:443/udp", "80:80"]},
                       {"environment": {"A": "1"}})["ports"]
    assert ports == ["80:80", "443:443/udp"]


def test_ports_unpublished_share_key_zero():
    assert merged_web({"ports": [80, "81"]}, {})["ports"] == ["81"]


def test_ports_ranges_expand_when_merged():
    ports = merged_web({"ports": ["8001-8002:81-82/udp", "7000:70"]}, {})["ports"]
    assert ports == ["7000:70", "8001:81/udp", "8002:82/udp"]


def test_ports_only_in_later_file_are_taken_as_they_are():
    assert merged_web({}, {"ports": ["9090:90", "8080:80"]})["ports"] == ["9090:90", "8080:80"]


def test_ports_not_merged_without_the_service_in_the_later_file():
    out = merge([("a", web(ports=["9090:90", "443:443", "443:443/udp"])),
                 ("b", {"services": {"other": {}}})])
    assert out["services"]["web"]["ports"] == ["9090:90", "443:443", "443:443/udp"]


def test_service_networks_list_union():
    assert merged_web({"networks": ["net1", "net2"]},
                      {"networks": ["net1", "net3"]})["networks"] == ["net1", "net2", "net3"]


def test_service_networks_aliases_replaced():
    # docker/cli's TestLoadMultipleServiceNetworks, override_with_aliases
    out = merged_web(
        {"networks": {"net1": {"aliases": ["alias1"], "ipv4_address": "10.0.0.5"},
                      "net2": None, "net4": {"aliases": ["x"]}}},
        {"networks": {"net1": {"aliases": ["alias2", "alias3"]}, "net3": {},
                      "net4": None}})["networks"]
    assert out == {"net1": {"aliases": ["alias2", "alias3"], "ipv4_address": "10.0.0.5"},
                   "net2": None, "net3": {}, "net4": {"aliases": ["x"]}}


def test_service_networks_mixed_forms():
    out = merged_web({"networks": ["a", "b"]},
                     {"networks": {"b": {"aliases": ["bb"]}, "c": None}})["networks"]
    assert out == {"a": None, "b": {"aliases": ["bb"]}, "c": None}
    out = merged_web({"networks": {"a": {"aliases": ["x"], "ipv4_address": "10.0.0.5"}}},
                     {"networks": {"a": {"ipv4_address": "10.0.0.6"}}})["networks"]
    assert out == {"a": {"ipv4_address": "10.0.0.6"}}  # aliases go with the later file's


def test_top_level_sections_replaced_by_name():
    # docker/cli's TestLoadMultipleNetworks (issue #972)
    a = {"services": {"web": {}},
         "networks": {"hostnet": {"driver": "overlay",
                                  "ipam": {"config": [{"subnet": "10.0.0.0/20"}]}},
                      "keep": {"driver": "overlay"}},
         "volumes": {"v": {"driver": "local"}}}
    b = {"networks": {"hostnet": {"external": {"name": "host"}}, "new": None},
         "volumes": {"v": None}}
    out = merge([("a", a), ("b", b)])
    assert out["networks"] == {"hostnet": {"external": {"name": "host"}},
                               "keep": {"driver": "overlay"}, "new": None}
    assert out["volumes"] == {"v": None}


def test_deploy_merge():
    out = merged_web(
        {"deploy": {"mode": "replicated", "replicas": 3, "endpoint_mode": "vip",
                    "labels": ["a=1", "b=2"],
                    "placement": {"constraints": ["node.hostname != node1"],
                                  "max_replicas_per_node": 2},
                    "restart_policy": {"condition": "on-failure", "max_attempts": 5},
                    "update_config": {"parallelism": 2, "delay": "10s"}}},
        {"deploy": {"replicas": 0, "endpoint_mode": "", "labels": {"b": "3"},
                    "placement": {"constraints": ["node.hostname != node2"],
                                  "max_replicas_per_node": 0},
                    "restart_policy": {"max_attempts": 0},
                    "update_config": {"parallelism": 0, "delay": "0s"}}})["deploy"]
    assert out == {
        "mode": "replicated", "replicas": 0, "endpoint_mode": "vip",
        "labels": {"a": "1", "b": "3"},
        "placement": {"constraints": ["node.hostname != node1", "node.hostname != node2"],
                      "max_replicas_per_node": 2},
        "restart_policy": {"condition": "on-failure", "max_attempts": 0},
        "update_config": {"parallelism": 0, "delay": "10s"}}


def test_deploy_missing_in_later_file_keeps_replicas():
    assert merged_web({"deploy": {"replicas": 3}}, {"deploy": {}})["deploy"] == {"replicas": 3}
    assert merged_web({"deploy": {"replicas": 3}}, {"image": "x"})["deploy"] == {"replicas": 3}
    assert merged_web({}, {"deploy": {"mode": "global"}})["deploy"] == {"mode": "global"}


def test_healthcheck_merge():
    out = merged_web(
        {"healthcheck": {"interval": "10s", "timeout": "5s", "retries": 3, "disable": True,
                         "start_period": "1s"}},
        {"healthcheck": {"interval": "20s", "timeout": "0s", "retries": 0, "disable": False,
                         "start_interval": "2s"}})["healthcheck"]
    assert out == {"interval": "20s", "timeout": "5s", "retries": 0, "disable": True,
                   "start_period": "1s", "start_interval": "2s"}


def test_healthcheck_test_is_appended():
    # docker quirk: HealthCheckTest is a plain slice to mergo's append mode
    out = merged_web({"healthcheck": {"test": ["CMD", "curl", "-f", "http://x/"]}},
                     {"healthcheck": {"test": "wget -q x"}})["healthcheck"]
    assert out == {"test": ["CMD", "curl", "-f", "http://x/", "CMD-SHELL", "wget -q x"]}
    assert merged_web({"healthcheck": {"test": "a"}}, {"healthcheck": {"retries": 2}}) == \
        {"healthcheck": {"test": "a", "retries": 2}}
    assert merged_web({}, {"healthcheck": {"test": "b"}}) == {"healthcheck": {"test": "b"}}


# --------------------------------------------------------------------------
# merge: the other service fields
# --------------------------------------------------------------------------


def test_scalars_command_lists_and_mappings():
    out = merged_web(
        {"image": "a", "hostname": "h", "read_only": True, "command": "sh -c x",
         "entrypoint": ["e"], "cap_add": ["NET_ADMIN"], "dns": "1.1.1.1",
         "environment": ["A=1", "B=2", "C", "D="], "labels": {"l": "1", "m": "2"},
         "stop_grace_period": "10s"},
        {"image": "b", "hostname": "", "read_only": False, "command": ["y"], "entrypoint": "",
         "cap_add": ["SYS_ADMIN"], "dns": ["8.8.8.8"],
         "environment": {"A": "", "B": "3", "C": "c", "D": None, "E": None},
         "labels": ["m=", "n"], "stop_grace_period": "0s"})
    assert out == {
        "image": "b", "hostname": "h", "read_only": True, "command": ["y"],
        "entrypoint": ["e"], "cap_add": ["NET_ADMIN", "SYS_ADMIN"],
        "dns": ["1.1.1.1", "8.8.8.8"],
        "environment": {"A": "1", "B": "3", "C": "c", "D": None, "E": None},
        "labels": {"l": "1", "m": "", "n": ""}, "stop_grace_period": "10s"}


def test_keyed_lists_volumes_secrets_configs():
    out = merged_web(
        {"volumes": ["data:/var/app", {"type": "volume", "source": "s", "target": "/b"}],
         "secrets": ["foo", {"source": "bar", "target": "waw"}], "configs": ["c2", "c1"]},
        {"volumes": [{"type": "volume", "source": "/local", "target": "/var/app"}],
         "secrets": [{"source": "bar", "target": "bof"}, {"source": "baz", "target": "waw"}],
         "configs": ["c0"]})
    assert out["volumes"] == [{"type": "volume", "source": "s", "target": "/b"},
                              {"type": "volume", "source": "/local", "target": "/var/app"}]
    assert out["secrets"] == [{"source": "bar", "target": "bof"},
                              {"source": "baz", "target": "waw"}, "foo"]
    assert out["configs"] == ["c0", "c1", "c2"]


def test_ulimits_and_logging():
    out = merged_web(
        {"ulimits": {"nofile": {"soft": 1, "hard": 2}, "nproc": 3},
         "logging": {"driver": "json-file", "options": {"a": "1", "b": "2"}}},
        {"ulimits": {"nofile": 5, "core": 0},
         "logging": {"options": {"b": "3"}}})
    assert out["ulimits"] == {"nofile": 5, "nproc": 3, "core": 0}
    assert out["logging"] == {"driver": "json-file", "options": {"a": "1", "b": "3"}}
    assert merged_web({"logging": {"driver": "json-file", "options": {"a": "1"}}},
                      {"logging": {"driver": "syslog"}})["logging"] == {"driver": "syslog"}


def test_three_files_later_wins():
    docs = [
        ("a.yml", {"version": "3.8", "services": {
            "web": {"image": "a", "deploy": {"replicas": 1, "mode": "replicated"},
                    "ports": ["8080:80"]},
            "db": {"image": "db"}}}),
        ("b.yml", {"version": "3.8", "services": {
            "web": {"image": "b", "deploy": {"replicas": 2}, "ports": ["8080:81"]},
            "cache": {"image": "c"}}}),
        ("c.yml", {"version": 3.8, "services": {
            "web": {"deploy": {"replicas": 3}, "ports": [{"target": 82, "published": 8080}]},
            "db": {"image": "db2"}}}),
    ]
    before = copy.deepcopy(docs)
    out = merge(docs)
    assert out == {"version": 3.8, "services": {
        "web": {"image": "b", "deploy": {"replicas": 3, "mode": "replicated"},
                "ports": [{"target": 82, "published": 8080}]},
        "db": {"image": "db2"}, "cache": {"image": "c"}}}
    assert docs == before
    out["services"]["db"]["image"] = "changed"
    assert docs == before


def test_single_document_is_copied_unchanged():
    doc = web(ports=["443:443", "443:443/udp"], deploy={"replicas": 2})
    out = merge([("a", doc)])
    assert out == doc and out is not doc and out["services"] is not doc["services"]


def test_version_must_match():
    assert merge([("a", {"version": "3"}), ("b", {})]) == {"version": "3"}
    assert merge([("a", {"version": "3.13"}), ("b", {"version": "3"})]) == {"version": "3"}
    exc = error_of(merge, [("a.yml", {"version": "3.8"}), ("b.yml", {"services": {}})])
    assert exc.field == "version"
    assert "3.8 in a.yml and 3.13 in b.yml" in exc.reason


def test_extension_keys_first_file_kept():
    out = merge([("a", {"x-a": 1, "services": {"web": {}}}), ("b", {"x-a": 2, "x-b": 3})])
    assert out == {"x-a": 1, "services": {"web": {}}, "x-b": 3}


@pytest.mark.parametrize("doc, field, reason", [
    ({"services": ["web"]}, "services", "must be a mapping, got a list (in b.yml)"),
    ({"networks": "n"}, "networks", "must be a mapping, got str 'n' (in b.yml)"),
    ({"services": {"web": ["x"]}}, "services.web", "must be a mapping, got a list (in b.yml)"),
    (["x"], "stack", "top level must be a mapping, got a list (in b.yml)"),
])
def test_merge_shape_errors(doc, field, reason):
    exc = error_of(merge, [("a.yml", web(image="x")), ("b.yml", doc)])
    assert (exc.field, exc.reason) == (field, reason)


def test_merge_needs_a_document():
    assert error_of(merge, []).field == "stack"


# --------------------------------------------------------------------------
# prepare, and what stack.py makes of the result
# --------------------------------------------------------------------------

BASE = {
    "version": "3.8",
    "services": {
        "web": {"image": "nginx:${TAG:-latest}",
                "deploy": {"replicas": "${REPLICAS:-2}",
                           "placement": {"max_replicas_per_node": "${PER_NODE:-1}"}},
                "ports": [{"target": 80, "published": "${WEB_PORT}"}],
                "networks": ["front"]},
        "api": {"image": "api", "networks": ["front", "back"]},
    },
    "networks": {"front": {"driver": "overlay"}, "back": {"driver": "overlay"}},
}
OVERRIDE = {
    "version": "3.8",
    "services": {
        "web": {"deploy": {"replicas": "${REPLICAS}"}, "ports": ["9090:90"],
                "healthcheck": {"test": ["CMD", "true"], "interval": "${HC:-5s}",
                                "retries": "${RETRIES}"}},
        "api": {"deploy": {"mode": "global", "endpoint_mode": "dnsrr"},
                "networks": {"back": {"aliases": ["backend"]}}, "hostname": "$UNSET"},
    },
    "networks": {"back": {"driver": "overlay",
                          "ipam": {"config": [{"subnet": "10.20.0.0/24"}]}}},
}


def test_prepare_two_files():
    env = {"REPLICAS": "3", "WEB_PORT": "8080", "RETRIES": "4"}
    out, warnings = prepare([("base.yml", BASE), ("prod.yml", OVERRIDE)], env)
    web_, api = out["services"]["web"], out["services"]["api"]
    assert web_["deploy"] == {"replicas": 3, "placement": {"max_replicas_per_node": 1}}
    assert web_["ports"] == [{"target": 80, "published": 8080}, "9090:90"]
    assert web_["healthcheck"] == {"test": ["CMD", "true"], "interval": "5s", "retries": 4}
    assert api["networks"] == {"front": None, "back": {"aliases": ["backend"]}}
    assert warnings == ['services.api.hostname: The "UNSET" variable is not set. '
                        "Defaulting to a blank string. (in prod.yml)"]


def test_prepare_errors_name_the_file_only_when_there_are_several():
    exc = error_of(prepare, [("base.yml", BASE), ("prod.yml", OVERRIDE)], {"WEB_PORT": "1"})
    assert exc.field == "services.web.deploy.replicas"
    assert exc.reason == "must be an integer after interpolation, got '' (in prod.yml)"
    exc = error_of(prepare, [("base.yml", web(image="${X?need X}"))], {})
    assert exc.reason == ('invalid interpolation format: "required variable X is missing a '
                          'value: need X"; you may need to escape any $ with another $')


def test_prepare_warns_once_across_files():
    _, warnings = prepare([("a", web(image="$U")), ("b", web(hostname="$U"))], {})
    assert len(warnings) == 1


def test_merged_stack_parses():
    from swarmmesh.model.stack import parse

    env = {"REPLICAS": "3", "WEB_PORT": "8080", "RETRIES": "4"}
    merged, _ = prepare([("base.yml", BASE), ("prod.yml", OVERRIDE)], env)
    parsed = parse(merged)
    services = {s.name: s for s in parsed.services}
    assert services["web"].replicas == 3
    assert services["web"].max_replicas_per_node == 1
    assert sorted((p.published, p.target) for p in services["web"].ports) == \
        [(8080, 80), (9090, 90)]
    assert services["web"].healthcheck.retries == 4
    assert services["api"].mode == "global"
    assert services["api"].endpoint_mode == "dnsrr"
    assert services["api"].networks == ["front", "back"]
    assert str(parsed.networks["back"].subnet) == "10.20.0.0/24"
