"""Result files written by agents on another server (issue 15): which files are fetched,
from where on which server to where here, and what a file that does not come back says.
Pure, or with the ssh session replaced: no root, no switch."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from swarmmesh.dataplane import servers as sv
from swarmmesh.model import Cluster
from swarmmesh.testbed import servers as ts

A = {"name": "localhost", "address": "10.0.0.1"}
B = {"name": "b", "address": "10.0.0.2"}
STATE = "/run/swarmmesh/run-1-1"


def plan():
    # node1 and c1 here; node2, its tasks and c2 on b
    return sv.plan(Cluster.quick(nodes=2, replicas=2, clients=2), [A, B],
                   place_explicit={"node2": "b", "c2": "b", "node1": "localhost",
                                   "c1": "localhost"})


def test_a_host_on_the_first_server_writes_the_run_folder_itself():
    assert sv.result_file(plan(), "c1", "/r/run/requests.csv", STATE, 1) is None
    assert sv.result_file(plan(), "app.1", "/r/run/x.csv", STATE, 1, node="node1") is None


def test_a_client_on_another_server_writes_in_its_state_folder_there():
    rf = sv.result_file(plan(), "c2", "/r/run/.timeline-fast.csv", STATE, 3)
    assert rf == sv.ResultFile(host="c2", server="b",
                               remote=f"{STATE}/results/c2.3..timeline-fast.csv",
                               local="/r/run/.timeline-fast.csv")


def test_a_task_goes_with_its_node():
    rf = sv.result_file(plan(), "t9", "/tmp/swarmmesh-ab-x.csv", STATE, 1, node="node2")
    assert (rf.server, rf.remote) == ("b", f"{STATE}/results/t9.1.swarmmesh-ab-x.csv")


def test_a_device_is_written_where_it_is():
    assert sv.result_file(plan(), "c2", "/dev/null", STATE, 1) is None


def test_two_files_of_one_name_stay_apart():
    one = sv.result_file(plan(), "c2", "/r/a/requests.csv", STATE, 1)
    two = sv.result_file(plan(), "c2", "/r/b/requests.csv", STATE, 2)
    assert one.remote != two.remote


def test_one_tar_per_server_and_what_did_not_come():
    p = plan()
    files = [sv.result_file(p, "c2", f"/r/run/{n}", STATE, i) for i, n in
             enumerate(["a.csv", "it's.csv"], 1)]
    assert sv.by_server(files) == {"b": files}
    script = sv.fetch_script(files)
    assert script.startswith("cd / && tar -cf - run/swarmmesh/run-1-1/results/c2.1.a.csv ")
    assert "'run/swarmmesh/run-1-1/results/c2.2.it'\"'\"'s.csv'" in script
    got, missing = sv.sort_fetched(files, ["run/swarmmesh/run-1-1/results/c2.1.a.csv"])
    assert got == {"run/swarmmesh/run-1-1/results/c2.1.a.csv": files[0]}
    assert missing == [files[1]]


# -- carried out, with the ssh session replaced ---------------------------------------------
class FakeHost:
    def __init__(self, name, node_name=None):
        self.name, self.node_name = name, node_name


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def spread(monkeypatch):
    s = ts.Spread(plan(), check=False)
    s.state = type("State", (), {"dir": Path(STATE)})()
    sent = {}                                  # what each session ran, and the server's files
    there: dict[str, bytes] = {}

    def fake_run(argv, **kw):
        sent.setdefault("scripts", []).append(argv[-1])
        names = [n for n in there if n in argv[-1]]
        return subprocess.CompletedProcess(argv, 2 if len(names) < argv[-1].count("results/")
                                           else 0, tar_of({n: there[n] for n in names}),
                                           b"tar: something: Cannot stat: No such file")
    monkeypatch.setattr(ts.subprocess, "run", fake_run)
    return s, sent, there


def test_the_agent_writes_there_and_the_file_comes_back_here(spread, tmp_path):
    s, sent, there = spread
    local = tmp_path / "run" / "requests.csv"
    path = s.result_path(FakeHost("c2"), local)
    assert path == f"{STATE}/results/c2.1.requests.csv" and not local.exists()
    there[path.lstrip("/")] = b"seq,ok\n1,True\n"
    assert s.fetch_results([local]) == []
    assert local.read_bytes() == b"seq,ok\n1,True\n"
    assert "tar -cf -" in sent["scripts"][0]
    assert s.results == {} and s.fetch_results() == []      # fetched once, not again


def test_a_host_here_keeps_its_path_and_nothing_is_fetched(spread, tmp_path):
    s, sent, _there = spread
    assert s.result_path(FakeHost("c1"), tmp_path / "x.csv") == str(tmp_path / "x.csv")
    assert s.fetch_results() == [] and "scripts" not in sent


def test_a_file_that_does_not_come_names_its_server_and_file(spread, tmp_path):
    s, _sent, there = spread
    ok, lost = tmp_path / "ok.csv", tmp_path / "lost.csv"
    there[s.result_path(FakeHost("c2"), ok).lstrip("/")] = b"x"
    s.result_path(FakeHost("t3", node_name="node2"), lost)
    with pytest.raises(ts.SpreadError) as e:
        s.fetch_results()
    msg = str(e.value)
    assert msg.startswith(f"b: t3's result file {STATE}/results/t3.2.lost.csv (for {lost}) "
                          "did not come back: tar: something: Cannot stat"), msg
    assert ok.read_bytes() == b"x"                           # the others came


def test_teardown_fetches_what_is_left_and_says_what_did_not_come(spread, tmp_path, capsys,
                                                                  monkeypatch):
    s, _sent, there = spread
    left, lost = tmp_path / "left.csv", tmp_path / "lost.csv"
    there[s.result_path(FakeHost("c2"), left).lstrip("/")] = b"partial"
    s.result_path(FakeHost("c2"), lost)
    monkeypatch.setattr(ts, "clean_servers", lambda d: [])
    monkeypatch.setattr(s, "fetch_logs", lambda run_dir: None)
    s.stop(type("Tb", (), {"run_dir": tmp_path})())
    assert left.read_bytes() == b"partial"
    err = capsys.readouterr().err
    assert f"error: b: c2's result file {STATE}/results/c2.2.lost.csv (for {lost})" in err, err
