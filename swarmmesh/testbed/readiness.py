"""The testbed's waits at the end of a build, each until the build's deadline: every task
server listens, the controller has programmed every node, every node's embedded DNS
serves its tasks.  A node whose own process says why it cannot (its vswitchd's first ERR
line, its DNS's traceback) fails the build at once; one that runs out of time fails it with
what its log says (:mod:`swarmmesh.testbed.bounds`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from swarmmesh.testbed.bounds import BuildFailure, log_cause, no_answer, ovs_failure
from swarmmesh.testbed.shellbound import proc_state

POLL_S = 0.05
LOG_EVERY_S = 0.5          # how often the nodes' own logs are read while waiting


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def wait_task_servers(tb) -> None:
    """Every task server started during the build listens (they start in parallel:
    each host's config starts its server, this waits for them all, each until the run's
    deadline: ``SwarmTask.wait_ready``)."""
    from swarmmesh.testbed.hosts import SwarmTask
    for host in tb.net.hosts:
        if isinstance(host, SwarmTask) and host.server is not None:
            host.wait_ready()


def _local(tb, node: str) -> bool:
    return not getattr(tb.net.get(node), "remote", False)


def vswitchd_log(tb, node: str) -> str:
    return read_text(tb.state.dir / node / "ovs" / "ovs-vswitchd.log")


def programmed(tb) -> set[str]:
    ready = tb.state.dir / "ctl" / "ready"
    return {p.name for p in ready.iterdir()} if ready.exists() else set()


def wait_programmed(tb, deadline: float) -> None:
    """Until the controller has programmed every node's bridge."""
    want = {n.name for n in tb.cluster.nodes}
    started = last_look = time.monotonic()
    while True:
        late = sorted(want - programmed(tb))
        if not late:
            return
        if tb.controller.poll() is not None:
            raise BuildFailure("controller", "programming the nodes",
                               no_answer("controller", 0, log_cause(_controller_err(tb)),
                                         None, tb.controller.returncode))
        now = time.monotonic()
        if now - last_look >= LOG_EVERY_S:
            last_look = now
            for node in (n for n in late if _local(tb, n)):
                failure = ovs_failure(vswitchd_log(tb, node))
                if failure:
                    raise BuildFailure(node, "programming (ovs-vswitchd)", failure)
        if now > deadline:
            node = late[0]
            raise BuildFailure(node, "programming",
                               _not_programmed(tb, node, now - started, len(late)))
        time.sleep(POLL_S)


def _controller_err(tb) -> str:
    return read_text(tb.run_dir / "controller.err") + read_text(tb.run_dir / "controller.log")


def _not_programmed(tb, node: str, waited: float, late: int) -> str:
    own = log_cause(vswitchd_log(tb, node)) if _local(tb, node) else None
    about = [l for l in read_text(tb.run_dir / "controller.log").splitlines()
             if f"{node}:" in l or f"{node} " in l]
    text = (f"not programmed after {waited:.0f}s"
            + (f" ({late - 1} more nodes too)" if late > 1 else "")
            + (f"; its ovs-vswitchd.log: {own}" if own else
               "; nothing wrong in its ovs-vswitchd.log"))
    return text + (f"; controller.log: {about[-1].strip()}" if about else
                   "; the controller never saw it connect")


def dns_serves(tb, node: str) -> set[str]:
    try:
        return set(json.loads(read_text(tb.state.dir / "dns" / f"{node}.json"))["tasks"])
    except (ValueError, KeyError, TypeError):
        return set()


def wait_dns(tb, deadline: float) -> None:
    """Until every node's embedded DNS serves all of its tasks."""
    from swarmmesh.dataplane.nodeplan import is_built
    started = time.monotonic()
    while True:
        remote = tb.servers.dns_ready() if tb.servers is not None else {}
        late = []
        for node in tb.cluster.nodes:
            want = {t.host for t in tb.cluster.tasks_on(node.name) if is_built(t, tb.cluster)}
            have = set(remote[node.name]) if node.name in remote else dns_serves(tb, node.name)
            if want - have:
                late.append(node.name)
        if not late:
            return
        for node in (n for n in late if _local(tb, n)):
            proc = getattr(tb.net.get(node), "dns", None)
            if proc is not None and proc.poll() is not None:
                raise BuildFailure(node, "embedded DNS", _dns_cause(tb, node, 0, proc))
        if time.monotonic() > deadline:
            node = late[0]
            proc = getattr(tb.net.get(node), "dns", None) if _local(tb, node) else None
            raise BuildFailure(node, "embedded DNS",
                               _dns_cause(tb, node, time.monotonic() - started, proc))
        time.sleep(POLL_S)


def _dns_cause(tb, node: str, waited: float, proc) -> str:
    log = read_text(tb.state.dir / node / "dns.log")
    state = proc_state(proc.pid) if proc is not None and proc.poll() is None else None
    code = proc.returncode if proc is not None and proc.poll() is not None else None
    return no_answer("embedded DNS", waited, log_cause(log), state, code)
