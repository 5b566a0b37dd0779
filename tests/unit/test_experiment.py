"""The experiment framework (swarmmesh.runs.experiment) on a tiny experiment that
builds nothing: parsing, validation before anything is made, summary.json,
exit codes, and the last stdout line.  No root needed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from swarmmesh.runs import experiment
from swarmmesh.testbed.testbed import versions

TOY = '''
import random, sys
from swarmmesh.runs import experiment, report
from swarmmesh.model import InvalidConfigError

NAME = "toy"
DESCRIPTION = "draws numbers; builds nothing"
NEEDS_ROOT = False
CALLS = []

def add_arguments(ap):
    ap.add_argument("--count", type=int, default=5, help="numbers to draw")
    ap.add_argument("--mode", choices=["ok", "fail", "interrupt", "crash"], default="ok")

def validate(args):
    if args.count < 1:
        raise InvalidConfigError("count", f"must be >= 1, got {args.count}")
    return {"count": args.count}

def run(args, plan, ctx):
    CALLS.append("run")
    ctx.progress.phase("sending", total=plan["count"])
    rows = []
    for i in range(plan["count"]):
        rows.append({"i": i, "x": random.random()})
        ctx.progress.advance()
        if args.mode == "interrupt" and i == 1:
            raise KeyboardInterrupt
        if args.mode == "crash" and i == 1:
            raise RuntimeError("boom")
    ctx.write_csv("numbers.csv", rows, ["i", "x"])
    ctx.summary.update({"datapath": "netdev", "drawn": len(rows)})
    if args.mode == "fail":
        ctx.failed = "2 of 5 numbers were unlucky"

def plot(run_dir):
    CALLS.append("plot")
    rep = report.Report(run_dir, "Toy")
    rep.numbers({"x": [r["x"] for r in experiment.results.read_csv(run_dir / "numbers.csv")]},
                unit="1")
    rep.write()
'''


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(textwrap.dedent(TOY))
    module = experiment.load(path)
    module.CALLS.clear()
    yield module
    import sys
    sys.modules.pop(module.__name__, None)


def _run(toy, tmp_path, capsys, *argv):
    out = tmp_path / "out"
    code = experiment.main(toy, [*argv, "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    return code, out, captured


def test_validation_error_names_the_field_exits_2_and_builds_nothing(toy, tmp_path, capsys):
    code, out, cap = _run(toy, tmp_path, capsys, "--count", "0")
    assert code == 2
    assert cap.err.strip() == "error: count: must be >= 1, got 0"
    assert not out.exists()
    assert toy.CALLS == []


@pytest.mark.parametrize("argv, flag", [(["--count", "many"], "--count"),
                                        (["--datapath", "kernel"], "--datapath"),
                                        (["--seed", "x"], "--seed")])
def test_bad_flag_type_exits_2_naming_the_flag(toy, tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) as e:
        experiment.main(toy, [*argv, "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_common_flag_checks(toy, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert experiment.main(toy, ["--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err.startswith("error: out: ")
    assert experiment.main(toy, ["--seed", "-1", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: seed: ")
    assert toy.CALLS == []


def test_success_writes_summary_with_everything_and_prints_the_folder_last(toy, tmp_path, capsys):
    code, out, cap = _run(toy, tmp_path, capsys, "--count", "4", "--seed", "7")
    assert code == 0, cap.err
    run_dir = Path(cap.out.strip().splitlines()[-1])
    assert run_dir.parent == out and run_dir.name.endswith("-toy")
    assert toy.CALLS == ["run", "plot"]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["experiment"] == "toy" and s["status"] == "ok"
    assert s["parameters"] == {"count": 4, "mode": "ok", "out": str(out), "datapath": "auto",
                               "build_timeout": None,
                               "seed": 7, "quiet": True, "flows": False, "servers": None,
                               "servers_file": None,
                               "placement": None, "place": [], "tunnel": None}
    assert s["seed"] == 7
    assert s["emulates_docker"] == "20.10.24"        # the release the mesh follows
    assert s["datapath_requested"] == "auto"
    assert s["datapath"] == "netdev"                 # ctx.summary overrides the framework
    assert s["drawn"] == 4
    assert set(s["versions"]) == set(versions())
    assert {"python", "mininet", "ovs", "os_ken", "scapy", "matplotlib", "kernel"} <= set(s["versions"])
    assert s["git_commit"] and s["git_commit"] != "unknown"
    assert s["host"]["hostname"] and s["host"]["cpus"] >= 1
    assert s["started"] <= s["finished"]
    assert (run_dir / "numbers.csv").read_text().count("\n") == 5
    assert (run_dir / "report.md").read_text().startswith("# Toy")


def test_same_seed_same_numbers_and_a_drawn_seed_is_recorded(toy, tmp_path, capsys):
    dirs = []
    for argv in (["--seed", "42"], ["--seed", "42"], []):
        code, out, cap = _run(toy, tmp_path, capsys, *argv)
        assert code == 0
        dirs.append(Path(cap.out.strip().splitlines()[-1]))
    csvs = [(d / "numbers.csv").read_text() for d in dirs]
    assert csvs[0] == csvs[1] != csvs[2]
    drawn = json.loads((dirs[2] / "summary.json").read_text())["seed"]
    assert isinstance(drawn, int)
    code, out, cap = _run(toy, tmp_path, capsys, "--seed", str(drawn))
    assert (Path(cap.out.strip().splitlines()[-1]) / "numbers.csv").read_text() == csvs[2]


def test_failed_run_exits_1_and_says_why(toy, tmp_path, capsys):
    code, out, cap = _run(toy, tmp_path, capsys, "--mode", "fail")
    assert code == 1
    run_dir = Path(cap.out.strip().splitlines()[-1])
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "failed: 2 of 5 numbers were unlucky"
    assert "FAILED: 2 of 5 numbers were unlucky" in cap.err
    assert (run_dir / "report.md").exists()          # a failed run is still reported


def test_ctrl_c_exits_130_and_records_it(toy, tmp_path, capsys):
    code, out, cap = _run(toy, tmp_path, capsys, "--mode", "interrupt")
    assert code == 130
    run_dir = Path(cap.out.strip().splitlines()[-1])
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "interrupted (Ctrl-C)" and s["finished"]
    assert toy.CALLS == ["run"]                      # no plot of partial data


def test_crash_exits_1_with_the_error_in_the_summary(toy, tmp_path, capsys):
    code, out, cap = _run(toy, tmp_path, capsys, "--mode", "crash")
    assert code == 1
    assert "RuntimeError: boom" in cap.err
    s = json.loads((Path(cap.out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert s["status"] == "error: RuntimeError: boom"


def test_replot_uses_the_script_recorded_for_an_experiment_outside_experiments(toy, tmp_path,
                                                                                capsys):
    code, out, cap = _run(toy, tmp_path, capsys)
    run_dir = Path(cap.out.strip().splitlines()[-1])
    (run_dir / "report.md").unlink()
    experiment.replot(run_dir)
    assert (run_dir / "report.md").exists()


def test_load_rejects_unknown_names_and_lists_the_known():
    with pytest.raises(experiment.InvalidConfigError) as e:
        experiment.load("nope")
    assert e.value.field == "experiment" and "routing_mesh" in str(e.value)
    assert {"routing_mesh", "overlay_rtt"} <= set(experiment.experiment_names())
    assert "replot" not in experiment.experiment_names()
