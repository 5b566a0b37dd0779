"""swarmmesh.runs.timeline without root: the answer parser, the load generator on
loopback, metrics and plots on small CSV fixtures, and replot of the four
lifecycle experiments' committed run folders."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from swarmmesh.agents.loadgen import flushing, generate, parse_answer
from swarmmesh.runs.timeline import EVENT_COLUMNS, TIMELINE_COLUMNS
from swarmmesh.runs.timeline_metrics import (converged, failover_metrics, joins, load_panels,
                                             rates, read_timeline, task_of)
from swarmmesh.runs.timeline_plots import (auto_bin, bin_for, marks_for, task_colours,
                                           timeline_figure)

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "tests" / "fixtures" / "runs"
LIFECYCLE = {"failover": ["timeline", "timeline_zoom"], "scaling": ["timeline"],
             "rolling_update": ["timeline"], "node_loss": ["timeline"]}


def _rows(spec):
    """Rows from (t, task or '', error) triples."""
    return [{"t_send": t, "ingress_node": f"node{1 + i % 3}", "task": task, "ok": bool(task),
             "latency_ms": 1.0, "error": err, "variant": "fast"}
            for i, (t, task, err) in enumerate(spec)]


EVENTS = [{"t": t, "event": e, "detail": d, "variant": "fast"} for t, e, d in [
    (-0.5, "health healthy", "app.1"),
    (2.0, "task killed", "app.1 on node1 (hang)"),
    (2.15, "health unhealthy", "app.1 (after 2 failed checks)"),
    (2.15, "weight 0", "app.1: unhealthy"),
    (2.2, "published", "revision 1: app.1 weight 0 (switches in step after 50 ms)"),
    (2.4, "task removed", "app.1"),
    (2.45, "published", "revision 2: app.1 removed (switches in step after 50 ms)"),
    (2.6, "task started", "app.1.t4 on node1 (t4, version 1, starting)"),
    (2.7, "health healthy", "app.1.t4"),
    (2.75, "published", "revision 4: app.1.t4 healthy: joins the load balancer (...)"),
]]


# -- the answer parser and the generator ---------------------------------------------
def test_parse_answer_needs_the_whole_body():
    body = b'{"task": "app.2", "node": "node1"}'
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    assert parse_answer(head + body[:5]) == (False, 200, None)
    assert parse_answer(head + body) == (True, 200, {"task": "app.2", "node": "node1"})
    assert parse_answer(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n"
                        b"\r\n{}")[:2] == (True, 503)
    assert parse_answer(b"HTTP/1.1 200") == (False, None, None)


def _server(answers: int):
    """A loopback HTTP server answering like a task server, ``answers`` times."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)

    def serve():
        for _ in range(answers):
            c, _ = srv.accept()
            c.recv(4096)
            body = b'{"task": "app.7", "node": "node3"}'
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(body) + body)
            c.close()
        srv.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


def test_generator_keeps_the_rate_and_names_the_task_and_failures():
    port = _server(20)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))              # bound, not listening: refuses
    dead = closed.getsockname()[1]
    rows = []
    t0 = time.monotonic() + 0.05
    stats = generate([("node1", "127.0.0.1")], port, 200.0, 0.1, t0, 2.0, rows.append)
    assert stats["requests"] == 20 and stats["ok"] == 20 and stats["failed"] == 0
    assert 150 < stats["achieved_rps"] < 260
    assert {r["task"] for r in rows} == {"app.7"} and {r["task_node"] for r in rows} == {"node3"}
    assert sorted(r["seq"] for r in rows) == list(range(20))
    assert all(0 <= r["t_send"] < 0.2 for r in rows)     # relative to the given origin
    rows2 = []
    stats2 = generate([("node9", "127.0.0.1")], dead, 100.0, 0.03,
                      time.monotonic(), 1.0, rows2.append)
    closed.close()
    assert stats2["failed"] == 3 and {r["error"] for r in rows2} == {"refused"}
    assert not any(r["ok"] for r in rows2) and {r["ingress_node"] for r in rows2} == {"node9"}


