"""Reads served from InfluxStore's daily rollups (their layout and upkeep:
``dcim.store.influx.rollup``): ``query`` of whole days, ``counter_days``, ``counter_increase``
and hourly ``bucket_stats``, each over the rolled days [a, b) it is given, with raw points for
the rest of the range. InfluxStore calls these after checking which days are rolled.

Times are UTC nanoseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import dcim.store.month_figures as month_figures
import dcim.store.partials as partials
from dcim.metrics import Measurement
from dcim.store.base import (
    GROUP_ROLLUP_TAGS,
    BucketStats,
    Combine,
    CounterDays,
    Series,
    Store,
    Where,
    add_bucket_stats,
    has_group_rollups,
    stats_of_buckets,
)
from dcim.store.counters import CounterSpan
from dcim.store.influx.counter_reads import counter_days, counter_increase
from dcim.store.influx.influxql import (
    column_cast,
    quote_ident,
    quote_string,
    where_clause,
)
from dcim.store.influx.layout import (
    ALL_SERIES,
    HOUR_NS,
    NS_PER_S,
    Rolled,
    ceil_ns,
    floor_ns,
    group_rollup_name,
    hourly_group_rollup_name,
    month_rollup_name,
    rollup_name,
    rows_of,
    series_key,
    source,
)
from dcim.store.influx.months import month_columns, read_month_rows

if TYPE_CHECKING:
    from dcim.store.influx.client import InfluxClient


# --- query() from the rollups --------------------------------------------------------------

class _Partials:
    """group -> field -> bucket -> partial: the value so far, or [sum, n] for mean. Pieces are
    added in time order (raw head, rolled days, raw tail), which is what first and last need."""

    def __init__(self, agg: str, group_by: Sequence[str]):
        self.agg, self.group_by = agg, list(group_by)
        self.by_group: dict[tuple, dict[str, dict[int, Any]]] = {}  # a partial: a value, or [sum, n]

    def key(self, tags: dict | None) -> tuple:
        return tuple((tags or {}).get(t, "") for t in self.group_by)

    def add(self, key: tuple, f: str, pairs) -> None:
        """Merge one piece's (bucket, partial) pairs, in time order, values not None."""
        cur = self.by_group.setdefault(key, {}).setdefault(f, {})
        if not cur:
            cur.update(pairs)
            return
        agg = self.agg
        for bucket, v in pairs:
            old = cur.get(bucket)
            if old is None:
                cur[bucket] = v
            elif agg == "mean":
                cur[bucket] = [partials.merge("sum", old[0], v[0]), old[1] + v[1]]
            else:
                cur[bucket] = partials.merge(agg, old, v)

    def series(self, m: str, fields: list[str]) -> list[Series]:
        out = []
        casts = {f: column_cast(m, f, self.agg) for f in fields}  # JSON numbers to the contract's types
        for key in sorted(self.by_group):
            per_field = self.by_group[key]
            buckets = sorted(set().union(*per_field.values()))
            if not buckets:
                continue
            s = Series(tags=dict(zip(self.group_by, key)), times_ns=buckets)
            for f in fields:
                got = per_field.get(f, {})
                col = [got.get(t) for t in buckets]
                if self.agg == "mean":
                    col = [None if v is None else v[0] / v[1] for v in col]
                s.values[f] = casts[f](col)
            out.append(s)
        return out


def query(client: InfluxClient, spec: Measurement, fields: list[str], start_ns: int, end_ns: int, every_ns: int,
          agg: str, group_by: Sequence[str], where: Where | None, days: tuple[int, int]) -> list[Series]:
    """``Store.query`` for buckets of whole days: *days* [a, b) from the rollups, the rest of
    [start_ns, end_ns) from raw points, merged per group and bucket. *fields* are numeric."""
    a, b = days
    acc = _Partials(agg, group_by)
    _raw_partials(client, acc, spec.name, fields, start_ns, a, every_ns, where)
    src = source(client, rollup_name(spec.name))
    if agg in ("first", "last"):
        _rolled_first_last(client, acc, src, fields, a, b, every_ns, where)
    else:
        _rolled_aggregates(client, acc, src, fields, a, b, every_ns, where)
    _raw_partials(client, acc, spec.name, fields, b, end_ns, every_ns, where)
    return acc.series(spec.name, fields)


