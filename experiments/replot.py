#!/usr/bin/env python3
"""Redraw every figure and report.md of a run folder from its raw data alone.

    .venv/bin/python experiments/replot.py RUN_DIR      (no root needed)

Reads ``RUN_DIR/summary.json`` for the experiment's name, imports
``experiments/<name>.py`` and calls its ``plot(RUN_DIR)``, which reads only
the files in RUN_DIR.  Exit 0 on success, 2 if RUN_DIR is not a run folder.
"""

from __future__ import annotations

import sys

from swarmmesh.ui.cli import main as cli_main


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return cli_main(["replot", *argv], prog="replot.py")


if __name__ == "__main__":
    sys.exit(main())
