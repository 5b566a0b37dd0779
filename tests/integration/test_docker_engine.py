"""Real Docker Swarm inside the emulated network (``Testbed(engine="docker")``): three real
dockerd nodes (Debian's docker.io) on the same underlay, the same clients, the task image
built from this machine's files.

The routing mesh on real Swarm needs the kernel's ``ip_vs`` (dockerd refuses a published
port without it): those tests skip where it is missing, with the reason, and run in the
guest of ``make vm-test``.  One swarm is built per module and several checks run on it, in
file order (each one leaves the swarm as the next expects).  The first test needs no
``ip_vs``: a swarm with an unpublished service is built, driven and cleaned up here too."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from swarmmesh.machine import dockerd
from swarmmesh.model import Cluster
from swarmmesh.testbed import docker_clean
from swarmmesh.testbed.docker_swarm import DockerSwarm
from swarmmesh.testbed.testbed import Testbed

from .conftest import http

WHY_NOT = dockerd.engine_missing()
NO_DOCKER = dockerd.programs_missing(lambda p: __import__("shutil").which(p), os.path.exists)
needs_mesh = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f"real Swarm's routing mesh skipped: {WHY_NOT}")
needs_docker = pytest.mark.skipif(NO_DOCKER is not None or os.geteuid() != 0,
                                  reason=f"real Swarm skipped: {NO_DOCKER or 'not root'}")


def _docker_left(state_dirs: list[Path]) -> list[str]:
    """Processes whose command line names one of these runs' folders."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(str(d) in cmd for d in state_dirs):
            left.append(f"{pid} {cmd[:120]}")
    return left


@needs_docker
def test_a_swarm_without_published_ports_runs_answers_heals_and_leaves_nothing(tmp_path):
    """Runs here too (no ip_vs): Swarm places 2 tasks on an overlay network; each answers
    with the task server's protocol (its name from Swarm's slot, its node's name); a killed
    container is replaced in the same slot by a new task; afterwards no process, data root,
    cgroup or ip_forward change is left."""
    stack = {"services": {"app": {"deploy": {"replicas": 2}, "networks": ["front"],
                                  "healthcheck": {"test": ["CMD", "true"], "interval": "2s",
                                                  "timeout": "2s", "retries": 2}}},
             "networks": {"front": {"driver": "overlay"}}}
    cluster = Cluster.from_stack(stack, nodes=3, clients=1)
    forward_before = docker_clean.IP_FORWARD.read_text()
    tb = Testbed(cluster, tmp_path, engine="docker", require_ipvs=False, ready_timeout=300)
    with tb:
        state, data = tb.state.dir, docker_clean.data_root(tb.state.dir)
        assert tb.version.startswith("20.10")
        placed = {t.name: t.node for t in tb.cluster.tasks}
        assert sorted(placed) == ["app.1", "app.2"]
        assert all(str(t.addresses["front"]) .startswith("10.0.") for t in tb.cluster.tasks)
        for name, node in placed.items():
            on, cid = tb.container_of(name)
            assert on == node
            body = tb.docker(on, "exec", cid, "wget", "-q", "-O-", "http://127.0.0.1/x")
            assert f'"task": "{name}", "node": "{node}"' in body
        old = {t.id for t in DockerSwarm(tb).tasks() if t.slot == 1 and t.desired == "running"}
        swarm = DockerSwarm(tb)
        swarm.kill_container("app.1")
        swarm.settle(timeout=240)
        new = {t.id for t in swarm.tasks() if t.slot == 1 and t.desired == "running"}
        assert new and not new & old, (old, new)
        assert [e.event for e in swarm.events] == ["kill_container", "settled"]
    assert _docker_left([state, data]) == []
    assert not data.exists() and not state.exists()
    assert docker_clean.IP_FORWARD.read_text() == forward_before
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{docker_clean.cgroup_prefix(state)}*"))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """3 real nodes, `app` 2 replicas published 8000 -> 80 (Swarm places them)."""
    tb = Testbed(Cluster.quick(nodes=3, replicas=2), tmp_path_factory.mktemp("swarm"),
                 engine="docker", ready_timeout=400)
    tb.__enter__()
    print(f"real swarm: {tb.summary()}")
    yield tb, DockerSwarm(tb)
    tb.__exit__(None, None, None)


def picks(tb, node: str, count: int) -> list[dict]:
    return http(tb, "c1", str(tb.cluster.node(node).underlay_ip), 8000, count=count)


@needs_mesh
def test_every_node_answers_in_exact_round_robin_from_its_sandbox_address(mesh):
    tb, _ = mesh
    tasks = {t.name for t in tb.cluster.tasks_of("app")}
    assert len(tasks) == 2
    for n in tb.cluster.nodes:
        answers = picks(tb, n.name, 6)
        assert all(a["ok"] for a in answers), (n.name, answers)
        seq = [a["body"]["task"] for a in answers]
        assert set(seq) == tasks, (n.name, seq)
        assert all(seq[i] != seq[i + 1] for i in range(len(seq) - 1)), (n.name, seq)
        seen = {a["body"]["client"] for a in answers}
        assert seen == {str(n.ingress_ip)}, (n.name, seen)   # the entry node's ingress-sbox
        assert n.ingress_ip in tb.cluster.networks["ingress"].subnet
    print("ingress", tb.cluster.networks["ingress"].subnet,
          {n.name: str(n.ingress_ip) for n in tb.cluster.nodes})


@needs_mesh
def test_a_killed_container_leaves_every_rotation_and_its_slot_is_refilled(mesh):
    tb, swarm = mesh
    t0 = time.monotonic()
    swarm.kill_container("app.1")
    failed, last_fail = Counter(), 0.0
    deadline = t0 + 20
    clean_rounds = 0
    while clean_rounds < 2 and time.monotonic() < deadline:   # every node, 4 new connections
        bad = 0
        for n in tb.cluster.nodes:
            for a in picks(tb, n.name, 4):
                if not a["ok"]:
                    failed[n.name] += 1
                    bad += 1
                    last_fail = time.monotonic() - t0
        clean_rounds = clean_rounds + 1 if bad == 0 else 0
    print(f"kill: failed per node {dict(failed)}, last failure {last_fail:.1f} s after")
    assert clean_rounds == 2, f"still failing 20 s after the kill: {dict(failed)}"
    swarm.settle(timeout=240)
    back = time.monotonic() - t0
    for n in tb.cluster.nodes:
        seq = [a["body"]["task"] for a in picks(tb, n.name, 4) if a["ok"]]
        assert sorted(set(seq)) == ["app.1", "app.2"], (n.name, seq)
    print(f"kill: the slot refilled and answering through every node {back:.1f} s after")


@needs_mesh
def test_scaling_up_reaches_the_new_task_through_every_node(mesh):
    tb, swarm = mesh
    t0 = time.monotonic()
    swarm.scale("app", 3)
    swarm.settle(timeout=240)
    print(f"scale 2 -> 3: converged {time.monotonic() - t0:.1f} s after")
    tasks = {t.name for t in tb.cluster.tasks_of("app")}
    assert tasks == {"app.1", "app.2", "app.3"}
    for n in tb.cluster.nodes:
        deadline = time.monotonic() + 15       # the new real server reaches every IPVS
        while True:
            seq = [a["body"]["task"] for a in picks(tb, n.name, 6) if a["ok"]]
            if set(seq) == tasks or time.monotonic() > deadline:
                break
        assert set(seq) == tasks, (n.name, seq)
        assert seq[:3] == seq[3:6], (n.name, seq)             # exact rr over three
