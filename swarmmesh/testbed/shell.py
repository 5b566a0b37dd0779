"""Commands in a host's shell: checked, batched into as few lines as the shell's line
allows, and ``ovs-vsctl`` transactions cut to fit.  The pure parts (:func:`shell_lines`,
:func:`vsctl_batches`) are unit-tested; :class:`Quiet` is the mixin every host of the
topology runs its commands through."""

from __future__ import annotations

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
        parts = [f"{{ {c} || {{ echo \"__failed {i} $?\"; false; }}; }}"
                 for i, c in enumerate(cmds)]
        outs = []
        for line in shell_lines(parts, self.name):
            out = self.cmd(line)               # type: ignore[attr-defined]
            if "__failed " in out:
                i, rc = out.rsplit("__failed ", 1)[1].split()[:2]
                raise RuntimeError(f"{self.name}: `{cmds[int(i)]}` failed ({rc}): "
                                   f"{out.rsplit('__failed ', 1)[0].strip()}")
            outs.append(out)
        return "".join(outs)

    def batch_file(self, name: str, lines: list[str]) -> Path | None:
        """A file of ``lines`` in this host's state folder (for ``bridge -batch``)."""
        if not lines:
            return None
        path = self.state.node_dir(self.name) / name       # type: ignore[attr-defined]
        path.write_text("\n".join(lines) + "\n")
        return path


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
