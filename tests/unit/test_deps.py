"""The declared system packages: well formed, and naming every program the code calls.

The scan reads the source as text (no import): every call whose name runs a
program (``cmd``, ``popen``, ``subprocess.run``, ``require``, ``which``, ...)
and whose first argument starts with a literal program name (an argv list, or
a command line, each ``|``, ``;`` and ``&&`` part of it).  A program that no
line of ``debian-packages.txt`` provides fails the test with its file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from swarmmesh.machine import deps

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("swarmmesh", "experiments", "topologies", "controllers", "tests")
CALLS = {"cmd", "cmdPrint", "popen", "Popen", "run", "call", "check_call", "check_output",
         "sendCmd", "require", "which", "quietRun", "errRun", "_run", "pexec"}
# First words that are not programs: the shell's own, or this project's entry points.
NOT_PROGRAMS = {"cd", "exec", "export", "kill", "set", "test", "[", "python", "swarmmesh",
                "swarmmesh-controller", "swarmmesh-clean"}
PROGRAM = re.compile(r"^[a-z][a-z0-9._+-]*$")


def _words(text: str):
    """The program of each part of a shell command line."""
    for part in re.split(r"\|\||&&|[|;]|\$\(", text):
        words = [w for w in part.split() if "{}" not in w]
        while words and ("=" in words[0] or words[0] in ("sudo", "nohup", "env", "exec")):
            words = words[1:]
        if words:
            yield words[0]


def _text(arg: ast.AST) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):            # f"{env} ovs-vsctl ...": values as {}
        return "".join(v.value if isinstance(v, ast.Constant) else " {} " for v in arg.values)
    return None


def called_programs(source: str) -> list[tuple[int, str]]:
    """(line, program) of every program call this scan recognises in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name not in CALLS:
            continue
        arg = node.args[0]
        if isinstance(arg, (ast.List, ast.Tuple)):
            text = _text(arg.elts[0]) if arg.elts else None
            words = [text.split()[0]] if text and text.split() else []
        else:
            text = _text(arg)
            words = ([text] if name in ("require", "which") else list(_words(text))) \
                if text else []
        found += [(node.lineno, w.rsplit("/", 1)[-1]) for w in words]
    return found


def _experiment_names() -> set[str]:
    return {p.stem for p in (REPO / "experiments").glob("*.py")}


def test_the_list_parses_and_every_group_is_known():
    pkgs = deps.packages()
    assert {p.group for p in pkgs} == set(deps.GROUPS)
    names = [p.name for p in pkgs]
    assert len(names) == len(set(names)), "a package is listed twice"
    assert deps.package_of("ab") == "apache2-utils"
    assert deps.package_of("dig") == "bind9-dnsutils"
    assert deps.install_hint("nosuchprogram") == "sudo make setup"


@pytest.mark.parametrize("line, field", [
    ("wrk clients", "want 'package group programs why'"),
    ("wrk client wrk keep-alive load", "group must be one of"),
])
def test_a_malformed_line_is_named(line, field):
    with pytest.raises(deps.DepsListError, match=field) as e:
        deps.parse(f"# header\n{line}\n", "x.txt")
    assert "x.txt:2" in str(e.value)


def test_the_scan_finds_programs_in_every_form():
    src = '''
h.cmd("ip link set x up; tc qdisc show | grep -q netem && dig +short a")
h.popen(["tcpdump", "-i", "eth0"])
subprocess.run(["/usr/sbin/nft", "-f", "-"])
h.run(f"{env} ovs-vsctl --db=unix:{d}/db.sock init")
h.cmd(f"OVS_RUNDIR={d} ovs-appctl -t x")
tools.require("wrk")
other.call(variable)
'''
    assert [p for _, p in called_programs(src)] == [
        "ip", "tc", "grep", "dig", "tcpdump", "nft", "ovs-vsctl", "ovs-appctl", "wrk"]


def test_every_program_the_code_calls_is_declared():
    experiments = _experiment_names()
    undeclared = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            for line, prog in called_programs(path.read_text()):
                if (prog in NOT_PROGRAMS or prog in experiments or not PROGRAM.match(prog)
                        or deps.package_of(prog)):
                    continue
                undeclared.append(f"{path.relative_to(REPO)}:{line}: {prog}")
    assert not undeclared, ("programs called but declared in no line of "
                            "swarmmesh/machine/debian-packages.txt:\n" + "\n".join(undeclared))


def test_setup_installs_exactly_the_core_and_client_groups():
    makefile = (REPO / "Makefile").read_text()
    assert "swarmmesh/machine/debian-packages.txt" in makefile
    assert '$$2 == "core" || $$2 == "clients"' in makefile
