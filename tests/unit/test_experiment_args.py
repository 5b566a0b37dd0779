"""Bad input to the experiments fails at once, naming the field, before
anything is built (no root needed: nothing is built), whether they are run as
scripts or through the command-line tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_experiment(how: str, name: str, args: list[str]) -> subprocess.CompletedProcess:
    cmd = ([sys.executable, f"experiments/{name}.py"] if how == "script"
           else [sys.executable, "-m", "swarmmesh.ui.cli", "run", name])
    return subprocess.run(cmd + args, cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, field", [
    (["--replicas", "-1"], "services.app.deploy.replicas"),
    (["--nodes", "0"], "nodes"),
    (["--requests", "0"], "requests"),
    (["--timeout", "0"], "timeout"),
    (["--stack", "/nonexistent/stack.yml"], "stack"),
    (["--service", "nope"], "services.nope"),
    (["--seed", "-3"], "seed"),
])
@pytest.mark.parametrize("how", ["script", "cli"])
def test_routing_mesh_rejects_bad_input(tmp_path, args, field, how):
    r = run_experiment(how, "routing_mesh", [*args, "--out", str(tmp_path)])
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
    (["--interval", "0"], "interval"),
])
@pytest.mark.parametrize("how", ["script", "cli"])
def test_overlay_rtt_rejects_bad_input(tmp_path, args, field, how):
    r = run_experiment(how, "overlay_rtt", [*args, "--out", str(tmp_path)])
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {field}"), r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["script", "cli"])
def test_a_flag_of_the_wrong_type_is_named_by_argparse(tmp_path, how):
    r = run_experiment(how, "routing_mesh", ["--requests", "lots", "--out", str(tmp_path)])
    assert r.returncode == 2
    assert "argument --requests: invalid int value: 'lots'" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_run_of_an_unknown_experiment_names_the_known_ones():
    r = subprocess.run([sys.executable, "-m", "swarmmesh.ui.cli", "run", "nope"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: experiment: no such experiment: nope (known: ")
    assert "routing_mesh" in r.stderr


def test_cli_list_names_every_experiment_with_its_description():
    r = subprocess.run([sys.executable, "-m", "swarmmesh.ui.cli", "list"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = dict((line.split(None, 1) + [""])[:2] for line in r.stdout.splitlines())
    experiments = sorted(p.stem for p in (REPO / "experiments").glob("*.py")
                         if p.stem not in ("__init__", "replot"))
    assert sorted(listed) == experiments
    assert listed["routing_mesh"].startswith("every node answers on the published port")


def test_run_help_shows_the_experiment_and_the_common_flags():
    r = subprocess.run([sys.executable, "-m", "swarmmesh.ui.cli", "run", "routing_mesh", "--help"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: swarmmesh run routing_mesh")
    for flag in ("--nodes", "--requests", "--out", "--datapath", "--seed", "--quiet"):
        assert flag in r.stdout
