"""The lifecycle experiments on either engine: which one a run folder's summary names, and
what its events can say (pure).

On real Swarm (``--engine docker``) the events come from Swarm's own task and node states
(:mod:`swarmmesh.testbed.docker_events`); Swarm reports nothing like the emulated
*convergence* (the moment every node's balancer has applied a change: its nodes learn it by
gossip), so the figures and tables leave those marks out and say so.
"""

from __future__ import annotations

NO_CONVERGENCE = ("real Swarm reports no convergence (the moment every node's balancer has "
                  "applied a change: its nodes learn it by gossip), so that mark and the "
                  "figures measured from it are left out")


def engine_of(summary: dict) -> str:
    """``docker`` for a run on real Swarm, else ``emulated``."""
    return "docker" if (summary.get("engines") or {}).get("docker") else "emulated"


def swarm_events_text(summary: dict) -> str:
    """The report's paragraph on where a real-Swarm run's events come from ('' emulated)."""
    if engine_of(summary) != "docker":
        return ""
    return ("On real Swarm the events are Swarm's own: each task's state changes and each "
            "node's status, read on the manager's Engine API every half second (the tasks "
            "`docker service ps` lists, the nodes; each read kept in `swarm.jsonl`) and timed "
            "by Swarm's own timestamps: *started* is a task entering `starting`, *joins* a "
            "task entering `running` (its node activates its service binding, after its "
            "first healthy check), *weight 0* a running task's desired state leaving "
            "`running`, *removed* it reaching `shutdown` or `complete`, *detected* Docker's "
            "`health_status: unhealthy` (`docker events` on the task's node), *marked down* "
            f"the node's status `down`; {NO_CONVERGENCE}.")
