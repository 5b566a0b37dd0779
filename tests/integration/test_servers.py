"""A cluster spread over two servers on one machine (issue 15): the second server is a
network namespace with its own sshd (``testbed.nsserver``), reached over ssh; nodes 3 and 4
live there (Mininet's cluster edition: their shells and processes over ssh), the two
underlay bridges joined by a VXLAN tunnel.  The same cluster over a gretap tunnel (the
cluster edition's ``RemoteGRELink`` kind) runs on a server of its own where the kernel
makes a gretap device (the ``make vm-test`` guest); it is skipped, with servers_check's
probe as the reason, where it cannot (this machine: no ``ip_gre``).

What the two servers share and what not: the server's sshd runs in a mount namespace of
its own with a private tmpfs over the state root (``/run/swarmmesh``), so a run's state
folder there (model, records, node folders, OVS run folders and pidfiles, nft scripts,
resolv.conf files) is its own, and a file written on one side is not seen on the other.
The rest of the file system (the checkout, the venv) is shared, as the requirements ask of
real servers (the same code at the same path).  The **PID space is shared** (one kernel):
a remote process's PID is visible here, and nothing here checks that the code never
signals one from this side; the code reads a remote pidfile and signals a remote process
only on its server (its shell or an ssh session), and records it only there."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from swarmmesh.dataplane import servers as sv
from swarmmesh.lifecycle.orchestrator import Orchestrator
from swarmmesh.machine import servers_check
from swarmmesh.model import Cluster
from swarmmesh.testbed.nsserver import NamespaceServer
from swarmmesh.testbed.servers import Spread
from swarmmesh.testbed.testbed import Testbed

from .conftest import PY, REPO, http


def _plan(cluster, ns, tunnel="vxlan"):
    return sv.plan(cluster, [{"name": "localhost", "address": ns.local_address},
                             {"name": ns.name, "address": ns.address, "port": ns.port}],
                   tunnel=tunnel, ssh_options=ns.ssh_options())


@pytest.fixture(scope="module")
def ns():
    server = NamespaceServer().start()
    yield server
    server.stop()


@contextmanager
def _spread_on(ns, tmp_path_factory, tunnel: str):
    """4 nodes x 3 replicas, nodes 3 and 4 on ``ns``, the underlays joined by ``tunnel``;
    afterwards nothing of the run is left on either server."""
    cluster = Cluster.quick(nodes=4, replicas=3)
    tb = Testbed(cluster, tmp_path_factory.mktemp("run"),
                 servers=Spread(_plan(cluster, ns, tunnel)))
    tb.__enter__()
    state = tb.state.dir
    yield tb
    tb.__exit__(None, None, None)
    assert not _ours(state), _ours(state)
    assert not _children(ns.proc.pid), _children(ns.proc.pid)
    assert _there(ns, "test", "-e", str(state)).returncode == 1     # its state there too


@pytest.fixture(scope="module")
def spread(ns, tmp_path_factory):
    with _spread_on(ns, tmp_path_factory, "vxlan") as tb:
        yield tb


@pytest.fixture(scope="module")
def gretap(tmp_path_factory):
    """The same cluster over a gretap tunnel, on a server of its own; skipped where this
    kernel makes no gretap device, in the words of the servers' own check (its probe makes
    one for real in a scratch namespace)."""
    item = servers_check.decide(servers_check.probe(None, clock_samples=0), {},
                                tunnel="gretap")[0]
    if not item.ok:
        pytest.skip(f"this kernel makes no gretap device (servers_check's probe: "
                    f"kernel_gretap={item.detail}; ip_gre missing); it runs in the make "
                    "vm-test guest")
    server = NamespaceServer().start()
    try:
        with _spread_on(server, tmp_path_factory, "gretap") as tb:
            yield tb, server
    finally:
        server.stop()


def _there(ns, *argv: str) -> subprocess.CompletedProcess:
    """A command in the server's own mount namespace (its view of the run state)."""
    return subprocess.run(["nsenter", "-t", str(ns.proc.pid), "-m", *argv],
                          capture_output=True, text=True)