def _raw_partials(client: InfluxClient, acc: _Partials, m: str, fields: list[str], s: int, e: int, every_ns: int,
                  where: Where | None) -> None:
    """The raw points' partials of [s, e) into *acc*."""
    if s >= e:
        return
    agg, group_by, every_s = acc.agg, acc.group_by, every_ns / NS_PER_S
    if agg != "mean":
        for ser in client.query_raw(m, fields, s, e, every_s=every_s, agg=agg, group_by=group_by, where=where):
            for f in fields:
                acc.add(acc.key(ser.tags), f, [(t, v) for t, v in zip(ser.times_ns, ser.values[f]) if v is not None])
        return
    # Partial sums and counts, to merge with the days' own (a bucket may hold both).
    counts = {acc.key(c.tags): c for c in
              client.query_raw(m, fields, s, e, every_s=every_s, agg="count", group_by=group_by, where=where)}
    for ser in client.query_raw(m, fields, s, e, every_s=every_s, agg="sum", group_by=group_by, where=where):
        key = acc.key(ser.tags)
        c = counts.get(key)
        if c is None:
            continue
        for f in fields:
            # by time: a point landing between the two reads must not shift the pairs
            n_at = dict(zip(c.times_ns, c.values[f]))
            acc.add(key, f, [(t, [v, n_at[t]]) for t, v in zip(ser.times_ns, ser.values[f])
                             if v is not None and n_at.get(t)])


def _rolled_first_last(client: InfluxClient, acc: _Partials, src: str, fields: list[str], a: int, b: int,
                       every_ns: int, where: Where | None) -> None:
    """The group's first (last) value is that of the smallest fts (largest lts) among its
    series' days; on equal times the larger value, as InfluxDB's FIRST() and LAST()."""
    agg = acc.agg
    ts = agg[0] + "ts"
    by = ", ".join(quote_ident(t) for t in acc.group_by)
    cols = ", ".join(f"{quote_ident(f + '_' + agg)}, {quote_ident(f + '_' + ts)}" for f in fields)
    stmt = lambda lo, hi: (f"SELECT {cols} FROM {src} WHERE {where_clause(lo, hi, where)}"  # noqa: E731
                           + (f" GROUP BY {by}" if by else ""))
    later = agg == "last"
    for answer in client.execute_slices(stmt, a, b, every_ns / NS_PER_S):  # slices cut at bucket edges
        for series in answer:
            index, rows = rows_of(series)
            for f in fields:
                iv, it = index[f + "_" + agg], index[f + "_" + ts]
                best: dict[int, tuple] = {}
                for row in rows:
                    v, t = row[iv], row[it]
                    if v is None:
                        continue
                    bucket = row[0] - row[0] % every_ns
                    old = best.get(bucket)
                    if old is None or ((t > old[0]) if later else (t < old[0])) or (t == old[0] and v > old[1]):
                        best[bucket] = (t, v)
                acc.add(acc.key(series.get("tags")), f, [(bucket, tv[1]) for bucket, tv in best.items()])


