"""The Mininet CI container and its workflow, checked without a Docker engine.

No Docker engine runs on the machines this is developed on, so the image is never
built here.  What these tests do check: the Dockerfile installs exactly the declared
core and clients packages (its own awk program, run for real on the list), makes the
venv as set-up does and runs the README's test command; the build context leaves the
local venv and results out; the workflow builds the image and runs both tiers in it
with the privileges Mininet needs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from swarmmesh.machine import deps

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _declared_setup_packages() -> list[str]:
    return [p.name for p in deps.packages() if p.group in deps.SETUP_GROUPS]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_image_is_debian_12():
    assert _instructions()[0] == ("FROM", "debian:12")


def test_the_image_installs_exactly_the_declared_list():
    runs = [args for word, args in _instructions() if word == "RUN" and "apt-get install" in args]
    assert len(runs) == 1
    copied = [args for word, args in _instructions() if word == "COPY"]
    assert "swarmmesh/machine/debian-packages.txt /tmp/debian-packages.txt" in copied
    program = re.search(r"\$\(awk '([^']*)' /tmp/debian-packages.txt\)", runs[0]).group(1)
    listed = subprocess.run(["awk", program, str(deps.LIST)], capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed == _declared_setup_packages()


def test_setup_installs_the_same_list():
    dry = subprocess.run(["make", "--no-print-directory", "-n", "apt"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    loop = re.search(r"for p in (.*?); do", dry).group(1).split()
    assert loop == _declared_setup_packages()


def test_the_image_makes_the_venv_and_runs_the_readme_test_command():
    steps = _instructions()
    assert ("RUN", "make venv") in steps
    assert steps[-1] == ("CMD", '["make", "test"]')
    assert "sudo make test" in (REPO / "README.md").read_text()


def test_the_build_context_leaves_local_state_out():
    ignored = (REPO / ".dockerignore").read_text().split()
    for local in (".venv", "results/*", "build"):
        assert local in ignored


def test_the_workflow_builds_the_image_and_runs_both_tiers_privileged():
    wf = yaml.safe_load((REPO / ".github/workflows/test.yml").read_text())
    steps = [s.get("run", "") for job in wf["jobs"].values() for s in job["steps"]]
    assert any(s.startswith("docker build -t swarmmesh-test .") for s in steps)
    for tier in ("make unit", "make integration"):
        runs = [s for s in steps if s.startswith("docker run") and s.endswith(tier)]
        assert runs and "--privileged" in runs[0], tier
    assert any("modprobe" in s and "openvswitch" in s for s in steps)


def test_make_docker_test_runs_the_image_as_the_workflow_does():
    dry = subprocess.run(["make", "--no-print-directory", "-n", "docker-test"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert dry[0] == "docker build -t swarmmesh-test ."
    assert dry[1].startswith("docker run --rm --privileged") and dry[1].endswith("make test")
