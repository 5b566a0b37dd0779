"""The "Write your own experiment" example of docs/experiments.md, exactly as
written, run for real on a tiny cluster (as a script and through `swarmmesh run
PATH`), then replotted from its folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from .conftest import PY, REPO


def readme_example() -> str:
    text = (REPO / "docs" / "experiments.md").read_text()
    section = text.split("\n## Write your own experiment", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "no python block in docs/experiments.md's section"
    return blocks[0]


def test_example_is_ten_to_twenty_lines_of_code():
    code = [line for line in readme_example().splitlines()
            if line.strip() and not line.strip().startswith("#")]
    assert 10 <= len(code) <= 20, len(code)


@pytest.fixture
def hello(tmp_path):
    path = tmp_path / "experiments" / "hello.py"
    path.parent.mkdir()
    path.write_text(readme_example())
    return path


def _check_run(r, out):
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = out / r.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    assert run_dir.is_dir() and run_dir.name.endswith("-hello")
    rows = (run_dir / "requests.csv").read_text().splitlines()
    assert rows[0] == "node,ok,total_ms,error"
    assert len(rows) == 1 + 2 * 10                     # 2 nodes x 10 requests
    assert all(",True," in row for row in rows[1:])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["experiment"] == "hello" and summary["status"] == "ok"
    assert summary["parameters"]["nodes"] == 2
    assert summary["datapath"] in ("system", "netdev")
    report = (run_dir / "report.md").read_text()
    assert "![CDF per node](latency.png)" in report
    assert (run_dir / "latency.png").stat().st_size > 10_000
    assert (run_dir / "latency.pdf").exists()
    assert re.search(r"\| node1 \| 10 \| [\d.]+ \|", report)
    return run_dir


def test_example_runs_as_a_script_and_replots(hello, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([PY, str(hello), "--nodes", "2", "--quiet", "--out", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    run_dir = _check_run(r, out)
    for f in ("latency.png", "latency.pdf", "report.md"):
        (run_dir / f).unlink()
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    r = subprocess.run([PY, "-m", "swarmmesh.ui.cli", "replot", str(copy)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (copy / "latency.png").exists() and (copy / "report.md").exists()


def test_example_runs_through_the_cli_and_rejects_bad_input(hello, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([PY, "-m", "swarmmesh.ui.cli", "run", str(hello), "--nodes", "0",
                        "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: nodes: "), r.stderr
    assert not out.exists()
    r = subprocess.run([PY, "-m", "swarmmesh.ui.cli", "run", str(hello), "--nodes", "2", "--quiet",
                        "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    _check_run(r, out)