def _ours(state: Path) -> list[str]:
    """Processes whose command line names this run's state folder (on either server)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(state) in line and "ps -eo" not in line]


def _children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return out.split("\n")[:-1]


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(next(l for l in status.splitlines() if l.startswith("PPid:")).split()[1])
        chain.append(pid)
    return chain


def test_nodes_placed_on_the_server_run_under_its_sshd(spread, ns):
    where = spread.servers.plan.placement
    assert [n for n, s in where.items() if s == ns.name] == ["node3", "node4"]
    for name in ("node3", "node4", "underlay1", "app.3" and spread.cluster.tasks[2].host):
        assert ns.proc.pid in _ancestors(spread.host(name).pid), name
    for name in ("node1", "node2", "underlay", "c1"):
        assert ns.proc.pid not in _ancestors(spread.host(name).pid), name


def _assert_exact_split(tb) -> dict[str, str]:
    """Every node, here or there, answers 12 new connections 4/4/4 over the three tasks;
    node -> its split ("4/4/4")."""
    out = {}
    for node in tb.cluster.nodes:
        answers = http(tb, "c1", str(node.underlay_ip), 8000, count=12)
        assert all(a["ok"] for a in answers), (node.name, answers)
        tasks = [a["body"]["task"] for a in answers]
        assert {t: tasks.count(t) for t in set(tasks)} == {"app.1": 4, "app.2": 4,
                                                           "app.3": 4}, node.name
        out[node.name] = "/".join(str(tasks.count(t)) for t in ("app.1", "app.2", "app.3"))
    return out


def _captured(tb, ns, outer_filter: list[str], action, verbose: bool = False):
    """``action()`` while two captures run: Swarm's VXLAN on the tunnel device (in the first
    server's underlay host) and ``outer_filter`` on the servers' link; (inner text, outer
    text, what ``action`` returned)."""
    inner = tb.host("underlay").popen(
        ["tcpdump", "--immediate-mode", "-l", "-n", "-i", "tun-s1", "udp", "port", "4789"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outer = subprocess.Popen(["tcpdump", "--immediate-mode", "-l", "-n",
                              *(["-v"] if verbose else []), "-i", ns.intf, *outer_filter],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tb.state.register(inner.pid, "tcpdump")
    tb.state.register(outer.pid, "tcpdump")
    try:
        for cap in (inner, outer):       # capturing once it says so (a fixed wait may
            said = ""                     # be too short under emulation)
            while "listening on" not in said:
                line = cap.stderr.readline()
                assert line, f"tcpdump did not start: {said}"
                said += line
        result = action()
        time.sleep(0.3)
    finally:
        for cap in (inner, outer):
            cap.terminate()
    return inner.communicate(timeout=5)[0], outer.communicate(timeout=5)[0], result


def _through_node4(tb, count: int = 3) -> list[dict]:
    return http(tb, "c1", str(tb.cluster.node("node4").underlay_ip), 8000, count=count)


def _swarm_vxlan_lines(text: str) -> list[str]:
    """Lines of Swarm's ingress overlay (VNI 4096) between the nodes' underlay addresses."""
    return [line for line in text.splitlines() if "vni 4096" in line]


def test_every_node_answers_with_the_exact_split(spread):
    _assert_exact_split(spread)


def test_vxlan_crosses_the_tunnel_inside_the_servers_vxlan(spread, ns):
    inner_out, outer_out, answers = _captured(spread, ns, ["udp", "port", "4789"],
                                              lambda: _through_node4(spread))
    assert all(a["ok"] for a in answers)
    # Swarm's ingress overlay (VNI 4096) between the nodes' underlay addresses, on the tunnel
    assert len(_swarm_vxlan_lines(inner_out)) >= 3 * 5, inner_out[-1500:]
    # ... and the tunnel's own VXLAN between the servers' addresses, around it
    assert any(f"{ns.local_address}" in l and "vni 4096" not in l and "VXLAN" in l
               for l in outer_out.splitlines()), \
        outer_out[-1500:]


def _assert_mtus(tb, underlay: int, overlay: int) -> None:
    """The plan's MTUs, and the legs set to them: both ends of the tunnel, a remote node's
    underlay and overlay legs, its task's leg."""
    mtu = tb.servers.plan.mtu
    assert (mtu.underlay, mtu.overlay) == (underlay, overlay), mtu.explain()

    def mtu_of(host, intf):
        return int(tb.host(host).cmd(f"cat /sys/class/net/{intf}/mtu").strip())
    assert mtu_of("node3", "node3-eth0") == mtu.underlay
    assert mtu_of("underlay1", "tun-s0") == mtu.underlay
    assert mtu_of("underlay", "tun-s1") == mtu.underlay
    assert mtu_of("node3", "vx-ingress") == mtu.overlay
    task = tb.cluster.tasks_on("node3")[0]
    assert mtu_of(task.host, f"{task.host}-eth0") == mtu.overlay


