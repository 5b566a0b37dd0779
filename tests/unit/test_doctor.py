"""swarmmesh doctor: its decisions on made-up machines, and one real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from swarmmesh.machine import deps, doctor

PKGS = deps.parse("""
wrk           clients  wrk         keep-alive load
python3-venv  core     -           the venv
qemu-system-x86 vm     qemu-system-x86_64 the guest
""")


def test_a_missing_program_names_its_package_and_the_fix():
    checks = doctor.package_checks(PKGS, {"python3-venv": "3.11", "qemu-system-x86": "7.2"},
                                   lambda prog: None if prog == "wrk" else f"/usr/bin/{prog}",
                                   deps.SETUP_GROUPS)
    wrk, venv, qemu = checks
    assert (wrk.status, wrk.fix, wrk.required) == ("missing", "apt-get install wrk", True)
    assert "wrk not found" in wrk.detail and "keep-alive load" in wrk.detail
    assert (venv.status, venv.detail) == ("ok", "3.11")
    assert qemu.status == "ok"
    assert doctor.verdict(checks) == 1
    assert "fix: apt-get install wrk" in wrk.line()


def test_a_package_with_no_program_is_judged_by_dpkg():
    checks = doctor.package_checks(PKGS, {"wrk": "4.1"}, lambda prog: "/x", deps.SETUP_GROUPS)
    assert [c.status for c in checks] == ["ok", "missing", "missing"]
    assert checks[1].fix == "apt-get install python3-venv"


def test_the_vm_group_is_optional_unless_asked_for():
    found = {"wrk": "4.1", "python3-venv": "3.11"}
    which = lambda prog: None if prog.startswith("qemu") else "/x"   # noqa: E731
    plain = doctor.package_checks(PKGS, found, which, deps.SETUP_GROUPS)
    assert plain[2].status == "missing" and not plain[2].required
    assert doctor.verdict(plain) == 0 and "(optional)" in plain[2].line()
    vm = doctor.package_checks(PKGS, found, which, deps.SETUP_GROUPS + ("vm",))
    assert doctor.verdict(vm) == 1


def test_python_packages_are_checked_against_their_pins():
    reqs = ["os-ken==4.2.2", "scapy==2.8.0", 'pytest==9.2.0; extra == "test"', "plain"]
    have = {"os-ken": "4.2.2", "scapy": "2.5.0"}
    checks = doctor.python_checks(reqs, have.get, (3, 11), "2.3.0")
    by = {c.what: c for c in checks}
    assert by["python"].status == by["python: mininet"].status == "ok"
    assert by["python: os-ken"].status == "ok"
    assert by["python: scapy"].status == "missing" and "2.5.0, pinned 2.8.0" in \
        by["python: scapy"].detail
    assert by["python: pytest (tests)"].detail == "not installed, pinned 9.2.0"
    assert len(checks) == 5                                  # 'plain' has no pin: not checked


def test_pins_in_either_metadata_form():
    reqs = ["os-ken (==4.2.2)", "pytest (==9.2.0) ; extra == 'test'"]
    checks = doctor.python_checks(reqs, {"os-ken": "4.2.2", "pytest": "9.2.0"}.get, (3, 11),
                                  "2.3.0")
    assert [(c.what, c.status) for c in checks[2:]] == [("python: os-ken", "ok"),
                                                        ("python: pytest (tests)", "ok")]


def test_an_old_python_and_no_mininet_are_missing():
    checks = doctor.python_checks([], {}.get, (3, 8), None)
    assert [c.status for c in checks] == ["missing", "missing"]
    assert "apt-get install mininet" in checks[1].fix


@pytest.mark.skipif(os.geteuid() != 0, reason="tries kernel features in a namespace: root")
def test_doctor_runs_for_real_and_leaves_no_namespace():
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    r = subprocess.run([sys.executable, "-m", "swarmmesh.machine.doctor", "--json"],
                       capture_output=True, text=True, timeout=60)
    items = json.loads(r.stdout)
    whats = {i["what"]: i for i in items}
    for feature in ("kernel: network namespaces", "kernel: veth", "kernel: VXLAN",
                    "kernel: nf_tables (nat, numgen, ct)", "kernel: openvswitch module",
                    "Open vSwitch running", "python: mininet"):
        assert whats[feature]["status"] == "ok", whats[feature]
    assert r.returncode == doctor.verdict(doctor.Check(**i) for i in items)
    for kind in ("netem", "tbf", "htb"):          # present or absent, never a failure
        assert whats[f"kernel: sch_{kind}"]["status"] == "ok", whats
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert after == before


def test_the_suite_reports_the_datapath_its_testbeds_ran_on():
    from tests.conftest import datapath_report
    assert datapath_report([], 4) == "integration tier: 4 tests ran; no testbed was built"
    lines = ["netdev\ttests/a.py::t1", "netdev\ttests/a.py::t2", "system\ttests/b.py::t"]
    assert datapath_report(lines, 9) == ("integration tier: 9 tests ran on the netdev and "
                                         "system datapath (3 testbeds built: 2 on netdev, "
                                         "1 on system)")


def test_a_missing_qdisc_is_said_but_never_fails_the_doctor():
    absent = doctor.qdisc_check("netem", "delay, jitter and loss", 2)
    assert absent.status == "ok" and absent.detail.startswith("absent: no delay")
    assert doctor.qdisc_check("tbf", "a bandwidth limit", 0).detail == \
        "a bandwidth limit on underlay links"
    assert doctor.verdict([absent]) == 0


def test_userspace_ovs_without_dev_net_tun_is_required_and_says_how_to_fix(monkeypatch):
    from swarmmesh.machine import datapath
    why = datapath.tun_problem(datapath.TUN, FileNotFoundError(2, "No such file"))
    monkeypatch.setattr(datapath, "tun_missing", lambda path=datapath.TUN: why)
    c = doctor.datapath_needs_check("netdev")
    assert (c.what, c.status, c.required) == ("datapath netdev: /dev/net/tun", "missing", True)
    assert c.detail.startswith("/dev/net/tun is absent") and "--device /dev/net/tun" in c.fix
    assert doctor.verdict([c]) == 1
    monkeypatch.setattr(datapath, "tun_missing", lambda path=datapath.TUN: None)
    assert doctor.datapath_needs_check("netdev").status == "ok"


def test_dockerd_programs_and_cgroup2_are_judged_from_what_was_read():
    from swarmmesh.machine import dockerd
    assert dockerd.programs_missing(lambda p: "/usr/bin/" + p, lambda p: True) is None
    why = dockerd.programs_missing(lambda p: None if p == "containerd" else "/x", lambda p: True)
    assert why.startswith("containerd not found") and "make setup-docker" in why
    why = dockerd.programs_missing(lambda p: "/x", lambda p: False)
    assert why.startswith("/usr/bin/docker not found")
    assert dockerd.cgroup2_missing("nodev\tcgroup\nnodev\tcgroup2\n") is None
    assert "cgroup2" in dockerd.cgroup2_missing("nodev\tcgroup\n")
