"""Bad input to the experiments fails at once, naming the field, before
anything is built (no root needed: nothing is built)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args, field", [
    (["--replicas", "-1"], "services.app.deploy.replicas"),
    (["--nodes", "0"], "nodes"),
    (["--requests", "0"], "requests"),
    (["--timeout", "0"], "timeout"),
    (["--stack", "/nonexistent/stack.yml"], "stack"),
    (["--service", "nope"], "services.nope"),
])
def test_routing_mesh_rejects_bad_input(tmp_path, args, field):
    r = subprocess.run([sys.executable, "experiments/routing_mesh.py", *args,
                        "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: {field}"), r.stderr
    assert list(tmp_path.iterdir()) == []            # no run folder: nothing was built


def test_dnsrr_with_ingress_port_gets_swarms_message(tmp_path):
    stack = tmp_path / "stack.yml"
    stack.write_text("services:\n  web:\n    ports: ['8000:80']\n"
                     "    deploy: {endpoint_mode: dnsrr}\n")
    r = subprocess.run([sys.executable, "experiments/routing_mesh.py", "--stack", str(stack),
                        "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "port published with ingress mode can't be used with dnsrr mode" in r.stderr
    assert "services.web.deploy.endpoint_mode" in r.stderr


@pytest.mark.parametrize("args, field", [
    (["--sizes", "3by2"], "sizes"),
    (["--sizes", "1x2"], "sizes"),
    (["--count", "1"], "count"),
])
def test_overhead_rejects_bad_input(tmp_path, args, field):
    r = subprocess.run([sys.executable, "experiments/overhead.py", *args, "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {field}"), r.stderr
    assert list(tmp_path.iterdir()) == []
