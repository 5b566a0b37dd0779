"""Run folders: raw CSV first, then summary.json; figures are drawn from files."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Iterable, Mapping

SOURCE = Path(__file__).resolve().parent     # git finds the checkout above it, if any


def new_run_dir(out: str | os.PathLike, tag: str) -> Path:
    """``OUT/<UTC timestamp>-<tag>``, created; never reuses a folder."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(out) / f"{stamp}-{tag}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True)
    return path


def git_commit() -> str:
    try:
        r = subprocess.run(["git", "-C", str(SOURCE), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(SOURCE), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return r.stdout.strip() + ("-dirty" if dirty else "") if r.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def host_info() -> dict:
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
            "kernel": os.uname().release}


def write_csv(path: Path, rows: Iterable[Mapping], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_json(path: Path, data: Mapping) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
