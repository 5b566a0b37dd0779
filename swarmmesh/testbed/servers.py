"""The cluster spread over several servers, carried out (the plan and its design:
``swarmmesh.dataplane.servers``).

Built on Mininet's cluster edition (``mininet.examples.cluster``): a host placed on another
server is this testbed's own host class with ``RemoteMixin`` in front (its shell is
``ssh ... sudo -E mnexec -cn bash`` there, every command goes down it, every process is
one more ssh session).  What this module adds to the cluster edition, and why:

* **ssh**: our own options (``-F none``, a given identity and known-hosts file, one
  ``ControlMaster`` per server kept for the run, recorded and closed at the end) instead
  of the cluster edition's (the user's ssh config, ``ControlPersist=1``, and
  ``MininetCluster`` makes ``~/.ssh/mn``; we use plain ``Mininet`` with remote classes);
* **processes**: a remote ``popen`` quotes its arguments (ssh joins them with spaces for
  the remote shell), carries the environment the caller gave (``env K=V``: ssh forwards
  none) and writes its remote PID into that server's record before it ``exec``s, so
  ``swarmmesh clean`` kills it there by record (killing the local ssh client does not);
* **placement**: the plan's (whole nodes with their tasks), through :class:`SpreadTopo`,
  which places the hosts ``SwarmTopo`` adds and links each to its server's underlay;
* **the tunnel**: a VXLAN (or gretap, where the kernel has ``ip_gre``: run in the vm-test
  guest, not on this machine) device made in each server's root namespace and moved into
  its underlay host, enslaved to that server's bridge; MTUs from the plan on every leg;
* **the controller**: a TCP relay on the first server, a unix relay on every other one
  (``swarmmesh.control.server_relay``).
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import sys
import zlib
from functools import partial
from pathlib import Path

from swarmmesh import agents
from swarmmesh.dataplane import servers as sv
from swarmmesh.dataplane.servers import Plan, Server
from swarmmesh.machine import servers_check
from swarmmesh.testbed.remotehost import remote_class, ssh_argv, tarfile_error
from swarmmesh.testbed.runtime import RunState, clean_servers
from swarmmesh.testbed.topology import SwarmNode, SwarmTopo, Underlay

RELAY_MODULE = "swarmmesh.control.server_relay"


class SpreadError(RuntimeError):
    """A server cannot take part; the message says which and how to fix it."""


# -- ssh ---------------------------------------------------------------------------------


# -- the topology ------------------------------------------------------------------------
class SpreadTopo(SwarmTopo):
    """``SwarmTopo`` whose hosts go where the plan says: every host ``SwarmTopo`` adds is
    given its server (a task its node's), and every underlay leg its server's bridge."""

    def build(self, spread: "Spread" = None, **params):
        self.spread = spread
        super().build(**params, mtu=spread.plan.mtu)      # every leg at the plan's MTUs

    def addHost(self, name, **opts):
        plan = self.spread.plan
        if name == "underlay":
            first = super().addHost(name, **opts)
            for server, ul in plan.underlay.items():
                if ul != "underlay":
                    super().addHost(ul, **self.spread.remote_opts(server, {**opts, "cls": Underlay}))
            return first
        return super().addHost(name, **self.spread.host_opts(name, opts))

    def addLink(self, node1, node2, **opts):
        if node2 == "underlay" and node1 in self.spread.plan.placement:
            node2 = self.spread.plan.underlay_of(node1)
        return super().addLink(node1, node2, **opts)


# -- the servers, carried out ------------------------------------------------------------
class Spread:
    """One testbed's servers: checks, relays, tunnels, MTUs, records and cleanup.
    ``Testbed(servers=spread)`` calls :meth:`start` before the build, :meth:`connect`
    after it and :meth:`stop` on the way out."""

    def __init__(self, plan: Plan, ssh_options: list[str] | None = None,
                 check: bool = True) -> None:
        self.plan = plan
        self.ssh_options = list(ssh_options if ssh_options is not None else plan.ssh_options)
        self.check = check
        self.state: RunState | None = None
        self.control_dir = Path("/nonexistent")
        self.controller_port = 0
        self.report: list[str] = []
        self.seq = itertools.count(1)        # remote processes' pidfiles (procs/<host>.<n>.pid)
        self.results: dict[str, sv.ResultFile] = {}   # local path -> written there, not fetched
        self.result_seq = itertools.count(1)

    @property
    def remote(self) -> list[Server]:
        return [s for s in self.plan.servers[1:]]

    @property
    def topo_class(self):
        return partial(SpreadTopo, spread=self)

    def ssh(self, server: Server) -> list[str]:
        return ssh_argv(server, self.control_dir, self.ssh_options)

    def server_dir(self, server: Server) -> Path:
        """The run's state folder on ``server``: the same path as here, its own there
        (its record ``pids``, ``owner``, ``model.json``, the nodes' folders ...)."""
        return self.state.dir

    def remote_pids(self, server: Server) -> str:
        return str(self.server_dir(server) / "pids")

    def run(self, server: Server, script: str, timeout: float = 30, input: str | None = None,
            check: bool = True):
        """``script`` as root on ``server`` (one ssh session on its master): its stdout,
        or with ``check=False`` the CompletedProcess."""
        r = subprocess.run(self.ssh(server) + [f"sudo -n sh -c {shlex.quote(script)}"],
                           capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if not check:
            return r
        if r.returncode != 0:
            raise SpreadError(f"{server.name}: `{script[:300]}` failed ({r.returncode}): "
                              f"{(r.stderr or r.stdout).strip()[-500:]}")
        return r.stdout

    def put(self, server: Server, path: Path, text: str) -> None:
        """Write a file on ``server`` (written aside, then renamed: whole or not at all),
        in one session."""
        tmp = path.with_name(f".{path.name}.put")
        self.run(server, f"mkdir -p {path.parent} && cat > {tmp} && mv {tmp} {path}",
                 input=text)

    def host_opts(self, name: str, opts: dict) -> dict:
        """``addHost`` options of a host (a task goes where its node is), remote or not."""
        plan = self.plan
        server = plan.placement.get(name) or plan.placement.get(opts.get("node_name", ""))
        if server is None or plan.server(server).local:
            return opts
        return self.remote_opts(server, opts)

    def remote_opts(self, server: str, opts: dict) -> dict:
        s = self.plan.server(server)
        out = {**opts, "cls": remote_class(opts["cls"]), "spread": self, "where": s}
        if issubclass(opts["cls"], SwarmNode):
            out["controller"] = str(self.state.dir / self.plan.relays[server])
        return out

    # -- before the build ------------------------------------------------------------
    def start(self, tb) -> None:
        self.state = tb.state
        self.control_dir = self.state.dir / "ssh"
        self.control_dir.mkdir(parents=True, exist_ok=True)
        self._write_record()
        if self.check:
            self.check_servers()
        model = tb.model_path.read_text()
        for s in self.remote:                  # the run's state folder there, its model
            d = self.server_dir(s)
            self.run(s, f"mkdir -p {d}/procs {d}/{sv.RESULTS} && cat > {d}/model.json",
                     input=model)
        self._start_relays(tb)

    def _write_record(self) -> None:
        """What ``swarmmesh clean`` needs to clean every other server of this run."""
        rec = [{"name": s.name, "ssh": self.ssh(s), "python": sys.executable,
                "pythonpath": agents.python_env()["PYTHONPATH"],
                "dir": str(self.server_dir(s)), "control": f"{self.control_dir}/{s.name}.ctl"}
               for s in self.remote]
        (self.state.dir / "servers.json").write_text(json.dumps(rec, indent=1))

    def check_servers(self) -> None:
        items = servers_check.check({s.name: self.ssh(s) for s in self.remote},
                                    tunnel=self.plan.tunnels[0].kind if self.plan.tunnels
                                    else "vxlan")
        self.report = [i.line() for i in items]
        bad = [i for i in items if not i.ok]
        if bad:
            raise SpreadError("servers not ready:\n" + "\n".join(i.line() for i in bad))

    def _start_relays(self, tb) -> None:
        """The first server's TCP relay to the controller's socket, then each other
        server's unix relay to it; each prints ``ready`` once listening."""
        from swarmmesh.testbed.testbed import _free_port  # noqa: PLC0415  (same layer)
        self.controller_port = _free_port()
        front = f"{self.plan.controller_address}:{self.controller_port}"
        argv = [sys.executable, "-m", RELAY_MODULE, "--tcp", front,
                "--to-unix", str(self.state.dir / "openflow.sock")]
        procs = [(subprocess.Popen(argv, env=agents.python_env(), stdout=subprocess.PIPE,
                                   text=True, start_new_session=True), "localhost")]
        self.state.register(procs[0][0].pid, RELAY_MODULE)
        for s in self.remote:
            sock = self.state.dir / self.plan.relays[s.name]
            # The relay lives as long as the run there: it is the record's owner (its
            # server's `swarmmesh clean` leaves the run alone while it lives).
            # (Not over an owner already there: a server that shares this one's folder.)
            script = (f'[ -e {self.server_dir(s)}/owner ] || echo $$ > {self.server_dir(s)}/owner; '
                      f'echo "$$\t{RELAY_MODULE}" >> {self.remote_pids(s)}; exec env '
                      f"PYTHONPATH={agents.python_env()['PYTHONPATH']} {sys.executable} -m "
                      f"{RELAY_MODULE} --unix {sock} --to-tcp {front}")
            procs.append((subprocess.Popen(self.ssh(s) + [f"sudo -n sh -c {shlex.quote(script)}"],
                                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           text=True,
                                           start_new_session=True), s.name))
        for proc, name in procs:
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                raise SpreadError(f"{name}: the controller relay did not start ({line.strip()})")
        self.relays = procs

    # -- after the build -----------------------------------------------------------------
    def connect(self, tb) -> None:
        """The tunnels between the servers' underlay bridges (every other leg has the
        plan's MTU from the build: the topology is given it)."""
        # Two runs over the same servers must not share a VNI or GRE key (the device's
        # socket is in the root namespace): the plan's key, offset per run.
        offset = 16 * (zlib.crc32(self.state.dir.name.encode()) % 1_000_000)
        for t in self.plan.tunnels:
            a, b = self.plan.server(t.a), self.plan.server(t.b)
            key = offset + t.key
            for here, there, intf in ((a, b, t.intf_a), (b, a, t.intf_b)):
                host = tb.net.get(self.plan.underlay[here.name])
                local = self._local_address(here, there)
                if t.kind == "vxlan":
                    make = (f"ip link add {intf} type vxlan id {key} local {local} "
                            f"remote {there.address} dstport 4789")
                else:
                    make = (f"ip link add {intf} type gretap local {local} remote "
                            f"{there.address} key {key} ttl 64")
                self._root(here, tb, f"{make} && ip link set {intf} netns {host.pid}")
                host.run(f"ip link set {intf} mtu {self.plan.mtu.underlay} && "
                         f"ip link set {intf} master ul0 && ip link set {intf} up")

    def _local_address(self, here: Server, there: Server) -> str:
        if not here.local:
            return here.address
        out = subprocess.run(["ip", "route", "get", there.address], capture_output=True,
                             text=True).stdout
        return out.split(" src ")[1].split()[0]

    def _root(self, server: Server, tb, script: str) -> None:
        if server.local:
            r = subprocess.run(script, shell=True, capture_output=True, text=True)
            if r.returncode != 0:
                raise SpreadError(f"{server.name}: `{script}` failed: {r.stderr.strip()}")
        else:
            self.run(server, script)

    # -- the run's files on the other servers ----------------------------------------
    def publish(self, text: str) -> None:
        """A new revision of the live model (``model.json``) on every other server, where
        its nodes' DNS follow it: one session each, all at once, whole or not at all."""
        path = self.state.dir / "model.json"
        tmp = path.with_name(".model.json.put")
        script = shlex.quote(f"cat > {tmp} && mv {tmp} {path}")
        procs = [(s, subprocess.Popen(self.ssh(s) + [f"sudo -n sh -c {script}"],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
                 for s in self.remote]
        failed = []
        for s, proc in procs:
            _out, err = proc.communicate(text, timeout=30)
            if proc.returncode != 0:
                failed.append(f"{s.name}: {err.strip()[-300:]}")
        if failed:
            raise SpreadError("the model did not reach " + "; ".join(failed))

    def dns_ready(self) -> dict[str, list[str]]:
        """Node -> the tasks its embedded DNS serves, for the nodes on other servers
        (their ``dns/<node>.json`` there), one session per server."""
        out: dict[str, list[str]] = {}
        for s in self.remote:
            r = self.run(s, f"for f in {self.state.dir}/dns/*.json; do [ -f \"$f\" ] && "
                            "cat \"$f\"; echo; done", check=False)
            for line in r.stdout.splitlines():
                try:
                    rec = json.loads(line)
                    out[rec["node"]] = rec["tasks"]
                except (ValueError, KeyError, TypeError):
                    continue
        return out

    def tar_from(self, server: Server, script: str, timeout: float = 60
                 ) -> tuple[list[tuple[str, bytes]], str]:
        """Run ``script`` (which writes a tar on stdout) on ``server`` in one session: its
        regular files as (name, bytes), and its stderr."""
        import io
        import tarfile
        r = subprocess.run(self.ssh(server) + [f"sudo -n sh -c {shlex.quote(script)}"],
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        err = r.stderr.decode(errors="replace").strip()
        if not r.stdout:
            return [], err or f"exit status {r.returncode}, no output"
        out = []
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m) if m.isfile() else None
                if f is not None:
                    out.append((m.name, f.read()))
        return out, err

    def fetch_logs(self, run_dir: Path) -> None:
        """The other servers' OVS logs into the run folder (``logs/<node>-<file>``, as
        the testbed keeps this server's)."""
        for s in self.remote:
            files, _err = self.tar_from(s, f"cd {self.state.dir} && ls */ovs/*.log "
                                           "2>/dev/null | tar -cf - -T -")
            for name, data in files:
                dst = Path(run_dir) / "logs" / f"{Path(name).parts[0]}-{Path(name).name}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(data)

    # -- result files written on the other servers ---------------------------------
    def result_path(self, host, local) -> str:
        """The path an agent in ``host`` (on another server) writes a file to that is
        meant for ``local`` (in the run folder here): a file of its own in the run's
        state folder there, fetched back by :meth:`fetch_results` (which the caller
        calls once the agent is done; :meth:`stop` fetches whatever is left)."""
        local = str(Path(local).absolute())
        rf = sv.result_file(self.plan, host.name, local, str(self.state.dir),
                            next(self.result_seq), node=getattr(host, "node_name", None))
        if rf is None:
            return local
        self.results[local] = rf
        return rf.remote

    def fetch_results(self, locals_=None, strict: bool = True) -> list[str]:
        """Fetch the result files written on the other servers (those meant for
        ``locals_``, default all not fetched yet) into their paths here, one session per
        server.  A file that does not come is an error naming its server and file:
        raised (``strict``), else returned."""
        keys = list(self.results) if locals_ is None else \
            [str(Path(p).absolute()) for p in locals_]
        files = [self.results.pop(k) for k in keys if k in self.results]
        errors = []
        for server, group in sv.by_server(files).items():
            try:
                got, err = self.tar_from(self.plan.server(server), sv.fetch_script(group))
            except (OSError, subprocess.SubprocessError, tarfile_error()) as e:
                got, err = [], str(e)
            placed, missing = sv.sort_fetched(group, [name for name, _ in got])
            for name, data in got:
                if name in placed:
                    dst = Path(placed[name].local)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(data)
            errors += [f"{server}: {f.host}'s result file {f.remote} (for {f.local}) did not "
                       f"come back: {err[-300:] or 'not there'}" for f in missing]
        if errors and strict:
            raise SpreadError("; ".join(errors))
        return errors

    # -- teardown --------------------------------------------------------------------
    def stop(self, tb) -> None:
        for proc, _name in getattr(self, "relays", []):
            if proc.poll() is None:
                proc.terminate()
        if self.state is not None:
            # what the agents there wrote and nobody fetched (a failed run, Ctrl-C)
            for line in self.fetch_results(strict=False):
                print(f"error: {line}", file=sys.stderr)
            try:
                self.fetch_logs(tb.run_dir)
            except (OSError, subprocess.SubprocessError, tarfile_error()) as e:
                print(f"warning: the other servers' logs: {e}", file=sys.stderr)
            clean_servers(self.state.dir)
        for proc, _name in getattr(self, "relays", []):
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- from the command line ---------------------------------------------------------------
def resolve(name: str, toward: str | None = None) -> str | None:
    """A server's IPv4 address: ``localhost`` is this machine's source address toward
    ``toward`` (the next server); a name goes through ``getent ahostsv4``."""
    if name == "localhost":
        if toward is None:
            return "127.0.0.1"
        out = subprocess.run(["ip", "route", "get", toward], capture_output=True,
                             text=True).stdout
        return out.split(" src ")[1].split()[0] if " src " in out else None
    out = subprocess.run(["getent", "ahostsv4", name], capture_output=True, text=True).stdout
    return out.split()[0] if out.split() else None


def spread_from_args(args, cluster) -> Spread | None:
    """The Spread the flags ask for, or None (one machine).  Bad input raises
    ``InvalidConfigError`` naming the field."""
    import yaml
    if not getattr(args, "servers", None) and not getattr(args, "servers_file", None):
        return None
    kw: dict = {}
    if args.servers_file:
        kw = sv.load_servers_file(yaml.safe_load(Path(args.servers_file).read_text()))
    if args.servers:
        kw["servers"] = sv.parse_servers_flag(args.servers)
    flags = sv.parse_place_flags(args.place)
    for host, server in flags.items():
        if kw.get("place_explicit", {}).get(host, server) != server:
            raise sv.InvalidConfigError(f"place.{host}", f"placed twice ({kw['place_explicit'][host]}"
                                        f" in the servers file, {server} by --place)")
    kw["place_explicit"] = {**kw.get("place_explicit", {}), **flags}
    kw["placement"] = args.placement or kw.get("placement", "block")
    kw["tunnel"] = args.tunnel or kw.get("tunnel", sv.DEFAULT_TUNNEL)
    entries = [e if isinstance(e, dict) else {"name": e} for e in kw["servers"]]
    first_remote = next((e.get("address") or resolve(e["name"]) for e in entries[1:]), None)
    return Spread(sv.plan(cluster, **kw, resolve=lambda n: resolve(n, first_remote)))
