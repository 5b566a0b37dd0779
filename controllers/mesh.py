"""The controller process's entry point (the code is swarmmesh.control.app).

    python controllers/mesh.py --nodes 3 --replicas 2      (or: python -m swarmmesh.control)
"""

import sys
from pathlib import Path

if __package__ in (None, ""):                    # run as a file from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarmmesh.control.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
