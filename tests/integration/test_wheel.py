"""The package works outside the checkout: a wheel, a fresh venv, another folder.

The wheel is built from this checkout and installed into a new venv made from Debian's
Python with its system site packages (for Debian's Mininet); its pinned requirements come
from the package registry as a user's ``pip install`` would take them.  Then, from an
empty temporary folder: the experiments are listed (found as plug-ins), a stack file is
checked, the declared packages are read by the doctor, and none of the entry-point
folders' generic names (``experiments``, ``topologies``, ``controllers``) is importable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

SYSTEM_PYTHON = "/usr/bin/python3"


def run(argv: list, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"                  # a copy: the build leaves build/ behind
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "results", "*.egg-info", "__pycache__", ".pytest_cache"))
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-q", "-w", base / "dist", source], base, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    return next((base / "dist").glob("swarmmesh-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel) -> tuple[Path, Path]:
    """(venv, an empty folder to work from)."""
    base = wheel.parent.parent
    venv = base / "venv"
    made = run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", venv], base)
    assert made.returncode == 0, made.stderr
    pip = run([venv / "bin/python", "-m", "pip", "install", "-q",
               "--disable-pip-version-check", wheel], base, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return venv, elsewhere


def test_the_wheel_holds_the_package_and_the_experiments_only(installed):
    venv, elsewhere = installed
    code = ("import swarmmesh, swarmmesh_experiments.routing_mesh as r, json; "
            "print(json.dumps([swarmmesh.__file__, r.__file__]))")
    r = run([venv / "bin/python", "-c", code], elsewhere)
    assert r.returncode == 0, r.stderr
    for path in json.loads(r.stdout):
        assert str(venv) in path and str(REPO) not in path, path
    for generic in ("experiments", "topologies", "controllers"):
        r = run([venv / "bin/python", "-c", f"import {generic}"], elsewhere)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, generic


def test_the_wheel_holds_no_test_double(wheel):
    """The fake switch and any other double live under tests/, as FAUCET keeps its
    fakeoftable outside its package."""
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("swarmmesh/dataplane/rules.py") for n in names)
    doubles = [n for n in names if n.startswith(("tests/", "swarmmesh/testing/"))
               or "fake" in n.rsplit("/", 1)[-1]]
    assert not doubles, doubles


def test_swarmmesh_list_from_another_folder(installed):
    venv, elsewhere = installed
    r = run([venv / "bin/swarmmesh", "list"], elsewhere)
    assert r.returncode == 0, r.stderr
    listed = {line.split()[0] for line in r.stdout.splitlines()}
    assert {"routing_mesh", "mesh_overhead", "failover", "internal_lb"} <= listed
    assert "cannot be loaded" not in r.stdout


def test_swarmmesh_stack_check_from_another_folder(installed):
    venv, elsewhere = installed
    (elsewhere / "good.yml").write_text(
        "services:\n  web:\n    image: nginx\n    deploy: {replicas: 3}\n"
        "    ports: ['8080:80']\n")
    r = run([venv / "bin/swarmmesh", "stack", "check", "good.yml"], elsewhere)
    assert r.returncode == 0, r.stderr
    assert "stack: good.yml" in r.stdout and "web" in r.stdout
    assert r.stdout.rstrip().endswith("ok: 1 service(s), 3 task(s) placed, 0 pending, "
                                      "on 3 node(s)")
    (elsewhere / "bad.yml").write_text("services:\n  web:\n    deploy: {replicas: many}\n")
    r = run([venv / "bin/swarmmesh", "stack", "check", "bad.yml"], elsewhere)
    assert r.returncode == 2
    assert r.stderr.startswith("error: services.web.deploy.replicas")


def test_the_doctor_reads_the_declared_packages_from_the_wheel(installed):
    venv, elsewhere = installed
    r = run([venv / "bin/swarmmesh", "doctor", "--json"], elsewhere)
    items = {i["what"].split(" (")[0]: i for i in json.loads(r.stdout)}
    assert items["package: mininet"]["status"] == "ok"
    assert items["python: os-ken"]["status"] == "ok"


def test_an_experiment_runs_its_flags_check_from_another_folder(installed):
    venv, elsewhere = installed
    r = run([venv / "bin/swarmmesh", "run", "routing_mesh", "--nodes", "0"], elsewhere)
    assert r.returncode == 2 and "nodes" in r.stderr
    assert not (elsewhere / "results").exists()          # nothing made on bad input
