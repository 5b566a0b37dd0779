"""Mininet's entry point to the swarm topology (the code is swarmmesh.testbed.topology).

    sudo mn --custom topologies/swarm.py --topo swarm,nodes=3,replicas=2 --controller remote

(start the controller first: ``python -m swarmmesh.control --nodes 3 --replicas 2``).
"""

import inspect
import sys
from pathlib import Path

# `mn --custom` execs this file with Debian's Python, which may not see the project's venv:
# make the checkout this file sits in importable (the code object knows its own path).
_CHECKOUT = Path(inspect.currentframe().f_code.co_filename).resolve().parent.parent
if (_CHECKOUT / "swarmmesh").is_dir() and str(_CHECKOUT) not in sys.path:
    sys.path.insert(0, str(_CHECKOUT))

from swarmmesh.testbed.topology import SwarmTopo  # noqa: E402

topos = {"swarm": SwarmTopo}
