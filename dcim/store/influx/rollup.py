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

- ``m_1mo``: a month's figures, stamped at the month's start;
- ``m_mtd``: the same month-to-date at the end of each UTC day (every series that had data
  earlier in the month, data that day or not), stamped at the day's start: where maintain()
  resumes, from the day before the first day it rolls.

They are packed: one point per rack (tag ``part``: the series' ``rack``, or "" for a
measurement without racks; ``rack#2``... past PACK_SERIES series) and tag ``tz`` (the zone),
whose string field ``series`` holds its series as JSON, ``{"tags": [tag, ...], "columns":
[figure, ...], "rows": [[[tag value or null, ...], [figure or null, ...]], ...]}``, series in
key order. Why: InfluxDB 1.6 pays about 75 µs per series and field it aggregates, whatever
the rows, and about 10 µs per series and field a plain SELECT reads (4,096 GPUs' quarter, 12
figures: 0.7 s); one string field per rack costs it 1,000 reads at 32,000 GPUs, not 384,000.
Names once per pack, not per series: a quarter of 32,000 GPUs' packs with a name per figure
were ~100 MB of JSON to read and parse (5 s).

Measurement ``dcim_rollup`` (tag ``measurement``) records per measurement the days rolled:
``from_ns`` (first day) and ``to_ns`` (end of the last day), both int ns,
``by_hour_from_ns``, the first day rolled with its ``m_1h_by`` rows (days rolled by an earlier
version have none), ``mo_zone`` (string: the zone of the month rows) and ``mo_from_ns`` (int:
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
figures are added to the months in progress (``m_mtd``; ``m_1mo`` where a month ends).

**Reads** (``dcim.store.influx.rollup_reads``). ``query()`` with ``every_s`` a multiple of a
day and ``bucket_stats()`` with hourly buckets (every group one series, or ``combine="each"``)
read rolled whole days from ``m_1d``; ``bucket_stats()`` of summed power per tag (or of all
series) from ``m_1d_by``; ``counter_days()`` and ``counter_increase()`` from one read of the
rolled days; raw points for the partial days at the range's edges and the days not rolled
yet. Why not let InfluxDB sum a group's hours at read time: on 1.6, the hourly sums of a
quarter per rack over 2,000 PDUs' daily rows (24 hour columns, GROUP BY time(1d), rack) took
41 s, and a subquery per hour of the day 0.8-2.2 s each. A range of whole local months
(``rolled_months``, ``months_held``) is read first from the month packs: ``counter_increase()``
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

import json
import logging
import time
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from dcim.store.base import GROUP_ROLLUP_TAGS, StoreError, has_group_rollups, matches
from dcim.store.counters import bucket_span, junction
from dcim.store.influx.influxql import quote_ident, where_clause
from dcim.metrics import MEASUREMENTS, Measurement, Point
from dcim.store import day_figures, month_figures

if TYPE_CHECKING:
    from dcim.store.influx.client import InfluxClient

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
DAY_NS = 86_400 * NS_PER_S
GRACE_NS = 600 * NS_PER_S  # a day is closed 10 min after its end: points in flight have landed
SUFFIX = "_1d"
GROUP_SUFFIX = "_1d_by"
HOURLY_GROUP_SUFFIX = "_1h_by"
MONTH_SUFFIX = "_1mo"
MTD_SUFFIX = "_mtd"
ZONE_TAG = "tz"  # the zone whose calendar a month pack follows
PART_TAG = "part"  # a month pack's rack (and piece)
PACK_FIELD = "series"  # a month pack's series and their figures, as JSON
PACK_SERIES = 32  # series per month pack at most: ~30 KB of JSON for GPUs, under InfluxDB's 64 KB per string
ALL_SERIES = "*"  # the by tag of the group of every series
STATE = "dcim_rollup"
RETENTION_POLICY = "dcim_rollups"
SHARD_DURATION = "52w"
STATE_TTL_S = 600.0  # a reader re-reads which days are rolled at most this often
HOURS_PER_DAY = 24
# Raw points per request while reading a day to roll: bounds the JSON one answer carries (a
# day of 32,000 GPUs sampled hourly is 768,000 points: 6 hours per request).
POINTS_PER_REQUEST = 200_000
# Field values per write of rollup points: a day of 32,000 GPUs' daily rows (40 fields each) in
# requests of the store's 10,000 points timed out on a loaded 1.6 server (HTTP 500 "timeout":
# its 10 s write timeout), and the store gave up after its retries.
FIELDS_PER_WRITE = 100_000


def rollup_name(measurement: str) -> str:
    return measurement + SUFFIX


def group_rollup_name(measurement: str) -> str:
    return measurement + GROUP_SUFFIX


def hourly_group_rollup_name(measurement: str) -> str:
    return measurement + HOURLY_GROUP_SUFFIX


def month_rollup_name(measurement: str) -> str:
    return measurement + MONTH_SUFFIX


def mtd_rollup_name(measurement: str) -> str:
    return measurement + MTD_SUFFIX


def numeric_fields(spec: Measurement) -> list[str]:
    """The fields of *spec* that get rollups: int and float (bool and str have no sum or mean)."""
    return [f.name for f in spec.fields.values() if f.kind in (int, float)]


def floor_ns(ts: int, step: int) -> int:
    return ts - ts % step


def ceil_ns(ts: int, step: int) -> int:
    return -floor_ns(-ts, step)


def series_key(tags: dict | None) -> tuple:
    """A series' identity from an answer's tags: InfluxDB reports a tag the series lacks as ""."""
    return tuple(sorted((k, v) for k, v in (tags or {}).items() if v != ""))


def _cast(kind: type, value):
    """JSON numbers back to the field's type (InfluxDB writes 300.0 as ``300``)."""
    if value is None:
        return None
    return int(value) if kind is int else float(value)


def rows_of(series: dict) -> tuple[dict[str, int], list[list]]:
    return {c: i for i, c in enumerate(series["columns"])}, series.get("values") or []


# --- where the rollups live -----------------------------------------------------------------

def find_policy(client: "InfluxClient", create: bool) -> str | None:
    """RETENTION_POLICY if the database has it (created here when *create* and the server is
    1.x or unknown), else None: the database's default policy."""
    try:
        answer = client.execute(f"SHOW RETENTION POLICIES ON {quote_ident(client.database)}")
        names = {row[0] for s in answer[0].get("series", []) for row in s.get("values") or []}
    except StoreError as exc:  # 3.x has no such statement: the default policy it is
        log.debug("InfluxDB %s: no retention policies to list (%s)", client.url, exc)
        return None
    if RETENTION_POLICY in names:
        return RETENTION_POLICY
    if not create or client.flavour not in (1, None):
        return None
    try:
        client.execute(f"CREATE RETENTION POLICY {quote_ident(RETENTION_POLICY)} ON {quote_ident(client.database)} "
                      f"DURATION INF REPLICATION 1 SHARD DURATION {SHARD_DURATION}")
    except StoreError as exc:  # warned once per client, not at every maintain()
        (log.debug if client.rollup_policy_warned else log.warning)(
            "InfluxDB %s: cannot create retention policy %r for the rollups (%s); they go to the default "
            "policy, whose short shards make reports slower", client.url, RETENTION_POLICY, exc)
        client.rollup_policy_warned = True
        return None
    return RETENTION_POLICY


def source(client: "InfluxClient", name: str) -> str:
    """*name* (a rollup measurement or STATE) as a FROM clause, in the rollups' policy."""
    policy = client.rollup_policy
    if policy is None:
        return quote_ident(name)
    return f"{quote_ident(client.database)}.{quote_ident(policy)}.{quote_ident(name)}"


# --- which days are rolled -----------------------------------------------------------------

class Rolled(NamedTuple):
    """The days [from_ns, to_ns) a measurement's rollups hold, the first of them with hourly
    group rows (None: none has them), and the zone of the month rows with the start of the
    first month they hold whole (None: no month rows)."""
    from_ns: int
    to_ns: int
    by_hour_from_ns: int | None = None
    mo_zone: str | None = None
    mo_from_ns: int | None = None


def read_state(client: "InfluxClient") -> dict[str, Rolled]:
    """{measurement: Rolled}: the days its rollups hold."""
    # One statement per field: LAST() of several fields reports the newest row of each, and the
    # fields added later (by_hour_from_ns, mo_*) are absent from older rows.
    q = ";".join(f'SELECT LAST({quote_ident(f)}) AS v FROM {source(client, STATE)} GROUP BY "measurement"'
                 for f in Rolled._fields)
    found: dict[str, dict[str, int | str]] = {}
    for f, result in zip(Rolled._fields, client.execute(q)):
        for series in result.get("series", []):
            for row in series.get("values") or []:
                if row[1] is not None:
                    value = row[1] if f == "mo_zone" else int(row[1])
                    found.setdefault((series.get("tags") or {}).get("measurement", ""), {})[f] = value
    return {m: Rolled(**v) for m, v in found.items() if "from_ns" in v and "to_ns" in v}


def rolled_days(state: dict[str, Rolled], measurement: str, start_ns: int,
                end_ns: int) -> tuple[int, int] | None:
    """The whole UTC days [a, b) inside [start_ns, end_ns) that the rollups hold, or None."""
    span = state.get(measurement)
    if span is None:
        return None
    a = max(ceil_ns(start_ns, DAY_NS), span[0])
    b = min(floor_ns(end_ns, DAY_NS), span[1])
    return (a, b) if a < b else None


def rolled_months(rolled: Rolled | None, zone: str, start_ns: int, end_ns: int) -> bool:
    """True where [start_ns, end_ns) is whole local months of *zone* (one or more) that the
    month rows can hold: rows for this zone, the UTC day holding the last month's end rolled,
    and every month starting on a whole UTC hour. (Whether they hold the first months too, see
    months_held.)"""
    if rolled is None or rolled.mo_zone != zone or rolled.mo_from_ns is None:
        return False
    starts = month_figures.month_starts(zone, start_ns, end_ns)
    return (len(starts) >= 2 and starts[0] == start_ns and starts[-1] == end_ns
            and floor_ns(end_ns, DAY_NS) + DAY_NS <= rolled.to_ns and all(t % HOUR_NS == 0 for t in starts))


def months_held(rolled: Rolled, start_ns: int) -> bool | None:
    """For a read of months from *start_ns* (see rolled_months): True if the month rows hold
    them all; None if they do only where no raw point lies in [start_ns, from_ns) (before the
    first rolled day, which reads raw elsewhere: a backfill may have written there; the first
    run's months hold all the rollups saw from their month's start); False if not."""
    if start_ns >= rolled.from_ns:
        return start_ns >= rolled.mo_from_ns
    return None if rolled.mo_from_ns <= rolled.from_ns else False


# --- maintain ------------------------------------------------------------------------------

def maintain(client: "InfluxClient", now_ns: int | None, reroll_days: int,
             written: dict[str, int] | None = None) -> dict[str, tuple[int, int]]:
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


def _roll_measurement(client: "InfluxClient", spec: Measurement, fields: list[str], state: dict[str, Rolled],
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
    if months is not None:
        mo = (months.zone, months.from_ns)
    else:
        mo = (old.mo_zone, old.mo_from_ns) if old is not None else (None, None)
    rolled = Rolled(first, to, by_hour, *mo)
    # Written last: a run cut short leaves the state as it was, and those days read raw.
    client.write([Point(STATE, {"measurement": spec.name},
                       {k: v for k, v in rolled._asdict().items() if v is not None}, to - DAY_NS)],
                retention_policy=client.rollup_policy)
    state[spec.name] = rolled
    return f"{spec.name} {(end - start) // DAY_NS} d ({series} series-days)"


def _field_keys(client: "InfluxClient") -> dict[str, set[str]]:
    """{measurement: its field keys} as the server knows them (one request for all)."""
    out: dict[str, set[str]] = {}
    for series in client.execute("SHOW FIELD KEYS")[0].get("series", []):
        out[series["name"]] = {row[0] for row in series.get("values") or []}
    return out


def _tag_keys(client: "InfluxClient", measurement: str) -> list[str]:
    """The tag keys *measurement*'s series carry, as the server knows them: a series is its values of them."""
    answer = client.execute(f"SHOW TAG KEYS FROM {quote_ident(measurement)}")
    return sorted(row[0] for s in answer[0].get("series", []) for row in s.get("values") or [])


def _first_time(client: "InfluxClient", measurement: str, fields: Sequence[str]) -> int | None:
    """Time of the oldest raw point of *measurement* (any of *fields*), or None if none. One
    lone FIRST() per field: only a lone selector reports its point's time."""
    src = quote_ident(measurement)
    q = ";".join(f"SELECT FIRST({quote_ident(f)}) FROM {src}" for f in fields)
    times = [row[0] for result in client.execute(q) for s in result.get("series", []) for row in s["values"]]
    return min(times) if times else None


def roll_day(client: "InfluxClient", spec: Measurement, fields: Sequence[str], tags: Sequence[str],
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


def _read_day(client: "InfluxClient", spec: Measurement, fields: Sequence[str], tags: Sequence[str],
              day_ns: int) -> day_figures.DayPoints | None:
    """A day's raw points of *fields*, with their series' *tags*, as arrays; None if it has
    none. One plain SELECT per slice of hours, sized to about POINTS_PER_REQUEST points from
    the points per hour seen so far."""
    kinds = [spec.fields[f].kind for f in fields]
    select = ", ".join([quote_ident(f) for f in fields] + [quote_ident(t) for t in tags])
    index: dict[tuple, int] = {}  # a row's tag values -> series number
    times, series, columns = [], [], [[] for _ in fields]
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

    def __init__(self, client: "InfluxClient", spec: Measurement, counters: list[str], start_ns: int):
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


def write_rollups(client: "InfluxClient", points: list[Point]) -> None:
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
