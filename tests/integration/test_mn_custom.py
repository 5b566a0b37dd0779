"""The topology works from Mininet's own command line, with the controller
started on its own: `mn --custom topologies/swarm.py --topo swarm,... --controller remote`."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

from .conftest import PY, REPO, ours_left


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(not shutil.which("mn"), reason="Mininet's mn is not installed")
def test_mn_custom_topology_answers_on_every_node(tmp_path):
    if not _port_free(6653):
        pytest.skip("something else listens on 127.0.0.1:6653")
    sock = "/run/swarmmesh/openflow.sock"
    ctl = subprocess.Popen([PY, "-m", "swarmmesh.control.app", "--nodes", "3", "--replicas", "2",
                            "--log-file", str(tmp_path / "controller.log")], cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "controller.log").exists() or _port_free(6653):
            assert ctl.poll() is None and time.monotonic() < deadline, "controller did not start"
            time.sleep(0.1)
        script = "".join(f"c1 curl -s -m 3 192.168.99.{i}:8000\n" for i in (1, 2, 3, 3))
        r = subprocess.run(["mn", "--custom", "topologies/swarm.py",
                            "--topo", "swarm,nodes=3,replicas=2", "--controller", "remote"],
                           cwd=REPO, input=script, capture_output=True, text=True, timeout=180)
    finally:
        ctl.terminate()
        ctl.wait(timeout=10)
    out = r.stdout + r.stderr        # mn writes the CLI session to stderr when piped
    answers = [json.loads(line[line.index("{"):]) for line in out.splitlines() if "{\"task" in line]
    assert len(answers) == 4, r.stdout[-2000:] + r.stderr[-2000:]
    assert [a["client"] for a in answers] == ["10.0.0.2", "10.0.0.3", "10.0.0.4",
                                              "10.0.0.4"]
    assert {a["task"] for a in answers[2:]} == {"app.1", "app.2"}    # rr on node3
    assert "in sync with the model" in (tmp_path / "controller.log").read_text()
    assert ours_left() == []
    import os
    assert not os.path.exists(sock)
