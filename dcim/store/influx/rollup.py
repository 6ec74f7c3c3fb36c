"""Daily rollups for InfluxStore, computed by dcim itself over the v1 HTTP API.

No continuous queries, no Flux, no ``SELECT INTO``: InfluxQL reads and line-protocol writes
only, so the same code serves InfluxDB 1.x, 2.x (v1 compatibility) and 3.x.

**Layout.** Per measurement ``m`` of the metric contract with numeric (int or float) fields,
measurement ``m_1d`` holds one point per series (the raw series' tags) and closed UTC day,
stamped at the day's start. Per numeric field ``f`` the series carried that day:

- ``f_n`` (int: points), ``f_sum``, ``f_min``, ``f_max``, ``f_first`` and ``f_last`` in the
  field's unit (int fields stay int for all six, float fields float), ``f_fts`` / ``f_lts``
  (int ns: times of the first and last point);
- the day's hourly means summarised: ``f_hn`` (int: hours with a value), ``f_hsum`` (float: sum
  of the hourly means), ``f_hmax`` (float: the largest hourly mean) and ``f_hmaxts`` (int ns:
  start of the earliest hour holding it);
- for counters (``counter=True`` in the contract: energy): ``f_inc`` (float) and ``f_rst``
  (int), the increase and resets inside the day (``dcim.store.counters.bucket_span``), and
  ``f_jinc`` / ``f_jrst``, those of the junction from the series' previous day with a value
  (0 for its first rolled day). Over days [a, b) a counter then increases by Σ inc + Σ jinc
  less the first day's jinc (its junction lies before a): one aggregate row per series.

For the grouped fields (``has_group_rollups``: power, which adds up into a rack's or a room's
demand, and GPU utilisation, whose series-hours add up into GPU-hours), measurement ``m_1d_by``
holds the same day's hourly figures of groups of series: per tag ``t`` of the measurement (tag
``by`` = t, tag t = its value) and for all series together (``by`` = ``*``), the group's hourly
sums (each hour, the sum of its series' hourly means) summarised: ``f_n`` (int: hours with a
value), ``f_sum``, ``f_max`` (float) and ``f_maxts`` (int ns: start of the earliest hour holding
the max); and its series-hours: ``f_sn`` (int: Σ over the hours of the series with a mean),
``f_top`` (float: the largest of its series' hourly means) and ``f_topts`` (int ns: the
earliest hour holding it). Every tag gets them, whether or not its groups hold several series
that day (which the reader cannot know).

For the grouping tags of ``GROUP_ROLLUP_TAGS`` (``rack``), measurement ``m_1h_by`` holds the
same groups hour by hour (tag ``by`` = t, tag t = its value; stamped at the hour): ``f_sum``
(float: Σ of the series' hourly means), ``f_sn`` (int: series with a mean) and ``f_top`` (float:
the largest of them). They serve the partial days at a period's edges, which would otherwise
read every series' raw points: a quarter in Asia/Seoul starts and ends at 15:00 UTC.

For the *month fields* (``dcim.store.month_figures.month_fields``: counters, power and
utilisation), figures per series and calendar month of the store's time zone (``timezone``:
the site's), which serve a period of whole local months (a quarter, a month, the trailing
twelve) with one entry per series and month; as ``dcim.store.month_figures`` computes them:
per hourly field ``f_hn`` (int), ``f_hsum``, ``f_hmax``, ``f_hmaxts`` (int ns); per counter
``f_first``, ``f_last`` (the field's type), ``f_inc`` (float), ``f_rst`` (int).

- ``m_month``: a month's figures, stamped at the month's start;
- ``m_month_to_date``: the same month-to-date at the end of each UTC day (every series that had
  data earlier in the month, data that day or not), stamped at the day's start: where
  maintain() resumes, from the day before the first day it rolls (a day kept with no series
  has one point with tag ``tz`` only and field ``kept``).

Ordinary points, one per series and month: the series' tags and tag ``tz`` (the zone), its
figures as fields, so InfluxQL and Grafana read them (``SELECT sum("energy_j_inc") FROM
gpu_month WHERE tz = 'Asia/Seoul' AND time >= ...``). Measured at 32,000 GPUs on the Debian
influxd 1.6 (2 cores, loaded): a quarter's by-GPU read of these rows (96,000 points, one
``SELECT * ... GROUP BY *``) takes 13.7-14.8 s, under the 30 s that would have kept the JSON
packs of 32 series a point (``MONTH_LAYOUT`` 1, which read in ~1 s but nobody else could
read). Rows of that older layout are ignored (``Rolled.mo_layout``): months read from the
days until maintain() has written rows in this one.

Measurement ``dcim_rollup`` (tag ``measurement``) records per measurement the days rolled:
``from_ns`` (first day) and ``to_ns`` (end of the last day), both int ns,
``by_hour_from_ns``, the first day rolled with its ``m_1h_by`` rows (days rolled by an earlier
version have none), ``mo_zone`` (string: the zone of the month rows), ``mo_layout`` (int: their
layout, ``MONTH_LAYOUT``) and ``mo_from_ns`` (int:
the start of the first month whose row holds all of it: the first month starting in the first
day rolled for that zone; the month before lacks the days before). Reads use the rollups only
for whole days in [from_ns, to_ns), the hourly group rows only for hours in
[by_hour_from_ns, to_ns), and a month's row only for the store's own zone, from mo_from_ns on,
once the UTC day holding the month's end is rolled, and for months starting on a whole UTC
hour (in Asia/Kolkata a quarter's hour across a month boundary is one bucket, split in two by
the rows); other days read raw points.

**Where.** Both live in retention policy ``dcim_rollups`` (kept forever, a shard per 52 weeks),
which maintain() creates on InfluxDB 1.x. The default policy cuts time into week-long shards,
and a read opens every shard its range touches once per series: a quarter's daily rows of
2,000 PDUs summed per PDU took 2.4 s across 14 weekly shards and 0.28 s from one shard.
Where the policy cannot be made (2.x and 3.x have no CREATE RETENTION POLICY over the v1 API;
a user without admin rights) the rollups go to the database's default policy (on 1.x with a
warning).

**maintain()** rolls closed days (day end <= now - GRACE_NS): on the first run from the first
day holding raw data, afterwards from the newest rolled day minus ``reroll_days``, so late
points (spool replays after an outage) are picked up. A day written again overwrites its
points (same series and time). Per (measurement, day): the day's raw points in plain SELECTs
(no GROUP BY; a few slices of hours), and every figure computed from them with numpy
(``dcim.store.day_figures``: InfluxDB's own sums and means, bit for bit). Asking InfluxDB for
the figures per series instead (COUNT/SUM/MIN/MAX, FIRST, LAST and hourly MEAN with GROUP BY
*) took 15 s of server time for a day of 4,096 GPUs on 1.6; reading the points, 0.9 s. Days run
in parallel on the store's query threads; as each day is done, in time order, its counters'
junctions are written, from the last rolled day before the first one rolled (a re-rolled
day's junctions, and those of every later day, are written again with it), and its month
figures are added to the months in progress (``m_month_to_date``; ``m_month`` where a month ends).

**Reads** (``dcim.store.influx.rollup_reads``). ``query()`` with ``every_s`` a multiple of a
day and ``bucket_stats()`` with hourly buckets (every group one series, or ``combine="each"``)
read rolled whole days from ``m_1d``; ``bucket_stats()`` of summed power per tag (or of all
series) from ``m_1d_by``; ``counter_days()`` and ``counter_increase()`` from one read of the
rolled days; raw points for the partial days at the range's edges and the days not rolled
yet. Why not let InfluxDB sum a group's hours at read time: on 1.6, the hourly sums of a
quarter per rack over 2,000 PDUs' daily rows (24 hour columns, GROUP BY time(1d), rack) took
41 s, and a subquery per hour of the day 0.8-2.2 s each. A range of whole local months
(``rolled_months``, ``months_held``) is read first from the month rows: ``counter_increase()``
and hourly ``bucket_stats()`` of groups of one series (or ``combine="each"``), and
``period_figures()``, several fields in one read.

Known limits:

- A point written for a day older than the re-roll window by another process than the one
  running maintain() (its writes are remembered, a spool replay included) stays out of the
  rollups, the day's and its month's: reads served from them do not see it. Days before the
  first rolled day read raw.
  Points newer than that are seen after the next maintain(); until then a rolled day answers
  as rolled.
- A group's hourly sums over the days are whole groups only: a read that leaves out some of
  a group's series (a where on another tag that does not accept all its values) reads raw.
- Sums and means over several days come out of another summation order than InfluxDB's own
  over raw points (Σ of daily sums, Σ of hourly means), and so do counter increases and the
  group sums' peaks: equal to about 1e-15 relative, not always bit for bit. Counts, minima,
  maxima, first and last values, a series' peaks and reset counts are exact.
- A counter's junctions are those of the days as rolled: one rolled before this layout (no
  ``f_jinc``) makes counter_increase fall back to reading the days.
- ``bucket_stats`` peaks: a tie between hours of one series resolves to the earliest hour, as
  on raw points; it relies on ``MAX()``'s documented tie rule (earliest point) in the
  selector query that picks a series' peak day.

Times are UTC nanoseconds since the epoch throughout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

import dcim.store.day_figures as day_figures
import dcim.store.month_figures as month_figures
from dcim.metrics import MEASUREMENTS, Measurement, Point
from dcim.store.base import GROUP_ROLLUP_TAGS, StoreError, has_group_rollups
from dcim.store.counters import bucket_span, junction
from dcim.store.influx.influxql import quote_ident
from dcim.store.influx.layout import (
    ALL_SERIES,
    DAY_NS,
    FIELDS_PER_WRITE,
    GRACE_NS,
    HOUR_NS,
    HOURS_PER_DAY,
    MONTH_LAYOUT,
    POINTS_PER_REQUEST,
    STATE,
    Rolled,
    find_policy,
    floor_ns,
    group_rollup_name,
    hourly_group_rollup_name,
    numeric_fields,
    read_state,
    rollup_name,
    series_key,
    source,
)
from dcim.store.influx.months import _start_months

if TYPE_CHECKING:
    from dcim.store.influx.client import InfluxClient

log = logging.getLogger(__name__)


def maintain(client: InfluxClient, now_ns: int | None, reroll_days: int,
             written: dict[str, int] | None = None) -> dict[str, Rolled]:
    """Roll every closed day not rolled yet, and the *reroll_days* before the newest rolled
    one, of every measurement with numeric fields; and again every rolled day from the oldest
    point *written* ({measurement: time ns}) by the caller since its last run (a spool replay).
    Returns the new state (see read_state)."""
    started = time.monotonic()
    now_ns = time.time_ns() if now_ns is None else int(now_ns)
    end = floor_ns(now_ns - GRACE_NS, DAY_NS)  # days before this one are closed
    client.ensure_database()
    client.rollup_policy = find_policy(client, create=True)
    state = read_state(client)
    present = _field_keys(client)
    done, failed = [], []
    for spec in MEASUREMENTS.values():
        fields = [f for f in numeric_fields(spec) if f in present.get(spec.name, ())]
        if not fields:
            continue
        # One measurement failing (a query timing out on a loaded server) leaves the others to
        # roll: the report's facility figures need no GPU rollups. Its days are owed: raised below.
        try:
            rolled = _roll_measurement(client, spec, fields, state, end, reroll_days, written)
        except StoreError as exc:
            log.warning("InfluxDB rollups of %s failed (%s); the other measurements roll on", spec.name, exc)
            failed.append(f"{spec.name}: {exc}")
            continue
        if rolled:
            done.append(rolled)
    log.info("InfluxDB rollups: %s in %.1f s", ", ".join(done) or "nothing to roll", time.monotonic() - started)
    if failed:
        raise StoreError("InfluxDB rollups failed for " + "; ".join(failed))
    return state


def _roll_measurement(client: InfluxClient, spec: Measurement, fields: list[str], state: dict[str, Rolled],
                      end: int, reroll_days: int, written: dict[str, int] | None) -> str | None:
    """Roll one measurement's days up to *end* (see maintain) and record them in *state*; what
    was rolled, for the log, or None if nothing was due."""
    old = state.get(spec.name)
    if old is not None:
        first, to, by_hour = old.from_ns, old.to_ns, old.by_hour_from_ns
        start = max(first, to - DAY_NS - reroll_days * DAY_NS)
        if written and spec.name in written:
            start = max(first, min(start, floor_ns(written[spec.name], DAY_NS)))
    else:
        t0 = _first_time(client, spec.name, fields)
        if t0 is None:
            return None
        first = start = floor_ns(t0, DAY_NS)
        to, by_hour = first, None
    if start >= end:
        return None
    tags = _tag_keys(client, spec.name)
    months = _start_months(client, spec, fields, start, end, reroll_days, old)
    if months is not None:
        start = months.start_ns  # earlier where the month so far was not kept for start's day before
    # Days rolled before hourly group rows existed keep none: from this run's first day on.
    by_hour = start if by_hour is None else min(by_hour, start)
    junctions = _Junctions(client, spec, [f for f in fields if spec.fields[f].counter], start)
    month_args = (months.zone, *months.fields) if months is not None else None
    # Days in parallel on the store's query threads (roll_day only uses execute and write);
    # each day's junctions and months as it comes, in time order.
    series = 0
    for day, (n, ends, month_day) in client.imap(
            lambda day: (day, roll_day(client, spec, fields, tags, day, month_args)), range(start, end, DAY_NS)):
        series += n
        out = junctions.points(day, ends)
        if months is not None:
            out += months.points(month_day)
        write_rollups(client, out)
    to = max(to, end)  # never shrinks (a now_ns earlier than a previous run's)
    mo: tuple[str | None, int | None, int | None]
    if months is not None:
        mo = (months.zone, months.from_ns, MONTH_LAYOUT)
    else:
        mo = (old.mo_zone, old.mo_from_ns, old.mo_layout) if old is not None else (None, None, None)
    rolled = Rolled(first, to, by_hour, *mo)
    # Written last: a run cut short leaves the state as it was, and those days read raw.
    client.write([Point(STATE, {"measurement": spec.name},
                       {k: v for k, v in rolled._asdict().items() if v is not None}, to - DAY_NS)],
                retention_policy=client.rollup_policy)
    state[spec.name] = rolled
    return f"{spec.name} {(end - start) // DAY_NS} d ({series} series-days)"


def _field_keys(client: InfluxClient) -> dict[str, set[str]]:
    """{measurement: its field keys} as the server knows them (one request for all)."""
    out: dict[str, set[str]] = {}
    for series in client.execute("SHOW FIELD KEYS")[0].get("series", []):
        out[series["name"]] = {row[0] for row in series.get("values") or []}
    return out


def _tag_keys(client: InfluxClient, measurement: str) -> list[str]:
    """The tag keys *measurement*'s series carry, as the server knows them: a series is its values of them."""
    answer = client.execute(f"SHOW TAG KEYS FROM {quote_ident(measurement)}")
    return sorted(row[0] for s in answer[0].get("series", []) for row in s.get("values") or [])


