"""Hourly statistics of summed series (a rack's PDUs) from daily summaries, reading hours only
where the peak can be.

A group's hourly value is the sum of its series' hourly means. Over whole days its total is the
sum of the series' daily totals, and its hours are known when one series covers the whole day
(or only one series reported). Its peak is not: but no hour of a day can exceed the sum of its
series' largest hourly means that day (each series adds at most its own peak, or nothing when
absent). So the hours are read for each group's most promising day first, which gives a
floor, and then only for the days whose bound reaches that floor. With load that peaks at
similar hours across feeds (A/B PDUs of one rack), that is a handful of days per group instead
of a whole quarter. The answer is exact whatever the data: days that cannot hold the peak are
skipped, never guessed at.

Pure logic: the store passes its daily summaries in and reads the hours through a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from dcim.store.base import BucketStats

# Sums taken in another order can differ in the last bits: a day whose bound falls short of the
# floor by less than this share of it is read too (reading more is never wrong).
_SLACK = 1e-9


@dataclass(frozen=True)
class DayBound:
    """One group's day: an upper bound of its hourly sums (the field's unit), the sum of its
    hourly sums, and its hours with data (None when only reading the hours can tell)."""

    bound: float
    total: float
    hours: int | None


G = TypeVar("G", bound=Hashable)  # a group's key
HourReader = Callable[[list[tuple[G, int]]], dict[tuple[G, int], list[tuple[int, float]]]]


def day_bound(peaks: Iterable[float], totals: Iterable[float], hours: Iterable[int], hours_per_day: int) -> DayBound:
    """A group's DayBound from its series' daily summaries (each series: its largest hourly
    mean, the sum of its hourly means, its hours with a value)."""
    peaks, hours = list(peaks), list(hours)
    known = hours_per_day if max(hours) >= hours_per_day else hours[0] if len(hours) == 1 else None
    return DayBound(sum(max(p, 0.0) for p in peaks), sum(totals), known)


def stats_from_day_bounds(days: dict[tuple[G, int], DayBound], read_hours: HourReader[G]) -> dict[G, BucketStats]:
    """Per group: ``BucketStats`` of its hourly sums over the days in *days* ({(group, day start
    ns): DayBound}). *read_hours* returns, for (group, day) pairs, each hour's (start ns, sum)."""
    by_group: dict[G, list[tuple[int, DayBound]]] = {}
    for (g, day), b in days.items():
        by_group.setdefault(g, []).append((day, b))
    # The most promising day of each group (the earliest of equal bounds), and every day whose
    # hour count only the hours can tell.
    first = {(g, max(ds, key=lambda d: (d[1].bound, -d[0]))[0]) for g, ds in by_group.items()}
    unknown = {(g, day) for g, ds in by_group.items() for day, b in ds if b.hours is None}
    hours = read_hours(sorted(first | unknown, key=repr))
    floor: dict[G, float] = {}
    for (g, _), hv in hours.items():
        for _, v in hv:
            if g not in floor or v > floor[g]:
                floor[g] = v
    rest = [(g, day) for g, ds in by_group.items() for day, b in ds if (g, day) not in hours
            and g in floor and b.bound >= floor[g] - _SLACK * max(1.0, abs(floor[g]))]
    if rest:
        hours.update(read_hours(sorted(rest, key=repr)))
    out = {}
    for g, ds in by_group.items():
        n, total, peak, peak_ns = 0, 0.0, None, None
        for day, b in sorted(ds, key=lambda d: d[0]):
            total += b.total
            day_hours = hours.get((g, day))
            n += b.hours if b.hours is not None else len(day_hours or ())
            for t, v in sorted(day_hours or ()):
                if peak is None or v > peak:
                    peak, peak_ns = v, t
        out[g] = BucketStats(n, total, peak, peak_ns)
    return out
