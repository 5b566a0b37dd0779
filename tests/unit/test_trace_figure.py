"""The trace's figure: drawn from a path and the cluster alone (no testbed)."""

from __future__ import annotations

from swarmmesh.model import Cluster
from swarmmesh.trace.dest import parse_dest, parse_source
from swarmmesh.trace.figure import place
from swarmmesh.trace.figure import draw
from swarmmesh.trace.predict import predict


def test_every_hop_has_a_place_and_the_figure_is_written(tmp_path):
    cluster = Cluster.quick(nodes=3, replicas=2)
    path = predict(cluster, parse_source(cluster, "c1"), parse_dest(cluster, "node3:8000"),
                   pick="app.1", sport=40000)
    roles = [place(h, cluster)[1] for h in path.hops]
    assert roles == ["client", "kernel", "gw", "bridge", "bridge", "bridge", "task",
                     "bridge", "bridge", "bridge", "kernel"]
    out = tmp_path / "trace.png"
    draw(path, cluster, str(out))
    assert out.stat().st_size > 20_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_a_refusal_is_drawn(tmp_path):
    cluster = Cluster.quick(nodes=2, replicas=1)
    path = predict(cluster, parse_source(cluster, "c1"), parse_dest(cluster, "node2:9999"))
    draw(path, cluster, str(tmp_path / "refused.png"))
    assert (tmp_path / "refused.png").exists()
