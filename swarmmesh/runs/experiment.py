"""The framework every experiment runs in (docs/experiments.md: Write your own experiment).

An experiment is a module (``experiments/<NAME>.py``, installed as a plug-in of the
entry-point group ``swarmmesh.experiments``, or a user's own file) with ``NAME``,
``DESCRIPTION``, ``add_arguments(parser)``, ``validate(args) -> plan``,
``run(args, plan, ctx)`` and ``plot(run_dir)``; it ends with::

    if __name__ == "__main__":
        sys.exit(experiment.main(sys.modules[__name__]))

:func:`main` parses the common flags (``--out --datapath --seed --quiet``)
and the experiment's own, validates them before anything is built, makes the
run folder ``<out>/<UTC stamp>-<NAME>``, writes ``summary.json``, runs,
plots, and prints the run folder as the last line of stdout.

Exit codes: 0 success; 1 the run set ``ctx.failed`` or broke while running;
2 bad input or a machine that cannot run it (nothing built, no run folder);
130 Ctrl-C, 143 SIGTERM (the Testbed has cleaned up by then).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from importlib import metadata
import json
import os
import random
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Iterable, Iterator, Mapping, Sequence

from swarmmesh.runs import runfolder as results
from swarmmesh.machine.datapath import DATAPATHS
from swarmmesh.model import DOCKER_VERSION, InvalidConfigError
from swarmmesh.runs.progress import Progress



class Context:
    """What ``run(args, plan, ctx)`` gets.

    ``run_dir``: the run folder (write raw CSV here, e.g. with :meth:`write_csv`).
    ``progress``: a :class:`swarmmesh.runs.progress.Progress` (``phase``, ``total``,
    ``advance``, ``note``; callable with a message).
    ``summary``: a dict merged into summary.json (its keys win over the
    framework's, e.g. ``datapath``).
    ``failed``: set it to a true value (a reason string is best) to exit 1.
    """

    def __init__(self, args: argparse.Namespace, run_dir: Path, progress: Progress) -> None:
        self.args = args
        self.run_dir = run_dir
        self.progress = progress
        self.summary: dict = {}
        self.failed: bool | str = False

    @contextlib.contextmanager
    def testbed(self, cluster, run_dir: Path | None = None, **kwargs) -> Iterator:
        """``with ctx.testbed(cluster) as tb:`` a Testbed with this run's
        datapath flag and progress; records the datapath that actually ran
        in the summary (``datapath``)."""
        from swarmmesh.testbed.servers import spread_from_args
        from swarmmesh.testbed.testbed import Testbed
        self.record_stack(cluster)
        self.progress.phase("building")
        spread = kwargs.pop("servers", None) or spread_from_args(self.args, cluster)
        if spread is not None:
            self.summary["servers"] = spread.plan.to_dict()
        kwargs.setdefault("build_timeout", getattr(self.args, "build_timeout", None))
        with Testbed(cluster, run_dir or self.run_dir, datapath=self.args.datapath,
                     progress=self.progress, servers=spread, **kwargs) as tb:
            if spread is not None:
                self.summary["servers"]["checks"] = spread.report
            self.summary["datapath"] = tb.datapath
            if getattr(tb, "engine", "emulated") == "docker":
                self.progress.note(f"engine: docker {tb.version} (real Swarm)")
                self.summary["engines"] = {"docker": tb.summary()}
            else:
                self.progress.note(f"datapath: {tb.datapath} OVS")
            if not getattr(self.args, "flows", False):
                yield tb
                return
            from swarmmesh.runs.flowrec import FlowRecorder
            rec = FlowRecorder(tb, run_dir or self.run_dir).start()
            try:
                yield tb
            finally:
                rows = rec.stop()
                self.summary["flows"] = {"connections": len(rows), "file": "flows.csv"}

    def record_stack(self, cluster) -> None:
        """What Swarm would have said at deploy: the nodes' roles and labels, the tasks
        no node can take (pending, with the reason), the warnings, the ignored keys;
        in the summary (``stack``) and as progress notes."""
        self.summary["stack"] = {
            "nodes": {n.name: {"role": n.role, "labels": dict(n.labels),
                               "availability": n.availability} for n in cluster.nodes},
            "pending": [{"task": f"{p.service}.{p.slot}", "reason": p.reason}
                        for p in cluster.pending],
            "warnings": list(cluster.warnings), "ignored_keys": list(cluster.ignored_keys)}
        for p in cluster.pending:
            self.progress.note(f"pending: {p.service}.{p.slot}: {p.reason}")
        for w in cluster.warnings:
            self.progress.note(f"warning: {w}")

    def write_csv(self, name: str, rows: Iterable[Mapping], columns: list[str]) -> Path:
        path = self.run_dir / name
        results.write_csv(path, rows, columns)
        return path


# -- parsing ------------------------------------------------------------------
class _Help(argparse.HelpFormatter):
    """Show a flag's default unless it is None/False or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings):
            text += " (default: %(default)s)"
        return text


def build_parser(module: ModuleType, prog: str | None = None) -> argparse.ArgumentParser:
    name = module.NAME
    ap = argparse.ArgumentParser(
        prog=prog, description=getattr(module, "DESCRIPTION", None),
        epilog="exit status: 0 ok, 1 the run failed, 2 bad input, 130 interrupted",
        formatter_class=_Help)
    module.add_arguments(ap)
    common = ap.add_argument_group("common to every experiment")
    common.add_argument("--out", default=f"results/{name}",
                        help="parent folder of the run folder <out>/<UTC stamp>-" + name)
    common.add_argument("--datapath", choices=DATAPATHS, default="auto",
                        help="OVS datapath: kernel module (system), userspace (netdev), "
                             "or system where the module exists")
    common.add_argument("--build-timeout", type=float, default=None, metavar="S",
                        help="seconds a build may take before it stops, naming the node and "
                             "step that hung (default: $SWARMMESH_BUILD_TIMEOUT, else 60 s "
                             "+ 0.5 s a node + 0.15 s a task)")
    common.add_argument("--seed", type=int, default=None,
                        help="random seed (default: drawn at random and recorded)")
    common.add_argument("--quiet", action="store_true",
                        help="plain, sparse log lines instead of a progress bar (for CI)")
    common.add_argument("--flows", action="store_true",
                        help="log every connection's path from the nodes' conntrack events "
                             "into flows.csv and flows.png (entry node x task)")
    from swarmmesh.dataplane import servers
    servers.add_arguments(ap.add_argument_group("across several servers"))
    return ap


def _check_common(args: argparse.Namespace) -> None:
    if args.seed is not None and not 0 <= args.seed < 2 ** 32:
        raise InvalidConfigError("seed", f"must be in 0 .. 2**32-1, got {args.seed}")
    timeout = getattr(args, "build_timeout", None)
    if timeout is not None and not timeout > 0:
        raise InvalidConfigError("build-timeout", f"must be > 0 seconds, got {timeout}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidConfigError("out", f"{out} exists and is not a folder")


def parameters(args: argparse.Namespace) -> dict:
    """Every flag, JSON-ready."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())}


def base_summary(module: ModuleType, args: argparse.Namespace) -> dict:
    from swarmmesh.machine import doctor
    from swarmmesh.testbed.testbed import versions
    return {
        "experiment": module.NAME,
        "description": getattr(module, "DESCRIPTION", ""),
        "script": str(Path(module.__file__).resolve()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "parameters": parameters(args),
        "seed": args.seed,
        "datapath_requested": args.datapath,
        "datapath": args.datapath if args.datapath != "auto" else
            "unknown (run() neither used ctx.testbed nor set ctx.summary[\"datapath\"])",
        "versions": versions(),
        "emulates_docker": DOCKER_VERSION,     # the release the emulation's mesh follows
        "doctor": doctor.summary_items(doctor.all_checks()),
        "git_commit": results.git_commit(),
        "host": results.host_info(),
        "started": results.now_iso(),
        "finished": None,
        "status": "running",
    }


def write_summary(run_dir: Path, summary: dict, ctx: Context | None) -> dict:
    full = {**summary, **(ctx.summary if ctx else {})}
    results.write_json(run_dir / "summary.json", full)
    return full


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


# -- running ------------------------------------------------------------------
def main(module: ModuleType, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse, validate, run and plot one experiment; return the exit code."""
    args = build_parser(module, prog).parse_args(argv)  # argparse itself exits 2, naming the flag
    plan, error = _plan_or_error(module, args)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2 ** 32)
    random.seed(args.seed)

    progress = Progress(module.NAME, quiet=args.quiet)
    run_dir = results.new_run_dir(args.out, module.NAME)
    summary = base_summary(module, args)
    ctx = Context(args, run_dir, progress)
    write_summary(run_dir, summary, None)
    code = _run(module, args, plan, ctx, summary)
    summary["finished"] = results.now_iso()
    full = write_summary(run_dir, summary, ctx)
    if code in (0, 1) and not full["status"].startswith("error"):
        if not _plot(module, run_dir, progress):
            code = 1
    progress.close()
    if ctx.failed:
        print(f"[{module.NAME}] FAILED: {ctx.failed}", file=sys.stderr)
    elif code == 130:
        print(f"[{module.NAME}] interrupted; partial data kept", file=sys.stderr)
    print(run_dir, flush=True)
    return code


def _plan_or_error(module: ModuleType, args: argparse.Namespace) -> tuple[object, str | None]:
    """The experiment's plan, or why nothing may be built: bad input, or (for an
    experiment that needs root) a machine that cannot run it."""
    try:
        _check_common(args)
        plan = module.validate(args)
    except InvalidConfigError as e:
        return None, str(e)
    if getattr(module, "NEEDS_ROOT", True):
        from swarmmesh.testbed.testbed import TestbedError, check_machine
        try:
            check_machine()
        except TestbedError as e:
            return None, str(e)
    return plan, None


def _run(module: ModuleType, args: argparse.Namespace, plan: object, ctx: Context,
         summary: dict) -> int:
    """``module.run``, its outcome in ``summary["status"]``; the exit code."""
    from swarmmesh.testbed.testbed import TestbedError as BuildError
    try:
        module.run(args, plan, ctx)
        summary["status"] = "ok" if not ctx.failed else f"failed: {ctx.failed}"
        return 1 if ctx.failed else 0
    except BuildError as e:                        # one line: who, which step, why
        summary["status"] = f"error: {e}"
        ctx.progress.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        summary["status"] = "interrupted (Ctrl-C)"
        return 130
    except SystemExit as e:                        # SIGTERM, raised by the Testbed's handler
        summary["status"] = f"stopped (exit {e.code})"
        return e.code if isinstance(e.code, int) else 1
    except Exception as e:                         # noqa: BLE001 - recorded, then exit 1
        summary["status"] = f"error: {type(e).__name__}: {e}"
        ctx.progress.close()
        traceback.print_exc()
        return 1


def _plot(module: ModuleType, run_dir: Path, progress: Progress) -> bool:
    """``module.plot``; False (the raw data kept, how to replot said) if it broke."""
    try:
        progress.phase("plotting")
        module.plot(run_dir)
        _plot_flows(run_dir)
        return True
    except Exception:                              # noqa: BLE001 - data is kept; replot later
        progress.close()
        traceback.print_exc()
        print(f"error: plotting failed; the raw data is in {run_dir}; fix and run "
              f"`swarmmesh replot {run_dir}`", file=sys.stderr)
        return False


def _plot_flows(run_dir: Path) -> None:
    """``--flows``' figure, whatever the experiment (nothing without flows.csv)."""
    from swarmmesh.runs import flowrec
    flowrec.plot(run_dir)


# -- finding experiments --------------------------------------------------------
ENTRY_POINTS = "swarmmesh.experiments"   # the plug-in group setup.py fills from experiments/
LOCAL = Path("experiments")              # a user's own, in the current folder
NOT_EXPERIMENTS = {"__init__", "replot"}


def installed() -> dict[str, metadata.EntryPoint]:
    """The experiments installed as plug-ins, by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINTS)}


def local_files() -> dict[str, Path]:
    """``./experiments/<name>.py`` of the current folder, by name."""
    if not LOCAL.is_dir():
        return {}
    return {p.stem: p for p in sorted(LOCAL.glob("*.py")) if p.stem not in NOT_EXPERIMENTS}


def experiment_names() -> list[str]:
    return sorted(set(installed()) | set(local_files()))


def load(name_or_path: str | os.PathLike) -> ModuleType:
    """An experiment by name (an installed plug-in, else ``./experiments/<name>.py``)
    or by the path of its file."""
    path = Path(name_or_path)
    if path.suffix == ".py":
        if not path.is_file():
            raise InvalidConfigError("experiment", f"no such file: {path}")
        return _checked(_load_file(path), path)
    name = str(name_or_path)
    if not name.isidentifier():
        raise InvalidConfigError("experiment", f"not a name: {name!r}")
    plugins, files = installed(), local_files()
    if name in plugins:
        return _checked(plugins[name].load(), plugins[name].value)
    if name in files:
        return _checked(_load_file(files[name]), files[name])
    raise InvalidConfigError("experiment", f"no such experiment: {name} "
                             f"(known: {', '.join(experiment_names())})")


def _load_file(path: Path) -> ModuleType:
    modname = f"swarmmesh_experiment_{path.stem}"
    if modname in sys.modules and sys.modules[modname].__file__ == str(path.resolve()):
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[modname]
        raise
    return module


def _checked(module: ModuleType, where: object) -> ModuleType:
    for attr in ("NAME", "add_arguments", "validate", "run", "plot"):
        if not hasattr(module, attr):
            raise InvalidConfigError("experiment", f"{where} defines no {attr} "
                                     "(see the convention in docs/experiments.md: Write your own experiment)")
    return module


def replot(run_dir: str | os.PathLike) -> ModuleType:
    """Redraw every figure and report.md of a run folder from its files alone."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        raise InvalidConfigError("run_dir", f"{run_dir} has no summary.json")
    summary = read_summary(run_dir)
    name = summary.get("experiment")
    if not name:
        raise InvalidConfigError("run_dir", f"{run_dir}/summary.json names no experiment")
    script = summary.get("script")
    if name in experiment_names() or not script or not Path(script).is_file():
        module = load(name)
    else:
        module = load(script)                      # a user's own, kept elsewhere
    module.plot(run_dir)
    _plot_flows(run_dir)
    return module
