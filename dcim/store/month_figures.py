"""Month-to-date figures of every series of one measurement in a time zone's calendar,
computed with numpy from the UTC days' figures (``dcim.store.day_figures``), day after day.

InfluxStore's maintain() feeds each rolled day to a ``MonthChain`` and writes what it gives:
the ``m_mtd`` points of the day and the ``m_1mo`` point of each month that ends (the layout
and why: ``dcim.store.influx.rollup``). Per series and *month field* (``month_fields``):

- an hourly field (power, utilisation): hours with a value (``hn``), Σ of the hourly means
  (``hsum``), the largest hourly mean and the start of the earliest hour holding it (``hmax``,
  ``hmaxts``), as ``Store.bucket_stats`` of the month's hours summarises them;
- a counter: first and last value, increase and resets (``first``, ``last``, ``inc``,
  ``rst``): ``dcim.store.counters.bucket_span`` of each UTC day (cut in two where a month
  starts inside it) chained over the month's days, as ``Store.counter_increase`` of the month.

Sums add the days in time order, one by one. Months start at local midnight of the 1st, as
the report's periods do (whole seconds; fold=0 on a repeated hour). Hours are UTC hours
aligned to the epoch. Times are UTC nanoseconds; values in the field's unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

import dcim.store.counters as counters
import dcim.store.day_figures as day_figures
from dcim.metrics import Measurement
from dcim.store.base import BucketStats, add_bucket_stats, has_group_rollups

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
DAY_NS = 86_400 * NS_PER_S
HOUR_PARTS = ("hn", "hsum", "hmax", "hmaxts")
COUNTER_PARTS = ("first", "last", "inc", "rst")


def month_fields(spec: Measurement) -> tuple[list[str], list[str]]:
    """(hourly fields, counter fields) of *spec* that get month rows: the power and
    utilisation fields (``has_group_rollups``) and the numeric counters."""
    numeric = [f for f in spec.fields.values() if f.kind in (int, float)]
    return ([f.name for f in numeric if has_group_rollups(spec, f.name) and not f.counter],
            [f.name for f in numeric if f.counter])


def per_group(series_months: Iterable[tuple[str, tuple, list]], counter_fields: Sequence[str],
              hour_fields: Sequence[str], combine: str = "sum"
              ) -> tuple[dict[str, dict[tuple, tuple[float, int]]], dict[str, dict[tuple, BucketStats]]] | None:
    """``Store.period_figures`` from stored month figures: ({counter: {group: (increase,
    resets)}}, {hourly field: {group: BucketStats}}). *series_months*: per series and field,
    (field, the series' group, its months in time order: ``counters.CounterSpan`` of a counter,
    ``BucketStats`` of an hourly field). None where a group holds several series (a month
    figure cannot be split into hours), but for hourly fields with *combine* ``each``."""
    out_counters: dict[str, dict[tuple, tuple[float, int]]] = {f: {} for f in counter_fields}
    out_hourly: dict[str, dict[tuple, BucketStats]] = {f: {} for f in hour_fields}
    for f, group, months in series_months:
        if f in out_counters:
            if group in out_counters[f]:
                return None
            out_counters[f][group] = counters.chain(months)
            continue
        stats = add_bucket_stats(months)
        have = out_hourly[f].get(group)
        if have is not None and combine != "each":
            return None
        out_hourly[f][group] = stats if have is None else add_bucket_stats([have, stats])
    return out_counters, out_hourly


# --- the calendar ---------------------------------------------------------------------------

def check_zone(zone: str) -> str:
    """*zone* if it is an IANA time zone name this machine knows, else ValueError."""
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"unknown time zone {zone!r}") from None
    return zone


def month_start(zone: str, t_ns: int) -> int:
    """Start (UTC ns) of the local month of *zone* holding the instant *t_ns*."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(t_ns // NS_PER_S, tz)
    return _midnight_ns(local.year, local.month, tz)