def _assert_full_frames_cross(tb, ns, outer_filter: list[str]) -> dict[str, object]:
    """A frame of the underlay's full MTU crosses the tunnel whole: pings of exactly that
    size with DF set, c1 (here) to node3 (there) and back, are packets of exactly the
    servers' path MTU on their link, none fragmented.  And 64 KB requests through node4
    (there) reach the three tasks (two of them here): TCP at the overlay's MSS (the task
    leg's MTU), inside Swarm's VXLAN inside the tunnel.  Returns what was measured."""
    mtu = tb.servers.plan.mtu
    size = mtu.underlay - 28                            # IPv4 20 + ICMP 8
    node3 = tb.cluster.node("node3").underlay_ip
    _inner, outer, ping = _captured(tb, ns, outer_filter, lambda: tb.host("c1").cmd(
        f"ping -n -M do -c 3 -i 0.2 -W 2 -s {size} {node3}"), verbose=True)
    assert " 0% packet loss" in ping, ping
    heads = [line for line in outer.splitlines() if line[:1].isdigit()]   # outer IP headers
    lengths = [int(m) for m in re.findall(r"length (\d+)\)", "\n".join(heads))]
    assert lengths.count(mtu.path) >= 2 * 3 and max(lengths) == mtu.path, (lengths, outer[-2000:])
    frag = re.findall(r"offset (\d+), flags \[([^\]]*)\]", "\n".join(heads))
    assert frag and all(off == "0" and "+" not in flags for off, flags in frag), frag

    node4 = tb.cluster.node("node4").underlay_ip
    body = tb.run_dir / "body-64k"                     # c1 is on this server: its files
    body.write_bytes(bytes(65536))
    out = "".join(tb.host("c1").cmd(
        f"curl -sS -m 10 -H 'Expect:' -X GET --data-binary @{body} "
        f"-w '\\n%{{http_code}} %{{size_upload}}\\n' http://{node4}:8000/") for _ in range(3))
    done = [line for line in out.splitlines() if line.startswith("200 ")]
    assert done == ["200 65536"] * 3, out
    tasks = {json.loads(line)["task"] for line in out.splitlines() if line.startswith("{")}
    assert tasks == {"app.1", "app.2", "app.3"}, out
    return {"ping_payload": size, "outer_max_length": max(lengths),
            "outer_full_size_packets": lengths.count(mtu.path), "outer_unfragmented": len(frag),
            "requests_64k_ok": len(done)}


def test_mtus_follow_the_plan(spread, ns):
    _assert_mtus(spread, 1450, 1400)                   # a 1500 path, VXLAN tunnel
    _assert_full_frames_cross(spread, ns, ["udp", "port", "4789"])


def test_gretap_carries_swarms_vxlan_and_every_node_answers_exactly(gretap, record_property):
    """The underlays joined by a gretap (key per run) instead: every node answers with the
    exact split, and Swarm's VXLAN crosses inside GRE (one key) on the servers' link."""
    tb, ns = gretap
    assert [t.kind for t in tb.servers.plan.tunnels] == ["gretap"]
    for node, split in _assert_exact_split(tb).items():
        record_property(f"split_{node}", split)
    inner_out, outer_out, answers = _captured(tb, ns, ["ip", "proto", "47"],
                                              lambda: _through_node4(tb))
    assert all(a["ok"] for a in answers), answers
    assert len(_swarm_vxlan_lines(inner_out)) >= 3 * 5, inner_out[-1500:]
    gre = [line for line in outer_out.splitlines() if "GREv0, key=" in line]
    assert len(_swarm_vxlan_lines("\n".join(gre))) >= 3 * 5, outer_out[-1500:]
    assert all(f"{ns.local_address} > {ns.address}" in line or
               f"{ns.address} > {ns.local_address}" in line for line in gre), gre[:5]
    keys = set(re.findall(r"key=(0x[0-9a-f]+)", "\n".join(gre)))
    assert len(keys) == 1, gre[:5]
    record_property("swarm_vxlan_on_tunnel_device", len(_swarm_vxlan_lines(inner_out)))
    record_property("swarm_vxlan_inside_gre", len(_swarm_vxlan_lines("\n".join(gre))))
    record_property("gre_key", keys.pop())


