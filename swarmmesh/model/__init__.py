"""The model: one cluster (nodes, networks, services, tasks, addresses) as plain data.

Everything else is derived from it: the topology, the controller's flows, the DNS
answers, the orchestrator's decisions.  It needs no root and imports nothing of
the layers above it.
"""

from swarmmesh.model.cluster import *  # noqa: F401,F403
from swarmmesh.model.cluster import __all__  # noqa: F401
