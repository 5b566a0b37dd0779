"""The veth ends' one-line configuration (no switch, no root)."""

from swarmmesh.testbed.links import intf_cmds


def test_an_address_and_up_in_one_line_with_the_broadcast_address():
    assert intf_cmds("t1-eth0", "10.0.0.6/24", True) == [
        "ip addr add 10.0.0.6/24 brd + dev t1-eth0", "ip link set t1-eth0 up"]


def test_no_address_only_up():
    assert intf_cmds("n1-t1", None, True) == ["ip link set n1-t1 up"]


def test_an_address_brings_the_interface_up_as_ifconfig_does():
    assert intf_cmds("x", "10.0.0.6/24", False)[-1] == "ip link set x up"


def test_nothing_to_do():
    assert intf_cmds("x", None, False) == []
