"""A counter's increase from summaries of its points, resets included: plain functions, no I/O.

Counters are stored raw (DESIGN.md): a drop means a reset (or a device swap), after which the
counter's value counts as increase since the reset. A stretch of points is summarised as a
``CounterSpan`` (first and last value, increase and resets inside it); spans in time order
chain into the increase over all of them: the jump from one span's last value to the next
one's first counts too (the counter kept counting while nobody looked). Units are the
counter's own (kWh, J).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CounterSpan:
    """A stretch of one counter's points: its first and last value, the increase between them
    (resets included) and the resets seen."""

    first: float
    last: float
    increase: float
    resets: int


def bucket_span(first: float, last: float, top: float | None) -> CounterSpan:
    """A bucket summarised as first, last and max (*top*): inside it the increase is
    ``top - first``, plus *last* if the counter dropped inside it (top > last: it reset and
    climbed again to last). One reset per bucket at most is seen."""
    if top is None:
        top = max(first, last)
    if last < top:
        return CounterSpan(first, last, (top - first) + last, 1)
    return CounterSpan(first, last, top - first, 0)


def junction(previous_last: float, first: float) -> tuple[float, int]:
    """(increase, resets) from one span's last value to the next span's first: the difference,
    or after a drop the first value alone."""
    if first >= previous_last:
        return first - previous_last, 0
    return first, 1


def bucket_increases(first: np.ndarray, last: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``bucket_span`` of many buckets at once (numpy arrays of one length): (increase as
    float64, resets as bool) per bucket."""
    dropped = last < top
    return np.where(dropped, (top - first) + last, top - first).astype(np.float64), dropped


def junctions(previous_last: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``junction`` of many pairs at once: (increase as float64, resets as bool) per pair."""
    reset = first < previous_last
    return np.where(reset, first, first - previous_last).astype(np.float64), reset


def chain(spans: Iterable[CounterSpan]) -> tuple[float, int]:
    """(increase, resets) over *spans* in time order: inside each and across each junction."""
    total, resets, previous = 0.0, 0, None
    for span in spans:
        if previous is not None:
            step, reset = junction(previous, span.first)
            total += step
            resets += reset
        total += span.increase
        resets += span.resets
        previous = span.last
    return total, resets


def counter_delta(firsts: Sequence[float | None], lasts: Sequence[float | None],
                  maxes: Sequence[float | None]) -> tuple[float, int]:
    """(increase, resets) of a counter summarised per bucket as (first, last, max), buckets in
    time order; buckets with None are gaps, across which the increase still counts."""
    return chain(bucket_span(f, last, m) for f, last, m in zip(firsts, lasts, maxes)
                 if f is not None and last is not None)
