"""Commands in a host's shell: checked, batched into as few lines as the shell's line
allows, and ``ovs-vsctl`` transactions cut to fit.  The pure parts (:func:`shell_lines`,
:func:`vsctl_batches`) are unit-tested; :class:`Quiet` is the mixin every host of the
topology runs its commands through."""

from __future__ import annotations

import re
from pathlib import Path


class Quiet:
    """Run a command in a host and fail loudly, naming the host and command."""

    def run(self, *cmd: str) -> str:
        out = self.cmd(*cmd)                   # type: ignore[attr-defined]
        rc = self.cmd("echo $?").strip()       # type: ignore[attr-defined]
        if rc != "0":
            raise RuntimeError(f"{self.name}: `{' '.join(cmd)}` failed ({rc}): {out.strip()}")
        return out

    def run_all(self, cmds: list[str]) -> str:
        """Several commands in as few round trips to the host's shell as its line allows
        (:func:`shell_lines`), stopping at the first that fails (named in the error).
        A build has thousands of them."""
        if not cmds:
            return ""
        groups = ip_batches(cmds)
        parts = [f"{{ {text} || {{ echo \"__failed {g} $?\"; false; }}; }}"
                 for g, (_, text) in enumerate(groups)]
        outs = []
        for line in shell_lines(parts, self.name):
            out = self.cmd(line)               # type: ignore[attr-defined]
            if "__failed " in out:
                g, rc = out.rsplit("__failed ", 1)[1].split()[:2]
                said = out.rsplit("__failed ", 1)[0].strip()
                cmd = cmds[failed_index(groups[int(g)][0], said)]
                raise RuntimeError(f"{self.name}: `{cmd}` failed ({rc}): {said}")
            outs.append(out)
        return "".join(outs)

    def batch_file(self, name: str, lines: list[str]) -> Path | None:
        """A file of ``lines`` in this host's state folder (for ``bridge -batch``)."""
        if not lines:
            return None
        path = self.state.node_dir(self.name) / name       # type: ignore[attr-defined]
        path.write_text("\n".join(lines) + "\n")
        return path


def closing_in_popen(cmd: list[str], params: dict) -> tuple[list[str], dict]:
    """Mininet starts a host's shell as ``mnexec -c...`` with ``close_fds=False``:
    mnexec then closes every descriptor up to the open-file limit, one call each (20,000
    here; 1,100 shells make 22 million calls, about 3 CPU-seconds of a build). Python's Popen
    closes the same descriptors in one call (``close_range``): the same shell, started
    without ``-c`` and with ``close_fds``. Any other command is returned as it is."""
    if (cmd[:1] != ["mnexec"] or len(cmd) < 2 or params.get("close_fds", True)
            or not re.fullmatch(r"-[a-z]*c[a-z]*", cmd[1])):
        return cmd, params
    opts = cmd[1].replace("c", "")
    return ["mnexec", *([opts] if opts != "-" else []), *cmd[2:]], {**params, "close_fds": True}


# An ``ip`` command that ``ip -batch`` can take as it is: no option, no shell syntax.
_BATCHABLE = re.compile(r"ip [a-z][A-Za-z0-9 ./:_+-]*")
BATCH_MAX = 1500            # bytes of one batch's command line


def ip_batches(cmds: list[str], limit: int = BATCH_MAX) -> list[tuple[list[int], str]]:
    """``cmds`` as shell commands, in order: consecutive plain ``ip`` commands as one
    ``ip -batch`` (one process instead of one each: a node's set-up has twenty), the
    others as they are. Each with the indices of the commands it runs."""
    out: list[tuple[list[int], str]] = []
    run: list[int] = []

    def flush() -> None:
        if len(run) == 1:
            out.append((list(run), cmds[run[0]]))
        elif run:
            args = " ".join(f"'{cmds[i][3:]}'" for i in run)
            out.append((list(run), f"printf '%s\\n' {args} | ip -batch -"))
        run.clear()

    for i, c in enumerate(cmds):
        if not _BATCHABLE.fullmatch(c):
            flush()
            out.append(([i], c))
            continue
        if run and sum(len(cmds[j]) + 3 for j in run) + len(c) > limit:
            flush()
        run.append(i)
    flush()
    return out


def failed_index(indices: list[int], said: str) -> int:
    """Which command of a group failed: ``ip -batch`` names its line (``Command failed
    -:N``); a single command is itself."""
    m = re.search(r"Command failed -:(\d+)", said)
    if m and len(indices) > 1 and 1 <= int(m.group(1)) <= len(indices):
        return indices[int(m.group(1)) - 1]
    return indices[0]


# A host's shell reads its commands from a pty in canonical mode, where Linux cuts a line
# at 4,095 bytes: a longer command never ends (its sentinel is lost), so no line may
# come near it (a node with 20 tasks made a 5 KB one and hung the build).
LINE_MAX = 3000


def shell_lines(parts: list[str], host: str = "", limit: int = LINE_MAX) -> list[str]:
    """Commands joined with ``&&`` into as few lines as stay within ``limit`` bytes
    each, in order; a single command longer than that is an error naming the host."""
    lines: list[str] = []
    cur = ""
    for p in parts:
        if len(p.encode()) > limit:
            raise ValueError(f"{host}: a command of {len(p.encode())} bytes exceeds the "
                             f"shell's line ({limit}): {p[:120]}...")
        if cur and len((cur + " && " + p).encode()) > limit:
            lines.append(cur)
            cur = p
        else:
            cur = f"{cur} && {p}" if cur else p
    if cur:
        lines.append(cur)
    return lines


def vsctl_batches(args: list[str], prefix: str, limit: int = LINE_MAX - 200) -> list[str]:
    """``ovs-vsctl`` commands (``prefix -- a -- b ...``) of ``args``, one transaction
    each, as few as keep every command line within ``limit`` bytes."""
    out: list[str] = []
    cur: list[str] = []
    for a in args:
        if cur and len(prefix) + sum(len(x) + 4 for x in cur + [a]) > limit:
            out.append(f"{prefix} -- " + " -- ".join(cur))
            cur = []
        cur.append(a)
    if cur:
        out.append(f"{prefix} -- " + " -- ".join(cur))
    return out
