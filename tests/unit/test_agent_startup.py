"""The agents started once per node or task (the embedded DNS, the task server) run as
``python -S``: they must import with the standard library and swarmmesh alone (no
site-packages, so no PyYAML; a 500-task build starts 550 of them)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swarmmesh import agents


@pytest.mark.parametrize("module", ["swarmmesh.agents.dns", "swarmmesh.agents.taskserver"])
def test_agent_imports_without_site_packages(module):
    code = (f"import sys, {module}; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('yaml', 'os_ken', 'scapy', 'mininet', 'matplotlib')); print(bad)")
    out = subprocess.run([sys.executable, "-S", "-c", code], env=agents.python_env(),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_stack_files_still_read_yaml_on_first_use(tmp_path):
    from swarmmesh.model import stackfile
    f = tmp_path / "s.yml"
    f.write_text("services:\n  web:\n    ports:\n      - 22:22\n")    # not 1342 (YAML 1.1)
    assert stackfile.load_stack(f)["services"]["web"]["ports"] == ["22:22"]
    assert stackfile._stack_loader() is stackfile._stack_loader()
