"""bucket_stats(): hourly statistics per series or group from rollups and summaries."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence

from dcim.metrics import MEASUREMENTS
from dcim.store.base import (
    BucketStats,
    Combine,
    Where,
    add_bucket_stats,
    check_bucket_stats,
    has_group_rollups,
)
from dcim.store.peak_search import day_bound, stats_from_day_bounds
from dcim.store.sqlite.common import (
    _INT_MIN,
    _LEVELS,
    GROUP_TAGS,
    _bucket_sql,
    _load_groups,
    _means_sql,
    _q,
    _raw_waits,
)
from dcim.store.sqlite.state import G, SqliteState
from dcim.store.timegrid import DAY_NS as NS_PER_DAY
from dcim.store.timegrid import HOUR_NS, NS_PER_S, ceil_ns, floor_ns

log = logging.getLogger(__name__)


class BucketStatistics(SqliteState):
    """bucket_stats(): hourly statistics per series or group from rollups and summaries."""

    def bucket_stats(self, measurement: str, field: str, start_ns: int, end_ns: int, every_s: float, *,
                     group_by: Sequence[str] = (), where: Where | None = None,
                     combine: Combine = "sum") -> dict[tuple, BucketStats]:
        """``Store.bucket_stats`` in SQL over the same pieces as query(): per series and bucket the
        mean (Σ sum ÷ Σ n of its pieces), then per group and bucket their sum or mean, per group
        the count, total and peak. Only a row per group (per series for ``each``) comes back.

        Hourly statistics of single series (or ``each``) read whole days from the daily rows'
        hourly summaries, and hours only at the range's edges: a quarter is 92 rows per series,
        not 2,208. Not while raw rows inside those days wait for maintain(): then hours only."""
        spec = check_bucket_stats(measurement, field, every_s, combine, group_by, where)
        every_ns = int(round(every_s * NS_PER_S))
        start_ns, end_ns = int(start_ns), int(end_ns)
        if spec.fields[field].kind is str or start_ns >= end_ns:
            return {}
        group_by = tuple(group_by)
        m = measurement
        with self._read_txn() as conn:
            group_of, pieces, sid_filter, meta = self._pieces(conn, m, start_ns, end_ns, every_ns, group_by, where)
            if not group_of or not pieces:
                return {}
            groups = sorted(set(group_of.values()))
            found = self._grouped_stats(conn, m, field, start_ns, end_ns, every_ns, group_by, group_of, groups,
                                        combine, meta)
            if found is not None:
                return found
            per_series = combine == "each" or len(groups) == len(group_of)
            if per_series and every_ns == HOUR_NS:
                months = self._month_results(conn, m, start_ns, end_ns, [], [field], group_of, sid_filter, meta, combine)
                if months is not None:
                    return months[1][field]
            if (per_series or combine == "sum") and every_ns == HOUR_NS:
                by_day = self._plan_pieces(conn, m, start_ns, end_ns, None, meta)
                if not any(src == "rollup_day" and _raw_waits(conn, m, meta, a, z) for src, a, z, _ in by_day):
                    pieces = by_day
            if per_series:
                means, days = self._series_means(m, field, pieces, every_ns, start_ns, sid_filter)
                return self._series_stats(conn, means, days, group_of, groups, combine)
            _load_groups(conn, group_of, groups)
            day_pieces = [pc for pc in pieces if pc[0] == "rollup_day"]
            if day_pieces:  # only sums reach here with days: see peak_search
                found = self._summed_days(conn, m, field, day_pieces, group_of, groups, sid_filter)
                rest = [pc for pc in pieces if pc[0] != "rollup_day"]
                if rest:
                    for g, st in self._group_stats(conn, m, field, rest, every_ns, start_ns, sid_filter,
                                                   groups, combine).items():
                        found[g] = add_bucket_stats([found[g], st]) if g in found else st
                return found
            return self._group_stats(conn, m, field, pieces, every_ns, start_ns, sid_filter, groups, combine)

    def _grouped_stats(self, conn, m: str, field: str, start_ns: int, end_ns: int, every_ns: int,
                       group_by: tuple, group_of: dict, groups: list, combine: str,
                       meta: dict) -> dict[tuple, BucketStats] | None:
        """BucketStats per value of one grouping tag from the group rollups (group_day for whole UTC
        days, group_hour for the hours at the edges): a row per group and day comes back. Sums per
        coarser tag (a room), or of no grouping (a where naming a tenant's racks), add up their
        whole racks' group_hour rows instead (_stats_of_whole_racks). None where
        they cannot answer: not hourly buckets on hour bounds, not sum or each, another tag or
        field, a group the where cuts (the rollups hold whole groups), days from before the
        rollups, or raw rows waiting for maintain()."""
        spec = MEASUREMENTS[m]
        if (every_ns != HOUR_NS or combine not in ("sum", "each") or len(group_by) > 1
                or any(t not in spec.tags for t in group_by) or not has_group_rollups(spec, field)
                or start_ns % HOUR_NS or end_ns % HOUR_NS or start_ns < meta.get(f"group_rollup_from:{m}", _INT_MIN)):
            return None
        if not group_by or group_by[0] not in GROUP_TAGS:
            if combine != "sum" or _raw_waits(conn, m, meta, start_ns, end_ns):
                return None
            return self._stats_of_whole_racks(conn, m, field, start_ns, end_ns, group_of, groups)
        tag = group_by[0]
        selected = {g[0] for g in groups}
        size: dict[str, int] = {}
        for sid in self._sids_of.get(m, ()):
            v = self._series_rows[sid][1].get(tag, "")
            if v in selected:
                size[v] = size.get(v, 0) + 1
        if sum(size.values()) != len(group_of) or _raw_waits(conn, m, meta, start_ns, end_ns):
            return None
        # sum: a bucket is an hour of the group (its series' means added); each: an hour of a series.
        buckets, peak, peak_ts = ("hours", "max", "maxts") if combine == "sum" else ("n", "top", "topts")
        hour_buckets, hour_peak = ("1", "sum") if combine == "sum" else ("n", "top")
        cond = "field = ?1 AND tag = ?2 AND value IN (SELECT value FROM json_each(?3)) AND ts >= ?4 AND ts < ?5"
        days = f"SELECT value, sum({buckets}), total(sum), max({peak}), {peak_ts} FROM group_day_{m} WHERE {cond} GROUP BY value"
        hours = (f"SELECT value, sum({hour_buckets}), total(sum), max({hour_peak}), ts FROM group_hour_{m} "
                 f"WHERE {cond} GROUP BY value")
        a, b = ceil_ns(start_ns, NS_PER_DAY), floor_ns(end_ns, NS_PER_DAY)  # the whole UTC days
        spans = [(days, a, b), (hours, start_ns, a), (hours, b, end_ns)] if a < b else [(hours, start_ns, end_ns)]
        values = json.dumps(sorted(selected), ensure_ascii=False)
        parts: dict[tuple, list[BucketStats]] = {}
        for sql, lo, hi in spans:
            if lo < hi:
                for value, n, total, pk, pk_ns in conn.execute(sql, (field, tag, values, lo, hi)):
                    parts.setdefault((value,), []).append(BucketStats(n, total, pk, pk_ns))
        return {g: ps[0] if len(ps) == 1 else add_bucket_stats(ps) for g, ps in sorted(parts.items())}

    def _stats_of_whole_racks(self, conn, m: str, field: str, start_ns: int, end_ns: int, group_of: dict,
                              groups: list) -> dict[tuple, BucketStats] | None:
        """Hourly sums of groups made of whole racks (a room's, a tenant's; all of them for no
        grouping) from the racks' group_hour rows, added up per group and hour: a row per rack and hour
        is read, not one per series. None where a rack is split between groups or the series
        selected leave out some of a rack's."""
        tag = GROUP_TAGS[0]
        if tag not in MEASUREMENTS[m].tags:
            return None
        rows = self._series_rows
        gid_of = {g: i for i, g in enumerate(groups)}
        group_of_rack: dict[str, int] = {}
        for sid, g in group_of.items():
            if group_of_rack.setdefault(rows[sid][1].get(tag, ""), gid_of[g]) != gid_of[g]:
                return None
        if sum(rows[sid][1].get(tag, "") in group_of_rack for sid in self._sids_of.get(m, ())) != len(group_of):
            return None
        # One max() in the outer SELECT: the bare ts comes from the row holding it, and rows come
        # in (group, hour) order, so that is the earliest hour of equal sums.
        sql = (f"WITH racks AS (SELECT json_extract(j.value, '$[0]') AS value, json_extract(j.value, '$[1]') AS gid "
               f"FROM json_each(?3) AS j) "
               f"SELECT gid, count(*), total(s), max(s), ts FROM (SELECT r.gid AS gid, g.ts AS ts, total(g.sum) AS s "
               f"FROM group_hour_{m} AS g JOIN racks AS r ON r.value = g.value WHERE g.field = ?1 AND g.tag = ?2 "
               f"AND g.ts >= ?4 AND g.ts < ?5 GROUP BY r.gid, g.ts ORDER BY r.gid, g.ts) GROUP BY gid")
        racks = json.dumps(sorted(group_of_rack.items()), ensure_ascii=False)
        return {groups[gid]: BucketStats(n, total, peak, peak_ns)
                for gid, n, total, peak, peak_ns in conn.execute(sql, (field, tag, racks, start_ns, end_ns))}

    def _group_stats(self, conn, m: str, field: str, pieces: list, every_ns: int, start_ns: int, sid_filter: str,
                     groups: list, combine: str) -> dict[tuple, BucketStats]:
        """BucketStats per group of several series over hourly-or-finer *pieces*, in one SQL
        statement (temp.dcim_query_group loaded)."""
        # One max() and nothing else min/max-like in the outer SELECT: SQLite then takes the
        # bare column b from the row holding the maximum (the first such row it meets, and
        # rows meet it in bucket order), which is the peak's time. (Sorting the (group,
        # bucket) rows in chunks of days instead of at once measured no faster.)
        parts, _ = self._bucket_parts(m, field, pieces, every_ns, start_ns, sid_filter)
        agg = "total" if combine == "sum" else "avg"
        sql = (f"SELECT gid, count(*), total(v), max(v), b FROM (SELECT g.gid AS gid, p.b AS b, {agg}(p.v) AS v "
               f"FROM ({_means_sql(parts)}) AS p JOIN temp.dcim_query_group AS g ON g.sid = p.sid "
               f"GROUP BY g.gid, p.b ORDER BY g.gid, p.b) GROUP BY gid")
        return {groups[gid]: BucketStats(n, total, peak, peak_ns)
                for gid, n, total, peak, peak_ns in conn.execute(sql)}

    @staticmethod
    def _summed_days(conn, m: str, field: str, day_pieces: list, group_of: dict, groups: list,
                     sid_filter: str) -> dict[tuple, BucketStats]:
        """Hourly sums per group over whole days: bounds and totals from the days' hourly
        summaries (day_hour_stats), hours from rollup_hour only for the days that can hold a group's peak
        (``peak_search``). temp.dcim_query_group is loaded; nothing waits in raw for these days."""
        gid_of = {g: i for i, g in enumerate(groups)}
        members: dict[int, list[int]] = {}
        for sid, g in group_of.items():
            members.setdefault(gid_of[g], []).append(sid)
        per_day: dict[tuple[int, int], list[tuple]] = {}
        for _, a, z, _ in day_pieces:
            for gid, day, peak, total, n in conn.execute(
                    f"SELECT g.gid, d.ts, d.max, d.sum, d.n FROM day_hour_stats_{m} AS d JOIN temp.dcim_query_group AS g "
                    f"ON g.sid = d.series_id WHERE d.field = ? AND d.ts >= ? AND d.ts < ?{sid_filter.format(p='d.')}",
                    (field, a, z)):
                per_day.setdefault((gid, day), []).append((peak, total, n))
        bounds = {k: day_bound((r[0] for r in rows), (r[1] for r in rows), (r[2] for r in rows), NS_PER_DAY // HOUR_NS)
                  for k, rows in per_day.items()}
        n_col, sum_col = _q(field + "_n"), _q(field + "_sum")

        def read_hours(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], list[tuple[int, float]]]:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS dcim_peak_day (sid INTEGER, day INTEGER, gid INTEGER)")
            conn.execute("DELETE FROM temp.dcim_peak_day")
            conn.executemany("INSERT INTO temp.dcim_peak_day VALUES (?, ?, ?)",
                             [(sid, day, gid) for gid, day in pairs for sid in members[gid]])
            out: dict[tuple[int, int], list[tuple[int, float]]] = {}
            for gid, day, ts, v in conn.execute(
                    f"SELECT c.gid, c.day, h.ts, total(1.0 * h.{sum_col} / h.{n_col}) FROM temp.dcim_peak_day AS c "
                    f"JOIN rollup_hour_{m} AS h ON h.series_id = c.sid AND h.ts >= c.day AND h.ts < c.day + {NS_PER_DAY} "
                    f"WHERE h.{n_col} > 0 GROUP BY c.gid, c.day, h.ts"):
                out.setdefault((gid, day), []).append((ts, v))
            conn.execute("DELETE FROM temp.dcim_peak_day")
            return out

        return {groups[gid]: st for gid, st in stats_from_day_bounds(bounds, read_hours).items()}

    @staticmethod
    def _bucket_parts(m: str, field: str, pieces: list, every_ns: int, start_ns: int,
                      sid_filter: str) -> tuple[list[str], list[str]]:
        """SQL per piece: (sid, b, s, n) partial sums per hourly-or-finer bucket, and (sid, n,
        total, peak, pts) hourly summaries of whole days (rollup_day pieces)."""
        qf = _q(field)
        bucket = _bucket_sql("ts", every_ns, start_ns)
        step_of = dict(_LEVELS)
        parts, days = [], []
        for source, s, e, min_rid in pieces:
            where_sql = f"ts >= {int(s)} AND ts < {int(e)}"
            hint = ""
            if min_rid is not None:  # only the unrolled tail: walk the rowid range
                where_sql, hint = f"rid > {int(min_rid)} AND +ts >= {int(s)} AND +ts < {int(e)}", " NOT INDEXED"
            where_sql += sid_filter.format(p="+" if min_rid is not None else "")
            if source == "raw":
                parts.append(f"SELECT series_id AS sid, {bucket} AS b, total({qf}) AS s, count({qf}) AS n "
                             f"FROM raw_{m}{hint} WHERE {where_sql} AND {qf} IS NOT NULL GROUP BY 1, 2")
            elif step_of[source] > every_ns:  # days' hourly summaries (day_hour_stats)
                days.append(f"SELECT series_id AS sid, n, sum AS total, max AS peak, maxts AS pts FROM day_hour_stats_{m} "
                            f"WHERE field = '{field}' AND {where_sql}")
            elif step_of[source] == every_ns:
                parts.append(f"SELECT series_id AS sid, ts AS b, {_q(field + '_sum')} AS s, {_q(field + '_n')} AS n "
                             f"FROM {source}_{m} WHERE {where_sql} AND {_q(field + '_n')} > 0")
            else:
                parts.append(f"SELECT series_id AS sid, {bucket} AS b, total({_q(field + '_sum')}) AS s, "
                             f"sum({_q(field + '_n')}) AS n FROM {source}_{m} "
                             f"WHERE {where_sql} AND {_q(field + '_n')} > 0 GROUP BY 1, 2")
        return parts, days

    @classmethod
    def _series_means(cls, m: str, field: str, pieces: list, every_ns: int, start_ns: int,
                      sid_filter: str) -> tuple[list[str], list[str]]:
        """SQL for _series_stats: per piece (sid, b, v) bucket means and (sid, n, total, peak, pts)
        hourly summaries of whole days (see _bucket_parts)."""
        parts, days = cls._bucket_parts(m, field, pieces, every_ns, start_ns, sid_filter)
        # Pieces of one row per (series, bucket) each (no raw rows, no finer level: a quarter's
        # edge hours) hold disjoint buckets: each is grouped on its own, not merged and re-sorted first.
        step_of = dict(_LEVELS)
        if all(src != "raw" and step_of[src] >= every_ns for src, *_ in pieces):
            return [f"SELECT sid, b, (1.0 * s) / n AS v FROM ({part})" for part in parts], days
        return ([_means_sql(parts)] if parts else []), days

    @staticmethod
    def _series_stats(conn: sqlite3.Connection, means: list[str], days: list[str], group_of: dict[int, G],
                      groups: list[G], combine: str) -> dict[G, BucketStats]:
        """BucketStats per series from hourly means (*means*: sid, b, v; each holding buckets
        the others do not) and days' hourly summaries (*days*: sid, n, total, peak, pts), then
        per group (``each``: added up).

        Each source is grouped by series on its own: the (series_id, ts) key delivers a
        series' rows in time order, so SQLite groups them without sorting, and the bare column
        (the peak's time) comes from the first row holding the max, the earliest. The sources'
        answers, a row per series each, are merged here."""
        sources = [f"SELECT sid, count(*), total(v), max(v), b FROM ({q}) GROUP BY sid" for q in means]
        sources += [f"SELECT sid, sum(n), total(total), max(peak), pts FROM ({d}) GROUP BY sid" for d in days]
        # add_bucket_stats inline (a row per series and source: 100,000 at 32,000 GPUs).
        acc: dict[int, list] = {}
        for sql in sources:
            for sid, n, total, peak, pts in conn.execute(sql):
                cur = acc.get(sid)
                if cur is None:
                    acc[sid] = [n, total, peak, pts]
                    continue
                cur[0] += n
                cur[1] += total
                if peak is not None and (cur[2] is None or peak > cur[2] or (peak == cur[2] and pts < cur[3])):
                    cur[2], cur[3] = peak, pts
        stats = {sid: BucketStats(*cur) for sid, cur in acc.items()}
        if combine != "each" or len(groups) == len(group_of):
            return {group_of[sid]: st for sid, st in stats.items()}
        per_group: dict[G, list[BucketStats]] = {}
        for sid in sorted(stats):
            per_group.setdefault(group_of[sid], []).append(stats[sid])
        return {g: add_bucket_stats(parts) for g, parts in per_group.items()}
