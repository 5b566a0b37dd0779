"""The build's bound, the reading of a failed process's own log, the one-line message,
and what the datapath needs (no switch, no root)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from swarmmesh.machine import datapath
from swarmmesh.testbed import bounds
from swarmmesh.testbed.shellbound import shell_cause

# What a userspace vswitchd logged without /dev/net/tun (a mount namespace without it).
NO_TUN_LOG = """\
2026-12-04T19:42:08.270Z|00009|dpif|WARN|failed to enumerate system datapaths: No such file or directory
2026-12-04T19:42:08.278Z|00010|netdev_linux|WARN|opening "/dev/net/tun" failed: No such file or directory
2026-12-04T19:42:08.281Z|00011|dpif|WARN|failed to create datapath ovs-netdev: No such file or directory
2026-12-04T19:42:08.281Z|00012|ofproto_dpif|ERR|failed to open datapath of type netdev: No such file or directory
2026-12-04T19:42:08.281Z|00013|ofproto|ERR|failed to open datapath br0: No such file or directory
2026-12-04T19:42:08.281Z|00014|bridge|ERR|failed to create bridge br0: No such file or directory
"""
NO_TUN_CAUSE = ('opening "/dev/net/tun" failed: No such file or directory; '
                "failed to create datapath ovs-netdev: No such file or directory; "
                "failed to open datapath of type netdev: No such file or directory")


def test_the_default_bound_grows_with_nodes_and_tasks():
    small, big = bounds.default_timeout(3, 2), bounds.default_timeout(100, 1000)
    assert small == pytest.approx(60 + 1.5 + 0.3)
    assert big == pytest.approx(60 + 50 + 150)
    assert bounds.default_timeout(4, 2) > small and bounds.default_timeout(3, 3) > small


def test_the_flag_wins_over_the_environment_which_wins_over_the_default():
    env = {bounds.ENV: "12.5"}
    assert bounds.build_timeout(3, 2, 7.0, env) == 7.0
    assert bounds.build_timeout(3, 2, None, env) == 12.5
    assert bounds.build_timeout(3, 2, None, {}) == bounds.default_timeout(3, 2)


@pytest.mark.parametrize("raw", ["soon", "0", "-3", "nan"])
def test_a_bad_environment_value_names_the_variable(raw):
    with pytest.raises(ValueError, match=bounds.ENV):
        bounds.build_timeout(3, 2, None, {bounds.ENV: raw})


def test_a_bad_flag_value_names_the_flag():
    with pytest.raises(ValueError, match="build-timeout"):
        bounds.build_timeout(3, 2, 0.0, {})


def test_the_cause_of_a_vswitchd_is_its_first_error_and_the_warnings_that_led_to_it():
    assert bounds.ovs_errors(NO_TUN_LOG)[0] == \
        "failed to open datapath of type netdev: No such file or directory"
    assert bounds.ovs_failure(NO_TUN_LOG) == NO_TUN_CAUSE
    assert bounds.log_cause(NO_TUN_LOG) == NO_TUN_CAUSE
    # a routine warning right before the error is not part of its cause
    lines = NO_TUN_LOG.splitlines()
    assert bounds.ovs_failure("\n".join([lines[0], lines[3]])) == \
        "failed to open datapath of type netdev: No such file or directory"


def test_a_healthy_vswitchd_log_gives_no_cause():
    healthy = NO_TUN_LOG.splitlines()[0] + "\n"
    assert bounds.ovs_errors(healthy) == [] and bounds.log_cause(healthy) is None


def test_an_unusual_vswitchd_warning_is_a_cause_when_there_is_no_error():
    log = NO_TUN_LOG.splitlines()[0] + "\n2026-12-04T18:02:12.000Z|00060|rconn|WARN|" \
                                       "br-ingress<->unix:/x/controller.sock: connection failed\n"
    assert bounds.log_cause(log) == "br-ingress<->unix:/x/controller.sock: connection failed"


def test_the_cause_of_a_python_agent_is_its_traceback_or_last_line():
    tb = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
          "OSError: [Errno 98] Address already in use\n\n")
    assert bounds.log_cause(tb) == "OSError: [Errno 98] Address already in use"
    assert bounds.log_cause("usage: dns\ndns: error: unrecognized arguments: -x\n") == \
        "dns: error: unrecognized arguments: -x"
    assert bounds.log_cause("") is None and bounds.log_cause("\n \n") is None


def test_the_state_letter_is_read_past_a_command_name_with_spaces():
    assert bounds.process_state("4242 (python3 -S x) T 1 4242 4242 0 -1") == "T"
    assert bounds.process_state("17 (sleep) S 1 17") == "S"
    assert bounds.process_state("") is None


def test_the_message_is_one_line_naming_who_the_step_and_the_cause():
    e = bounds.BuildFailure("node2", "embedded DNS",
                            bounds.no_answer("embedded DNS", 8.2, None, "T"))
    assert str(e) == ("node2: embedded DNS: embedded DNS not ready after 8s, process stopped, "
                      "nothing in its log")
    assert (e.who, e.step) == ("node2", "embedded DNS")
    exited = bounds.no_answer("task server", 0.1, "OSError: [Errno 98] in use", None, 1)
    assert exited == "task server exited 1: OSError: [Errno 98] in use"
    assert "\n" not in bounds.failure_line("n", "s", "a\nb\n  c")


def test_a_hung_shell_is_named_by_its_command_and_what_it_printed():
    assert shell_cause("sleep 600", 8.04, "") == \
        "`sleep 600` did not return within 8s (it printed nothing)"
    long = "ovs-vsctl " + "x" * 300
    cause = shell_cause(long, 8, "waiting for\r\n vswitchd\x7f")
    assert cause.endswith("(it printed: waiting for vswitchd)") and "..." in cause


def test_dev_net_tun_absent_says_how_a_container_gets_it():
    why = datapath.tun_problem(Path("/dev/net/tun"), FileNotFoundError(2, "No such file"))
    assert why.startswith("/dev/net/tun is absent") and "--device /dev/net/tun" in why
    denied = datapath.tun_problem(Path("/dev/net/tun"), PermissionError(1, "Operation not "
                                                                          "permitted"))
    assert denied.startswith("/dev/net/tun: Operation not permitted")
    assert datapath.tun_problem(Path("/dev/net/tun"), None) is None


def test_the_datapath_needs_tun_only_in_userspace(monkeypatch, tmp_path):
    monkeypatch.setattr(datapath, "TUN", tmp_path / "tun")
    monkeypatch.setattr(datapath, "tun_missing", lambda path=None: "absent")
    assert datapath.datapath_missing("netdev") == "absent"
    monkeypatch.setattr(datapath, "kernel_datapath_available", lambda: True)
    assert datapath.datapath_missing("system") is None


@pytest.fixture
def high_pipe():
    """A pipe whose read end is descriptor 1100 (past select()'s 1,024), and its write end."""
    import os
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}: no descriptor past 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    r, w = os.pipe()
    high = os.dup2(r, 1100)
    os.close(r)
    yield os.fdopen(high, "r"), w
    os.close(w)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_bounded_shell_waits_on_a_pty_numbered_past_1024(high_pipe):
    """550 hosts' shells: later ptys are numbered past select()'s limit (once 'filedescriptor
    out of range in select()' at 50 x 10, in every build of 500 tasks)."""
    import os
    import threading
    from types import SimpleNamespace

    from swarmmesh.testbed.shellbound import BoundedShell
    read, write = high_pipe

    class Host:
        name, lastCmd, readbuf, waiting = "node1", "true", "", True
        state = SimpleNamespace(deadline=time.monotonic() + 5)
        stdout = read

        def waitOutput(self, verbose=False, findPid=True):
            raise AssertionError("Mininet's own wait: no deadline seen")

        def monitor(self, findPid=True):
            self.waiting = False
            return os.read(self.stdout.fileno(), 100).decode()

    class Shell(BoundedShell, Host):
        pass
    threading.Timer(0.2, lambda: os.write(write, b"done\n")).start()
    assert Shell().waitOutput() == "done\n"


def test_the_first_line_is_read_from_a_pipe_numbered_past_1024():
    """A build of 500 tasks holds a pipe per task server: later ones are numbered past
    ``select``'s limit (once: 'filedescriptor out of range in select()' at 50 x 10)."""
    import os
    import resource
    import subprocess
    import sys

    from swarmmesh.testbed.shellbound import first_line
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}: no descriptor past 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2); "
                             "print('ready 80')"], stdout=subprocess.PIPE, text=True)
    high = os.dup2(proc.stdout.fileno(), 1100)
    try:
        proc.stdout = os.fdopen(high, "r")
        assert first_line(proc, time.monotonic() + 5, "task server", "t1", "task server") \
            == "ready 80\n"
    finally:
        proc.stdout.close()
        proc.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
