"""Progress: sparse plain lines with --quiet or without a terminal; a bar
redrawn in place on a terminal."""

from __future__ import annotations

import io

from swarmmesh.runs.progress import Progress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def _sending(p: Progress, clock: Clock, n: int = 100) -> None:
    p.phase("building")
    p("starting controller")
    clock.t += 2
    p.phase("sending", total=n)
    for _ in range(n):
        clock.t += 0.1
        p.advance()
    p.close()


def test_quiet_prints_sparse_plain_lines():
    out, clock = io.StringIO(), Clock()
    p = Progress("demo", quiet=True, stream=Tty(), clock=clock)   # quiet wins over a TTY
    p.stream = out
    _sending(p, clock)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "building",
        "starting controller",
        "building: done in 2.0s",
        "sending: 0/100",
        "sending: 25/100 (25%), 10.0/s",
        "sending: 50/100 (50%), 10.0/s",
        "sending: 75/100 (75%), 10.0/s",
        "sending: 100/100 (100%), 10.0/s",
    ]
    assert lines[0].startswith("[demo    0.0s]")
    assert lines[-1].startswith("[demo   12.0s]")


def test_no_tty_means_plain_lines_even_without_quiet():
    out, clock = io.StringIO(), Clock()
    p = Progress("demo", stream=out, clock=clock)
    assert not p.bar
    _sending(p, clock, n=1000)
    assert len(out.getvalue().splitlines()) == 8     # a thousand steps, still eight lines


def test_phase_without_total_reports_its_count_when_done():
    out, clock = io.StringIO(), Clock()
    p = Progress("demo", stream=out, clock=clock)
    p.phase("warming up")
    clock.t += 4
    p.advance(3)
    p.phase("plotting")
    assert "warming up: 3 done in 4.0s, 0.8/s" in out.getvalue()


def test_tty_draws_a_bar_with_counts_rate_and_eta():
    out, clock = Tty(), Clock()
    p = Progress("demo", stream=out, clock=clock)
    assert p.bar
    p.phase("sending", total=40)
    clock.t += 2
    p.advance(10)
    line = p.render()
    assert line.startswith("[demo] sending")
    assert "[######" + "." * 18 + "]" in line          # a quarter of 24 cells
    assert "10/40" in line and "5.0/s" in line and "ETA 6s" in line
    p.note("datapath: netdev OVS")
    p.close()
    text = out.getvalue()
    assert "\r\x1b[K" in text                           # redrawn in place
    assert "[demo] datapath: netdev OVS\n" in text     # a note gets its own line
    assert text.endswith("\n")                          # the terminal is left on a new line