def month_starts(zone: str, lo_ns: int, hi_ns: int) -> list[int]:
    """Starts (UTC ns) of the local months of *zone* that begin in [lo_ns, hi_ns]."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(lo_ns // NS_PER_S, tz)
    year, month = local.year, local.month
    out: list[int] = []
    while True:
        t = _midnight_ns(year, month, tz)
        if t > hi_ns:
            return out
        if t >= lo_ns:
            out.append(t)
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)


def _midnight_ns(year: int, month: int, tz: ZoneInfo) -> int:
    # As the report's periods: local midnight of the 1st (fold=0 on a repeated hour), whole seconds.
    return int(datetime(year, month, 1, tzinfo=tz).timestamp()) * NS_PER_S


# --- one day's part of the months, computed while the day is rolled --------------------------

@dataclass
class PartFigures:
    """One field over a part of a UTC day, per series that carried it (``series``: ranks into
    the day's keys): hourly summaries (hourly fields) or first, last and max (counters)."""

    series: np.ndarray
    hn: np.ndarray | None = None
    hsum: np.ndarray | None = None
    hmax: np.ndarray | None = None
    hmaxts: np.ndarray | None = None
    first: np.ndarray | None = None
    last: np.ndarray | None = None
    max: np.ndarray | None = None


@dataclass
class MonthDay:
    """What one UTC day adds to the months: *before* (the hours before a month that starts in
    the day, at *boundary_ns*; None if none starts in it or nothing came before it) and *after*
    (the rest of the day), each {field: PartFigures}; *keys*: the series per rank."""

    day_ns: int
    keys: list[tuple]
    boundary_ns: int | None
    before: dict[str, PartFigures] | None
    after: dict[str, PartFigures]


def month_day(day_ns: int, zone: str, hour_fields: Sequence[str], counter_fields: Sequence[str],
              points: day_figures.DayPoints | None, whole_day: dict[str, day_figures.FieldDay]) -> MonthDay:
    """UTC day *day_ns*'s part of the months of *zone* from its raw *points* (None: it has
    none); *whole_day*: the day's figures per field, already computed (used as they are
    unless a month starts inside the day)."""
    starts = month_starts(zone, day_ns, day_ns + DAY_NS - 1)
    boundary = starts[0] if starts else None
    if points is None:
        return MonthDay(day_ns, [], boundary, None, {})

    def parts(figures: dict[str, day_figures.FieldDay]) -> dict[str, PartFigures]:
        out = {}
        for f, fd in figures.items():
            if f in hour_fields:
                out[f] = PartFigures(fd.series, hn=fd.hn, hsum=fd.hsum, hmax=fd.hmax, hmaxts=fd.hmaxts)
            elif f in counter_fields:
                out[f] = PartFigures(fd.series, first=fd.first, last=fd.last, max=fd.max)
        return out

    fields = [f for f in (*hour_fields, *counter_fields) if f in points.values]
    if boundary is None or boundary == day_ns:
        after = parts({f: fd for f, fd in whole_day.items() if f in fields})
        return MonthDay(day_ns, points.keys, boundary, None, after)
    halves = []
    for keep in (points.time_ns < boundary, points.time_ns >= boundary):
        part = day_figures.DayPoints(day_ns, points.keys, points.series[keep], points.time_ns[keep],
                                     {f: points.values[f][keep] for f in fields},
                                     {f: points.valid[f][keep] for f in fields})
        halves.append(parts({f: fd for f in fields if (fd := day_figures.field_day(part, f)) is not None}))
    return MonthDay(day_ns, points.keys, boundary, halves[0], halves[1])


# --- the months, day after day --------------------------------------------------------------

class MonthChain:
    """Month-to-date figures of every series of one measurement, fed the UTC days in time order
    (``add_day``). Series are numbered as first seen; per field, one array entry per series."""

    def __init__(self, spec: Measurement, hour_fields: Sequence[str], counter_fields: Sequence[str], month_ns: int,
                 complete: bool = True):
        self.spec = spec
        self.month_ns = month_ns  # start (UTC ns) of the month in progress
        self.complete = complete  # False: the month in progress lacks its first days (not given when it ends)
        self.number: dict[tuple, int] = {}
        self.keys: list[tuple] = []  # series key per number
        self.capacity = 0  # entries per array
        self.closed_ns: int | None = None  # start of the month add_day last closed
        self.hours = {f: {"hn": np.zeros(0, np.int64), "hsum": np.zeros(0), "hmax": np.zeros(0),
                          "hmaxts": np.zeros(0, np.int64)} for f in hour_fields}
        self.counters = {f: {"has": np.zeros(0, bool), "first": np.zeros(0, self._dtype(f)),
                             "last": np.zeros(0, self._dtype(f)), "inc": np.zeros(0), "rst": np.zeros(0, np.int64)}
                         for f in counter_fields}

    def _dtype(self, f: str):
        return np.int64 if self.spec.fields[f].kind is int else np.float64

    def _clear(self, lo: int = 0) -> None:
        """Entries lo.. of every array: no data in the month."""
        for st in self.hours.values():
            st["hn"][lo:], st["hsum"][lo:], st["hmax"][lo:], st["hmaxts"][lo:] = 0, 0.0, -np.inf, 0
        for st in self.counters.values():
            st["has"][lo:], st["first"][lo:], st["last"][lo:], st["inc"][lo:], st["rst"][lo:] = False, 0, 0, 0.0, 0

    def _ids(self, keys: list[tuple]) -> np.ndarray:
        """The numbers of the series *keys*, new ones added (the arrays grown by doubling)."""
        number, known = self.number, self.keys
        ids = np.empty(len(keys), np.int64)
        for j, key in enumerate(keys):
            i = number.get(key)
            if i is None:
                i = number[key] = len(known)
                known.append(key)
            ids[j] = i
        if len(known) > self.capacity:
            old, self.capacity = self.capacity, max(2 * self.capacity, len(known), 1024)
            for st in (*self.hours.values(), *self.counters.values()):
                for name, arr in st.items():
                    grown = np.empty(self.capacity, arr.dtype)
                    grown[:old] = arr
                    st[name] = grown
            self._clear(old)
        return ids

    def add(self, keys: list[tuple], part: dict[str, PartFigures]) -> None:
        """Add a part of a day, later than everything added so far in the month."""
        ids = self._ids(keys)
        for f, p in part.items():
            g = ids[p.series]
            if f in self.hours:
                st = self.hours[f]
                st["hn"][g] += p.hn
                st["hsum"][g] = st["hsum"][g] + p.hsum
                better = p.hmax > st["hmax"][g]  # strict: an earlier hour keeps a tie
                st["hmax"][g] = np.where(better, p.hmax, st["hmax"][g])
                st["hmaxts"][g] = np.where(better, p.hmaxts, st["hmaxts"][g])
            elif f in self.counters:
                st = self.counters[f]
                first, last, top = p.first, p.last, p.max
                if first is None or last is None or top is None:
                    raise ValueError(f"month figures: counter {f}'s part lacks its first, last or max")
                # The part as one bucket, then the junction from the month so far (counters.chain).
                inc, dropped = counters.bucket_increases(first, last, top)
                step, reset = counters.junctions(st["last"][g], first)
                new = ~st["has"][g]
                st["inc"][g] = np.where(new, inc, (st["inc"][g] + step) + inc)
                st["rst"][g] = np.where(new, dropped, st["rst"][g] + reset + dropped)
                st["first"][g] = np.where(new, first, st["first"][g])
                st["last"][g] = last
                st["has"][g] = True

    def add_day(self, day: MonthDay) -> list[tuple[tuple, dict]] | None:
        """Add the UTC day after the last one added. Where a complete month ends in it, returns
        that month's figures (``figures()``, start: ``closed_ns``), else None."""
        closed = None
        if day.boundary_ns is not None:
            if day.before:
                self.add(day.keys, day.before)
            if self.complete:
                closed, self.closed_ns = self.figures(), self.month_ns
            self.month_ns, self.complete = day.boundary_ns, True
            self._clear()
        self.add(day.keys, day.after)
        return closed

    def figures(self) -> list[tuple[tuple, dict]]:
        """(series key, {f_part: value}) of every series with data in the month so far, field
        values as Python numbers (a counter's first and last in the field's type)."""
        n = len(self.keys)
        values: list[dict] = [{} for _ in range(n)]
        for f, st in self.hours.items():
            cols = [st[p][:n].tolist() for p in HOUR_PARTS]
            for i in np.flatnonzero(st["hn"][:n] > 0).tolist():
                values[i].update(zip((f"{f}_{p}" for p in HOUR_PARTS), (c[i] for c in cols)))
        for f, st in self.counters.items():
            cols = [st[p][:n].tolist() for p in COUNTER_PARTS]
            for i in np.flatnonzero(st["has"][:n]).tolist():
                values[i].update(zip((f"{f}_{p}" for p in COUNTER_PARTS), (c[i] for c in cols)))
        return [(key, v) for key, v in zip(self.keys, values) if v]

    def load(self, rows: list[tuple[tuple, dict]]) -> None:
        """Resume from figures() as stored ((series key, {f_part: value}), JSON numbers)."""
        ids = self._ids([key for key, _ in rows])
        for i, (_, v) in zip(ids.tolist(), rows):
            for f, st in self.hours.items():
                if v.get(f"{f}_hn"):
                    st["hn"][i], st["hsum"][i] = int(v[f"{f}_hn"]), float(v[f"{f}_hsum"])
                    st["hmax"][i], st["hmaxts"][i] = float(v[f"{f}_hmax"]), int(v[f"{f}_hmaxts"])
            for f, st in self.counters.items():
                if v.get(f"{f}_first") is not None:
                    cast = int if self.spec.fields[f].kind is int else float
                    st["has"][i] = True
                    st["first"][i], st["last"][i] = cast(v[f"{f}_first"]), cast(v[f"{f}_last"])
                    st["inc"][i], st["rst"][i] = float(v[f"{f}_inc"]), int(v[f"{f}_rst"])