def _rolled_aggregates(client: InfluxClient, acc: _Partials, src: str, fields: list[str], a: int, b: int,
                       every_ns: int, where: Where | None) -> None:
    """Sums, counts, min, max and a mean's (sum, n) of the rolled days, per bucket, into *acc*."""
    agg = acc.agg
    by = ", ".join(quote_ident(t) for t in acc.group_by)
    if agg == "mean":
        sel = ", ".join(f"SUM({quote_ident(f + '_sum')}) AS {quote_ident(f + '_s')}, "
                        f"SUM({quote_ident(f + '_n')}) AS {quote_ident(f + '_c')}" for f in fields)
    else:
        func, part = {"sum": ("SUM", "sum"), "count": ("SUM", "n"), "min": ("MIN", "min"),
                      "max": ("MAX", "max")}[agg]
        sel = ", ".join(f"{func}({quote_ident(f + '_' + part)}) AS {quote_ident(f)}" for f in fields)
    tail = f" GROUP BY time({every_ns}ns)" + (f", {by}" if by else "") + " fill(none)"
    stmt = lambda lo, hi: f"SELECT {sel} FROM {src} WHERE {where_clause(lo, hi, where)}{tail}"  # noqa: E731
    for answer in client.execute_slices(stmt, a, b, every_ns / NS_PER_S):
        for series in answer:
            key = acc.key(series.get("tags"))
            index, rows = rows_of(series)
            for f in fields:
                if agg == "mean":
                    i_s, i_c = index[f + "_s"], index[f + "_c"]
                    acc.add(key, f, [(r[0], [r[i_s], r[i_c]]) for r in rows if r[i_c]])
                else:
                    i = index[f]
                    acc.add(key, f, [(r[0], r[i]) for r in rows if r[i] is not None])


# --- counter_increase(), bucket_stats() and period_figures() of whole months -----------------

def month_period_figures(client: InfluxClient, spec: Measurement, start_ns: int, end_ns: int, group_by: Sequence[str],
                         where: Where | None, counters: Sequence[str] = (), hourly: Sequence[str] = (),
                         combine: str = "sum"
                         ) -> tuple[dict[str, dict[tuple, tuple[float, int]]], dict[str, dict[tuple, BucketStats]]
                                    ] | None:
    """``Store.period_figures`` over whole local months (``influx_rollup.rolled_months``) from one
    read of the month rows: per series, its months chained (counters: ``dcim.store.counters``)
    or added up (hourly fields: ``BucketStats``), then per group. None where a group holds
    several series, but for hourly fields with ``combine="each"`` (the caller falls back)."""
    cols = {f: month_columns([], [f]) for f in counters} | {f: month_columns([f], []) for f in hourly}
    per_series: dict[tuple, list[tuple[int, dict]]] = {}
    rows = read_month_rows(client, month_rollup_name(spec.name), client.timezone, start_ns, end_ns,
                           [c for f in cols for c in cols[f]], where)
    for t, key, v in rows:
        per_series.setdefault(key, []).append((t, v))
    series: list[tuple[str, tuple, list[CounterSpan] | list[BucketStats]]] = []
    for key in sorted(per_series):
        months = [v for _, v in sorted(per_series[key], key=lambda tv: tv[0])]
        tags = dict(key)
        group = tuple(tags.get(t, "") for t in group_by)
        for f in counters:
            first, last, inc, rst = cols[f]
            cast = int if spec.fields[f].kind is int else float
            spans = [CounterSpan(cast(v[first]), cast(v[last]), float(v[inc]), int(v[rst]))
                     for v in months if v[first] is not None]
            if spans:
                series.append((f, group, spans))
        for f in hourly:
            hn, hsum, hmax, hmaxts = cols[f]
            stats = [BucketStats(int(v[hn]), float(v[hsum]), float(v[hmax]), int(v[hmaxts])) for v in months if v[hn]]
            if stats:
                series.append((f, group, stats))
    return month_figures.per_group(series, counters, hourly, combine)


# --- bucket_stats() from the rollups -------------------------------------------------------

