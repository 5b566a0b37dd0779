"""How a service's published ports and VIP balance new connections: Swarm's round robin by
default, or what Swarm lacks (schedulers, session affinity, the client's own address).

Chosen per service in the stack file, in an extension key that ``docker stack deploy``
accepts, so the file still deploys on real Swarm (docker/cli's compose schemas allow
``x-`` keys in a service from version 3.7, at the top level from 3.4)::

    services:
      web:
        x-swarmmesh:
          scheduler: maglev        # rr (default) | wrr | sh | maglev | lc
          weights: {1: 3, 2: 1}    # wrr: weight per task slot (default 1)
          affinity: 3h             # ClientIP session affinity: true (10800 s), a duration
          traffic_policy: local    # cluster (default) | local: local tasks only, no SNAT

    x-swarmmesh:                   # the same for files older than 3.7
      services: {web: {scheduler: sh}}

or by flag (``--scheduler``, ``--affinity``, ``--traffic-policy`` on the experiments
that take them).  Every error names its field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from swarmmesh.model import healthcheck
from swarmmesh.model.errors import InvalidConfigError, check, is_int, type_name

KEY = "x-swarmmesh"
SCHEDULERS = ("rr", "wrr", "sh", "maglev", "lc")
TRAFFIC_POLICIES = ("cluster", "local")
AFFINITY_DEFAULT = 10800.0       # Kubernetes' sessionAffinityConfig default, seconds
MAX_WEIGHT = 100
OPTIONS = ("scheduler", "weights", "affinity", "traffic_policy")


@dataclass(frozen=True)
class Balancing:
    """A service's balancing options (the default is Swarm's behaviour)."""

    scheduler: str = "rr"
    weights: Mapping[int, int] = field(default_factory=dict)   # slot -> weight (wrr)
    affinity: float = 0.0          # seconds a client address sticks to its task (0: off)
    traffic_policy: str = "cluster"

    def weight(self, slot: int) -> int:
        return self.weights.get(slot, 1)

    def is_swarm(self) -> bool:
        return self == Balancing()

    def to_dict(self) -> dict:
        return {"scheduler": self.scheduler, "weights": {str(k): v for k, v in
                                                         self.weights.items()},
                "affinity": self.affinity, "traffic_policy": self.traffic_policy}

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "Balancing":
        if not d:
            return cls()
        return cls(d.get("scheduler", "rr"), {int(k): int(v) for k, v in
                                              (d.get("weights") or {}).items()},
                   float(d.get("affinity", 0.0)), d.get("traffic_policy", "cluster"))


def _weights(raw: Any, path: str) -> dict[int, int]:
    if raw is None:
        return {}
    check(isinstance(raw, Mapping), path, f"must map task slots to weights, got "
                                          f"{type_name(raw)}")
    out = {}
    for slot, weight in raw.items():
        s = int(slot) if isinstance(slot, str) and slot.isdigit() else slot
        check(is_int(s) and s >= 1, path, f"keys are task slots (1, 2, ...), got {slot!r}")
        check(is_int(weight) and 0 <= weight <= MAX_WEIGHT, f"{path}.{slot}",
              f"must be an integer in 0..{MAX_WEIGHT}, got {weight!r}")
        out[s] = weight
    return out


def affinity_seconds(raw: Any, path: str) -> float:
    """``true`` (Kubernetes' 10800 s), ``false``/0 (off), seconds, or a duration."""
    if raw is True:
        return AFFINITY_DEFAULT
    if raw is False or raw is None:
        return 0.0
    if is_int(raw) or isinstance(raw, float):
        seconds = float(raw)
    else:
        try:
            seconds = healthcheck.parse_duration(raw)
        except (ValueError, TypeError) as exc:
            raise InvalidConfigError(path, f"must be true, false, seconds or a duration "
                                           f"like 3h, got {raw!r} ({exc})") from None
    check(0 <= seconds <= 86400, path, f"must be within 0..86400 seconds, got {raw!r}")
    return seconds


def parse(raw: Any, path: str) -> Balancing:
    """One service's ``x-swarmmesh`` mapping."""
    check(isinstance(raw, Mapping), path, f"must be a mapping, got {type_name(raw)}")
    for key in raw:
        check(key in OPTIONS, f"{path}.{key}",
              f"unknown key (expected one of {', '.join(OPTIONS)})")
    scheduler = raw.get("scheduler", "rr")
    check(scheduler in SCHEDULERS, f"{path}.scheduler",
          f"must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    weights = _weights(raw.get("weights"), f"{path}.weights")
    check(not weights or scheduler == "wrr", f"{path}.weights",
          f"weights are for the wrr scheduler, not {scheduler!r}")
    policy = raw.get("traffic_policy", "cluster")
    check(policy in TRAFFIC_POLICIES, f"{path}.traffic_policy",
          f"must be one of {', '.join(TRAFFIC_POLICIES)}, got {policy!r}")
    return Balancing(scheduler, weights, affinity_seconds(raw.get("affinity"),
                                                          f"{path}.affinity"), policy)


def version_allows_service_key(version: Any) -> bool:
    """Does ``docker stack deploy`` accept an ``x-`` key inside a service (3.7+)?"""
    try:
        major, minor = (int(p) for p in str(version).split(".")[:2])
    except ValueError:
        return True                  # no or odd version: Compose's latest schema
    return (major, minor) >= (3, 7) or major > 3


def top_level(raw: Any, services: Mapping[str, Any]) -> dict[str, Balancing]:
    """The top-level ``x-swarmmesh: {services: {NAME: {...}}}``."""
    path = KEY
    check(isinstance(raw, Mapping), path, f"must be a mapping, got {type_name(raw)}")
    for key in raw:
        check(key == "services", f"{path}.{key}", "unknown key (expected services)")
    out = {}
    for name, body in (raw.get("services") or {}).items():
        check(name in services, f"{path}.services.{name}", "unknown service")
        out[name] = parse(body, f"{path}.services.{name}")
    return out
