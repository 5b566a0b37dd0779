"""A host's commands reach its shell in lines the pty passes whole (Linux cuts a
canonical-mode line at 4,095 bytes; a longer one never ends and hangs the build)."""

from __future__ import annotations

import pytest

from swarmmesh.dataplane.nodeplan import tx_off_cmd
from swarmmesh.testbed.shell import LINE_MAX, failed_index, ip_batches, shell_lines, vsctl_batches


def test_commands_are_joined_in_order_within_the_limit():
    parts = [f"cmd{i} {'x' * 40}" for i in range(200)]
    lines = shell_lines(parts, "node1")
    assert len(lines) > 1 and all(len(l.encode()) <= LINE_MAX for l in lines)
    assert " && ".join(lines).split(" && ") == parts
    assert shell_lines(["true"]) == ["true"] and shell_lines([]) == []


def test_a_node_with_many_tasks_needs_several_lines():
    # the legs of 20 tasks as SwarmNode.config wraps them: about 3.5 KB of them alone
    parts = [f"{{ {c} || {{ echo \"__failed {i} $?\"; false; }}; }}" for i, c in enumerate(
        [x for t in range(100, 120) for x in (tx_off_cmd(f"t{t}-veth"),
                                              f"ip link set t{t}-veth mtu 1450")])]
    assert len(" && ".join(parts)) > LINE_MAX
    assert len(shell_lines(parts)) == 2


def test_a_single_command_too_long_is_an_error_naming_the_host():
    with pytest.raises(ValueError, match="node7: a command of"):
        shell_lines(["echo " + "y" * 5000], "node7")


def test_vsctl_batches_keep_order_and_split_only_when_needed():
    args = ["add-br br-ingress"] + [f"add-port br-ingress t{i}-veth -- set interface t{i}-veth "
                                    f"ofport_request={i}" for i in range(100)]
    one = vsctl_batches(args[:5], "ovs-vsctl --db=unix:/x/db.sock")
    assert one == ["ovs-vsctl --db=unix:/x/db.sock -- " + " -- ".join(args[:5])]
    many = vsctl_batches(args, "ovs-vsctl --db=unix:/x/db.sock")
    assert len(many) > 1 and all(len(c) <= LINE_MAX for c in many)
    assert many[0].startswith("ovs-vsctl --db=unix:/x/db.sock -- add-br br-ingress -- ")
    got = [a for c in many for a in c.split(" -- ", 1)[1].split(" -- ")]
    assert got == [a for x in args for a in x.split(" -- ")]


# -- consecutive ip commands as one ip -batch ---------------------------------------------


def test_consecutive_plain_ip_commands_become_one_batch_in_order():
    cmds = ["sysctl -qw net.ipv4.ip_forward=1", "ip link set a mtu 1500",
            "ip addr add 10.0.0.1/24 brd + dev a", "{ ethtool -K a tx off || true; }",
            "ip link set b up"]
    assert ip_batches(cmds) == [
        ([0], "sysctl -qw net.ipv4.ip_forward=1"),
        ([1, 2], "printf '%s\\n' 'link set a mtu 1500' 'addr add 10.0.0.1/24 brd + dev a'"
                 " | ip -batch -"),
        ([3], "{ ethtool -K a tx off || true; }"),
        ([4], "ip link set b up")]


def test_ip_with_an_option_or_shell_syntax_runs_as_it_is():
    cmds = ["ip -6 addr add ::1/128 dev lo", "ip route add x via y", "ip link show | grep x",
            "ip route replace default via 172.18.0.1 dev t1-gw"]
    groups = ip_batches(cmds)
    assert [g[0] for g in groups] == [[0], [1], [2], [3]]
    assert [g[1] for g in groups] == cmds


def test_a_batch_stays_within_its_bytes():
    cmds = [f"ip link set veth{i:04d} mtu 1450 up" for i in range(200)]
    groups = ip_batches(cmds, limit=600)
    assert [i for idx, _ in groups for i in idx] == list(range(200))
    assert all(len(text) < 600 + 200 for _, text in groups) and len(groups) > 5


def test_the_failed_line_of_a_batch_names_its_command():
    assert failed_index([4, 5, 6], 'Cannot find device "x"\nCommand failed -:2') == 5
    assert failed_index([4, 5, 6], "something else") == 4
    assert failed_index([9], "Command failed -:1") == 9


def test_a_shell_is_started_without_mnexec_closing_every_descriptor():
    from swarmmesh.testbed.shell import closing_in_popen
    cmd = ["mnexec", "-cdn", "env", "PS1=\x7f", "bash", "--norc", "-is", "mininet:t1"]
    new, params = closing_in_popen(cmd, {"stdin": 5, "close_fds": False})
    assert new == ["mnexec", "-dn", *cmd[2:]]
    assert params == {"stdin": 5, "close_fds": True}


def test_only_mnexec_with_c_and_no_close_fds_changes():
    from swarmmesh.testbed.shell import closing_in_popen
    assert closing_in_popen(["mnexec", "-c", "bash"], {"close_fds": False}) == (
        ["mnexec", "bash"], {"close_fds": True})
    for cmd, params in ((["mnexec", "-da", "7", "ip"], {"close_fds": False}),
                        (["mnexec", "-cd", "bash"], {}),
                        (["bash", "-c", "true"], {"close_fds": False})):
        assert closing_in_popen(cmd, params) == (cmd, params)
