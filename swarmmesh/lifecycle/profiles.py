"""The lifecycle's timings in one place: Swarm's own (``swarm``) and how good it could be (``fast``).

A profile holds the health-check timings and the balancer's (the leave delay, node
failure detection, node down); :func:`check_for` gives the check a task runs under one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from swarmmesh.model import InvalidConfigError
from swarmmesh.model.healthcheck import (DEFAULT_INTERVAL, DEFAULT_RETRIES, DEFAULT_START_INTERVAL,
                                         DEFAULT_START_PERIOD, DEFAULT_TIMEOUT, HealthCheck)

LB_LEAVE_DELAY = 2.0
"""A leaving task's weight goes to 0 everywhere, then this gossip convergence
delay passes before the task stops and its backend is deleted."""
NODE_FAILURE_DETECTION = (4.0, 24.0)
"""Gossip failure detection of a lost node: between these bounds."""
NODE_DOWN_AFTER = 15.0
"""A manager marks a node down after this long without heartbeats; its tasks
are then rescheduled on other nodes."""
EXIT_DETECT = 1.0
"""From a task's container exiting (``docker kill``) to the task out of every node's
balancer: measured on moby 20.10.24, the last refused connection started 1.0-1.3 s after
the kill (the agent reports the task failed, the manager removes it, gossip spreads it)."""
RESTART_DELAY = 5.0
"""Swarm's default restart policy: a failed task is replaced after this delay (swarmkit's
default ``restart_policy.delay``; measured: the replacement of a killed container first
answered 14 s after the kill under QEMU TCG, its start included)."""
IPVS_TCP_TIMEOUT, IPVS_TCPFIN_TIMEOUT, IPVS_UDP_TIMEOUT = 900.0, 120.0, 300.0
"""IPVS idle timeouts of Swarm's load balancers (established TCP, TCP FIN, UDP)."""


@dataclass(frozen=True)
class Profile:
    """All lifecycle timings of one mode of the testbed."""

    name: str
    interval: float
    timeout: float
    retries: int
    start_period: float
    start_interval: float
    lb_leave_delay: float
    node_failure_detection: tuple[float, float]
    node_down_after: float
    exit_detect: float
    restart_delay: float

    def detection_window(self, hung: bool = False) -> tuple[float, float]:
        """Bounds (s) from a task's failure to ``unhealthy``, the failure falling
        just before or just after a check, then ``retries`` failed checks.

        Checks that fail at once (refused, HTTP 5xx; their duration ignored):
        ``(retries - 1) x interval`` to ``retries x interval`` (Swarm: 60 to
        90 s). ``hung``, every check runs into its timeout: each cycle is
        ``interval + timeout`` (Swarm: 150 to 180 s)."""
        cycle = self.interval + (self.timeout if hung else 0.0)
        last = self.timeout if hung else 0.0
        return ((self.retries - 1) * cycle + last, self.retries * cycle)


SWARM_PROFILE = Profile(
    name="swarm", interval=DEFAULT_INTERVAL, timeout=DEFAULT_TIMEOUT,
    retries=DEFAULT_RETRIES, start_period=DEFAULT_START_PERIOD,
    start_interval=DEFAULT_START_INTERVAL, lb_leave_delay=LB_LEAVE_DELAY,
    node_failure_detection=NODE_FAILURE_DETECTION, node_down_after=NODE_DOWN_AFTER,
    exit_detect=EXIT_DETECT, restart_delay=RESTART_DELAY)
"""Swarm as shipped. With ``--profile swarm`` a stack's own healthcheck values win."""

FAST_PROFILE = Profile(
    name="fast", interval=0.1, timeout=0.2, retries=2, start_period=0.0,
    start_interval=0.1, lb_leave_delay=0.2, node_failure_detection=(0.3, 0.6),
    node_down_after=1.0, exit_detect=0.1, restart_delay=0.0)
"""How good it could be. Health: a check every 0.1 s, 0.2 s timeout, 2 retries.
A failure that answers at once (refused, HTTP 503) is detected in 0.1 to 0.2 s
(plus one check's duration); a hung task (every check times out) in at most
2 x (0.1 + 0.2) = 0.6 s. Both leave room in the 1 s failover budget for the
weight-0 update, and two retries mean a single check delayed past 0.2 s on a
loaded 2-core host does not evict a healthy task (one retry would). The price
is 10 checks/s per task. Leave delay 0.2 s: the controller programs every node
itself, so no gossip round has to converge. Node loss: 0.1 s heartbeats, 3 to
6 missed, down after 1 s. A killed container: out of every balancer 0.1 s after its process
exits, replaced at once."""

PROFILES = {p.name: p for p in (SWARM_PROFILE, FAST_PROFILE)}


def profile(name: str) -> Profile:
    """The profile called ``name`` (``swarm`` or ``fast``); bad name: InvalidConfigError."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise InvalidConfigError(
            "profile", f"must be one of {', '.join(PROFILES)}, got {name!r}") from None


def replace_timings(hc: "HealthCheck", prof: Profile) -> "HealthCheck":
    """``hc`` with the profile's interval, timeout, retries, start period and interval."""
    return dataclasses.replace(hc, interval=prof.interval, timeout=prof.timeout,
                               retries=prof.retries, start_period=prof.start_period,
                               start_interval=prof.start_interval)


def check_for(name: str, base: HealthCheck | None = None) -> HealthCheck:
    """The check to run under profile ``name``: ``swarm`` keeps ``base``'s timings (the
    stack's, or Swarm's defaults when ``base`` is None); ``fast`` takes the fast profile's.
    The test is ``base``'s, or :data:`swarmmesh.model.healthcheck.DEFAULT_TEST`."""
    prof = profile(name)
    hc = base if base is not None else HealthCheck()
    return hc if prof.name == "swarm" else replace_timings(hc, prof)
