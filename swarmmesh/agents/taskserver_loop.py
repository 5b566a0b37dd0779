"""The task server's loop parts that know nothing of HTTP: timers and the signal wake-up.

The server (``swarmmesh.agents.taskserver``) is one thread around a
:mod:`selectors` loop; these are the pieces it runs besides the sockets.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import time
from typing import Any, Callable


class Timer:
    """A cancellable one-shot callback scheduled on the task server's loop."""

    __slots__ = ("fn", "args", "cancelled")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Prevent the callback from running."""
        self.cancelled = True


class Timers:
    """Pending timers, earliest first, on the monotonic clock."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Timer]] = []
        self._tick = itertools.count()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` on the loop after ``delay`` seconds."""
        timer = Timer(fn, args)
        heapq.heappush(self.heap, (time.monotonic() + delay, next(self._tick), timer))
        return timer

    def timeout(self) -> float | None:
        """How long the loop may wait for sockets: until the next timer (None: no timer)."""
        heap = self.heap
        if heap:
            return max(0.0, heap[0][0] - time.monotonic())
        return None

    def run_due(self) -> None:
        """Run every timer that is due and not cancelled (a failing one is ignored)."""
        heap = self.heap
        if heap:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                timer = heapq.heappop(heap)[2]
                if not timer.cancelled:
                    try:
                        timer.fn(*timer.args)
                    except Exception:
                        pass


class Wakeup:
    """Drains the signal wake-up socket (signal handlers do the real work)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def on_event(self, mask: int) -> None:
        try:
            while self.sock.recv(512):
                pass
        except OSError:
            pass

    def on_error(self) -> None:
        pass
