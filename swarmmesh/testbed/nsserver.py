"""A second "server" on this machine, for tests of a cluster spread over servers.

A network namespace held by its own ``sshd`` (``unshare -n -m sshd -D``: the namespaces live
exactly as long as that recorded process and what it starts), joined to this machine's root
namespace by a veth (``sm-srv<i>`` 10.254.<i>.1/24 here, ``eth0`` 10.254.<i>.2/24 there).  The sshd has
its own config, host key and authorized key, all in this server's run-state folder, on
a high port; the client's throwaway key pair is there too.  Nothing is read from or
written to ``~/.ssh`` or ``/etc/ssh`` (``ssh -F none``, own known-hosts file); only
``/run/sshd``, the privilege-separation folder compiled into sshd, is made if missing.

**Its own run state.**  The sshd runs in a mount namespace of its own with a private tmpfs
over the state root (``/run/swarmmesh``): a run's state folder there (``model.json``, node
folders, OVS run folders and pidfiles, nft scripts, records) is that server's own, and
nothing written on one side is seen on the other, as between two machines.  Only this
server's own folder (sshd's config and keys) is bound back in, so that sshd can read it.

**What is still shared**: the rest of the file system (the checkout and the venv, as the
requirements ask of every server: same code at the same path) and the **PID space**: a
remote process's PID is visible here too.  The code must not rely on it: a remote
process is only ever signalled, and its pidfiles read, on its own server (over ssh).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

from swarmmesh.dataplane.servers import Server
from swarmmesh.testbed.runtime import STATE_ROOT, RunState

SSHD = "/usr/sbin/sshd"


def free_index(first: int = 7, last: int = 250) -> int:
    """The first index whose veth (``sm-srv<i>``) is not there: test sessions running at
    once each get their own server."""
    have = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for i in range(first, last):
        if f" sm-srv{i}@" not in have and f" sm-srv{i}:" not in have:
            return i
    raise RuntimeError("no free sm-srv<i> index")


class NamespaceServer:
    def __init__(self, index: int | None = None, port: int | None = None,
                 mtu: int = 1500) -> None:
        index = index if index is not None else free_index()
        self.index = index
        self.port = port or 22000 + 100 * index + os.getpid() % 100
        self.mtu = mtu
        self.state: RunState | None = None
        self.proc: subprocess.Popen | None = None
        self.intf = f"sm-srv{index}"
        self.local_address = f"10.254.{index}.1"
        self.address = f"10.254.{index}.2"

    @property
    def name(self) -> str:
        return f"srv{self.index}"

    def server(self) -> Server:
        return Server(self.name, self.address, "root", self.port, self.mtu)

    def ssh_options(self) -> list[str]:
        d = self.state.dir
        return ["-F", "none", "-o", f"IdentityFile={d}/id", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={d}/known_hosts",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR"]

    def start(self) -> "NamespaceServer":
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "NamespaceServer":
        self.state = RunState(f"nsserver-{os.getpid()}-{self.index}")
        d = self.state.dir
        for key in ("id", "host_key"):
            if not (d / key).exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                f"swarmmesh-{key}", "-f", str(d / key)], check=True)
        (d / "authorized_keys").write_text((d / "id.pub").read_text())
        cfg = d / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 0.0.0.0", f"HostKey {d}/host_key",
            f"AuthorizedKeysFile {d}/authorized_keys", f"PidFile {d}/sshd.pid",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "UseDNS no", "StrictModes no",
            # Mininet's cluster edition opens a session per host shell and per process.
            "MaxSessions 1000", "MaxStartups 200:30:400", "LogLevel ERROR", ""]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = open(d / "sshd.log", "w")
        # A private tmpfs over the state root, this server's folder bound back in (through a
        # scratch mount point, since the tmpfs hides it), then sshd.
        q = {k: shlex.quote(str(v)) for k, v in (("d", d), ("root", STATE_ROOT))}
        script = (f"set -e; t=$(mktemp -d); mount --bind {q['d']} $t; "
                  f"mount -t tmpfs -o mode=0755 swarmmesh-{self.name} {q['root']}; "
                  f"mkdir -p {q['d']}; mount --bind $t {q['d']}; umount $t; rmdir $t; "
                  f"exec {SSHD} -D -e -f {shlex.quote(str(cfg))}")
        self.proc = subprocess.Popen(["unshare", "-n", "-m", "--propagation", "private",
                                      "sh", "-c", script],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        self.state.register(self.proc.pid, str(cfg))
        self._link()
        self._wait_ssh()
        return self

    def _link(self) -> None:
        pid = self.proc.pid
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise RuntimeError("sshd's namespace did not appear")
            time.sleep(0.02)
        self.state.register_links([self.intf])
        sh = (f"ip link add {self.intf} mtu {self.mtu} type veth peer name eth0 netns {pid} && "
              f"ip addr add {self.local_address}/24 dev {self.intf} && "
              f"ip link set {self.intf} up")
        subprocess.run(sh, shell=True, check=True)
        subprocess.run(["nsenter", "-t", str(pid), "-n", "sh", "-c",
                        f"ip link set lo up && ip link set eth0 mtu {self.mtu} && "
                        f"ip addr add {self.address}/24 dev eth0 && ip link set eth0 up"],
                       check=True)

    def ssh(self) -> list[str]:
        return ["ssh", *self.ssh_options(), "-o", "BatchMode=yes", "-p", str(self.port),
                f"root@{self.address}"]

    def _wait_ssh(self) -> None:
        deadline = time.monotonic() + 15
        while True:
            r = subprocess.run(self.ssh() + ["true"], capture_output=True, text=True)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.state.dir / "sshd.log").read_text()[-500:]
                raise RuntimeError(f"{self.name}: ssh did not answer: {r.stderr.strip()} {log}")
            time.sleep(0.1)

    def stop(self) -> list[str]:
        if self.state is None:
            return []
        removed = self.state.clean()      # sshd (the namespace goes with it), the veth
        self.state = None
        return removed
