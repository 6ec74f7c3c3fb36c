"""The month rows of InfluxDB's rollups (``m_month``, ``m_month_to_date``): a measurement's month
figures, a point per series and month (see ``rollup``), written as days are rolled and read back."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dcim.store.month_figures as month_figures
from dcim.metrics import Measurement, Point
from dcim.store.base import matches
from dcim.store.influx.influxql import where_clause

if TYPE_CHECKING:
    from dcim.store.influx.client import InfluxClient

from dcim.store.influx.layout import (
    DAY_NS,
    KEPT_FIELD,
    MONTH_LAYOUT,
    ZONE_TAG,
    Rolled,
    floor_ns,
    month_rollup_name,
    mtd_rollup_name,
    source,
)

log = logging.getLogger(__name__)


class _Months:
    """The month rows of one measurement in the store's zone (``timezone``), days fed in time
    order from ``start_ns`` (which may lie before the first day asked for, see below): the
    ``m_month`` points of each month ending in a day, and the ``m_month_to_date`` points of the days a
    later run may resume from."""

    def __init__(self, client: InfluxClient, spec: Measurement, hour_fields: list[str], counter_fields: list[str],
                 start_ns: int, end_ns: int, reroll_days: int, old: Rolled | None):
        self.zone = zone = client.timezone
        self.fields = (hour_fields, counter_fields)
        self.month_name, self.mtd_name = month_rollup_name(spec.name), mtd_rollup_name(spec.name)
        # A later run starts at most reroll_days + 1 days before this run's end: its month so far
        # is the month-to-date of the day before. Older days' are not kept (a run that starts
        # further back, a spool replay, rolls from the first day of its month instead).
        self.keep_from = end_ns - (reroll_days + 2) * DAY_NS
        # Where the month rows of this zone (and layout: rows of another, start afresh) begin.
        old_months_from = None
        if old is not None and old.mo_zone == zone and old.mo_layout == MONTH_LAYOUT:
            old_months_from = old.mo_from_ns
        fresh = old is None  # the first run: no day before start holds data the rollups know of
        resume = None
        if old is not None and old_months_from is not None and old_months_from < start_ns:
            resume = read_month_rows(client, self.mtd_name, zone, start_ns - DAY_NS, start_ns - DAY_NS + 1,
                                     month_columns(hour_fields, counter_fields), markers=True)
            if not resume:
                start_ns = max(old.from_ns, floor_ns(month_figures.month_start(zone, start_ns - 1), DAY_NS))
        self.start_ns = start_ns
        # Without the month so far (but on the first run), the month in progress is partial: not written.
        month_ns = month_figures.month_start(zone, start_ns - 1)
        self.chain = month_figures.MonthChain(spec, hour_fields, counter_fields, month_ns,
                                              complete=fresh or bool(resume))
        if resume:
            self.chain.load([(key, v) for _, key, v in resume if key])
        # The first month held whole: on the first run the one in progress (nothing before);
        # else the first starting in this run's first day or later, or an earlier one where the
        # days before were rolled for this zone.
        first_whole = month_ns if fresh else month_figures.month_starts(zone, start_ns, start_ns + 32 * DAY_NS)[0]
        self.from_ns = min(old_months_from, first_whole) if old_months_from is not None else first_whole
        self.casts = month_field_types(spec, hour_fields, counter_fields)

    def points(self, day: month_figures.MonthDay) -> list[Point]:
        closed = self.chain.add_day(day)
        closed_ns = self.chain.closed_ns  # the closed month's start, set with it
        out = self._rows(self.month_name, closed, closed_ns) if closed is not None and closed_ns is not None else []
        if day.day_ns >= self.keep_from:
            # An empty month so far still gets its point: it tells a resuming run the day was kept.
            out += self._rows(self.mtd_name, self.chain.figures(), day.day_ns) or [
                Point(self.mtd_name, {ZONE_TAG: self.zone}, {KEPT_FIELD: True}, day.day_ns)]
        return out

    def _rows(self, name: str, figures: list[tuple[tuple, dict]], time_ns: int) -> list[Point]:
        """*figures* ((series key, {figure: value})) as points of *name*: one per series, its
        tags and ``tz``, its figures as fields (typed as ``month_field_types`` says, so a
        figure keeps one InfluxDB type)."""
        out = []
        for key, values in figures:
            fields = {c: cast(values[c]) for c, cast in self.casts.items() if values.get(c) is not None}
            if fields:
                out.append(Point(name, {ZONE_TAG: self.zone, **dict(key)}, fields, time_ns))
        return out


def _start_months(client: InfluxClient, spec: Measurement, fields: list[str], start_ns: int, end_ns: int,
                  reroll_days: int, old: Rolled | None) -> _Months | None:
    """The month rows to keep up while rolling from *start_ns* to *end_ns* (None where *spec*
    has no month field among *fields*)."""
    hour_fields, counter_fields = ([f for f in fs if f in fields] for fs in month_figures.month_fields(spec))
    if not hour_fields and not counter_fields:
        return None
    return _Months(client, spec, hour_fields, counter_fields, start_ns, end_ns, reroll_days, old)


def month_columns(hour_fields: Sequence[str], counter_fields: Sequence[str]) -> list[str]:
    """The month rows' field keys for these fields (``f_hn`` ..., ``f_first`` ...)."""
    return ([f"{f}_{p}" for f in hour_fields for p in month_figures.HOUR_PARTS]
            + [f"{f}_{p}" for f in counter_fields for p in month_figures.COUNTER_PARTS])


def month_field_types(spec: Measurement, hour_fields: Sequence[str], counter_fields: Sequence[str]) -> dict:
    """{figure: the type it is written as}: counts and times int, sums, peaks and increases
    float, a counter's first and last value the counter's own type."""
    types = {}
    for f in hour_fields:
        types.update({f"{f}_hn": int, f"{f}_hsum": float, f"{f}_hmax": float, f"{f}_hmaxts": int})
    for f in counter_fields:
        kind = spec.fields[f].kind
        types.update({f"{f}_first": kind, f"{f}_last": kind, f"{f}_inc": float, f"{f}_rst": int})
    return types


def read_month_rows(client: InfluxClient, name: str, zone: str, start_ns: int, end_ns: int, columns: list[str],
                    where: dict | None = None, markers: bool = False) -> list[tuple[int, tuple, dict]]:
    """The rows of *name* (``m_month`` or ``m_month_to_date``) of *zone* in [start_ns, end_ns)
    whose series *where* selects: (time ns, series key, {column: value}), a column absent from
    a row None. One plain SELECT, grouped by series. *markers*: also a month-to-date day's
    marker (key ``()``), which says the day was kept with no series."""
    cond = where_clause(start_ns, end_ns, {ZONE_TAG: zone})
    answer = client.execute(f"SELECT * FROM {source(client, name)} WHERE {cond} GROUP BY *")[0]
    out = []
    for series in answer.get("series", []):
        key = tuple(sorted((t, v) for t, v in (series.get("tags") or {}).items() if t != ZONE_TAG and v != ""))
        if not key and not markers:
            continue
        if key and where is not None and not matches(dict(key), where):
            continue
        index = {c: i for i, c in enumerate(series["columns"])}
        at = [(c, index.get(c)) for c in columns]
        for row in series.get("values") or []:
            out.append((row[0], key, {c: None if i is None else row[i] for c, i in at}))
    return out
