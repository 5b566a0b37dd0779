"""Shared test helpers."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

require_root = pytest.mark.skipif(os.geteuid() != 0, reason="builds namespaces: needs root")
