"""The experiments' kit: the metrics (one rule for no data) and the flag checks (errors
name the flag as typed)."""

from __future__ import annotations

import argparse

import pytest

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import flags, metrics


def test_jain_is_one_when_even_and_one_over_n_when_one_takes_all():
    assert metrics.jain([5, 5, 5, 5]) == 1.0
    assert metrics.jain([8, 0, 0, 0]) == pytest.approx(0.25)
    assert metrics.jain([3, 1]) == pytest.approx(16 / 20)


@pytest.mark.parametrize("empty", [[], [0, 0, 0], (), iter([])])
def test_every_metric_of_no_data_is_none(empty):
    assert metrics.jain(empty) is None
    assert metrics.max_over_mean(list(empty)) is None


def test_max_over_mean_and_ratios():
    assert metrics.max_over_mean([1, 1, 4]) == pytest.approx(2.0)
    assert metrics.ratio(3.0, 2.0) == 1.5
    assert metrics.ratio(None, 2.0) is None and metrics.ratio(3.0, 0) is None
    values = {("direct", 0): 2.0, ("direct", 1): 4.0, ("mesh", 0): 3.0, ("mesh", 1): 6.0,
              ("mesh", 2): 9.0}
    assert metrics.per_repeat_ratios(values, ("direct",), ("mesh",)) == [1.5, 1.5]
    assert metrics.spread([1, 2, 3])["median"] == 2 and metrics.spread([])["n"] == 0
    assert metrics.rounded(None, 2) is None and metrics.rounded(1.23456, 2) == 1.23


def _ns(**kw):
    return argparse.Namespace(**kw)


@pytest.mark.parametrize("check, value, field", [
    (lambda a: flags.positive(a, "load_repeats"), 0, "load-repeats"),
    (lambda a: flags.positive(a, "load_repeats", most=5), 6, "load-repeats"),
    (lambda a: flags.int_in(a, "load_repeats", 1, 60), 61, "load-repeats"),
    (lambda a: flags.seconds(a, "load_repeats"), 0, "load-repeats"),
    (lambda a: flags.seconds(a, "load_repeats", most=60), 61, "load-repeats"),
    (lambda a: flags.seconds(a, "load_repeats", zero=True), -1, "load-repeats"),
])
def test_a_bad_value_names_the_flag_as_typed(check, value, field):
    with pytest.raises(InvalidConfigError) as e:
        check(_ns(load_repeats=value))
    assert e.value.field == field
    assert str(value) in str(e.value)


def test_good_values_come_back():
    a = _ns(n=3, t=0.5, z=0.0)
    assert flags.positive(a, "n") == 3 and flags.int_in(a, "n", 1, 3) == 3
    assert flags.seconds(a, "t", most=1) == 0.5 and flags.seconds(a, "z", zero=True) == 0.0


def test_lists_and_sizes():
    assert flags.int_list("1, 4,16", "streams", 1, 128) == [1, 4, 16]
    assert flags.sizes("3x2, 50×10") == [(3, 2), (50, 10)]
    assert flags.size_tag(50, 10) == "50x10"
    for bad in ("0", "1,1", "a", "129", ""):
        with pytest.raises(InvalidConfigError) as e:
            flags.int_list(bad, "streams", 1, 128)
        assert e.value.field == "streams"
    for bad in ("3", "3x", "0x2", "3x0", "201x1", "3x101", "3x2,3x2", "3 by 2", ""):
        with pytest.raises(InvalidConfigError) as e:
            flags.sizes(bad)
        assert e.value.field == "sizes"
    with pytest.raises(InvalidConfigError, match="nodes must be in 2..200"):
        flags.sizes("1x2", min_nodes=2)
