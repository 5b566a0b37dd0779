"""``python -m swarmmesh.control``: the controller process."""

import sys

from swarmmesh.control.app import main

sys.exit(main())