def bucket_stats(client: InfluxClient, spec: Measurement, field: str, start_ns: int, end_ns: int,
                 group_by: Sequence[str], where: Where | None, combine: str,
                 days: tuple[int, int]) -> dict[tuple, BucketStats] | None:
    """``Store.bucket_stats`` of hourly buckets: *days* [a, b) from the daily rows' hourly
    summaries, the edge hours from raw points' hourly means; each series summarised alone (one
    row per series comes back, never its days), then per group. None where a group holds
    several series (but for ``combine="each"``): the caller falls back (InfluxStore.bucket_stats
    tries the group rows, ``grouped_bucket_stats``, first)."""
    a, b = days
    m = spec.name
    cond = where_clause(a, b, where)
    src = source(client, rollup_name(m))
    col = {p: quote_ident(f"{field}_{p}") for p in ("hn", "hsum", "hmax", "hmaxts")}
    # Rolled days, two statements (InfluxQL mixes no aggregate with a selector's companion
    # field). MAX() with a companion field reports the row holding the largest value, on a tie
    # the earliest: the earliest day, so the earliest hour (a day's hours follow the days before).
    statements = [f"SELECT SUM({col['hn']}) AS n, SUM({col['hsum']}) AS total FROM {src} WHERE {cond} GROUP BY *",
                  f"SELECT MAX({col['hmax']}) AS peak, {col['hmaxts']} AS pts FROM {src} WHERE {cond} GROUP BY *"]
    sums, peaks = client.execute_many(statements)
    per_series: dict[tuple, list[BucketStats]] = {}
    tags_of: dict[tuple, dict] = {}
    peak_of = {}
    for series in peaks:
        index, rows = rows_of(series)
        if rows and rows[0][index["peak"]] is not None:
            peak_of[series_key(series.get("tags"))] = (float(rows[0][index["peak"]]), int(rows[0][index["pts"]]))
    for series in sums:
        index, rows = rows_of(series)
        if not rows or not rows[0][index["n"]]:
            continue
        key = series_key(series.get("tags"))
        tags_of.setdefault(key, series.get("tags") or {})
        peak, pts = peak_of.get(key, (None, None))
        per_series.setdefault(key, []).append(BucketStats(int(rows[0][index["n"]]), float(rows[0][index["total"]]),
                                                          peak, pts))
    if combine != "each":  # before reading the edges, which cannot make a group one series again
        owner: dict[tuple, tuple] = {}
        if any(owner.setdefault(tuple(tags_of[k].get(t, "") for t in group_by), k) != k for k in per_series):
            return None
    # Edge hours: each series' hourly means, in slices read in parallel.
    edges = [f"SELECT MEAN({quote_ident(field)}) AS v FROM {quote_ident(m)} WHERE "
             f"{where_clause(lo, hi, where)} GROUP BY time(1h), * fill(none)"
             for lo, hi in client.slices(start_ns, a, 3600) + client.slices(b, end_ns, 3600) if lo < hi]
    for answer in client.execute_many(edges) if edges else []:
        for series in answer:
            total, peak, peak_ns, n = 0.0, None, None, 0
            for t, v in series.get("values") or []:  # in time order: a strict > keeps the earliest
                if v is None:
                    continue
                n += 1
                total += v
                if peak is None or v > peak:
                    peak, peak_ns = float(v), int(t)
            if n:
                key = series_key(series.get("tags"))
                tags_of.setdefault(key, series.get("tags") or {})
                per_series.setdefault(key, []).append(BucketStats(n, total, peak, peak_ns))

    groups: dict[tuple, list[BucketStats]] = {}
    for key in sorted(per_series):
        parts = per_series[key]
        g = tuple(tags_of[key].get(t, "") for t in group_by)
        groups.setdefault(g, []).append(parts[0] if len(parts) == 1 else add_bucket_stats(parts))
    if combine != "each" and any(len(stats) > 1 for stats in groups.values()):
        return None  # a series only the edges hold joined a group
    return {g: stats[0] if len(stats) == 1 else add_bucket_stats(stats) for g, stats in groups.items()}


