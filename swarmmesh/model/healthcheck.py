"""A service's health check as the model holds it: Docker's defaults and durations.

The timings are Docker's (``daemon/health.go``, the API's defaults); the state machine
that runs the checks is :mod:`swarmmesh.lifecycle.health`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping


DEFAULT_INTERVAL = 30.0
"""Docker: time before the first check, and from the end of one check to the next."""
DEFAULT_TIMEOUT = 30.0
"""Docker: a check running longer fails."""
DEFAULT_RETRIES = 3
"""Docker: consecutive counted failures that make a task unhealthy."""
DEFAULT_START_PERIOD = 0.0
"""Docker: failures that start within this time of the task's start do not count."""
DEFAULT_START_INTERVAL = 5.0
"""Docker (API 1.44+): interval between checks while starting inside the start period."""
MINIMUM_DURATION = 0.001
"""Docker rejects a non-zero interval, timeout, start_period or start_interval below 1 ms."""

DEFAULT_TEST = ("CMD", "curl", "-f", "http://localhost/health")
"""The check used when a profile must supply one (the task server's endpoint)."""


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: object) -> float:
    """Seconds in a Go/Docker duration string: ``"1m30s"`` -> 90.0.

    Accepts what Go's ``time.ParseDuration`` accepts (units ns, us, ms, s, m,
    h; decimals; a sign; a bare ``"0"``), and the integer 0. Raises
    ValueError with a short reason (``invalid duration '3x'``).
    """
    if isinstance(text, int) and not isinstance(text, bool) and text == 0:
        return 0.0
    if not isinstance(text, str):
        raise ValueError(f"must be a duration string such as '30s', got {text!r}")
    s = text.strip()
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r} (use e.g. '30s', '1m30s', '500ms')")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. '30s', '1m30s', '500ms')")
    return sign * total


@dataclass(frozen=True)
class HealthCheck:
    """A service's health check, with Docker's defaults filled in (seconds).

    ``test`` is Docker's form: ``("CMD", argv...)``, ``("CMD-SHELL", "cmd")``,
    ``("NONE",)`` (disabled), or ``()`` when the stack sets only timings (the
    check would come from the image, and the task server's image has none).
    """

    test: tuple[str, ...] = DEFAULT_TEST
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = DEFAULT_START_PERIOD
    start_interval: float = DEFAULT_START_INTERVAL

    @property
    def active(self) -> bool:
        """True if a check actually runs (a test other than NONE)."""
        return bool(self.test) and self.test[0] != "NONE"

    def to_dict(self) -> dict:
        return {"test": list(self.test), "interval": self.interval, "timeout": self.timeout,
                "retries": self.retries, "start_period": self.start_period,
                "start_interval": self.start_interval}

    @classmethod
    def from_dict(cls, d: Mapping) -> "HealthCheck":
        return cls(test=tuple(d["test"]), interval=float(d["interval"]),
                   timeout=float(d["timeout"]), retries=int(d["retries"]),
                   start_period=float(d["start_period"]),
                   start_interval=float(d["start_interval"]))