def _first_time(client: InfluxClient, measurement: str, fields: Sequence[str]) -> int | None:
    """Time of the oldest raw point of *measurement* (any of *fields*), or None if none. One
    lone FIRST() per field: only a lone selector reports its point's time."""
    src = quote_ident(measurement)
    q = ";".join(f"SELECT FIRST({quote_ident(f)}) FROM {src}" for f in fields)
    times = [row[0] for result in client.execute(q) for s in result.get("series", []) for row in s["values"]]
    return min(times) if times else None


def roll_day(client: InfluxClient, spec: Measurement, fields: Sequence[str], tags: Sequence[str],
             day_ns: int, months: tuple[str, list[str], list[str]] | None = None
             ) -> tuple[int, dict[str, dict[tuple, tuple[float, float]]], month_figures.MonthDay | None]:
    """Compute and write the rollup points of one UTC day from its raw points (*tags*: the
    measurement's tag keys, which make a series); returns how many series had data, per
    counter field each series' (first value, last value) for _Junctions, and with *months*
    (zone, hourly fields, counter fields) the day's part of that zone's months
    (``month_figures.month_day``)."""
    points = _read_day(client, spec, fields, tags, day_ns)
    if points is None:
        return 0, {}, month_figures.month_day(day_ns, *months, None, {}) if months else None
    figures = {f: fd for f in fields if (fd := day_figures.field_day(points, f)) is not None}
    month_day = month_figures.month_day(day_ns, *months, points, figures) if months else None
    out = _daily_points(rollup_name(spec.name), spec, points, figures)
    ends = {f: {points.keys[r]: (a, b) for r, a, b in zip(fd.series.tolist(), fd.first.tolist(), fd.last.tolist())}
            for f, fd in figures.items() if spec.fields[f].counter}
    grouped = {f: fd for f, fd in figures.items() if has_group_rollups(spec, f)}
    if grouped:
        out += _group_points(spec, points, grouped)
    write_rollups(client, out)
    return len({r for fd in figures.values() for r in fd.series.tolist()}), ends, month_day


