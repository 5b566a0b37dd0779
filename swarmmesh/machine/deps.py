"""The declared system packages (``debian-packages.txt`` beside this file), as data.

One list serves ``make setup`` (which installs it), ``swarmmesh doctor`` (which
checks it), the tool checks of the code (which name the package to install)
and a unit test (which fails when code calls a program named nowhere here).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

LIST = Path(__file__).with_name("debian-packages.txt")
GROUPS = ("core", "clients", "vm", "docker")
SETUP_GROUPS = ("core", "clients")        # what `make setup` installs


class DepsListError(ValueError):
    """The declared list itself is malformed; the message names the line and field."""


@dataclass(frozen=True)
class Package:
    name: str                  # the Debian package
    group: str                 # core | clients | vm | docker
    programs: tuple[str, ...]  # what it provides that the code calls
    why: str


def parse(text: str, source: str = "debian-packages.txt") -> list[Package]:
    """Lines ``package group programs why...``; ``#`` starts a comment line."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(None, 3)
        if len(fields) < 4:
            raise DepsListError(f"{source}:{no}: want 'package group programs why', got {line!r}")
        name, group, programs, why = fields
        if group not in GROUPS:
            raise DepsListError(f"{source}:{no}: group must be one of {', '.join(GROUPS)}, "
                                f"got {group!r}")
        progs = () if programs == "-" else tuple(p for p in programs.split(",") if p)
        out.append(Package(name, group, progs, why.strip()))
    return out


@lru_cache(maxsize=1)
def packages() -> tuple[Package, ...]:
    return tuple(parse(LIST.read_text(), LIST.name))


def package_of(program: str) -> str | None:
    """The declared package that provides ``program`` (None: declared nowhere)."""
    for p in packages():
        if program in p.programs:
            return p.name
    return None


def install_hint(program: str) -> str:
    """How to get ``program``: the apt command, or set-up when it is not declared."""
    pkg = package_of(program)
    return f"apt-get install {pkg}" if pkg else "sudo make setup"
