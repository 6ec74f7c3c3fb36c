"""The month rows of InfluxDB's rollups (``m_1mo``, ``m_mtd``): a measurement's month figures per
series, packed as JSON (see ``rollup``), written as days are rolled and read back."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Sequence

from dcim.metrics import Measurement, Point
from dcim.store import month_figures
from dcim.store.base import matches
from dcim.store.influx.influxql import quote_ident, where_clause

if TYPE_CHECKING:
    from dcim.store.influx.client import InfluxClient

log = logging.getLogger(__name__)

from dcim.store.influx.layout import (
    DAY_NS,
    PACK_FIELD,
    PACK_SERIES,
    PART_TAG,
    ZONE_TAG,
    Rolled,
    floor_ns,
    month_rollup_name,
    mtd_rollup_name,
    source,
)


class _Months:
    """The month rows of one measurement in the store's zone (``timezone``), days fed in time
    order from ``start_ns`` (which may lie before the first day asked for, see below): the
    ``m_1mo`` points of each month ending in a day, and the ``m_mtd`` points of the days a
    later run may resume from."""

    def __init__(self, client: "InfluxClient", spec: Measurement, hour_fields: list[str], counter_fields: list[str],
                 start_ns: int, end_ns: int, reroll_days: int, old: Rolled | None):
        self.zone = zone = client.timezone
        self.fields = (hour_fields, counter_fields)
        self.month_name, self.mtd_name = month_rollup_name(spec.name), mtd_rollup_name(spec.name)
        # A later run starts at most reroll_days + 1 days before this run's end: its month so far
        # is the month-to-date of the day before. Older days' are not kept (a run that starts
        # further back, a spool replay, rolls from the first day of its month instead).
        self.keep_from = end_ns - (reroll_days + 2) * DAY_NS
        same_zone = old is not None and old.mo_zone == zone and old.mo_from_ns is not None
        fresh = old is None  # the first run: no day before start holds data the rollups know of
        resume = None
        if same_zone and old.mo_from_ns < start_ns:
            resume = read_packs(client, self.mtd_name, zone, start_ns - DAY_NS, start_ns - DAY_NS + 1)
            if not resume:
                start_ns = max(old.from_ns, floor_ns(month_figures.month_start(zone, start_ns - 1), DAY_NS))
        self.start_ns = start_ns
        # Without the month so far (but on the first run), the month in progress is partial: not written.
        month_ns = month_figures.month_start(zone, start_ns - 1)
        self.chain = month_figures.MonthChain(spec, hour_fields, counter_fields, month_ns,
                                              complete=fresh or bool(resume))
        if resume:
            self.chain.load([(key, v) for _, key, v in unpack(resume, month_columns(hour_fields, counter_fields))])
        # The first month held whole: on the first run the one in progress (nothing before);
        # else the first starting in this run's first day or later, or an earlier one where the
        # days before were rolled for this zone.
        first_whole = month_ns if fresh else month_figures.month_starts(zone, start_ns, start_ns + 32 * DAY_NS)[0]
        self.from_ns = min(old.mo_from_ns, first_whole) if same_zone else first_whole

    def points(self, day: month_figures.MonthDay) -> list[Point]:
        closed = self.chain.add_day(day)
        out = self._packs(self.month_name, closed, self.chain.closed_ns) if closed is not None else []
        if day.day_ns >= self.keep_from:
            # An empty month so far still gets its point: it tells a resuming run the day was kept.
            out += self._packs(self.mtd_name, self.chain.figures(), day.day_ns) or [
                Point(self.mtd_name, {ZONE_TAG: self.zone, PART_TAG: ""}, {PACK_FIELD: pack_text([], [])}, day.day_ns)]
        return out

    def _packs(self, name: str, figures: list[tuple[tuple, dict]], time_ns: int) -> list[Point]:
        """*figures* ((series key, {figure: value}), in key order) as points of *name*, one per
        rack and PACK_SERIES series. The pieces of a rack follow key order, so a series set
        that grows (all maintain() ever sees of a month, as raw points stay) rewrites every
        piece it had before."""
        racks: dict[str, list] = {}
        for key, values in figures:
            racks.setdefault(dict(key).get("rack", ""), []).append((key, values))
        columns = month_columns(*self.fields)
        out = []
        for rack, entries in racks.items():
            for k in range(0, len(entries), PACK_SERIES):
                part = rack if k == 0 else f"{rack}#{k // PACK_SERIES + 1}"
                text = pack_text(entries[k:k + PACK_SERIES], columns)
                out.append(Point(name, {ZONE_TAG: self.zone, PART_TAG: part}, {PACK_FIELD: text}, time_ns))
        return out


def _start_months(client: "InfluxClient", spec: Measurement, fields: list[str], start_ns: int, end_ns: int,
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


def read_packs(client: "InfluxClient", name: str, zone: str, start_ns: int, end_ns: int) -> list[tuple[int, str]]:
    """The month packs *name* (``m_1mo`` or ``m_mtd``) of *zone* in [start_ns, end_ns): (time
    ns, its JSON). One plain SELECT."""
    cond = where_clause(start_ns, end_ns, {ZONE_TAG: zone})
    return [(t, text) for series in client.execute(f"SELECT {quote_ident(PACK_FIELD)} FROM {source(client, name)} "
                                                  f"WHERE {cond}")[0].get("series", [])
            for t, text in series.get("values") or []]


def pack_text(entries: list[tuple[tuple, dict]], columns: list[str]) -> str:
    """A month pack's JSON (see the layout above): *entries* (series key, {column: value})."""
    tags = sorted({t for key, _ in entries for t, _ in key})
    rows = []
    for key, values in entries:
        have = dict(key)
        rows.append([[have.get(t) for t in tags], [values.get(c) for c in columns]])
    return json.dumps({"tags": tags, "columns": columns, "rows": rows}, separators=(",", ":"), ensure_ascii=False)


def unpack(packs: list[tuple[int, str]], columns: list[str], where: dict | None = None
           ) -> list[tuple[int, tuple, dict]]:
    """The series' entries in *packs* that *where* selects: (time ns, series key, {column:
    value}), a column absent from an entry None."""
    out = []
    for t, text in packs:
        pack = json.loads(text)
        tags, index = pack["tags"], {c: i for i, c in enumerate(pack["columns"])}
        at = [(c, index.get(c)) for c in columns]
        for values, figures in pack["rows"]:
            key = tuple((tag, v) for tag, v in zip(tags, values) if v is not None)
            if where is None or matches(dict(key), where):
                out.append((t, key, {c: None if i is None else figures[i] for c, i in at}))
    return out