def test_generator_cli_writes_csv_and_stats(tmp_path):
    port = _server(6)
    csv_path = tmp_path / "t.csv"
    r = subprocess.run([sys.executable, "-m", "swarmmesh.agents.loadgen", "--target",
                        "node1=127.0.0.1", "--target", "node2=127.0.0.1", "--port", str(port),
                        "--rate", "100", "--duration", "0.06", "--t0", repr(time.monotonic()),
                        "--csv", str(csv_path)], cwd=REPO, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    import json
    stats = json.loads(r.stdout.splitlines()[-1])
    assert stats["ok"] == 6 and stats["targets"] == ["node1=127.0.0.1", "node2=127.0.0.1"]
    from swarmmesh.runs.runfolder import read_csv
    rows = read_csv(csv_path)
    assert sorted(r["ingress_node"] for r in rows) == ["node1"] * 3 + ["node2"] * 3


def test_generator_flushes_its_rows_every_half_second():
    """A run stopped from outside finds the rows in the file (issue 15: a client on
    another server has its file fetched before the generator there is killed)."""
    now, rows, flushes = [0.0], [], []
    f = type("F", (), {"flush": lambda self: flushes.append(now[0])})()
    emit = flushing(rows.append, f, every=0.5, clock=lambda: now[0])
    for t in (0.1, 0.3, 0.6, 0.7, 1.2):
        now[0] = t
        emit({"t": t})
    assert len(rows) == 5 and flushes == [0.6, 1.2]


def test_generator_cli_rejects_bad_targets():
    r = subprocess.run([sys.executable, "-m", "swarmmesh.agents.loadgen", "--target", "node1",
                        "--port", "1", "--rate", "1", "--duration", "1", "--t0", "0",
                        "--csv", "/dev/null"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "NODE=ADDRESS" in r.stderr


# -- metrics -------------------------------------------------------------------------
def test_failover_metrics_from_a_small_timeline():
    rows = _rows([(1.0, "app.1", ""), (1.5, "app.2", ""), (2.05, "", "refused"),
                  (2.1, "app.3", ""), (2.18, "", "refused"), (2.3, "app.2", ""),
                  (2.5, "", "timeout (connect)"), (3.0, "app.1.t4", "")])
    m = failover_metrics(rows, EVENTS)
    assert m["task"] == "app.1" and m["t_kill"] == 2.0
    assert m["kill_to_detect_s"] == pytest.approx(0.15)
    assert m["kill_to_convergence_s"] == pytest.approx(0.2)
    assert m["kill_to_removed_s"] == pytest.approx(0.4)
    # refusals are the dead task's; the timeout is not attributed to it
    assert m["kill_to_last_new_connection_s"] == pytest.approx(0.18)
    assert m["requests_to_dead_task_after_kill"] == 2
    assert (m["failed_total"], m["failed_kill_to_convergence"], m["failed_after_convergence"]) \
        == (3, 2, 1)
    assert m["failed_by_error"] == {"refused": 2, "timeout (connect)": 1}


def test_failover_metrics_without_a_kill():
    m = failover_metrics(_rows([(0.1, "app.1", "")]), [])
    assert m == {"task": None, "requests": 1, "failed_total": 0}


def test_rates_bins_by_send_time():
    rows = _rows([(0.0, "app.1", ""), (0.05, "app.2", ""), (0.1, "app.1", ""),
                  (0.15, "", "refused"), (0.19, "app.1", "")])
    edges, per, failed = rates(rows, 0.1)
    assert edges == [0.0, 0.1]
    assert per == {"app.1": [10.0, 20.0], "app.2": [10.0, 0.0]}
    assert failed == [0.0, 10.0]
    edges, per, _ = rates(rows, 0.1, start=0.0, end=0.1)
    assert edges == [0.0] and per["app.1"] == [10.0]


def test_event_helpers():
    assert task_of("revision 4: app.1.t4 healthy: joins the load balancer") == "app.1.t4"
    assert task_of("app.3: scaled down") == "app.3"
    assert task_of("app.5 on node2 (t7, version 2, starting)") == "app.5"
    assert joins(EVENTS) == {"app.1.t4": 2.75}
    assert converged(EVENTS) == {"app.1": 2.2}
    marks = marks_for(EVENTS, ("task killed", "health unhealthy", "convergence",
                               "joins"))
    assert marks == [(2.0, "task killed"), (2.15, "health unhealthy"), (2.2, "convergence"),
                     (2.75, "joins")]


def test_task_colours_are_stable_and_distinct():
    from swarmmesh.runs import plots
    c = task_colours(["app.4", "app.1.t4", "app.1", "app.2"])
    assert c["app.1"] == plots.colour_for("app.1") and c["app.4"] == plots.colour_for("app.4")
    assert len(set(c.values())) == 4          # app.1.t4 would share app.4's colour


def test_bin_width_keeps_enough_requests_per_bin():
    assert auto_bin(8.0) == 0.1
    assert bin_for(8.0, 300, 3) == 0.1        # 10 per task per bin
    assert bin_for(8.0, 30, 3) == 0.5
    assert bin_for(140.0, 100, 3) == 2.0


def test_timeline_figure_from_csv(tmp_path):
    from swarmmesh.runs.runfolder import write_csv
    rows = _rows([(i * 0.01, f"app.{1 + i % 3}" if not 200 <= i < 215 or i % 3 else "",
                   "" if not 200 <= i < 215 or i % 3 else "refused") for i in range(600)])
    write_csv(tmp_path / "timeline.csv", rows, TIMELINE_COLUMNS)
    write_csv(tmp_path / "events.csv", EVENTS, EVENT_COLUMNS)
    back = read_timeline(tmp_path / "timeline.csv")
    assert back[0]["ok"] is True and isinstance(back[0]["t_send"], float)
    assert sum(1 for r in back if not r["ok"]) == 5
    panels = load_panels(tmp_path, ("task killed", "convergence"))
    assert [p["variant"] for p in panels] == ["fast"] and len(panels[0]["rows"]) == 600
    out = timeline_figure(panels, tmp_path / "fig", "test")
    assert [p.suffix for p in out] == [".png", ".pdf"]
    assert out[0].read_bytes().startswith(b"\x89PNG") and out[0].stat().st_size > 10_000


# -- replot of the committed run folders ---------------------------------------------------
@pytest.mark.parametrize("name", sorted(LIFECYCLE))
def test_replot_redraws_the_lifecycle_experiments(name, tmp_path):
    run = tmp_path / name
    shutil.copytree(RUNS / name, run)
    for p in [*run.glob("*.png"), *run.glob("*.pdf"), *run.glob("report.md")]:
        p.unlink()
    r = subprocess.run([sys.executable, "experiments/replot.py", str(run)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for fig in LIFECYCLE[name]:
        assert (run / f"{fig}.png").stat().st_size > 10_000, fig
        assert (run / f"{fig}.pdf").read_bytes().startswith(b"%PDF"), fig
    report = (run / "report.md").read_text()
    assert "timeline.png" in report and "| status | ok |" in report


def test_failover_combines_two_run_folders_in_one_figure(tmp_path):
    for name in ("a", "b"):
        shutil.copytree(RUNS / "failover", tmp_path / name)
    r = subprocess.run([sys.executable, "experiments/failover.py", "--combine",
                        str(tmp_path / "a"), str(tmp_path / "b"), "--figure",
                        str(tmp_path / "both.png")], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "both.png"), str(tmp_path / "both.pdf")]
    assert (tmp_path / "both.png").stat().st_size > 20_000


@pytest.mark.parametrize("name, flags, field", [
    ("failover", ["--rate", "0"], "rate"),
    ("failover", ["--profile", "swarm", "--duration", "50"], "duration"),
    ("failover", ["--task", "app.9"], "task"),
    ("failover", ["--kill-at", "-1"], "kill-at"),
    ("scaling", ["--to", "2", "--replicas", "2"], "to"),
    ("scaling", ["--up-at", "5", "--down-at", "4"], "down-at"),
    ("rolling_update", ["--parallelism", "0"], "parallelism"),
    ("rolling_update", ["--replicas", "0"], "replicas"),
    ("node_loss", ["--node", "node9"], "node"),
    ("node_loss", ["--nodes", "1"], "nodes"),
])
def test_bad_input_names_the_field_before_anything_is_built(name, flags, field, tmp_path, capsys):
    from swarmmesh.runs import experiment
    module = experiment.load(name)
    code = experiment.main(module, [*flags, "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: {field}: ")
    assert not (tmp_path / "out").exists()


def test_a_client_on_another_server_gets_the_start_on_the_wall_clock(tmp_path):
    """issue 15: a monotonic value means nothing on another machine (its boot is its own
    origin), so a remote generator gets --t0-epoch and maps it onto its own clock."""
    from swarmmesh.agents.loadgen import monotonic_of_epoch
    from swarmmesh.runs.timeline import Load
    assert monotonic_of_epoch(1000.5, 1000.0, 42.0) == 42.5
    load = Load.__new__(Load)
    load.port, load.rate, load.duration, load.timeout = 8000, 10.0, 1.0, 2.0
    load.t0, load.csv_path, load.targets = time.monotonic() + 3.0, tmp_path / "l.csv", [
        ("node1", "192.168.99.1")]
    here = load.command()
    assert here[here.index("--t0") + 1] == repr(load.t0) and "--t0-epoch" not in here
    there = load.command("/run/x.csv", remote=True)
    assert "--t0" not in there and there[there.index("--csv") + 1] == "/run/x.csv"
    epoch = float(there[there.index("--t0-epoch") + 1])
    assert abs(epoch - (time.time() + 3.0)) < 0.05
    # and the generator started with it runs at that instant of its own monotonic clock
    port = _server(2)
    r = subprocess.run([sys.executable, "-m", "swarmmesh.agents.loadgen", "--target",
                        "node1=127.0.0.1", "--port", str(port), "--rate", "100",
                        "--duration", "0.02", "--t0-epoch", repr(time.time() + 0.3),
                        "--csv", str(tmp_path / "e.csv")], cwd=REPO, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    import json
    stats = json.loads(r.stdout.splitlines()[-1])
    assert stats["ok"] == 2 and 0 <= stats["first_send_s"] < 0.05


def test_generator_cli_wants_exactly_one_start():
    base = [sys.executable, "-m", "swarmmesh.agents.loadgen", "--target", "n=127.0.0.1",
            "--port", "1", "--rate", "1", "--duration", "1", "--csv", "/dev/null"]
    for extra in ([], ["--t0", "0", "--t0-epoch", "0"]):
        r = subprocess.run(base + extra, cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 2 and "--t0" in r.stderr
