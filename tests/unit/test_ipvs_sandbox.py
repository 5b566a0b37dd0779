"""The IPVS reference path's pure side: the node's DNAT to the sandbox, the sandbox's
marks, SNAT, set-up commands and the ipvsadm lines that follow the model."""

from __future__ import annotations

import pytest

from swarmmesh.dataplane import ipvs, kernel
from swarmmesh.machine import doctor
from swarmmesh.model import Cluster
from swarmmesh.model.errors import InvalidConfigError

# node3's table with the IPVS reference path: Swarm's DOCKER-INGRESS only, port kept; no
# pick and no SNAT in the node (the sandbox does both).
NODE3_IPVS = """\
table ip swarmmesh {
 chain mesh {
  tcp dport 8000 dnat to 172.18.0.2
 }
 chain prerouting { type nat hook prerouting priority -100; policy accept;
  fib daddr type local jump mesh
 }
 chain output { type nat hook output priority -100; policy accept;
  fib daddr type local jump mesh
 }
 chain postrouting { type nat hook postrouting priority 100; policy accept;
  oifname "gwbr" ip saddr 127.0.0.0/8 masquerade
 }
}
"""

NODE3_IPTABLES = """\
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 8000 -j MARK --set-mark 256
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -d 10.0.0.0/24 -m ipvs --ipvs -j SNAT --to-source 10.0.0.4
COMMIT
"""


def two_services() -> Cluster:
    return Cluster.from_stack({"services": {
        "app": {"deploy": {"replicas": 2}, "ports": ["8000:80"]},
        "dns": {"deploy": {"replicas": 1},
                "ports": [{"target": 53, "published": 5353, "protocol": "udp"}]}}}, nodes=3)


def test_the_node_only_dnats_to_the_sandbox_keeping_the_port():
    assert kernel.table(Cluster.quick(), "node3", ingress="ipvs") == NODE3_IPVS
    assert "numgen" not in kernel.nft_script(Cluster.quick(), "node1", ingress="ipvs")


def test_the_emulated_mesh_is_unchanged_by_default():
    c = Cluster.quick()
    assert kernel.table(c, "node3") == kernel.table(c, "node3", ingress="mesh")
    assert "numgen inc mod 2" in kernel.table(c, "node3")


def test_marks_start_at_256_and_stay_with_their_port():
    c = two_services()
    marks = ipvs.assign_marks(c)
    assert marks == {("tcp", 8000): 256, ("udp", 5353): 257}
    del c.services["app"]
    c.tasks = [t for t in c.tasks if t.service != "app"]
    assert ipvs.assign_marks(c, marks) == {("udp", 5353): 257}       # kept, 256 freed
    again = two_services()
    assert ipvs.assign_marks(again, {("udp", 5353): 257}) == {("tcp", 8000): 256,
                                                             ("udp", 5353): 257}


def test_the_sandbox_marks_the_port_and_snats_what_ipvs_sends_to_the_ingress_network():
    c = Cluster.quick()
    assert ipvs.iptables_text(c, "node3", ipvs.assign_marks(c)) == NODE3_IPTABLES


def test_one_rr_service_per_mark_one_masqueraded_real_server_per_task_on_the_target_port():
    c = Cluster.quick()
    svcs = ipvs.services(c, ipvs.assign_marks(c))
    assert svcs == {256: ipvs.VirtualService(256, "tcp", 8000, "rr",
                                             (("10.0.0.6:80", 1), ("10.0.0.7:80", 1)))}
    assert ipvs.ipvsadm_lines({}, svcs) == ["-A -f 256 -s rr",
                                            "-a -f 256 -r 10.0.0.6:80 -m -w 1",
                                            "-a -f 256 -r 10.0.0.7:80 -m -w 1"]
    assert ipvs.ipvsadm_lines(svcs, svcs) == []


def test_a_leaving_task_gets_weight_0_then_its_real_server_is_deleted():
    c = Cluster.quick()
    marks = ipvs.assign_marks(c)
    before = ipvs.services(c, marks)
    c.task("app.1").state = "draining"
    draining = ipvs.services(c, marks)
    assert ipvs.ipvsadm_lines(before, draining) == ["-e -f 256 -r 10.0.0.6:80 -m -w 0"]
    c.remove_task("app.1")
    gone = ipvs.services(c, marks)
    assert ipvs.ipvsadm_lines(draining, gone) == ["-d -f 256 -r 10.0.0.6:80"]
    assert ipvs.ipvsadm_lines(gone, {}) == ["-D -f 256"]


def test_a_task_on_a_node_that_is_down_takes_no_new_connection():
    c = Cluster.quick()
    c.node(c.task("app.2").node).status = "down"
    svcs = ipvs.services(c, ipvs.assign_marks(c))
    assert svcs[256].dests == (("10.0.0.6:80", 1), ("10.0.0.7:80", 0))


def test_the_sandbox_has_the_nodes_ingress_address_mobys_sysctls_and_a_way_back():
    cmds = ipvs.setup_commands(Cluster.quick(), "node2")
    assert "ip addr add 172.18.0.2/16 dev eth1" in cmds
    assert "ip addr add 10.0.0.3/24 dev eth0" in cmds
    assert "ip addr add 10.0.0.5/32 dev eth0" in cmds           # the service's ingress VIP
    assert "ip link set eth0 address 02:42:ac:12:00:01" in cmds    # the bridge's replies
    assert "ip route add default via 172.18.0.1 dev eth1" in cmds
    sysctls = [c for c in cmds if c.startswith("sysctl")]
    assert sysctls == ["sysctl -qw net.ipv4.ip_forward=1", "sysctl -qw net.ipv4.vs.conntrack=1",
                       "sysctl -qw net.ipv4.vs.conn_reuse_mode=0",
                       "sysctl -qw net.ipv4.vs.expire_nodest_conn=1",
                       "sysctl -qw net.ipv4.vs.expire_quiescent_template=1"]
    assert cmds.index("ipvsadm -L -n") < cmds.index(sysctls[1])   # loads ip_vs


def test_only_swarms_own_balancing_takes_the_reference_path():
    ipvs.check_supported(Cluster.quick())
    c = Cluster.from_stack({"services": {"web": {
        "deploy": {"replicas": 2}, "ports": ["8000:80"],
        "x-swarmmesh": {"scheduler": "maglev"}}}}, nodes=3)
    with pytest.raises(InvalidConfigError, match=r"services\.web\.x-swarmmesh"):
        ipvs.check_supported(c)


def test_the_doctor_says_ip_vs_is_missing_without_failing(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda prog: f"/usr/sbin/{prog}")
    monkeypatch.setattr(doctor, "_run", lambda argv, stdin=None, timeout=10: (
        2, "modprobe: FATAL: Module ip_vs not found"))
    check = doctor.ipvs_check(["ip", "netns", "exec", "x"])
    assert check.status == "missing" and not check.required
    assert "--ingress ipvs" in check.fix and "ip_vs" in check.detail
    assert doctor.verdict([check]) == 0
    monkeypatch.setattr(doctor, "_run", lambda argv, stdin=None, timeout=10: (0, ""))
    assert doctor.ipvs_check(["ip"]).status == "ok"
