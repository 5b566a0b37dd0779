"""Internal load balancing on a real network: user overlay networks, service
VIPs, the embedded DNS at 127.0.0.11, dnsrr, isolation between networks.

3 nodes; networks ``front`` and ``back``::

    web     3 replicas  front          (vip)
    client  3 replicas  front          (one per node)
    db      2 replicas  back           (dnsrr)
    api     1 replica   front + back   (vip), publishes 8000:80
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections import Counter

import pytest

from swarmmesh.model import Cluster
from tests.stacks import EASTWEST as STACK

from .conftest import PY, REPO


@pytest.fixture(scope="module")
def tb(testbed_factory):
    return testbed_factory(Cluster.from_stack(STACK, nodes=3))


def host_of(tb, service: str, i: int = 0):
    return tb.host(tb.cluster.tasks_of(service)[i].host)


def addrs(tb, service: str, net: str) -> set[str]:
    return {str(t.addresses[net]) for t in tb.cluster.tasks_of(service)}


def getent(h, name: str) -> list[str]:
    out = h.cmd(f"getent ahostsv4 {name} | awk '{{print $1}}' | sort -u")
    return out.split()


def dig(h, name: str) -> tuple[str, list[str]]:
    out = h.cmd(f"dig +time=2 +tries=1 {name} A")
    status = out.split("status: ", 1)[1].split(",", 1)[0] if "status: " in out else out
    answers = [line.split()[-1] for line in out.splitlines()
               if line and not line.startswith(";") and "\tA\t" in line.replace(" ", "\t")]
    return status, answers


def py_resolve(tb, host: str, name: str) -> list[str]:
    out = tb.run_in(host, ["-c", "import socket,sys,json; print(json.dumps(sorted({i[4][0] for i "
                               "in socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)})))", name])
    return json.loads(out)


def test_service_name_resolves_to_its_vip_with_every_tool(tb):
    vip = str(tb.cluster.service("web").vips["front"])
    client = host_of(tb, "client")
    assert getent(client, "web") == [vip]
    assert dig(client, "web") == ("NOERROR", [vip])
    assert py_resolve(tb, client.name, "web") == [vip]
    assert client.cmd("nslookup web 2>&1 | tail -3").count(vip) == 1


def test_tasks_name_resolves_to_every_task(tb):
    client = host_of(tb, "client")
    want = addrs(tb, "web", "front")
    assert set(getent(client, "tasks.web")) == want
    status, answers = dig(client, "tasks.web")
    assert status == "NOERROR" and sorted(answers) == sorted(want)


def test_dnsrr_service_resolves_to_task_addresses_shuffled(tb):
    api = host_of(tb, "api")
    want = addrs(tb, "db", "back")
    orders = set()
    for _ in range(12):
        status, answers = dig(api, "db")
        assert status == "NOERROR" and sorted(answers) == sorted(want)
        orders.add(tuple(answers))
    assert len(orders) == 2          # both orders of 2 addresses (p of failing: 2 * 0.5**12)


def test_names_are_scoped_by_network(tb):
    client = host_of(tb, "client")          # front only; db lives on back only
    assert dig(client, "db") == ("NXDOMAIN", [])
    assert dig(client, "tasks.db") == ("NXDOMAIN", [])
    assert getent(client, "db") == []
    api = host_of(tb, "api")                # on both: sees both
    assert dig(api, "db")[0] == "NOERROR" and dig(api, "web")[0] == "NOERROR"


def test_unknown_name_is_nxdomain(tb):
    client = host_of(tb, "client")
    assert dig(client, "no-such-service") == ("NXDOMAIN", [])
    assert dig(client, "tasks.no-such-service") == ("NXDOMAIN", [])
    with pytest.raises(Exception):
        py_resolve(tb, client.name, "no-such-service")


def test_vip_requests_split_exactly_round_robin_from_each_client(tb):
    web = {t.name for t in tb.cluster.tasks_of("web")}
    for i, task in enumerate(tb.cluster.tasks_of("client")):
        out = tb.run_in(task.host, ["-m", "swarmmesh.agents.nameclient", "web", "80", "--count", "12"])
        recs = [json.loads(line) for line in out.splitlines()]
        assert all(r["ok"] for r in recs), recs
        vip = str(tb.cluster.service("web").vips["front"])
        assert {r["used"] for r in recs} == {vip}
        got = Counter(r["body"]["task"] for r in recs)
        assert got == {name: 4 for name in web}, (task.node, got)
        lb_ip = str(tb.cluster.node(task.node).lb_ips["front"])
        assert {r["body"]["client"] for r in recs} == {lb_ip}      # SNAT to the node's LB


def test_dnsrr_requests_go_straight_to_tasks(tb):
    out = tb.run_in(host_of(tb, "api").name,
                    ["-m", "swarmmesh.agents.nameclient", "db", "80", "--count", "20"])
    recs = [json.loads(line) for line in out.splitlines()]
    assert all(r["ok"] for r in recs)
    assert {r["used"] for r in recs} <= addrs(tb, "db", "back")
    api_addr = str(tb.cluster.tasks_of("api")[0].addresses["back"])
    assert {r["body"]["client"] for r in recs} == {api_addr}       # no VIP, no SNAT
    for r in recs:
        task = next(t for t in tb.cluster.tasks_of("db") if str(t.addresses["back"]) == r["used"])
        assert r["body"]["task"] == task.name


def _capture(h, intf: str, bpf: str) -> subprocess.Popen:
    p = h.popen(["tcpdump", "--immediate-mode", "-l", "-n", "-i", intf, *bpf.split()],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.7)
    return p


def _stop(p: subprocess.Popen) -> str:
    time.sleep(0.4)
    p.terminate()
    return p.communicate(timeout=5)[0]


def test_a_task_on_front_cannot_reach_a_task_on_back(tb):
    """The sender is given a route and the MAC, so its packets do enter the
    bridge; the receiver's capture must stay empty.  A control packet from a
    task that shares the network must arrive, proving the capture works."""
    client_task = tb.cluster.tasks_of("client")[0]
    client = tb.host(client_task.host)
    db_task = tb.cluster.tasks_of("db")[0]
    db = tb.host(db_task.host)
    db_ip, db_mac = str(db_task.addresses["back"]), db_task.macs["back"]
    intf = f"{client_task.host}-eth{tb.cluster.networks['front'].vni - 4096}"
    client.cmd(f"ip route add {db_ip}/32 dev {intf}; ip neigh replace {db_ip} lladdr {db_mac} "
               f"dev {intf} nud permanent")
    db_intf = f"{db_task.host}-eth{tb.cluster.networks['back'].vni - 4096}"
    cap = _capture(db, db_intf, "udp port 7777")
    probe = (f"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
             f"[s.sendto(b'x', ('{db_ip}', 7777)) for _ in range(5)]")
    tb.run_in(client.name, ["-c", probe])
    tb.run_in(host_of(tb, "api").name, ["-c", probe])     # control: shares `back` with db
    out = _stop(cap)
    client_ip = str(client_task.addresses["front"])
    api_ip = str(tb.cluster.tasks_of("api")[0].addresses["back"])
    assert f"{api_ip}." in out, out                        # the control arrived
    assert client_ip not in out, out                       # the cross-network probe did not
    # and the VIP of api on back is not reachable from front either
    api_back_vip = str(tb.cluster.service("api").vips["back"])
    out = tb.run_in(client.name, ["-m", "swarmmesh.agents.httpclient", api_back_vip, "80",
                                  "--timeout", "1"])
    assert json.loads(out.splitlines()[0])["ok"] is False


def test_each_network_crosses_the_underlay_with_its_own_vni(tb):
    from scapy.all import VXLAN, IP, rdpcap       # noqa: PLC0415
    pcap = tb.run_dir / "eastwest-vxlan.pcap"
    ul = tb.host("underlay")
    cap = ul.popen(["tcpdump", "--immediate-mode", "-U", "-n", "-i", "ul0", "-w", str(pcap),
                    "udp", "port", "4789"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.7)
    for task in tb.cluster.tasks_of("client"):
        tb.run_in(task.host, ["-m", "swarmmesh.agents.nameclient", "web", "80", "--count", "3"])
    tb.run_in(host_of(tb, "api").name, ["-m", "swarmmesh.agents.nameclient", "db", "80",
                                        "--count", "6"])
    _stop(cap)
    vni_of = {}
    for pkt in rdpcap(str(pcap)):
        if VXLAN in pkt and IP in pkt[VXLAN]:
            inner = pkt[VXLAN][IP]
            vni_of.setdefault(pkt[VXLAN].vni, set()).update({inner.src, inner.dst})
    front, back = tb.cluster.networks["front"], tb.cluster.networks["back"]
    assert {front.vni, back.vni} <= set(vni_of), vni_of
    assert all(ipaddress.ip_address(a) in front.subnet for a in vni_of[front.vni])
    assert all(ipaddress.ip_address(a) in back.subnet for a in vni_of[back.vni])


def test_experiment_runs_in_both_modes(tmp_path):
    for mode in ("vip", "dnsrr"):
        r = subprocess.run([PY, "experiments/internal_lb.py", "--nodes", "3", "--replicas", "3",
                            "--requests", "12", "--endpoint-mode", mode, "--out", str(tmp_path),
                            "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        run_dir = tmp_path / r.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
        rows = (run_dir / "requests.csv").read_text().splitlines()
        assert rows[0].startswith("client_task,client_node,resolved,task,task_node,"
                                  "seen_source,latency_ms,ok")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["parameters"]["endpoint_mode"] == mode
        assert list(run_dir.glob("*.png")) and (run_dir / "report.md").exists()
