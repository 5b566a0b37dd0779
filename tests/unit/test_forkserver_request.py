"""The fork server's request, parsed before anything forks (no root, no namespace)."""

from __future__ import annotations

import json

import pytest

from swarmmesh.agents.forkserver import parse_request
from swarmmesh.testbed.forks import _alive


def test_a_request_gives_the_namespace_pid_the_arguments_and_the_program():
    assert parse_request(json.dumps({"pid": 42, "argv": ["--task", "a.1"]}).encode()) == \
        (42, ["--task", "a.1"], "taskserver")
    req = {"pid": 7, "argv": ["--node", "node1", "--state-dir", "/x"], "program": "dns"}
    assert parse_request(json.dumps(req).encode()) == (7, req["argv"], "dns")


@pytest.mark.parametrize("req, field", [
    ({"argv": []}, "pid"), ({"pid": 0, "argv": []}, "pid"), ({"pid": "1", "argv": []}, "pid"),
    ({"pid": 1}, "argv"), ({"pid": 1, "argv": "--task a.1"}, "argv"),
    ({"pid": 1, "argv": ["--port", 80]}, "argv"),
    ({"pid": 1, "argv": [], "program": "sh"}, "program")])
def test_a_bad_request_names_the_field(req, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        parse_request(json.dumps(req).encode())


def test_a_process_is_alive_until_it_is_gone(tmp_path):
    import os
    assert _alive(os.getpid())
    assert not _alive(2 ** 22 + 12345)              # above pid_max's default: never a PID
