"""The trace as a picture: the path drawn over the cluster (the client, each node with its
kernel and bridge, its tasks, the overlay between the nodes), one numbered arrow per hop,
each rewrite written on the hop that made it; the request solid, the reply dashed."""

from __future__ import annotations

import matplotlib

from swarmmesh.model import Cluster
from swarmmesh.trace.hops import Hop, Path

matplotlib.use("Agg")
import matplotlib.pyplot as plt                 # noqa: E402
from matplotlib.patches import FancyBboxPatch   # noqa: E402

NODE_W, GAP = 3.6, 0.7
Y_CLIENT, Y_UNDERLAY, Y_TOP = 6.5, 5.75, 5.35
Y_KERNEL, Y_GW, Y_BRIDGE, Y_LANE, Y_TASK = 4.6, 3.85, 3.1, 2.15, 1.0
REQUEST, REPLY, BAD = "#1f5fa8", "#7f7f7f", "#c0392b"
SHIFT = 0.22                       # request arrows right of the centre line, replies left


def node_x(cluster: Cluster, node: str) -> float:
    i = [n.name for n in cluster.nodes].index(node)
    return 0.6 + i * (NODE_W + GAP)


def positions(cluster: Cluster, entry: str) -> dict[tuple[str, str], tuple[float, float]]:
    """Where each place of the picture is: (host, role) -> (x, y) of its centre; the
    clients stand above the node the path enters."""
    pos: dict[tuple[str, str], tuple[float, float]] = {}
    for n in cluster.nodes:
        cx = node_x(cluster, n.name) + NODE_W / 2
        for role, y in (("kernel", Y_KERNEL), ("gw", Y_GW), ("bridge", Y_BRIDGE)):
            pos[(n.name, role)] = (cx, y)
        tasks = cluster.tasks_on(n.name)
        for k, t in enumerate(tasks):
            pos[(t.host, "task")] = (node_x(cluster, n.name)
                                     + NODE_W * (k + 0.5) / len(tasks), Y_TASK)
    x0 = node_x(cluster, entry) + NODE_W / 2 if entry else 2.0
    for i, c in enumerate(cluster.clients):
        pos[(c.name, "client")] = (x0 + i * 2.0, Y_CLIENT)
    return pos


def place(hop: Hop, cluster: Cluster) -> tuple[str, str]:
    """The picture's place for a hop."""
    if any(c.name == hop.host for c in cluster.clients):
        return hop.host, "client"
    if hop.stage in ("bridge", "vxlan"):
        return hop.host, "bridge"
    if hop.namespace.endswith("kernel"):
        return hop.host, "gw" if "postrouting" in hop.matched else "kernel"
    return hop.host, "task"


def _box(ax, x, y, w, h, text, face, edge="#555555", size=9, weight="normal", alpha=1.0):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04",
                                fc=face, ec=edge, lw=1.0, alpha=alpha, zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, weight=weight, alpha=alpha,
            zorder=3)


def draw_cluster(ax, cluster: Cluster, pos, on_path: set[str]) -> None:
    for n in cluster.nodes:
        x = node_x(cluster, n.name)
        cx = x + NODE_W / 2
        ax.add_patch(FancyBboxPatch((x, 0.35), NODE_W, Y_TOP - 0.35, boxstyle="round,pad=0.04",
                                    fc="#f7f7f7", ec="#9a9a9a", lw=1.0, zorder=1))
        ax.text(x + 0.12, Y_TOP - 0.12, n.name, fontsize=10, weight="bold", va="top", zorder=3)
        ax.text(x + NODE_W - 0.12, Y_TOP - 0.12, f"{n.underlay_ip}\ningress {n.ingress_ip}",
                fontsize=7, va="top", ha="right", color="#555555", zorder=3)
        _box(ax, cx, Y_KERNEL, 2.0, 0.42, "kernel: nftables", "#fff1cc")
        ax.text(cx - 1.05, Y_GW, "gwbr", fontsize=7, color="#777777", ha="right",
                va="center", zorder=3)
        _box(ax, cx, Y_BRIDGE, 2.0, 0.42, "br-ingress (OVS)", "#dce9f7")
        ax.text(x + 0.12, Y_LANE, "vx", fontsize=7, color="#777777", va="center", zorder=3)
        tasks = cluster.tasks_on(n.name)
        for t in tasks:
            tx, ty = pos[(t.host, "task")]
            addrs = "\n".join(str(a) for a in t.addresses.values())
            _box(ax, tx, ty, 0.92 * NODE_W / len(tasks), 0.95, f"{t.name}\n{addrs}",
                 "#e2f3dc", size=8, weight="bold" if t.host in on_path else "normal",
                 alpha=1.0 if t.host in on_path else 0.4)
        if not tasks:
            ax.text(cx, Y_TASK, "(no task)", fontsize=8, color="#999999", ha="center",
                    va="center", zorder=3)
    left = node_x(cluster, cluster.nodes[0].name)
    right = node_x(cluster, cluster.nodes[-1].name) + NODE_W
    ax.plot([left, right], [Y_UNDERLAY, Y_UNDERLAY], color="#c8c8c8", lw=4, zorder=0)
    ax.text(left, Y_UNDERLAY + 0.1, "underlay", fontsize=7.5, color="#888888")
    for c in cluster.clients:
        x, y = pos[(c.name, "client")]
        _box(ax, x, y, 1.9, 0.42, f"{c.name}  {c.underlay_ip}", "#fbe0dc", weight="bold")


def _rewrites(hop: Hop) -> str:
    lines = [f"{r.kind.upper()} {r.before} → {r.after}" for r in hop.rewrites
             if r.kind not in ("mac", "encap")]
    lines += [d for d in hop.detail if d.startswith("routed to")]   # a docker_gwbridge leg
    return "\n".join(lines)


