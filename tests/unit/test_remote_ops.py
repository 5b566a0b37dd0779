"""The shell a remote host's file and process operations send to its server (issue 15):
a pidfile's process signalled only while its command line holds the marker, a file
written as is by printf."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time

from swarmmesh.testbed.runtime import sh_pidfile_signal
from swarmmesh.testbed.remotehost import _printf_escape


def _sh(script: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(script, shell=True, **kw)


def _sleeper(tmp_path, code: str, marker: str):
    proc = subprocess.Popen([sys.executable, "-c", code, marker])
    pidfile = tmp_path / "p.pid"
    pidfile.write_text(f"{proc.pid}\n")
    time.sleep(0.3)                               # started, its handlers set
    return proc, str(pidfile)


def test_signals_only_a_process_whose_command_line_holds_the_marker(tmp_path):
    proc, pidfile = _sleeper(tmp_path, "import time; time.sleep(30)", "marker-x")
    try:
        assert _sh(sh_pidfile_signal(pidfile, "other")).returncode == 0
        time.sleep(0.2)
        assert proc.poll() is None
        _sh(sh_pidfile_signal(pidfile, "marker-x", "USR2"))
        assert proc.wait(timeout=5) == -signal.SIGUSR2
    finally:
        proc.kill()


def test_waits_then_kills_and_a_missing_pidfile_is_no_error(tmp_path):
    proc, pidfile = _sleeper(tmp_path, "import signal, time; signal.signal(signal.SIGTERM, "
                             "signal.SIG_IGN); time.sleep(30)", "marker-y")
    t0 = time.monotonic()
    r = _sh(sh_pidfile_signal(pidfile, "marker-y", "TERM", wait=0.5))
    assert r.returncode == 0 and proc.wait(timeout=5) == -signal.SIGKILL
    assert 0.4 < time.monotonic() - t0 < 5
    assert _sh(sh_pidfile_signal(str(tmp_path / "none"), "x")).returncode == 0


def test_printf_writes_the_text_as_is():
    text = "nameserver 127.0.0.11\noptions ndots:0\n100% \\n 'quoted' \"too\"\n"
    out = _sh(f"printf {shlex.quote(_printf_escape(text))}", capture_output=True,
              text=True).stdout
    assert out == text
