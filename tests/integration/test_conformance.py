"""`swarmmesh run conformance` end to end: real Mininet for the emulated engine, and real
dockerd nodes where the machine can run them (the guest of `make vm-test`); where it cannot,
the Swarm column says why and nothing is compared."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from swarmmesh.runs import conformance as conf

from .conftest import REPO
from .test_cli import swarmmesh


def _run(tmp_path: Path, *flags: str, timeout: float) -> tuple[Path, dict]:
    r = subprocess.run(swarmmesh() + ["run", "conformance", "--quiet", "--out", str(tmp_path),
                                      *flags], cwd=REPO, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr[-4000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def _docker_missing() -> str | None:
    from swarmmesh_experiments.conformance import docker_missing
    return docker_missing()


def test_the_ci_subset_gives_every_row_with_both_columns_and_a_figure(tmp_path):
    run_dir, s = _run(tmp_path, "--behaviours", "ci", timeout=1500)
    table = s["conformance"]
    wanted = [b.name for b in conf.BEHAVIOURS if b.scenario in conf.CI_SCENARIOS]
    assert [r["behaviour"] for r in table] == wanted
    rows = {r["behaviour"]: r for r in table}
    # the emulated side measured, never skipped, and what it shows is Swarm's (measured)
    assert not any(r["emulated"].startswith("not run") for r in table), table
    assert rows["split per node"]["detail"]["emulated"] == [True, True]
    assert rows["source the task sees"]["detail"]["emulated"] == {
        "node1": ["10.0.0.2"], "node2": ["10.0.0.3"], "node3": ["10.0.0.4"]}
    assert rows["published → target"]["detail"]["emulated"] == [80]
    assert rows["node with no task answers"]["detail"]["emulated"] is True
    assert rows["UDP split per node"]["detail"]["emulated"] is True
    assert rows["ingress subnet and VIP"]["detail"]["emulated"] == [
        "10.0.0.0/24", ["10.0.0.2", "10.0.0.3", "10.0.0.4"], "10.0.0.5/32",
        ["10.0.0.6", "10.0.0.7"]]
    assert rows["ingress + dnsrr refused"]["detail"]["emulated"] == "refused"
    why = _docker_missing()
    if why:                                       # here: no ip_vs, so real Swarm is not run
        assert all(r["swarm"] == f"not run: {why}" and r["verdict"] == conf.NOT_COMPARED
                   for r in table), table
        assert s["engines"]["docker"] == {"version": None, "not_run": why}
    else:                                         # in the guest: both measured
        assert s["engines"]["docker"]["version"]
        assert not any(r["swarm"].startswith("not run") for r in table), table
        assert rows["split per node"]["verdict"] == conf.SAME
        assert rows["source the task sees"]["verdict"] == conf.SAME
        assert rows["ingress subnet and VIP"]["verdict"] == conf.SAME
    assert s["emulates_docker"] == "20.10.24"
    assert (run_dir / "conformance.png").stat().st_size > 20_000
    assert "| behaviour |" in (run_dir / "report.md").read_text()