def _read_day(client: InfluxClient, spec: Measurement, fields: Sequence[str], tags: Sequence[str],
              day_ns: int) -> day_figures.DayPoints | None:
    """A day's raw points of *fields*, with their series' *tags*, as arrays; None if it has
    none. One plain SELECT per slice of hours, sized to about POINTS_PER_REQUEST points from
    the points per hour seen so far."""
    kinds = [spec.fields[f].kind for f in fields]
    select = ", ".join([quote_ident(f) for f in fields] + [quote_ident(t) for t in tags])
    index: dict[tuple, int] = {}  # a row's tag values -> series number
    times: list[np.ndarray] = []  # per answer series: its times
    series: list[np.ndarray] = []  # and its rows' series numbers
    columns: list[list[tuple]] = [[] for _ in fields]  # per field, per answer series: its values
    hour, hours, seen_per_hour = 0, 1, 0
    while hour < HOURS_PER_DAY:
        hours = min(hours, HOURS_PER_DAY - hour)
        a, b = day_ns + hour * HOUR_NS, day_ns + (hour + hours) * HOUR_NS
        got = 0
        for s in client.execute(f"SELECT {select} FROM {quote_ident(spec.name)} WHERE time >= {a} AND time < {b}"
                               )[0].get("series", []):
            rows = s.get("values") or []
            if not rows:
                continue
            got += len(rows)
            cols = list(zip(*rows))
            times.append(np.array(cols[0], dtype=np.int64))
            n_fields = len(fields)
            series.append(np.fromiter((index.setdefault(k, len(index)) for k in zip(*cols[1 + n_fields:])),
                                      dtype=np.int64, count=len(rows)))
            for i in range(n_fields):
                columns[i].append(cols[1 + i])
        hour += hours
        seen_per_hour = max(seen_per_hour, -(-got // hours))
        hours = max(1, POINTS_PER_REQUEST // max(seen_per_hour, 1))
    if not index:
        return None
    # Ranks in series-key order (the tags with a value, sorted), the order every sum adds series in.
    keys = [series_key(dict(zip(tags, k))) for k in index]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    values, valid = {}, {}
    for f, kind, parts in zip(fields, kinds, columns):
        col = [v for part in parts for v in part]
        if kind is int:  # exact int64, 0 where absent
            valid[f] = np.fromiter((v is not None for v in col), dtype=bool, count=len(col))
            values[f] = np.fromiter((0 if v is None else v for v in col), dtype=np.int64, count=len(col))
        else:
            values[f] = np.array(col, dtype=np.float64)  # None -> NaN
            valid[f] = ~np.isnan(values[f])
    return day_figures.DayPoints(day_ns, [keys[i] for i in order], rank[np.concatenate(series)],
                                 np.concatenate(times), values, valid)


def _daily_points(name: str, spec: Measurement, points: day_figures.DayPoints,
                  figures: dict[str, day_figures.FieldDay]) -> list[Point]:
    """The ``m_1d`` points of one day (see the module doc), one per series with data."""
    values: list[dict] = [{} for _ in points.keys]
    for f, fd in figures.items():
        parts = ("n", "sum", "min", "max", "first", "fts", "last", "lts", "hn", "hsum", "hmax", "hmaxts")
        names = [f"{f}_{p}" for p in parts]
        columns = [getattr(fd, p).tolist() for p in parts]  # int64 -> int, float64 -> float
        counter = spec.fields[f].counter
        for rank, *row in zip(fd.series.tolist(), *columns):
            v = values[rank]
            v.update(zip(names, row))
            if counter:
                span = bucket_span(row[4], row[6], row[3])  # first, last, max
                v[f"{f}_inc"], v[f"{f}_rst"] = float(span.increase), span.resets
    return [Point(name, dict(key), v, points.day_ns) for key, v in zip(points.keys, values) if v]


def _group_points(spec: Measurement, points: day_figures.DayPoints,
                  grouped: dict[str, day_figures.FieldDay]) -> list[Point]:
    """The ``m_1d_by`` and ``m_1h_by`` points of one day (see the module doc): per tag of the
    measurement (and ``*``, all series), its values' groups of series."""
    daily: dict[tuple[str, str], dict] = {}
    hourly: dict[tuple[str, str, int], dict] = {}
    day_ns = points.day_ns
    for by in (*spec.tags, ALL_SERIES):
        values = [dict(key).get(by, "") for key in points.keys] if by != ALL_SERIES else [""] * len(points.keys)
        names = sorted(set(values))
        number = {v: i for i, v in enumerate(names)}
        group_of = np.array([number[v] for v in values], dtype=np.int64)
        for f, fd in grouped.items():
            hours = day_figures.group_hours(fd, group_of, len(names))
            gd = day_figures.group_day(hours, day_ns)
            parts = ("n", "sum", "max", "maxts", "sn", "top", "topts")
            keys = [f"{f}_{p}" for p in parts]
            for g, *row in zip(gd.groups.tolist(), *(getattr(gd, p).tolist() for p in parts)):
                daily.setdefault((by, names[g]), {}).update(zip(keys, row))
            if by in GROUP_ROLLUP_TAGS:
                for g, h in zip(*np.nonzero(hours.count)):
                    hourly.setdefault((by, names[g], day_ns + int(h) * HOUR_NS), {}).update(
                        {f"{f}_sum": float(hours.sum[g, h]), f"{f}_sn": int(hours.count[g, h]),
                         f"{f}_top": float(hours.top[g, h])})
    return ([Point(group_rollup_name(spec.name), _group_tags(by, v), fv, day_ns) for (by, v), fv in daily.items()]
            + [Point(hourly_group_rollup_name(spec.name), _group_tags(by, v), fv, t)
               for (by, v, t), fv in hourly.items()])


class _Junctions:
    """Each rolled day's counter junctions (``f_jinc``, ``f_jrst``: from the series' previous
    day with a value to this day's first), days fed in time order: the first from the last day
    rolled before *start_ns*, the rest from the days fed before it."""

    def __init__(self, client: InfluxClient, spec: Measurement, counters: list[str], start_ns: int):
        self.name = rollup_name(spec.name)
        self.previous: dict[str, dict[tuple, float]] = {}
        if counters:
            src = source(client, self.name)
            answers = client.execute(";".join(f"SELECT LAST({quote_ident(f + '_last')}) AS v FROM {src} "
                                             f"WHERE time < {start_ns} GROUP BY *" for f in counters))
            self.previous = {f: {series_key(s.get("tags")): s["values"][0][1] for s in result.get("series", [])
                                 if s.get("values")} for f, result in zip(counters, answers)}

    def points(self, day_ns: int, ends: dict[str, dict[tuple, tuple[float, float]]]) -> list[Point]:
        """The junction points of day *day_ns* (*ends*: per counter, each series' first and last
        value that day, from roll_day)."""
        values: dict[tuple, dict] = {}
        for f, before in self.previous.items():
            for key, (first, last) in sorted(ends.get(f, {}).items()):
                step, reset = junction(before[key], first) if key in before else (0.0, 0)
                values.setdefault(key, {}).update({f"{f}_jinc": float(step), f"{f}_jrst": reset})
                before[key] = last
        # A series key is its tags (those with a value), sorted: the point's tags again.
        return [Point(self.name, dict(key), fields, day_ns) for key, fields in values.items()]


def write_rollups(client: InfluxClient, points: list[Point]) -> None:
    """Write rollup points into the rollups' policy, in requests of about FIELDS_PER_WRITE
    field values."""
    batch: list[Point] = []
    size = 0
    for p in points:
        batch.append(p)
        size += len(p.fields)
        if size >= FIELDS_PER_WRITE:
            client.write(batch, retention_policy=client.rollup_policy)
            batch, size = [], 0
    if batch:
        client.write(batch, retention_policy=client.rollup_policy)


def _group_tags(by: str, value: str) -> dict[str, str]:
    """The tags of a group row: ``by``, and the grouping tag's value where it has one."""
    return {"by": by, by: value} if by != ALL_SERIES and value else {"by": by}


class DailyRollups:
    """The rollups' upkeep (maintain() above) on the InfluxDB a client reaches."""

    def __init__(self, client: InfluxClient, reroll_days: int):
        self.client, self.reroll_days = client, reroll_days

    def maintain(self, now_ns: int | None, written: dict[str, int]) -> dict[str, Rolled]:
        return maintain(self.client, now_ns, self.reroll_days, written)
