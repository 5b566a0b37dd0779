"""The load sweep's pure parts: concurrencies, rows from ab's and wrk's parsed output,
the table of ratios to direct at the same tool, concurrency and round, and its figure."""

from __future__ import annotations

import pytest

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import runfolder
from swarmmesh.runs import loadsweep


def test_concurrencies_are_sorted_distinct_and_bounded():
    assert loadsweep.parse_concurrencies("16, 1,4") == [1, 4, 16]
    for bad in ("", "0", "1,,2", "a", "4,4", "257", "-1"):
        with pytest.raises(InvalidConfigError, match="load-concurrency"):
            loadsweep.parse_concurrencies(bad)


def test_rows_from_ab_and_wrk():
    ab = {"complete": 100, "failed": 2, "rps": 812.5, "percentiles_ms": {50: 4, 99: 9}}
    r = loadsweep.row(0, "direct", "app.1", "ab", 4, 0.5, ab)
    assert (r["rps"], r["requests"], r["errors"], r["p50_ms"], r["p99_ms"]) == (812.5, 100, 2,
                                                                               4, 9)
    wrk = {"requests": 5000, "rps": 2500.0, "non_2xx": 1, "percentiles_ms": {50.0: 1.5, 99.0: 3.0},
           "socket_errors": {"connect": 0, "read": 1, "write": 0, "timeout": 2}}
    r = loadsweep.row(1, "mesh_empty_node", "node3", "wrk", 16, 0.7, wrk)
    assert (r["requests"], r["errors"], r["p99_ms"]) == (5000, 4, 3.0)
    failed = loadsweep.row(1, "nft_lb", "lb1", "wrk", 1, 0.1, error="wrk exited 1")
    assert failed["rps"] == "" and failed["error"] == "wrk exited 1"
    assert set(r) == set(loadsweep.COLUMNS)


def _rows():
    rows = []
    rates = {("direct", 0): 1000, ("direct", 1): 800, ("mesh_empty_node", 0): 400,
             ("mesh_empty_node", 1): 400}
    for (path, rep), rps in rates.items():
        for tool in ("ab", "wrk"):
            for c in (1, 4):
                rows.append(loadsweep.row(rep, path, path, tool, c, 0.1,
                                          {"rps": rps * c * (2 if tool == "wrk" else 1),
                                           "complete": 10, "failed": 0,
                                           "percentiles_ms": {99: rep + 1}}))
    return rows


def test_ratios_are_to_direct_at_the_same_tool_concurrency_and_round():
    tab = loadsweep.table(_rows())
    assert [(r["tool"], r["concurrency"]) for r in tab][::2] == [
        ("ab", 1), ("ab", 4), ("wrk", 1), ("wrk", 4)]
    mesh = {(r["tool"], r["concurrency"]): r for r in tab if r["path"] == "mesh_empty_node"}
    r = mesh[("ab", 4)]
    assert r["rps"] == 1600 and r["ratio"] == pytest.approx(1600 / 3600)
    assert (r["ratio_min"], r["ratio_max"]) == (pytest.approx(0.4), pytest.approx(0.5))
    assert r["n"] == 2 and r["p99_ms"] == 1.5 and r["errors"] == 0
    assert all(r["ratio"] == 1.0 for r in tab if r["path"] == "direct")


def test_the_table_reads_the_same_from_csv(tmp_path):
    rows = _rows() + [loadsweep.row(0, "nft_lb", "lb1", "ab", 1, 0.1, error="ab exited 22")]
    runfolder.write_csv(tmp_path / "load.csv", rows, loadsweep.COLUMNS)
    back = loadsweep.table(runfolder.read_csv(tmp_path / "load.csv"))
    assert back == loadsweep.table(rows)
    lb, = [r for r in back if r["path"] == "nft_lb" and r["tool"] == "ab" and r["concurrency"] == 1]
    assert lb["rps"] is None and lb["ratio"] is None and lb["failed_runs"] == 1


def test_the_figure_has_a_panel_per_tool_and_a_line_per_path(tmp_path):
    fig = loadsweep.figure(_rows(), {"direct": "(a) direct"}, "t")
    axes = fig.get_axes()
    assert [a.get_title() for a in axes] == list(loadsweep.TOOLS.values())
    assert [line.get_label() for line in axes[0].get_lines()] == ["(a) direct",
                                                                  "mesh_empty_node"]
    assert list(axes[1].get_lines()[0].get_ydata()) == [1800, 7200]