def grouped_bucket_stats(client: InfluxClient, spec: Measurement, field: str, start_ns: int, end_ns: int,
                         group_by: Sequence[str], where: Where | None, combine: Combine,
                         days: tuple[int, int], rolled: Rolled) -> dict[tuple, BucketStats] | None:
    """``Store.bucket_stats`` of hourly buckets for groups of several series, summed (a rack's
    PDUs) or each (a rack's GPU-hours), from the rolled days' group rows (``m_1d_by``): two
    statements, a row per group each, whatever the number of series and days. Edge hours come
    from the hourly group rows (``m_1h_by``) where the tag has them and *rolled* says their day
    does, else as ``Store.bucket_stats`` reads them.

    None (the caller falls back to the default) unless the field has group rollups, *combine*
    is sum or each, *group_by* is one tag or none, and *where* leaves the groups whole: it may
    pick groups by the grouping tag itself, and name other tags only to accept every value
    they have (the report's list of the configured PDUs)."""
    if combine not in ("sum", "each") or not has_group_rollups(spec, field) or len(group_by) > 1:
        return None
    by = group_by[0] if group_by else ALL_SERIES
    keep = None  # the groups where picks, None: all
    racks = None  # no grouping, a where picking racks: their hourly sums added up (a tenant's PDUs)
    src = source(client, rollup_name(spec.name))
    for tag, want in (where or {}).items():
        accepted = {want} if isinstance(want, str) else set(want)
        if tag == by:
            keep = accepted
            continue
        if not group_by and combine == "sum" and tag in GROUP_ROLLUP_TAGS:
            racks = (tag, sorted(accepted))
            continue
        answer = client.execute(f"SHOW TAG VALUES FROM {src} WITH KEY = {quote_ident(tag)}")
        if not accepted.issuperset(row[1] for s in answer[0].get("series", []) for row in s.get("values") or []):
            return None  # a filter inside the groups: they are not whole
    if racks is not None:
        return _summed_racks(client, spec, field, start_ns, end_ns, *racks, rolled)
    a, b = days
    gsrc = source(client, group_rollup_name(spec.name))
    cond = f"{quote_ident('by')} = {quote_string(by)} AND time >= {a} AND time < {b}"
    group = f" GROUP BY {quote_ident(by)}" if group_by else ""
    # sum: a bucket is an hour of the group (its series' means added); each: an hour of a series.
    parts_of = ("n", "sum", "max", "maxts") if combine == "sum" else ("sn", "sum", "top", "topts")
    col = dict(zip(("n", "sum", "max", "maxts"), (quote_ident(f"{field}_{p}") for p in parts_of)))
    # As in bucket_stats: MAX() with a companion field reports the earliest row of the largest.
    sums, peaks = client.execute_many([
        f"SELECT SUM({col['n']}) AS n, SUM({col['sum']}) AS total FROM {gsrc} WHERE {cond}{group}",
        f"SELECT MAX({col['max']}) AS peak, {col['maxts']} AS pts FROM {gsrc} WHERE {cond}{group}"])

    def group_of(series: dict) -> tuple:
        return tuple((series.get("tags") or {}).get(t, "") for t in group_by)

    peak_of = {}
    for series in peaks:
        index, rows = rows_of(series)
        if rows and rows[0][index["peak"]] is not None:
            peak_of[group_of(series)] = (float(rows[0][index["peak"]]), int(rows[0][index["pts"]]))
    parts: dict[tuple, list[BucketStats]] = {}
    for series in sums:
        index, rows = rows_of(series)
        if rows and rows[0][index["n"]]:
            g = group_of(series)
            n, total = int(rows[0][index["n"]]), float(rows[0][index["total"]])
            parts[g] = [BucketStats(n, total, *peak_of.get(g, (None, None)))]
    hourly_from = rolled.by_hour_from_ns if by in GROUP_ROLLUP_TAGS else None
    pieces = []  # (start, end, from the hourly group rows?)
    for lo, hi in ((start_ns, a), (b, end_ns)):  # the edges: hours no whole rolled day holds
        if hourly_from is not None:
            s, e = ceil_ns(max(lo, hourly_from), HOUR_NS), floor_ns(min(hi, rolled.to_ns), HOUR_NS)  # whole hours
            if s < e:
                pieces += [(lo, s, False), (s, e, True), (e, hi, False)]
                continue
        pieces.append((lo, hi, False))
    for lo, hi, hourly in pieces:
        if lo >= hi:
            continue
        edge = (_hourly_group_stats(client, spec, field, lo, hi, by, combine) if hourly else
                # The default's reads of the store's own query(): the client is the store.
                Store.bucket_stats(cast(Store, client), spec.name, field, lo, hi, 3600, group_by=group_by,
                                   where=where, combine=combine))
        for g, st in edge.items():
            parts.setdefault(g, []).append(st)
    return {g: add_bucket_stats(p) for g, p in sorted(parts.items()) if keep is None or g[0] in keep}


