"""docs/experiments.md's example, ``example_split``, run for real through ``swarmmesh
run`` on a small cluster (Mininet, per-node OVS, the controller, real connections), then
replotted from its folder alone."""

from __future__ import annotations

import json
import shutil
import subprocess

from .conftest import PY, REPO


def test_the_example_experiment_runs_measures_an_even_split_and_replots(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([PY, "-m", "swarmmesh.ui.cli", "run", "example_split", "--nodes", "2",
                        "--replicas", "3", "--requests", "30", "--quiet", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = out / r.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["parameters"]["requests"] == 30
    # node1's kernel picks round robin over the three tasks: 10 new connections each
    assert summary["per_task"] == {"app.1": 10, "app.2": 10, "app.3": 10}
    assert summary["jain"] == 1.0
    rows = (run_dir / "requests.csv").read_text().splitlines()
    assert rows[0] == "seq,task,ok,latency_ms" and len(rows) == 31
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for f in ("split.png", "split.pdf", "report.md"):
        (copy / f).unlink()
    r = subprocess.run([PY, "-m", "swarmmesh.ui.cli", "replot", str(copy)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Jain's index: 1 (1 = even)." in (copy / "report.md").read_text()
    assert (copy / "split.png").stat().st_size > 10_000
