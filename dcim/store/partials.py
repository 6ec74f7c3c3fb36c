"""Merging two partial aggregates of one bucket, as both stores do when a bucket's answer comes
from several pieces (a rollup and the raw points around it). Written once, here."""

from __future__ import annotations


def merge(agg: str, old, new):
    """The partial of *agg* over the rows of two pieces, *old* from the earlier: sums (also a
    mean's sum) and counts add, min and max compare, first keeps the earlier, last takes the
    later. Neither may be None."""
    if agg in ("sum", "count", "mean"):
        return old + new
    if agg == "min":
        return new if new < old else old
    if agg == "max":
        return new if new > old else old
    if agg == "first":
        return old
    if agg == "last":
        return new
    raise ValueError(f"no partial merge for {agg!r}")