def _number(ax, x, y, n: int, colour) -> None:
    ax.text(x, y, str(n), fontsize=7.5, weight="bold", color="white", ha="center",
            va="center", zorder=7, bbox=dict(boxstyle="circle,pad=0.18", fc=colour, ec="none"))


def _note(ax, x, y, text: str, colour, right: bool) -> None:
    ax.text(x + (0.2 if right else -0.2), y, text, fontsize=7, color=colour, zorder=8,
            ha="left" if right else "right", va="center",
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=colour, lw=0.6, alpha=0.95))


def _arrow(ax, pts, colour, dashed: bool) -> None:
    xs, ys = zip(*pts)
    ax.plot(xs[:-1] + (xs[-1],), ys, color=colour, lw=1.3 if dashed else 2.0, zorder=5,
            linestyle="--" if dashed else "-", solid_capstyle="round")
    ax.annotate("", xy=pts[-1], xytext=pts[-2], zorder=6,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=0, shrinkA=0, shrinkB=0,
                                mutation_scale=14))


def _segment(a, b, reply: bool, lane: float, same_node: bool) -> list[tuple[float, float]]:
    """The points of one arrow: within a node (or to a client) straight, on its side of the
    centre line; between nodes down to the overlay's lane, across and up."""
    dx = -SHIFT if reply else SHIFT
    if same_node:
        return [(a[0] + dx, a[1]), (b[0] + dx, b[1])]
    ax = a[0] + (dx * 2.6 if a[1] == Y_BRIDGE else dx)   # beside the arrows to the tasks
    bx = b[0] + (dx * 2.6 if b[1] == Y_BRIDGE else dx)
    return [(ax, a[1]), (ax, lane), (bx, lane), (bx, b[1])]


def node_of(cluster: Cluster, where: tuple[str, str]) -> str:
    host, role = where
    if role == "client":
        return "client"
    return cluster.task(host).node if role == "task" else host


def _trim(pts, a_role: str, b_role: str):
    """Stop the arrow at the edge of the boxes it joins."""
    gap = {"client": 0.25, "kernel": 0.24, "bridge": 0.24, "gw": 0.0, "task": 0.5}
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    s0 = 1 if pts[1][1] > y0 else -1
    s1 = 1 if pts[-2][1] > y1 else -1
    return [(x0, y0 + s0 * gap[a_role]), *pts[1:-1], (x1, y1 + s1 * gap[b_role])]


def draw(path: Path, cluster: Cluster, out: str) -> None:
    """Draw ``path`` over ``cluster`` into the PNG ``out``."""
    entry = next((h.host for h in path.hops if h.host.startswith("node")), "")
    pos = positions(cluster, entry)
    width = 0.6 + len(cluster.nodes) * (NODE_W + GAP)
    fig, ax = plt.subplots(figsize=(max(8.0, width * 1.2), 6.4))
    draw_cluster(ax, cluster, pos, {h.host for h in path.hops})
    places = [place(h, cluster) for h in path.hops]
    stops = [(i, p) for i, p in enumerate(places)]
    reply = False
    prev_i = 0
    for i in range(1, len(path.hops)):
        hop = path.hops[i]
        reply = reply or hop.stage == "reply" or "reply" in hop.detail
        if hop.stage == "vxlan":
            continue                         # drawn with the bridge it reaches
        a_place, b_place = stops[prev_i][1], places[i]
        if hop.stage == "reply" and hop.namespace.endswith("kernel"):
            b_place = (path.source, "client") if (path.source, "client") in pos else b_place
        prev_i = i
        if a_place == b_place:
            continue
        colour = BAD if hop.verified is False else (REPLY if reply else REQUEST)
        a, b = pos[a_place], pos[b_place]
        lane = Y_LANE - (0.25 if reply else 0.0)
        same = node_of(cluster, a_place) == node_of(cluster, b_place) or \
            "client" in (a_place[1], b_place[1])
        pts = _trim(_segment(a, b, reply, lane, same), a_place[1], b_place[1])
        _arrow(ax, pts, colour, reply)
        mid = ((pts[1][0] + pts[2][0]) / 2, lane) if len(pts) == 4 else \
            ((pts[0][0] + pts[1][0]) / 2, (pts[0][1] + pts[1][1]) / 2)
        crossing = path.hops[i - 1] if path.hops[i - 1].stage == "vxlan" else None
        _number(ax, *mid, i if crossing else i + 1, colour)
        if crossing:
            _number(ax, pts[-1][0], pts[-1][1] - 0.12, i + 1, colour)
        label = _rewrites(hop) or (crossing.matched.split(" (")[0].replace(": ", "\n")
                                   if crossing and not reply else "")
        if label:
            _note(ax, mid[0], mid[1] + (0.32 if len(pts) == 4 else 0), label, colour,
                  not reply)
    last = path.hops[-1]
    if last.stage == "refused":
        x, y = pos[places[-1]]
        ax.text(x, y - 0.35, "refused: " + last.matched, fontsize=8, color=BAD, ha="center",
                va="top", wrap=True, zorder=9)
    ax.set_xlim(0.3, width + 0.2)
    ax.set_ylim(0.1, Y_CLIENT + 0.5)
    ax.axis("off")
    bad = path.first_disagreement()
    state = ("every hop verified by the real packets" if path.verified else
             f"NOT verified at {bad.namespace}" if bad else "not checked")
    pick = f", picked {path.pick}" if path.pick else ""
    ax.set_title(f"{path.source} → {path.dest}{pick}: {len(path.hops)} hops, {state}\n"
                 "request solid, reply dashed; numbers are the hops of the text trace",
                 fontsize=10.5)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)
