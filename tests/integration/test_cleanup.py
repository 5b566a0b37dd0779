"""Nothing of ours is left behind: after a normal run, after Ctrl-C, and,
with `make clean` (swarmmesh.testbed.runtime), after SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import time

from .conftest import PY, REPO, ours_left


def _start(tmp_path, requests=400):
    return subprocess.Popen([PY, "experiments/routing_mesh.py", "--nodes", "3", "--replicas", "2",
                             "--requests", str(requests), "--out", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_traffic(proc) -> None:
    """Read progress lines until the experiment is sending."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "sending" in line:
            return
    proc.kill()
    raise AssertionError("experiment never started sending")


def test_normal_run_leaves_nothing(tmp_path):
    assert ours_left() == []
    r = subprocess.run([PY, "experiments/routing_mesh.py", "--requests", "3", "--out",
                        str(tmp_path), "--quiet"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ours_left() == []


def test_ctrl_c_leaves_nothing(tmp_path):
    proc = _start(tmp_path)
    _wait_for_traffic(proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert ours_left() == []


def test_sigterm_leaves_nothing(tmp_path):
    proc = _start(tmp_path)
    _wait_for_traffic(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert ours_left() == []


def test_make_clean_after_sigkill(tmp_path):
    proc = _start(tmp_path)
    _wait_for_traffic(proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert ours_left() != []                     # SIGKILL leaves it all running ...
    r = subprocess.run(["make", "-s", "clean"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "removed" in r.stdout
    assert ours_left() == []                     # ... and `make clean` takes it away
