"""``swarmmesh stack check`` as a user runs it (a process, no root, nothing built): the
stack files of tests/stackfiles/ load and print what would be deployed; every file of
tests/stackfiles/bad/ exits 2 with one line that names the field (each file says in
its first lines which field and which words)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "tests" / "stackfiles"
BAD = sorted((FILES / "bad").glob("*.yml"))


def check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swarmmesh.ui.cli", "stack", "check", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def expected(path: Path) -> tuple[str, str]:
    head = dict(re.findall(r"^# (field|says): (.*)$", path.read_text(), re.M))
    return head["field"], head["says"]


def test_the_shop_stack_as_a_user_checks_it():
    r = check(str(FILES / "shop.yml"), str(FILES / "shop.override.yml"),
              "--env-file", str(FILES / "shop.env"), "--nodes-file", str(FILES / "nodes.yml"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "node3: web.1, api.1" in out and "node2: proxy.2, web.2, web.4" in out
    assert "db.1: no suitable node (scheduling constraints not satisfied on 4 nodes)" in out
    assert "8080:80/tcp host" in out and "8000:80/tcp ingress" in out
    assert "host IP 127.0.0.1" in out
    assert out.rstrip().endswith("ok: 4 service(s), 8 task(s) placed, 1 pending, on 4 node(s)")


def test_the_environment_wins_over_the_env_file_and_flags_over_the_nodes_file():
    r = check(str(FILES / "shop.yml"), "--env-file", str(FILES / "shop.env"),
              "--nodes-file", str(FILES / "nodes.yml"), "--managers", "1",
              "--node-label", "node1:disk=ssd", "--json", env={"WEB_REPLICAS": "1"})
    assert r.returncode == 0, r.stderr
    model = json.loads(r.stdout)
    assert [n["role"] for n in model["nodes"]] == ["manager", "worker", "worker", "worker"]
    assert model["services"]["web"]["replicas"] == 1
    assert [t["node"] for t in model["tasks"] if t["service"] == "db"] == ["node1"]
    r = check(str(FILES / "shop.yml"), "--nodes-file", str(FILES / "nodes.yml"), "--nodes", "3",
              env={"TAG": "1"})
    assert r.returncode == 2 and "nodes_file.nodes.node4: node4 does not exist" in r.stderr


def test_a_missing_required_variable_is_dockers_error_without_the_env_file():
    r = check(str(FILES / "shop.yml"), env={"TAG": ""})
    assert r.returncode == 0, r.stderr            # set but empty satisfies ${TAG?...}
    r = check(str(FILES / "shop.yml"))
    assert r.returncode == 2
    assert "services.web.image" in r.stderr and "required variable TAG" in r.stderr


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_every_bad_file_exits_2_naming_the_field(path):
    field, says = expected(path)
    if path.name.startswith("nodes-"):
        r = check(str(FILES / "shop.yml"), "--env-file", str(FILES / "shop.env"),
                  "--nodes-file", str(path))
    else:
        r = check(str(path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), r.stderr
    assert says in lines[0], r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("flags, field", [
    (["--node-label", "node2"], "node_label[0]"),
    (["--node-label", "node5:a=b"], "node_label[0]"),
    (["--managers", "4"], "managers"),
    (["--nodes", "0"], "nodes"),
    (["--env-file", "/nonexistent.env"], "env_file"),
])
def test_bad_flags_exit_2_naming_the_flag(flags, field):
    r = check(str(FILES / "shop.yml"), *flags, env={"TAG": "1"})
    assert r.returncode == 2 and r.stderr.startswith(f"error: {field}: "), r.stderr
