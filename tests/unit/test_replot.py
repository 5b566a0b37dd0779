"""`replot` on a copy of a run folder: every figure and report.md are
redrawn from the raw CSV + summary.json alone, without root (the committed
fixtures in tests/fixtures/runs/ hold only those files)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "runs"
FIGURES = {"routing_mesh": ["requests_per_task", "latency_cdf"], "overlay_rtt": ["rtt"]}


def _as_nobody() -> list[str]:
    """Drop root for the command when we have it, to show replot needs none."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return []


@pytest.mark.parametrize("name", sorted(FIGURES))
@pytest.mark.parametrize("how", ["script", "cli"])
def test_replot_redraws_every_figure_and_the_report(name, how):
    # pytest's tmp_path is not reachable for an unprivileged user: use /tmp itself.
    with tempfile.TemporaryDirectory(prefix="swarmmesh-replot-") as tmp:
        _replot_copy(Path(tmp), name, how)


def _replot_copy(tmp_path: Path, name: str, how: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / name, run)
    for p in list(run.glob("*.png")) + list(run.glob("*.pdf")) + list(run.glob("report.md")):
        p.unlink()                                     # "with the plots deleted"
    raw = {p.name: p.read_bytes() for p in run.iterdir()}
    for p in (tmp_path, run):
        os.chmod(p, 0o777)
    for p in run.iterdir():
        os.chmod(p, 0o644)                             # readable; replot writes new files only
    cmd = ([sys.executable, "experiments/replot.py", str(run)] if how == "script"
           else [sys.executable, "-m", "swarmmesh.ui.cli", "replot", str(run)])
    env = dict(os.environ, MPLCONFIGDIR=str(tmp_path / "mpl"), HOME=str(tmp_path))
    r = subprocess.run(_as_nobody() + cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(run)
    for fig in FIGURES[name]:
        png, pdf = run / f"{fig}.png", run / f"{fig}.pdf"
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000, fig
        assert pdf.read_bytes().startswith(b"%PDF"), fig
        assert fig in r.stderr                         # named in "redrew ..."
    report = (run / "report.md").read_text()
    embedded = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(embedded) == sorted(f"{f}.png" for f in FIGURES[name])
    assert all((run / e).is_file() for e in embedded)
    assert "| datapath | netdev OVS" in report and "| git commit |" in report
    assert re.search(r"\| median \(ms\) \| p5–p95 \(ms\) \|", report)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name in raw} == raw  # data untouched


def test_replot_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    r = subprocess.run([sys.executable, "experiments/replot.py", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: run_dir: ") and "summary.json" in r.stderr


def test_replot_of_a_run_without_its_data_says_what_is_missing(tmp_path):
    shutil.copy(FIXTURES / "routing_mesh" / "summary.json", tmp_path)
    r = subprocess.run([sys.executable, "-m", "swarmmesh.ui.cli", "replot", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: run_dir: ") and "requests.csv is missing" in r.stderr
