"""report.md helpers and the figure helpers' promises (no root)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from swarmmesh.runs import plots, report

SUMMARY = {"experiment": "toy", "description": "a toy", "command": "toy.py --n 3",
           "parameters": {"n": 3, "out": "x|y"}, "seed": 9, "datapath": "netdev",
           "datapath_requested": "auto", "git_commit": "abc1234",
           "host": {"hostname": "h", "cpus": 2, "kernel": "6.1"}, "started": "2026-01-01T00:00:00",
           "finished": "2026-01-01T00:01:00", "status": "ok", "versions": {"python": "3.11.2"}}


@pytest.mark.parametrize("xs", [[1.0], [3.0, 1.0], list(range(1, 101)), [0.5, 0.7, 9.0, 1.1, 0.9]])
def test_spread_matches_numpy(xs):
    s = report.spread(xs)
    assert s["n"] == len(xs)
    for key, p in (("median", 50), ("p5", 5), ("p25", 25), ("p75", 75), ("p95", 95)):
        assert s[key] == pytest.approx(np.percentile(xs, p)), key
    assert (s["min"], s["max"]) == (min(xs), max(xs))
    assert s["mean"] == pytest.approx(np.mean(xs))


def test_spread_skips_blanks_and_handles_nothing():
    assert report.spread(["1.5", "", None, 2.5])["median"] == 2.0
    assert report.spread([]) == {"n": 0, "median": None, "p5": None, "p25": None, "p75": None,
                                 "p95": None, "min": None, "max": None, "mean": None}


def test_report_header_numbers_and_figure(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    fig = plots.cdf({"a": [1, 2, 3], "b": [2, 3, 4]}, "latency (ms)", "what ran", tmp_path / "lat",
                    unit="ms")
    assert [p.name for p in fig] == ["lat.png", "lat.pdf"]
    rep = report.Report(tmp_path, "Toy: 3 things")
    rep.numbers({"a": [1, 2, 3], "b": []}, unit="ms", what="latency")
    rep.figure(fig, "CDF of latency")
    text = rep.write().read_text()
    assert text.startswith("# Toy: 3 things\n")
    assert "| datapath | netdev OVS (requested: auto) |" in text
    assert "| git commit | abc1234 |" in text
    assert "| seed | 9 |" in text
    assert "| out | x\\|y |" in text                      # pipes escaped in tables
    assert "| a | 3 | 2 | 1.1–2.9 | 1.5–2.5 | 1–3 |" in text
    assert "| b | 0 | – | – | – | – |" in text
    assert "![CDF of latency](lat.png)" in text and "(lat.pdf)" in text


def test_report_refuses_a_missing_figure(tmp_path):
    rep = report.Report(tmp_path, "t", SUMMARY)
    with pytest.raises(FileNotFoundError):
        rep.figure(tmp_path / "nothing.png", "gone")


def test_colour_for_is_stable_across_processes_and_by_number():
    assert plots.colour_for("app.3") == plots.colour_for("node3") == plots.colour(2)
    assert plots.colour_for("app.1") != plots.colour_for("app.2")
    code = "from swarmmesh.runs import plots; print(plots.colour_for('direct'), plots.colour_for('nft'))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin"}).stdout
            for seed in ("1", "2")}
    assert len(runs) == 1 and runs != {""}                # not Python's salted hash


def test_colours_for_a_figure_are_distinct_and_repeatable():
    names = ["underlay", "overlay", "mesh", "direct", "via node with task", "nftables DNAT"]
    colours = plots.colours_for(names)
    assert len(set(colours.values())) == len(names)
    assert plots.colours_for(reversed(names)) == colours
    assert plots.colours_for(["app.2", "app.7"]) == {"app.2": plots.colour_for("node2"),
                                                      "app.7": plots.colour(6)}


@pytest.mark.parametrize("draw", ["boxplot", "bars"])
def test_spread_figures_are_png_and_pdf(tmp_path, draw):
    import matplotlib.image
    groups = {"direct": [1.0, 1.2, 1.1, 3.0], "via node": [2.0, 2.2, 2.1]}
    png, pdf = getattr(plots, draw)(groups, "latency (ms)", "Toy run", tmp_path / draw)
    assert png.stat().st_size > 5000 and pdf.read_bytes().startswith(b"%PDF")
    assert matplotlib.image.imread(png).shape[2] in (3, 4)


def test_report_header_lists_pending_tasks_and_stack_warnings(tmp_path):
    from swarmmesh.runs.report import Report
    summary = {"experiment": "x", "stack": {
        "pending": [{"task": "db.1", "reason": "no suitable node (scheduling constraints "
                                               "not satisfied on 3 nodes)"}],
        "warnings": ["services.web.ports[0]: host IP 127.0.0.1 ignored"]}}
    text = Report(tmp_path, "t", summary).header()
    assert "| db.1 | no suitable node (scheduling constraints not satisfied on 3 nodes) |" \
        in text
    assert "- services.web.ports[0]: host IP 127.0.0.1 ignored" in text
    assert "Pending" not in Report(tmp_path, "t", {"stack": {}}).header()
