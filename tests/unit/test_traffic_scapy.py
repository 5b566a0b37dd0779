"""The spoofed-source generator without root: plan, frames, pacing, matching, fairness."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv4Network

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from swarmmesh.traffic.scapygen_capture import bpf_dst_net
from swarmmesh.traffic.scapygen_frames import build_frames, checksum
from swarmmesh.traffic.scapygen_match import HTTP_GET, Matcher, parse_frame
from swarmmesh.traffic.scapygen_pacing import due_count, offered_rate, send_paced
from swarmmesh.traffic.scapygen_plan import (PORT_RANGE, SPOOF_PREFIX, Request, Target,
                                             plan_requests, source_plan)

CLIENT_MAC = "02:00:00:00:00:c1"
T1 = Target("node1", "192.168.99.1", "02:00:00:00:00:01", 8000)
T2 = Target("node2", "192.168.99.2", "02:00:00:00:00:02", 8000)


# -- the source plan ------------------------------------------------------------

def test_source_plan_distinct_in_prefix_and_deterministic():
    a = source_plan(5000, seed=7)
    assert a == source_plan(5000, seed=7)
    assert a != source_plan(5000, seed=8)
    assert len(set(a)) == 5000
    assert len({ip for ip, _ in a}) > 4800           # mostly distinct addresses too
    net = SPOOF_PREFIX
    for ip, port in a:
        addr = IPv4Address(ip)
        assert addr in net and addr not in (net.network_address, net.broadcast_address)
        assert PORT_RANGE[0] <= port <= PORT_RANGE[1]


def test_source_plan_fills_a_tiny_space_exactly_and_refuses_more():
    net = IPv4Network("10.9.9.0/30")                 # 2 usable hosts
    plan = source_plan(6, seed=1, prefix=net, ports=(100, 102))
    assert sorted(plan) == [(ip, p) for ip in ("10.9.9.1", "10.9.9.2") for p in (100, 101, 102)]
    with pytest.raises(ValueError, match="do not fit"):
        source_plan(7, seed=1, prefix=net, ports=(100, 102))


def test_requests_interleave_targets_evenly():
    reqs = plan_requests([T1, T2], 101, seed=3)
    assert [r.target.node for r in reqs[:4]] == ["node1", "node2", "node1", "node2"]
    assert sum(r.target is T1 for r in reqs) == 51
    assert [r.seq for r in reqs] == list(range(101))
    assert reqs == plan_requests([T1, T2], 101, seed=3)


# -- frames -------------------------------------------------------------------

@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_patched_frames_equal_scapy_frames(proto):
    payload = b"swarmmesh\n" if proto == "udp" else b""
    reqs = plan_requests([T1, T2], 300, seed=11)
    frames = build_frames(reqs, proto, CLIENT_MAC, payload)
    for r, f in zip(reqs, frames):
        l4 = (UDP(sport=r.src_port, dport=8000) / payload if proto == "udp" else
              TCP(sport=r.src_port, dport=8000, flags="S", seq=r.isn, window=65535))
        ref = Ether(src=CLIENT_MAC, dst=r.target.mac) / IP(src=r.src_ip, dst=r.target.ip) / l4
        assert f == bytes(ref)                            # checksums included


def test_checksum_known_vector():
    # RFC 1071 example words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220d
    assert checksum(b"\x01") == (~0x0100 & 0xffff)      # odd length is zero-padded


# -- pacing -------------------------------------------------------------------

def test_due_count():
    assert due_count(-0.1, 1000, 10) == 0
    assert due_count(0.0, 1000, 10) == 1                # packet 0 is due at once
    assert due_count(0.0049, 1000, 10) == 5
    assert due_count(0.005, 1000, 10) == 6
    assert due_count(10.0, 1000, 10) == 10              # never more than there are


class FakeClock:
    """Monotonic time that only moves when slept (plus a fixed cost per send),
    and oversleeps by ``late`` seconds every time."""

    def __init__(self, late: float = 0.0, per_send: float = 0.0) -> None:
        self.t, self.late, self.per_send = 100.0, late, per_send
        self.sleeps = 0

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps += 1
        self.t += s + self.late

    def stamp(self) -> int:
        return int(round(self.t * 1e9))

    def send(self, frame: bytes) -> None:
        self.t += self.per_send


def test_paced_schedule_holds_and_does_not_drift_despite_oversleeping():
    fc = FakeClock(late=0.0007)                           # every sleep 0.7 ms late
    frames = [b"x"] * 2000
    stamps, failed = send_paced(fc.send, frames, rate=10000, batch=8, clock=fc.clock,
                                sleep=fc.sleep, stamp=fc.stamp)
    assert failed == 0
    t0 = stamps[0]
    for k, s in enumerate(stamps):
        due = t0 + k * 1e5                                # 100 us apart, in ns
        assert s >= due - 1                               # never early
        assert s - due < 0.7e6 + 8 * 1e5 + 1              # late by at most one oversleep + a batch
    # The last packet is on schedule: the delays did not accumulate.
    assert (stamps[-1] - t0) / 1e9 == pytest.approx(1999 / 10000, abs=0.0009)
    assert offered_rate(stamps) == pytest.approx(10000, rel=0.005)


def test_paced_loop_rereads_the_schedule_every_batch():
    fc = FakeClock(late=0.01, per_send=2e-6)              # 10 ms late: 100 packets due at once
    events = []

    def clock():
        events.append("c")
        return fc.clock()

    def send(frame):
        events.append("s")
        fc.send(frame)

    stamps, _ = send_paced(send, [b"x"] * 300, rate=10000, batch=8, clock=clock,
                           sleep=fc.sleep, stamp=fc.stamp)
    runs = [len(r) for r in "".join(events).split("c") if r]
    assert sum(runs) == 300
    assert max(runs) == 8                                 # caught up in full batches, no more
    assert fc.sleeps > 1


def test_fast_mode_never_sleeps_and_counts_failures():
    fc = FakeClock(per_send=1e-6)
    calls = []

    def send(frame):
        calls.append(frame)
        fc.send(frame)
        if len(calls) % 10 == 0:
            raise OSError(105, "No buffer space available")

    stamps, failed = send_paced(send, [b"a"] * 100, rate=0, clock=fc.clock, sleep=fc.sleep,
                                stamp=fc.stamp)
    assert fc.sleeps == 0 and len(calls) == 100
    assert failed == 10 and stamps.count(0) == 10
    # Only the 90 frames that went out count: (90 - 1) frames over 98 us.
    assert offered_rate(stamps) == pytest.approx(89 / 98e-6, rel=1e-6)
    assert offered_rate([0, 5]) is None


# -- replies and matching --------------------------------------------------------

def _udp_reply(req: Request, task="app.2", node="node3", seen="10.0.0.2") -> bytes:
    body = (f'{{"task": "{task}", "node": "{node}", "client": "{seen}", '
            f'"client_port": {req.src_port}, "port": 80, "seq": 1}}\n').encode()
    return bytes(Ether(src=req.target.mac, dst=CLIENT_MAC) /
                 IP(src=req.target.ip, dst=req.src_ip) /
                 UDP(sport=req.target.port, dport=req.src_port) / body)


def _tcp(req: Request, flags: str, seq: int, ack: int, payload: bytes = b"") -> bytes:
    return bytes(Ether(src=req.target.mac, dst=CLIENT_MAC) /
                 IP(src=req.target.ip, dst=req.src_ip) /
                 TCP(sport=req.target.port, dport=req.src_port, flags=flags, seq=seq, ack=ack) /
                 payload)


def test_parse_udp_reply_names_the_task():
    req = plan_requests([T1], 1, seed=1)[0]
    r = parse_frame(_udp_reply(req))
    assert r.kind == "udp" and r.key == req.key and r.peer == ("192.168.99.1", 8000)
    assert (r.task, r.task_node, r.seen_source) == ("app.2", "node3", "10.0.0.2")


def test_parse_ignores_other_frames():
    assert parse_frame(b"\x00" * 10) is None
    arp = bytes(Ether(type=0x0806) / (b"\x00" * 28))
    assert parse_frame(arp) is None
    req = plan_requests([T1], 1, seed=1)[0]
    assert parse_frame(_tcp(req, "A", 1, 2)) is None        # a bare ACK says nothing


def test_parse_icmp_unreachable_points_at_the_request():
    req = plan_requests([T1], 1, seed=1)[0]
    inner = IP(src=req.src_ip, dst=req.target.ip) / UDP(sport=req.src_port, dport=8000)
    f = bytes(Ether() / IP(src=req.target.ip, dst=req.src_ip) / ICMP(type=3, code=3) /
              bytes(inner))
    r = parse_frame(f)
    assert r.kind == "icmp" and r.key == req.key


def test_matcher_udp_first_reply_wins_duplicates_and_strangers_counted():
    reqs = plan_requests([T1, T2], 4, seed=5)
    m = Matcher(reqs, "udp", CLIENT_MAC)
    assert m.on_reply(parse_frame(_udp_reply(reqs[1], "app.1", "node1")), 2_000) == []
    m.on_reply(parse_frame(_udp_reply(reqs[1], "app.2", "node2")), 3_000)
    stranger = Request(9, "198.18.0.9", 4242, T1)
    m.on_reply(parse_frame(_udp_reply(stranger)), 4_000)
    wrong_peer = Request(0, reqs[0].src_ip, reqs[0].src_port, T2)   # right key, wrong node
    m.on_reply(parse_frame(_udp_reply(wrong_peer)), 4_000)
    rows = m.records([1_000, 1_500, 1_000, 0], t0_ns=1_000)
    assert [r["ok"] for r in rows] == [False, True, False, False]
    assert rows[1]["task"] == "app.1" and rows[1]["duplicates"] == 1
    assert rows[1]["latency_ms"] == "0.001" and rows[1]["reply_s"] == "0.000001"
    assert rows[0]["reply"] == "none" and rows[3]["reply"] == "unsent"
    assert m.unmatched == 2


def test_matcher_tcp_http_handshake_then_rst():
    req = plan_requests([T1], 1, seed=2)[0]
    m = Matcher([req], "tcp", CLIENT_MAC, tcp_mode="http")
    server_isn = 777
    out = m.on_reply(parse_frame(_tcp(req, "SA", server_isn, req.isn + 1)), 10)
    assert len(out) == 1
    ack = Ether(out[0])
    assert ack[IP].src == req.src_ip and ack[IP].dst == T1.ip
    assert ack[TCP].flags == "PA" and ack[TCP].seq == req.isn + 1 and ack[TCP].ack == server_isn + 1
    assert bytes(ack[TCP].payload) == HTTP_GET
    assert ack[TCP].chksum == TCP(bytes(ack[TCP]))[TCP].chksum
    # A retransmitted SYN-ACK changes nothing and sends nothing.
    assert m.on_reply(parse_frame(_tcp(req, "SA", server_isn, req.isn + 1)), 11) == []
    body = b'HTTP/1.1 200 OK\r\n\r\n{"task": "app.3", "node": "node2", "client": "10.0.0.2"}'
    out = m.on_reply(parse_frame(_tcp(req, "PA", server_isn + 1,
                                      req.isn + 1 + len(HTTP_GET), body)), 20)
    rst = Ether(out[0])
    assert rst[TCP].flags == "R" and rst[TCP].seq == req.isn + 1 + len(HTTP_GET)
    # The server's FIN after the answer is neither answered nor a duplicate.
    assert m.on_reply(parse_frame(_tcp(req, "FA", server_isn + 200, 1)), 21) == []
    row = m.records([5], t0_ns=0)[0]
    assert row["ok"] and row["task"] == "app.3" and row["reply"] == "synack"
    assert row["duplicates"] == 1                         # the retransmitted SYN-ACK


def test_matcher_tcp_syn_mode_resets_at_the_ack_number():
    req = plan_requests([T2], 1, seed=2)[0]
    m = Matcher([req], "tcp", CLIENT_MAC, tcp_mode="syn")
    out = m.on_reply(parse_frame(_tcp(req, "SA", 5, req.isn + 1)), 10)
    rst = Ether(out[0])
    assert rst[TCP].flags == "R" and rst[TCP].seq == (req.isn + 1) & 0xffffffff
    assert m.records([1], 0)[0]["ok"] is True


def test_matcher_tcp_reset_by_server_is_not_ok():
    req = plan_requests([T1], 1, seed=2)[0]
    m = Matcher([req], "tcp", CLIENT_MAC)
    assert m.on_reply(parse_frame(_tcp(req, "RA", 0, req.isn + 1)), 10) == []
    row = m.records([1], 0)[0]
    assert row["reply"] == "rst" and row["ok"] is False


def test_bpf_program_accepts_only_the_prefix():
    """Run the classic BPF program on frames with a tiny interpreter."""
    prog = bpf_dst_net(SPOOF_PREFIX)

    def run(frame: bytes) -> int:
        pc, a = 0, 0
        while True:
            code, jt, jf, k = prog[pc]
            if code == 0x28:
                a = struct.unpack_from("!H", frame, k)[0]
            elif code == 0x20:
                a = struct.unpack_from("!I", frame, k)[0]
            elif code == 0x54:
                a &= k
            elif code == 0x15:
                pc += jt if a == k else jf
            elif code == 0x06:
                return k
            pc += 1

    def frame(dst):
        return bytes(Ether() / IP(src="192.168.99.1", dst=dst) / UDP())

    assert run(frame("198.18.0.1")) > 0 and run(frame("198.19.255.254")) > 0
    assert run(frame("198.20.0.1")) == 0 and run(frame("192.168.99.201")) == 0
    assert run(bytes(Ether(type=0x86dd) / (b"\0" * 40))) == 0
    assert socket.inet_aton("198.18.0.0") == struct.pack("!I", prog[4][3])


# -- fairness (swarmmesh.runs.metrics, as many_clients uses it) ------------------------

def test_jain_and_max_over_mean():
    from swarmmesh.runs.metrics import jain, max_over_mean
    assert jain([5, 5, 5]) == 1.0 and max_over_mean([5, 5, 5]) == 1.0
    assert jain([9, 0, 0]) == pytest.approx(1 / 3) and max_over_mean([9, 0, 0]) == 3.0
    assert jain([1002, 999, 999]) == pytest.approx(0.999998, abs=1e-6)
    assert jain([1, 2, 3, 4]) == pytest.approx(100 / (4 * 30))
    assert jain([]) is None and jain([0, 0]) is None and max_over_mean([0, 0]) is None


def test_spread_counts_zeros_losses_and_strangers():
    from swarmmesh_experiments.many_clients import spread_of
    rows = ([{"ingress_node": "node1", "ok": "True", "task": "app.1"}] * 4 +
            [{"ingress_node": "node1", "ok": "False", "task": ""}] * 2 +
            [{"ingress_node": "node2", "ok": "True", "task": t} for t in ("app.1", "app.2", "x.1")])
    s = spread_of(rows, ["app.1", "app.2"])
    assert s["node1"]["per_task"] == {"app.1": 4, "app.2": 0}      # a starved task counts
    assert s["node1"]["jain"] == pytest.approx(0.5) and s["node1"]["lost"] == 2
    assert s["node1"]["loss"] == pytest.approx(2 / 6)
    assert s["node2"]["other_tasks"] == 1
    assert s["all"]["per_task"] == {"app.1": 5, "app.2": 1} and s["all"]["requests"] == 9


@pytest.mark.parametrize("args, field", [
    (["--sources", "2"], "sources"),                     # fewer than the 3 nodes
    (["--sources", "999999"], "sources"),
    (["--rate", "-5"], "rate"),
    (["--replicas", "0"], "replicas"),
    (["--nodes", "0"], "nodes"),
    (["--batch", "0"], "batch"),
    (["--max-loss", "1.5"], "max-loss"),                 # the flag as typed
    (["--published", "70000"], "services.app.ports"),
])
def test_many_clients_rejects_bad_input_before_building(tmp_path, args, field):
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "experiments/many_clients.py", *args, "--out", str(tmp_path)],
                       cwd=repo, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: {field}"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_vswitchd_stalls_are_read_from_the_logs(tmp_path):
    from swarmmesh_experiments.many_clients import vswitchd_stalls
    (tmp_path / "node1-ovs-vswitchd.log").write_text(
        "2026-11-27T15:48:23.409Z|00033|ofproto_dpif_upcall|INFO|Starting 2 threads\n"
        "2026-11-27T15:48:29.259Z|00052|timeval|WARN|Unreasonably long 1185ms poll interval "
        "(1ms user, 0ms system)\n"
        "2026-11-27T15:48:29.260Z|00001|timeval(revalidator5)|WARN|Unreasonably long 1187ms "
        "poll interval (1ms user, 0ms system)\n"
        "2026-11-27T15:48:30.000Z|00052|ovs_rcu|WARN|blocked 1001 ms waiting for revalidator4 "
        "to quiesce\n")
    import datetime as dt
    t0 = dt.datetime(2026, 11, 27, 15, 48, 25, tzinfo=dt.timezone.utc).timestamp()
    out = vswitchd_stalls(tmp_path, ["node1", "node2"], int(t0 * 1e9))
    assert out["node2"] == []                             # no log: no stall claimed
    main, rev, rcu = out["node1"]
    assert main == {"thread": "main", "ms": 1185, "waiting_for": "", "from_s": 3.074,
                    "to_s": 4.259}
    assert rev["thread"] == "revalidator5" and rev["ms"] == 1187
    assert rcu == {"thread": "main", "ms": 1001, "waiting_for": "revalidator4", "from_s": 3.999,
                   "to_s": 5.0}