def test_gretap_mtus_follow_the_plan_and_full_frames_cross(gretap, record_property):
    """gretap with a key adds 42 bytes: on a 1500 path the underlay is 1458, the overlay
    1408, and a frame of either's full size crosses whole."""
    tb, ns = gretap
    _assert_mtus(tb, 1458, 1408)
    for k, v in _assert_full_frames_cross(tb, ns, ["ip", "proto", "47"]).items():
        record_property(k, v)


def test_the_servers_processes_are_recorded_there(spread, ns):
    state = spread.state.dir
    rec = _there(ns, "cat", str(state / "pids")).stdout
    for marker in ("mininet:node3", "mininet:underlay1", "swarmmesh.agents.taskserver",
                   "swarmmesh.agents.dns", "swarmmesh.control.server_relay",
                   "ovs-vswitchd", "ovsdb-server"):
        assert marker in rec, rec
    here = (state / "pids").read_text()
    assert "mininet:node3" not in here and "ovs-vswitchd" in here  # node1's, not node3's
    owner = int(_there(ns, "cat", str(state / "owner")).stdout)
    assert "server_relay" in Path(f"/proc/{owner}/cmdline").read_text()


def test_the_servers_state_folder_is_its_own(spread, ns):
    state = spread.state.dir
    assert not (state / "node3" / "ovs").exists()              # not here ...
    for path in ("node3/ovs/ovs-vswitchd.pid", "node3/fdb.batch", "node3/nft.conf",
                 "dns/node3.json", f"node3/{spread.cluster.tasks_on('node3')[0].host}"
                 ".resolv.conf"):
        assert _there(ns, "test", "-s", str(state / path)).returncode == 0, path  # ... there
    assert _there(ns, "test", "-e", str(state / "node1")).returncode != 0
    assert _there(ns, "readlink", str(state / "node3/ovs/controller.sock")).stdout.strip() \
        == str(state / spread.servers.plan.relays[ns.name])
    assert json.loads(_there(ns, "cat", str(state / "model.json")).stdout) == \
        json.loads((state / "model.json").read_text())
    # vswitchd's pidfile read there: appctl and a conntrack flush work on a remote node
    assert "ovs-vswitchd" in spread.host("node3").appctl("version")
    spread.host("node3").flush_conntrack(["10.0.0.99"])


def test_node_down_on_the_server_moves_its_task_to_the_other_remote_node(spread, ns):
    """node3 (remote) loses power; its task is rescheduled onto node4 (remote too: built
    at run time there), every live node answers with the exact split, and the removed
    task's processes are gone from the server."""
    tb = spread
    lost = tb.cluster.tasks_on("node3")
    assert len(lost) == 1
    old = tb.host(lost[0].host)
    procs = tb.state.dir / "procs"
    old_pids = [int(p) for p in
                _there(ns, "sh", "-c", f"cat {procs}/{old.name}.*.pid").stdout.split()]
    assert old_pids
    with Orchestrator(tb, profile="fast") as orch:
        orch.node_down("node3")
        orch.settle()
        deadline = time.monotonic() + 30
        while any(t.state != "running" for t in tb.cluster.tasks) or orch.busy:
            assert time.monotonic() < deadline, [(t.name, t.state) for t in tb.cluster.tasks]
            time.sleep(0.05)
        new = [t for t in tb.cluster.tasks_on("node4")]
        assert len(new) == 1 and tb.host(new[0].host).remote
        names = sorted(t.name for t in tb.cluster.tasks_of("app"))
        for node in ("node1", "node2", "node4"):
            answers = http(tb, "c1", str(tb.cluster.node(node).underlay_ip), 8000, count=6)
            tasks = [a["body"]["task"] if a["ok"] else "FAILED" for a in answers]
            assert sorted(set(tasks)) == names and all(tasks.count(n) == 2 for n in names), \
                (node, tasks)
        for pid in old_pids:
            assert not os.path.exists(f"/proc/{pid}"), pid

        # the application of the task on node4 dies (kill_app's SIGUSR2, sent there)
        task, host = new[0], tb.host(new[0].host)
        assert "task" in host.cmd("curl -s -m 2 http://127.0.0.1:80/")
        orch.kill_task(task.name, how="hang")
        time.sleep(0.5)
        assert host.cmd("curl -s -m 2 -o /dev/null -w '%{http_code}' "
                        "http://127.0.0.1:80/").strip() in ("000", "")
        assert host.server.poll() is None          # hung, not dead


RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from swarmmesh.dataplane import servers as sv
    from swarmmesh.model import Cluster
    from swarmmesh.testbed.servers import Spread
    from swarmmesh.testbed.testbed import Testbed
    c = Cluster.quick(nodes=2, replicas=2)
    plan = sv.plan(c, [{{"name": "localhost", "address": "{local}"}},
                       {{"name": "{name}", "address": "{addr}", "port": {port}}}],
                   tunnel="vxlan", ssh_options={opts!r})
    with Testbed(c, Path(sys.argv[1]), servers=Spread(plan)) as tb:
        print("up", tb.state.dir, flush=True)
        time.sleep(600)
""")


@pytest.fixture
def ns_alone():
    """A server of its own (the module's testbed keeps its sessions on ``ns``)."""
    server = NamespaceServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_and_kill_then_clean_leave_nothing_on_either_server(ns_alone, tmp_path, sig):
    ns = ns_alone
    script = RUN.format(local=ns.local_address, name=ns.name, addr=ns.address, port=ns.port,
                        opts=ns.ssh_options())
    proc = subprocess.Popen([PY, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    line = proc.stdout.readline()
    assert line.startswith("up"), line
    state = Path(line.split()[1])
    assert _children(ns.proc.pid) and _ours(state)
    assert _there(ns, "test", "-s", str(state / "pids")).returncode == 0
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if sig == signal.SIGKILL:
        assert _ours(state)                       # a killed run leaves its processes ...
        out = subprocess.run([PY, "-m", "swarmmesh.testbed.runtime"], capture_output=True,
                             text=True, timeout=120).stdout
        assert f"{ns.name}: process" in out, out  # ... which the server cleans by its record
    time.sleep(0.5)
    assert not _ours(state), _ours(state)
    assert not _children(ns.proc.pid), _children(ns.proc.pid)
    assert not state.exists()
    assert _there(ns, "test", "-e", str(state)).returncode == 1     # nor there
    assert not os.path.exists(os.path.expanduser("~/.ssh/mn"))


def test_swarmmesh_cli_across_two_servers(ns_alone, tmp_path):
    """``swarmmesh cli --servers-file``: node2 on the server; a task scaled up at run time
    lands there too (built over ssh), ``exit`` leaves nothing on either side."""
    ns = ns_alone
    servers = tmp_path / "servers.yml"
    servers.write_text(json.dumps({            # JSON is YAML
        "tunnel": "vxlan", "ssh_options": ns.ssh_options(),
        "servers": [{"name": "localhost", "address": ns.local_address},
                    {"name": ns.name, "address": ns.address, "port": ns.port}]}))
    proc = subprocess.Popen([PY, "-m", "swarmmesh.ui.cli", "cli", "--nodes", "2", "--replicas",
                             "1", "--profile", "fast", "--servers-file", str(servers),
                             "--out", str(tmp_path / "out")],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate("service scale app=2\nwait\nservice ls\n"
                                + "c1 curl -s -m 3 192.168.99.2:8000/\n" * 2
                                + "service ps app\nexit\n",
                                timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert f"servers: localhost: c1, node1; {ns.name}: node2" in err, err[-3000:]
    assert "app    replicated   2/2" in out, (out, err[-3000:])
    assert any(l.split()[:4] == ["t2", "app.2", "1", "node2"]
               for l in out.splitlines()), out           # scaled up, built on the server
    assert '"task": "app.1"' in out and '"task": "app.2"' in out, out   # via node2, both
    assert not _children(ns.proc.pid), _children(ns.proc.pid)
    assert _there(ns, "sh", "-c", "ls /run/swarmmesh | grep ^run-").stdout == ""


def test_a_clients_result_files_come_back_from_the_server(ns_alone, tmp_path):
    """c1 on the server: what its agents write (a lifecycle experiment's load-generator CSV,
    ab's percentiles) goes to the run's state folder *there*, a tmpfs this side does not
    see, and comes back into the run folder here, where the experiment reads it; a file
    left behind by a run stopped by Ctrl-C comes back at teardown; one never written is an
    error naming the server and the file."""
    from swarmmesh.runs import timeline
    from swarmmesh.runs.runfolder import read_csv
    from swarmmesh.testbed.servers import SpreadError
    from swarmmesh.traffic import tools
    ns = ns_alone
    cluster = Cluster.quick(nodes=2, replicas=2)
    plan = sv.plan(cluster, [{"name": "localhost", "address": ns.local_address},
                             {"name": ns.name, "address": ns.address, "port": ns.port}],
                   tunnel="vxlan", ssh_options=ns.ssh_options(), place_explicit={"c1": ns.name})
    run = tmp_path / "run"
    written = {}

    def script(orch, at):                    # while the generator runs: where it writes
        at(1.0)
        (local, rf), = orch.tb.servers.results.items()
        written.update(local=local, remote=rf.remote, server=rf.server)
        assert _there(ns, "test", "-f", rf.remote).returncode == 0        # there ...
        assert not Path(rf.remote).exists() and not Path(local).exists()  # ... not here

    with pytest.raises(KeyboardInterrupt):
        with Testbed(cluster, run, servers=Spread(plan)) as tb:
            assert tb.host("c1").remote and ns.proc.pid in _ancestors(tb.host("c1").pid)
            # the experiment's own driver: it reads the generator's CSV back here
            res = timeline.run_variant(tb, run, "fast", "fast", rate=50, duration=2.0,
                                       script=script, settle=10)
            assert written["server"] == ns.name
            assert written["remote"].startswith(f"{tb.state.dir}/results/c1.")
            assert written["local"] == str(run / ".timeline-fast.csv")
            assert len(res["rows"]) == res["load"]["requests"] == 100, res["load"]
            assert all(r["ok"] == "True" for r in res["rows"]), res["rows"][:3]
            assert {r["ingress_node"] for r in res["rows"]} == {"node1", "node2"}

            # ab's percentiles: 101 rows from its -e CSV (its text table has 9)
            ab = tools.ab(tb.host("c1"), "http://192.168.99.2:8000/", 50)
            assert ab.data["complete"] == 50 and len(ab.data["percentiles_ms"]) == 101, ab.data

            # never written: the error names the server and the file
            tb.servers.result_path(tb.host("c1"), run / "never.csv")
            with pytest.raises(SpreadError, match=rf"^{ns.name}: c1's result file "
                               rf"{tb.state.dir}/results/c1\.\d+\.never\.csv \(for "
                               rf"{run}/never\.csv\) did not come back"):
                tb.servers.fetch_results()

            # a run stopped while the generator writes: its CSV comes back at teardown
            left = run / "left.csv"
            load = timeline.Load(tb, left, rate=50, duration=60, t0=time.monotonic() + 0.3)
            load.start()
            time.sleep(2.0)
            try:
                raise KeyboardInterrupt
            finally:
                load.stop()
    # the rows of the requests sent before the interrupt (those after it may meet the
    # teardown: nodes stop before the file is fetched)
    rows = [r for r in read_csv(left) if float(r["t_send"]) < 1.5]
    assert len(rows) >= 60 and all(r["ok"] == "True" for r in rows), rows
    assert not _children(ns.proc.pid), _children(ns.proc.pid)
