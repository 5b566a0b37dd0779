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
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from swarmmesh.machine import dockerd
from swarmmesh.model import Cluster
from swarmmesh.testbed import docker_clean
from swarmmesh.testbed.docker_swarm import DockerSwarm
from swarmmesh.testbed.testbed import Testbed

from .conftest import PY, REPO, http

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
                                  # timeout: the probe (docker exec of python) takes
                                  # over 2 s under TCG: with 2 s every check failed there
                                  "healthcheck": {"test": ["CMD", "true"], "interval": "2s",
                                                  "timeout": "15s", "retries": 3}}},
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
        assert [e.event for e in swarm.events] == ["container killed", "settled"]
    assert _docker_left([state, data]) == []
    assert not data.exists() and not state.exists()
    assert docker_clean.IP_FORWARD.read_text() == forward_before
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{docker_clean.cgroup_prefix(state)}*"))


def _running_ids(swarm) -> set[str]:
    return {t.id for t in swarm.tasks() if t.desired == "running"}


@needs_docker
def test_drain_a_start_first_update_and_an_app_kill_on_real_swarm(tmp_path):
    """Runs here too (no ip_vs); left out of the guest's list (each step is a convergence,
    ~40 s under TCG). Drain moves a node's tasks away; a start-first update replaces every
    task (Swarm's spec says start-first); the app killed inside its container (the task
    server closes its sockets, the health check fails) gets its task replaced by Swarm."""
    stack = {"services": {"app": {"deploy": {"replicas": 2}, "networks": ["front"],
                                  "healthcheck": {"test": ["CMD", "true"], "interval": "2s",
                                                  "timeout": "15s", "retries": 3}}},
             "networks": {"front": {"driver": "overlay"}}}
    with Testbed(Cluster.from_stack(stack, nodes=3, clients=0), tmp_path, engine="docker",
                 require_ipvs=False, ready_timeout=300) as tb:
        swarm = DockerSwarm(tb)
        _drain_update_and_app_kill(tb, swarm)
        assert [e.event for e in swarm.events] == [
            "node update", "settled", "node update", "update", "settled", "task killed",
            "settled"]


def _drain_update_and_app_kill(tb, swarm) -> None:
    busy = tb.cluster.task("app.1").node
    swarm.node_drain(busy)
    swarm.settle(timeout=240)
    assert all(t.node != busy for t in tb.cluster.tasks), tb.cluster.tasks
    swarm.node_activate(busy)
    before = _running_ids(swarm)
    swarm.update("app", order="start-first")
    deadline = time.monotonic() + 240
    while _running_ids(swarm) & before and time.monotonic() < deadline:
        time.sleep(1)
    swarm.settle(timeout=240)
    assert not _running_ids(swarm) & before
    assert tb.docker(tb.manager, "service", "inspect", "--format",
                     "{{.Spec.UpdateConfig.Order}}", "app").strip() == "start-first"
    before = _running_ids(swarm)
    swarm.kill_task("app.2", how="hang")
    deadline = time.monotonic() + 240
    while _running_ids(swarm) == before and time.monotonic() < deadline:
        time.sleep(1)
    swarm.settle(timeout=240)
    after = _running_ids(swarm)
    assert len(after) == 2 and len(after - before) == 1, (before, after)


UNPUBLISHED = ("from swarmmesh.model import Cluster; from swarmmesh.testbed.testbed import Testbed; "
               "import sys, time; from swarmmesh.testbed import docker_clean as d; "
               "c = Cluster.from_stack({'services': {'app': {'deploy': {'replicas': 2}, "
               "'networks': ['front']}}, 'networks': {'front': {}}}, nodes=2); "
               "tb = Testbed(c, sys.argv[1], engine='docker', require_ipvs=False).__enter__(); "
               "print('ready', tb.state.dir, d.data_root(tb.state.dir), flush=True); "
               "time.sleep(600)")


@needs_docker
def test_swarmmesh_clean_after_sigkill_stops_every_daemon_and_removes_the_data(tmp_path):
    """A run killed with SIGKILL leaves dockerd, containerd, shims and containers running;
    ``swarmmesh clean`` (what `make clean` runs) takes them and the data roots away."""
    forward_before = docker_clean.IP_FORWARD.read_text()
    proc = subprocess.Popen([PY, "-c", UNPUBLISHED, str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        raise AssertionError(f"the swarm did not start: {line}{proc.stderr.read()[-2000:]}")
    state, data = map(Path, line.split()[1:3])
    proc.kill()
    proc.communicate(timeout=30)
    left = _docker_left([state, data])
    assert any("containerd-shim" in p for p in left) and any("dockerd" in p for p in left)
    r = subprocess.run([PY, "-m", "swarmmesh.testbed.runtime"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "(docker engine)" in r.stdout and f"data {data}" in r.stdout
    assert _docker_left([state, data]) == []
    assert not data.exists() and not state.exists()
    assert docker_clean.IP_FORWARD.read_text() == forward_before


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


@needs_mesh
def test_a_node_cut_off_has_its_tasks_rescheduled_and_the_others_reach_them(mesh):
    """node3's underlay link goes down: Swarm marks it down, starts its tasks on node1 and
    node2, and both nodes' rotations reach every running task again."""
    tb, swarm = mesh
    lost = [t.name for t in tb.cluster.tasks if t.node == "node3"]
    t0 = time.monotonic()
    swarm.node_down("node3")
    try:
        deadline = t0 + 120
        while time.monotonic() < deadline:
            tb.read_back()
            if all(t.node != "node3" for t in tb.cluster.tasks) and \
                    len(tb.cluster.tasks_of("app")) == 3:
                break
            time.sleep(1)
        moved = time.monotonic() - t0
        print(f"node3 down: its tasks {lost} running elsewhere {moved:.1f} s after the cut")
        assert all(t.node != "node3" for t in tb.cluster.tasks), tb.cluster.tasks
        tasks = {t.name for t in tb.cluster.tasks_of("app")}
        for n in ("node1", "node2"):
            end = time.monotonic() + 20
            while True:
                seq = [a["body"]["task"] for a in picks(tb, n, 6) if a["ok"]]
                if set(seq) == tasks or time.monotonic() > end:
                    break
            assert set(seq) == tasks, (n, seq)
    finally:
        swarm.node_up("node3")
