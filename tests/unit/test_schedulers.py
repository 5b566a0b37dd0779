"""The schedulers' tables, from the tables alone: the spread each gives, and the share of
client flows that changes task when one of N tasks leaves or joins (rr and sh remap
most, Maglev about 1/N)."""

from __future__ import annotations

from collections import Counter

import pytest

from swarmmesh.dataplane import picks as s

TASKS = [f"web.{i}" for i in range(1, 6)]
CLIENTS = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(5000)]


def test_rr_walks_every_task_once_in_order():
    assert s.table("rr", TASKS) == TASKS


@pytest.mark.parametrize("weights, want", [
    ([1, 1, 1], ["a", "b", "c"]),
    ([3, 1, 2], ["a", "a", "c", "a", "b", "c"]),
    ([4, 2, 0], ["a", "a", "b"]),
    ([0, 0, 0], []),
])
def test_wrr_is_ipvs_interleaved_walk(weights, want):
    assert s.wrr(["a", "b", "c"], weights) == want


def test_wrr_shares_follow_the_weights():
    seq = s.wrr(TASKS, [5, 1, 2, 0, 2])
    assert Counter(seq) == {"web.1": 5, "web.2": 1, "web.3": 2, "web.5": 2}


def test_maglev_table_is_full_balanced_and_prime_sized():
    tab = s.maglev(TASKS)
    assert len(tab) == s.maglev_size(5) == 503
    counts = Counter(tab)
    assert set(counts) == set(TASKS)
    assert max(counts.values()) - min(counts.values()) <= 1      # Maglev: within one
    assert s.maglev(list(reversed(TASKS))) != []


def test_maglev_moves_about_one_nth_when_a_task_leaves_sh_and_rr_most():
    after = TASKS[:2] + TASKS[3:]                                   # web.3 leaves
    maglev = s.remap_share(s.maglev(TASKS, 503), s.maglev(after, 503), CLIENTS)
    sh = s.remap_share(s.sh(TASKS), s.sh(after), CLIENTS)
    own = sum(1 for c in CLIENTS if s.owner(s.maglev(TASKS, 503), c) == "web.3") / len(CLIENTS)
    assert own <= maglev <= 1.5 / 5, (own, maglev)                 # its own flows, little more
    assert sh > 0.6, sh                                              # mod N: most flows move


def test_maglev_moves_about_one_nth_when_a_task_joins():
    more = TASKS + ["web.6"]
    share = s.remap_share(s.maglev(TASKS, 601), s.maglev(more, 601), CLIENTS)
    assert 0.1 < share <= 1.5 / 6, share


def test_source_hash_spreads_clients_evenly():
    counts = Counter(s.owner(s.sh(TASKS), c) for c in CLIENTS)
    assert set(counts) == set(TASKS)
    assert max(counts.values()) / (len(CLIENTS) / 5) < 1.1


def test_lc_weights_favour_the_least_loaded_and_never_drop_a_task():
    assert s.lc_weights([0, 0, 0]) == [1, 1, 1]
    w = s.lc_weights([10, 0, 5])
    assert w[1] == max(w) and w[0] == min(w) >= 1


def test_unknown_scheduler_and_bad_sizes():
    with pytest.raises(ValueError):
        s.table("random", TASKS)
    with pytest.raises(ValueError):
        s.maglev(TASKS, 500)
    with pytest.raises(ValueError):
        s.wrr(TASKS, [1])