def _summed_racks(client: InfluxClient, spec: Measurement, field: str, start_ns: int, end_ns: int, tag: str,
                  values: list[str], rolled: Rolled) -> dict[tuple, BucketStats] | None:
    """One group made of the whole racks (*tag* = *values*): its hourly sums are the racks'
    hourly group rows added up, hour by hour, by InfluxDB (a row per hour comes back). None
    unless every hour of [start_ns, end_ns) has those rows (hour bounds, rolled)."""
    if (rolled.by_hour_from_ns is None or start_ns % HOUR_NS or end_ns % HOUR_NS
            or start_ns < rolled.by_hour_from_ns or end_ns > rolled.to_ns):
        return None
    cond = where_clause(start_ns, end_ns, {"by": tag, tag: values})
    if cond is None:
        return {}
    q = (f"SELECT SUM({quote_ident(field + '_sum')}) AS s FROM {source(client, hourly_group_rollup_name(spec.name))} "
         f"WHERE {cond} GROUP BY time(1h) fill(none)")
    hours = {int(t): [float(v)] for series in client.execute(q)[0].get("series", [])
             for t, v in series.get("values") or [] if v is not None}
    return {(): stats_of_buckets(hours, "sum")} if hours else {}


def _hourly_group_stats(client: InfluxClient, spec: Measurement, field: str, start_ns: int, end_ns: int,
                        by: str, combine: str) -> dict[tuple, BucketStats]:
    """Per group of tag *by*: the hours [start_ns, end_ns) (hour-aligned, rolled) summarised from
    the hourly group rows, summed or each as in grouped_bucket_stats."""
    src = source(client, hourly_group_rollup_name(spec.name))
    cond = f"{quote_ident('by')} = {quote_string(by)} AND time >= {start_ns} AND time < {end_ns}"
    total, sn, top = (quote_ident(f"{field}_{p}") for p in ("sum", "sn", "top"))
    n = f"COUNT({total})" if combine == "sum" else f"SUM({sn})"
    peak = total if combine == "sum" else top
    # A lone MAX() reports the row's own time: the hour, the earliest of equal ones.
    sums, peaks = client.execute_many([
        f"SELECT {n} AS n, SUM({total}) AS total FROM {src} WHERE {cond} GROUP BY {quote_ident(by)}",
        f"SELECT MAX({peak}) AS peak FROM {src} WHERE {cond} GROUP BY {quote_ident(by)}"])
    peak_of = {}
    for series in peaks:
        index, rows = rows_of(series)
        if rows and rows[0][index["peak"]] is not None:
            peak_of[(series.get("tags") or {}).get(by, "")] = (float(rows[0][index["peak"]]), int(rows[0][index["time"]]))
    out = {}
    for series in sums:
        index, rows = rows_of(series)
        if rows and rows[0][index["n"]]:
            g = (series.get("tags") or {}).get(by, "")
            out[(g,)] = BucketStats(int(rows[0][index["n"]]), float(rows[0][index["total"]]), *peak_of.get(g, (None, None)))
    return out


class RollupReads:
    """The reads above on the InfluxDB a client reaches (the store hands itself in)."""

    def __init__(self, client: InfluxClient):
        self.client = client

    def query(self, *args, **kwargs) -> list[Series]:
        return query(self.client, *args, **kwargs)

    def counter_days(self, *args, **kwargs) -> dict[tuple, CounterDays]:
        return counter_days(self.client, *args, **kwargs)

    def counter_increase(self, *args, **kwargs) -> dict[tuple, tuple[float, int]] | None:
        return counter_increase(self.client, *args, **kwargs)

    def month_period_figures(self, *args, **kwargs):
        return month_period_figures(self.client, *args, **kwargs)

    def bucket_stats(self, *args, **kwargs) -> dict[tuple, BucketStats] | None:
        return bucket_stats(self.client, *args, **kwargs)

    def grouped_bucket_stats(self, *args, **kwargs) -> dict[tuple, BucketStats] | None:
        return grouped_bucket_stats(self.client, *args, **kwargs)
