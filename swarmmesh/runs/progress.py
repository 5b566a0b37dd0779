"""Progress of a run: a bar on a terminal, sparse plain lines otherwise.

A run goes through phases (building, warming up, sending, plotting, ...).
Within a phase it may know how much work there is (``total``) and report
work done (``advance``).  On a TTY this draws one line on stderr that is
redrawn in place::

    [routing_mesh] sending    [##########..........]  60/120  41.2/s  ETA 1s

With ``quiet=True``, or when stderr is not a terminal (CI logs, pipes), it
prints plain lines instead, one when a phase starts, one per quarter of a
phase's known total, one per note, and one when a phase ends::

    [routing_mesh    3.2s] sending: 0/120
    [routing_mesh    4.6s] sending: 30/120 (25%), 21.4/s

A ``Progress`` is also callable with a message (a note), so it can be
passed wherever a ``progress: Callable[[str], None]`` is taken, such as
:class:`swarmmesh.testbed.testbed.Testbed`.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_BAR = 24
_REDRAW_S = 0.1


class Progress:
    def __init__(self, name: str, quiet: bool = False, stream: TextIO | None = None,
                 clock=time.monotonic) -> None:
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.bar = not quiet and bool(isatty())
        self._clock = clock
        self._t0 = clock()
        self._phase: str | None = None
        self._phase_t0 = self._t0
        self._done = 0
        self._total: int | None = None
        self._note = ""
        self._last_draw = 0.0
        self._drawn = False
        self._quarter = 0

    # -- the API experiments use ------------------------------------------
    def phase(self, name: str, total: int | None = None) -> None:
        """Start a phase (ending the previous one)."""
        self._end_phase()
        self._phase, self._phase_t0 = name, self._clock()
        self._done, self._total, self._note, self._quarter = 0, total, "", 0
        if self.bar:
            self._draw(force=True)
        else:
            self._line(f"{name}: {self._counts()}" if total else f"{name}")

    def total(self, n: int) -> None:
        """The amount of work in the current phase (may be raised later)."""
        self._total = int(n)
        if self.bar:
            self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self.bar:
            self._draw()
        elif self._total:
            quarter = min(4, self._done * 4 // self._total)
            if quarter > self._quarter:
                self._quarter = quarter
                self._line(f"{self._phase}: {self._counts()} ({100 * self._done // self._total}%)"
                           f"{self._rate_text()}")

    def note(self, message: str) -> None:
        """A one-off message (e.g. a Testbed step, the datapath chosen)."""
        if self.bar:
            self._note = message
            self._clear()
            print(f"[{self.name}] {message}", file=self.stream, flush=True)
            self._draw(force=True)
        else:
            self._line(message)

    __call__ = note

    def close(self) -> None:
        """End the last phase; leave the terminal on a fresh line."""
        self._end_phase()
        self._phase = None

    # -- rendering -----------------------------------------------------------
    def _elapsed(self) -> float:
        return self._clock() - self._t0

    def _rate(self) -> float | None:
        dt = self._clock() - self._phase_t0
        return self._done / dt if dt > 0 and self._done else None

    def _rate_text(self) -> str:
        rate = self._rate()
        return f", {rate:.1f}/s" if rate else ""

    def _counts(self) -> str:
        return f"{self._done}/{self._total}" if self._total else f"{self._done}"

    def _line(self, text: str) -> None:
        print(f"[{self.name} {self._elapsed():6.1f}s] {text}", file=self.stream, flush=True)

    def _end_phase(self) -> None:
        if self._phase is None:
            return
        took = self._clock() - self._phase_t0
        if self.bar:
            self._draw(force=True)
            print(file=self.stream, flush=True)
            self._drawn = False
        elif self._done and self._quarter < 4:
            self._line(f"{self._phase}: {self._counts()} done in {took:.1f}s{self._rate_text()}")
        elif not self._done:
            self._line(f"{self._phase}: done in {took:.1f}s")

    def render(self, width: int = 100) -> str:
        """The bar line as it is drawn on a terminal (without the carriage return)."""
        parts = [f"[{self.name}] {self._phase or '':<11}"]
        if self._total:
            frac = min(1.0, self._done / self._total)
            fill = int(frac * _BAR)
            parts.append("[" + "#" * fill + "." * (_BAR - fill) + "]")
        parts.append(self._counts() if (self._total or self._done) else "")
        rate = self._rate()
        if rate:
            parts.append(f"{rate:.1f}/s")
            if self._total and self._done < self._total:
                parts.append(f"ETA {(self._total - self._done) / rate:.0f}s")
        else:
            parts.append(f"{self._clock() - self._phase_t0:.0f}s")
        return " ".join(p for p in parts if p)[:width]

    def _draw(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_draw < _REDRAW_S:
            return
        self._last_draw = now
        self.stream.write("\r\x1b[K" + self.render())
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
