"""Requirements of every server (issue 15 item 3): pure decisions over what a probe returns."""

from __future__ import annotations

from swarmmesh.machine import servers_check as sc

LOCAL = ("sudo=ok\nmininet=2.3.0-1\nopenvswitch=3.1.0-2+deb12u1\nmnexec=/usr/bin/mnexec\n"
         "kernel_vxlan=yes\nkernel_gretap=no\npython=3.11.2\nos-ken=4.2.2\nscapy=2.8.0\n"
         "swarmmesh=0.2.0\n")


def remote(text=LOCAL, clock=1000.0, sent=1000.0, received=1000.002, rc=0, err=""):
    return sc.parse_probe(text + (f"clock={clock}\n" if clock is not None else ""),
                          sent, received, rc, err)


def failed(items):
    return {(i.server, i.what): i for i in items if not i.ok}


def test_the_same_server_passes_everything():
    items = sc.decide(sc.parse_probe(LOCAL), {"b": remote()})
    assert not failed(items)
    assert {i.what for i in items} >= {"ssh without password", "sudo without password", "mnexec",
                                       "mininet", "openvswitch", "python", "os-ken",
                                       "swarmmesh", "kernel vxlan", "clock in step"}


def test_no_ssh_says_only_that_with_the_command_to_fix():
    items = sc.decide(sc.parse_probe(LOCAL), {"b": remote("", None, rc=255,
                                                          err="Permission denied (publickey).")},
                      {"b": "ssh -p 2222 root@b true"})
    (bad,) = [i for i in items if i.server == "b"]
    assert bad.what == "ssh without password" and "Permission denied" in bad.detail
    assert "ssh -p 2222 root@b true" in bad.fix and "BatchMode" in bad.fix


def test_each_difference_is_named_with_both_versions():
    text = (LOCAL.replace("sudo=ok", "sudo=no").replace("mininet=2.3.0-1", "mininet=2.3.1b4")
            .replace("os-ken=4.2.2", "os-ken=none").replace("mnexec=/usr/bin/mnexec", "mnexec=none"))
    f = failed(sc.decide(sc.parse_probe(LOCAL), {"b": remote(text)}))
    assert set(f) == {("b", "sudo without password"), ("b", "mininet"), ("b", "os-ken"),
                      ("b", "mnexec")}
    assert f[("b", "mininet")].detail == "2.3.1b4 (here 2.3.0-1)"
    assert "NOPASSWD" in f[("b", "sudo without password")].fix
    assert "FAILED" in f[("b", "mininet")].line() and "fix:" in f[("b", "mininet")].line()


def test_the_tunnel_the_plan_uses_must_exist_on_every_server():
    f = failed(sc.decide(sc.parse_probe(LOCAL), {"b": remote()}, tunnel="gretap"))
    assert set(f) == {("localhost", "kernel gretap"), ("b", "kernel gretap")}


def test_clock_offset_is_known_within_half_the_round_trip():
    p = remote(clock=1000.010, sent=1000.0, received=1000.004)
    offset, err = sc.clock_offset(p)
    assert round(offset, 6) == 0.008 and round(err, 6) == 0.002


def test_a_clock_fails_only_when_out_for_certain():
    # 8 ms +- 2 ms: out for certain (6 ms > 5 ms)
    assert failed(sc.decide(sc.parse_probe(LOCAL), {"b": remote(clock=1000.010, received=1000.004)}))
    # 6 ms +- 2 ms: could be 4 ms: passes
    assert not failed(sc.decide(sc.parse_probe(LOCAL),
                                {"b": remote(clock=1000.008, received=1000.004)}))
    # 0 ms +- 10 ms: cannot tell, said as such
    (bad,) = failed(sc.decide(sc.parse_probe(LOCAL),
                              {"b": remote(clock=1000.010, received=1000.020)})).values()
    assert "too long to tell" in bad.detail


def test_a_server_on_this_machines_own_kernel_shares_its_clock():
    """A namespace server (same boot_id) reads the same wall clock: in step whatever the
    round trip (70 ms over ssh in an emulated guest); another kernel is still measured."""
    here = "boot_id=0f3c9a52-1111-2222-3333-444455556666\n"
    slow = {"clock": 1000.010, "received": 1000.070}             # 0 ms +- 35 ms
    (item,) = [i for i in sc.decide(sc.parse_probe(LOCAL + here),
                                    {"b": remote(LOCAL + here, **slow)})
               if i.what == "clock in step"]
    assert item.ok and "own kernel (boot_id 0f3c9a52)" in item.detail
    other = LOCAL + here.replace("0f3c", "7a7a")
    assert failed(sc.decide(sc.parse_probe(LOCAL + here), {"b": remote(other, **slow)}))
    assert failed(sc.decide(sc.parse_probe(LOCAL + "boot_id=none\n"),
                            {"b": remote(LOCAL + "boot_id=none\n", **slow)}))


def test_the_probe_script_runs_here():
    p = sc.probe(None, clock_samples=1)
    assert p.ssh_rc == 0 and p.facts["kernel_vxlan"] in ("yes", "no")
    assert "clock" in p.facts and p.received >= p.sent
    assert p.facts["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
