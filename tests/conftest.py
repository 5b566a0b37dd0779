"""Shared test helpers, and the suite's last line: which datapath the integration tier ran on."""

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from swarmmesh.testbed.testbed import DATAPATH_LOG  # noqa: E402

require_root = pytest.mark.skipif(os.geteuid() != 0, reason="builds namespaces: needs root")


def pytest_configure(config):
    """Every testbed, in this process or a child, appends its datapath to one file."""
    if DATAPATH_LOG not in os.environ and not hasattr(config, "workerinput"):
        fd, path = tempfile.mkstemp(prefix="swarmmesh-datapaths-", suffix=".tsv")
        os.close(fd)
        os.environ[DATAPATH_LOG] = config._swarmmesh_datapath_log = path


def datapath_report(lines: list[str], ran: int) -> str:
    """One line: how many integration tests ran, and the datapath of every testbed built."""
    builds = Counter(line.partition("\t")[0] for line in lines)
    if not builds:
        return f"integration tier: {ran} tests ran; no testbed was built"
    each = ", ".join(f"{n} on {dp}" for dp, n in sorted(builds.items()))
    return (f"integration tier: {ran} tests ran on the {' and '.join(sorted(builds))} "
            f"datapath ({sum(builds.values())} testbeds built: {each})")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = getattr(config, "_swarmmesh_datapath_log", None)
    if not path:
        return
    ran = sum(1 for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
              if r.when == "call" and "tests/integration/" in r.nodeid)
    lines = Path(path).read_text().splitlines() if os.path.exists(path) else []
    os.unlink(path)
    if ran or lines:
        terminalreporter.write_line(datapath_report(lines, ran))
