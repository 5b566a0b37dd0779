"""Parsers of the real clients' output, on outputs recorded from the real
programs (tests/unit/fixtures/traffic, captured on loopback against the task
server).  No root, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmmesh.traffic import openloop, tools

FIX = Path(__file__).parent / "fixtures" / "traffic"


def test_curl_body_and_timings_in_ms():
    d = tools.parse_curl((FIX / "curl.txt").read_text())
    assert d["http_code"] == 200 and d["ok"]
    assert d["body"]["task"] == "app.1" and d["body"]["node"] == "node1"
    # curl's -w times are seconds since the start: connect <= first byte <= total
    assert 0 < d["connect_ms"] <= d["ttfb_ms"] <= d["total_ms"] < 100
    assert d["local_port"] == d["body"]["client_port"]
    assert d["num_connects"] == 1


def test_curl_failed_connect_and_missing_marker():
    out = "\n@@curl http_code=000 time_namelookup=0.000010 time_connect=0.000000 " \
          "time_starttransfer=0.000000 time_total=0.000100 size_download=0 remote_ip= " \
          "remote_port= local_port= num_connects=0\n"
    d = tools.parse_curl(out)
    assert d["http_code"] == 0 and not d["ok"] and d["body"] is None
    with pytest.raises(tools.ToolFailed, match="no -w output"):
        tools.parse_curl('{"task": "app.1"}')


def test_curl_format_asks_for_every_variable_parsed():
    for var in ("http_code", "time_connect", "time_starttransfer", "time_total"):
        assert f"%{{{var}}}" in tools.CURL_FORMAT


def test_ab_text_and_percentile_csv():
    text = (FIX / "ab.txt").read_text()
    d = tools.parse_ab(text, (FIX / "ab-percentiles.csv").read_text())
    assert d["complete"] == 300 and d["failed"] == 0 and d["non_2xx"] == 0
    assert d["concurrency"] == 4
    assert d["rps"] == pytest.approx(20518.43)
    assert d["mean_ms"] == pytest.approx(0.195)
    assert d["mean_across_ms"] == pytest.approx(0.049)
    assert d["duration_s"] == pytest.approx(0.015)
    assert d["connection_times"]["total"]["max"] == 3.0
    pct = d["percentiles_ms"]
    assert sorted(pct) == list(range(101))              # ab -e: every percent, 0..100
    assert pct[0] == pytest.approx(0.083)
    assert all(pct[i] <= pct[i + 1] for i in range(100))
    # the text table alone gives whole milliseconds only
    coarse = tools.parse_ab(text)["percentiles_ms"]
    assert coarse == {50: 0, 66: 0, 75: 0, 80: 0, 90: 0, 95: 0, 98: 0, 99: 0, 100: 3}


def test_ab_failures_and_garbage():
    text = (FIX / "ab.txt").read_text().replace("Failed requests:        0",
                                               "Failed requests:        7\n"
                                               "   (Connect: 0, Receive: 0, Length: 7)\n"
                                               "Non-2xx responses:      2")
    d = tools.parse_ab(text)
    assert d["failed"] == 7 and d["non_2xx"] == 2
    with pytest.raises(tools.ToolFailed, match="Requests per second"):
        tools.parse_ab("apr_socket_connect(): Connection refused (111)\n")


def test_wrk_text_and_script_line():
    d = tools.parse_wrk((FIX / "wrk.txt").read_text())
    assert d["requests"] == 97890
    assert d["duration_s"] == pytest.approx(2.10)
    assert d["rps"] == pytest.approx(46610.73)
    assert d["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert d["non_2xx"] == 0
    # the Lua line wins over the text table and adds p95 / p99.9 (us -> ms)
    assert d["percentiles_ms"][50.0] == pytest.approx(0.041)
    assert d["percentiles_ms"][99.9] == pytest.approx(0.404)
    assert d["mean_ms"] == pytest.approx(0.041655926)
    assert d["max_ms"] == pytest.approx(2.006)
    assert d["tasks"] == {"app.1": 97890}


def test_wrk_text_only_units_and_errors():
    text = "\n".join(line for line in (FIX / "wrk.txt").read_text().splitlines()
                     if not line.startswith("@@wrk"))
    text = text.replace("99%   72.00us", "99%    1.50ms").replace(
        "Requests/sec:", "  Socket errors: connect 1, read 2, write 3, timeout 4\n"
                         "  Non-2xx or 3xx responses: 5\nRequests/sec:")
    d = tools.parse_wrk(text)
    assert d["percentiles_ms"] == {50.0: 0.041, 75.0: 0.042, 90.0: 0.047, 99.0: 1.5}
    assert d["socket_errors"] == {"connect": 1, "read": 2, "write": 3, "timeout": 4}
    assert d["non_2xx"] == 5
    assert "tasks" not in d
    with pytest.raises(tools.ToolFailed):
        tools.parse_wrk("unable to connect to 10.0.0.1:80 Connection refused\n")


def test_iperf3_json():
    d = tools.parse_iperf3((FIX / "iperf3.json").read_text())
    assert d["protocol"] == "TCP" and d["streams"] == 1
    assert d["received_mbps"] > 1000 and d["sent_mbps"] >= d["received_mbps"] * 0.99
    assert d["retransmits"] == 0
    assert len(d["intervals_mbps"]) >= 1 and all(x > 0 for x in d["intervals_mbps"])
    assert d["remote"].endswith(":15201")


def test_iperf3_error_document():
    with pytest.raises(tools.ToolFailed, match="unable to connect"):
        tools.parse_iperf3(json.dumps({"start": {}, "intervals": [], "end": {},
                                       "error": "unable to connect to server: Connection refused"}))


def test_open_loop_rows_sorted_and_record_fields():
    rows = [{"seq": 2, "x": 1}, {"seq": 0, "x": 2}, {"seq": 1, "x": 3}]
    out = tools.parse_open_loop("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert [r["seq"] for r in out] == [0, 1, 2]
    from swarmmesh.agents.httpclient import Result
    res = Result(ok=True, status=200, connect_ms=0.2, ttfb_ms=0.5, total_ms=0.6,
                 body={"task": "app.2", "node": "node2", "client": "10.0.0.2"}, local_port=4)
    r = openloop.record(3, 15.0, 0.25, res)
    assert set(r) == set(openloop.FIELDS)
    assert (r["task"], r["node"], r["seen_source"], r["late_ms"]) == ("app.2", "node2",
                                                                     "10.0.0.2", 0.25)


def test_missing_program_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda prog: None)
    for prog, pkg in (("ab", "apache2-utils"), ("wrk", "wrk"), ("iperf3", "iperf3"),
                      ("curl", "curl")):
        with pytest.raises(tools.ToolMissing, match=f"apt-get install {pkg}"):
            tools.require(prog)
    with pytest.raises(tools.ToolMissing, match="apache2-utils"):
        tools.ab(None, "http://10.0.0.1:80/", 10)


def test_bad_arguments_rejected_before_running():
    with pytest.raises(ValueError, match="connections >= threads"):
        tools.wrk(None, "http://10.0.0.1/", connections=1, threads=2)
    with pytest.raises(ValueError, match="http://"):
        tools.ab(None, "10.0.0.1:80", 10)
