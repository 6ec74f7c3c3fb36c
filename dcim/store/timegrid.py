"""Time constants and bucket arithmetic both stores share (UTC nanoseconds since the epoch)."""

from __future__ import annotations

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 3600 * NS_PER_S
DAY_NS = 86_400 * NS_PER_S
HOURS_PER_DAY = 24


def floor_ns(ts: int, step: int) -> int:
    """The start of the *step*-wide bucket holding *ts* (epoch-aligned). Python's % is floored,
    so this is right for times before the epoch too."""
    return ts - ts % step


def ceil_ns(ts: int, step: int) -> int:
    """The first bucket start at or after *ts*."""
    return -floor_ns(-ts, step)
