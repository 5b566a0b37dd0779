"""The numbers experiments report, written once: how evenly load spread (Jain's index,
max over mean), a ratio to a baseline of the same run (per repeat too), and the spread of
values over repeats (:func:`spread`, from ``report``).

One rule for no data: every function returns None when there is nothing to measure (no
values, a zero sum, a missing or zero baseline), never 0 and never an exception; a table
shows None as a dash.
"""

from __future__ import annotations

from typing import Iterable

from swarmmesh.runs.report import spread  # noqa: F401  (the spread over repeats, one home)


def jain(values: Iterable[float]) -> float | None:
    """Jain's fairness index ``(sum x)^2 / (n * sum x^2)``: 1 when even, 1/n when one takes
    all; None for no values or all zero."""
    xs = [float(x) for x in values]
    squares = sum(x * x for x in xs)
    return sum(xs) ** 2 / (len(xs) * squares) if xs and squares else None


def max_over_mean(values: Iterable[float]) -> float | None:
    """The busiest share over the mean share: 1 when even; None for no values or all zero."""
    xs = [float(x) for x in values]
    mean = sum(xs) / len(xs) if xs else 0
    return max(xs) / mean if mean else None


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, None if either is missing or the baseline is 0."""
    return value / baseline if value is not None and baseline else None


def per_repeat_ratios(values: dict[tuple, float], base_key: tuple, key: tuple) -> list[float]:
    """``values`` maps (group..., repeat) -> a number; the ratio of ``key``'s to
    ``base_key``'s value in every repeat where both exist (``key``, ``base_key``: the
    group part)."""
    repeats = sorted({k[-1] for k in values if k[:-1] == key}
                     & {k[-1] for k in values if k[:-1] == base_key})
    return [r for r in (ratio(values[(*key, rep)], values[(*base_key, rep)]) for rep in repeats)
            if r is not None]


def rounded(x: float | None, digits: int) -> float | None:
    """``round`` that lets None through (a metric of no data)."""
    return None if x is None else round(x, digits)
