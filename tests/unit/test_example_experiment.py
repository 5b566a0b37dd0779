"""docs/experiments.md's example is the real experiment ``example_split``, word for word; it
is one screen; its bad flags exit 2 naming the flag with nothing made; its plot draws from
a run folder's files alone.  (tests/integration/test_example_experiment.py runs it.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swarmmesh.runs import runfolder
from swarmmesh_experiments import example_split

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "experiments" / "example_split.py"


def test_the_docs_show_the_example_as_it_is():
    doc = (REPO / "docs" / "experiments.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert blocks and blocks[0] == EXAMPLE.read_text()


def test_the_example_is_one_screen():
    assert len(EXAMPLE.read_text().splitlines()) <= 65


@pytest.mark.parametrize("args, field", [(["--requests", "0"], "requests"),
                                         (["--nodes", "0"], "nodes"),
                                         (["--replicas", "-1"], "services.app.deploy.replicas")])
def test_bad_flags_name_the_flag_and_make_nothing(tmp_path, args, field):
    r = subprocess.run([sys.executable, str(EXAMPLE), *args, "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {field}"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_plot_reads_the_run_folder_alone(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({
        "experiment": "example_split", "parameters": {"nodes": 3}, "status": "ok",
        "datapath": "netdev", "seed": 1}))
    rows = [{"seq": i, "task": f"app.{i % 3 + 1}", "ok": True, "latency_ms": 1.5}
            for i in range(9)] + [{"seq": 9, "task": "", "ok": False, "latency_ms": ""}]
    runfolder.write_csv(tmp_path / "requests.csv", rows, example_split.COLUMNS)
    example_split.plot(tmp_path)
    assert (tmp_path / "split.png").stat().st_size > 5_000
    assert "Jain's index: 1 (1 = even)." in (tmp_path / "report.md").read_text()
