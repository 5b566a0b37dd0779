"""A host's commands reach its shell in lines the pty passes whole (Linux cuts a
canonical-mode line at 4,095 bytes; a longer one never ends and hangs the build)."""

from __future__ import annotations

import pytest

from swarmmesh.dataplane.nodeplan import tx_off_cmd
from swarmmesh.testbed.shell import LINE_MAX, shell_lines, vsctl_batches


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
