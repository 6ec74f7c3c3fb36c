"""counter_increase(): whole days from counter_day rows, edges from rollup_hour's counter index."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dcim.store.counters as counters
from dcim.store.base import (
    Where,
    check_query,
)
from dcim.store.sqlite.common import _bucket_sql, _q, _raw_waits
from dcim.store.sqlite.state import SqliteState
from dcim.store.timegrid import DAY_NS as NS_PER_DAY
from dcim.store.timegrid import floor_ns

log = logging.getLogger(__name__)


class CounterReads(SqliteState):
    """counter_increase(): whole days from counter_day rows, edges from rollup_hour's counter index."""

    def counter_increase(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                         group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, tuple[float, int]]:
        """``Store.counter_increase``. Whole days are summed in SQL from counter_day, one row per series
        coming back: each day's increase and resets inside it and across its junction with the
        day before (a year is a row per series, not 365). Edges of whole hours come from rollup_hour's
        counter index, other edges (finer rollups, raw rows) are read as the default reads
        them, and everything is chained per series. Groups of several series, or days whose raw
        rows wait for maintain(), read as the default."""
        spec, _ = check_query(measurement, [field], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        days = None
        if spec.fields[field].counter and start_ns < end_ns:
            with self._read_txn() as conn:
                group_of, pieces, sid_filter, meta = self._pieces(conn, measurement, start_ns, end_ns, NS_PER_DAY,
                                                                  tuple(group_by), where)
                if group_of and len(set(group_of.values())) == len(group_of):
                    found = self._month_results(conn, measurement, start_ns, end_ns, [field], [], group_of, sid_filter,
                                                meta, "sum")
                    if found is not None:
                        return found[0][field]
                whole = [(s, e) for src, s, e, tail in pieces if src == "rollup_day" and tail is None]
                if len(whole) == 1 and len(set(group_of.values())) == len(group_of) and \
                        not _raw_waits(conn, measurement, meta, *whole[0]):
                    a, b = whole[0]
                    # Edges of whole hours (a quarter's in Asia/Seoul) from rollup_hour, a statement each.
                    hours_only = all(src in ("rollup_day", "rollup_hour") or tail is not None for src, _, _, tail in pieces) and \
                        not _raw_waits(conn, measurement, meta, start_ns, end_ns)
                    if hours_only:
                        spans_of = self._counter_spans(conn, measurement, field, start_ns, end_ns, a, b, sid_filter)
                        return {group_of[sid]: counters.chain(spans) for sid, spans in sorted(
                            spans_of.items(), key=lambda kv: group_of[kv[0]])}
                    days = a, b, self._counter_days_sql(conn, measurement, field, a, b, sid_filter)
        if days is None:
            return super().counter_increase(measurement, field, start_ns, end_ns, group_by=group_by, where=where)
        # Edges of finer rollups or raw rows: per day, as the default reads them.
        a, b, per_sid = days
        spans: dict[tuple, list[counters.CounterSpan]] = {}

        def add_edge(lo: int, hi: int) -> None:
            if lo < hi:
                for g, c in self.counter_days(measurement, field, lo, hi, group_by=group_by, where=where).items():
                    spans.setdefault(g, []).extend(counters.bucket_span(first, last, top) for first, last, top
                                                   in zip(c.firsts, c.lasts, c.maxes) if last is not None)

        add_edge(start_ns, a)
        for sid, span in per_sid.items():
            spans.setdefault(group_of[sid], []).append(span)
        add_edge(b, end_ns)
        return {g: counters.chain(spans[g]) for g in sorted(spans)}

    def _counter_spans(self, conn, m: str, field: str, start_ns: int, end_ns: int, a: int, b: int,
                       sid_filter: str) -> dict[int, list[counters.CounterSpan]]:
        """Per series, counter *field* over [start_ns, end_ns) as spans in time order: the UTC
        days of the edges [start_ns, a) and [b, end_ns) (whole hours, in rollup_hour) a span each, the
        whole days [a, b) one span (counter_day). Nothing may wait for maintain() there."""
        spans: dict[int, list[counters.CounterSpan]] = {}
        for sid, day_spans in self._counter_edge_sql(conn, m, field, start_ns, a, sid_filter).items():
            spans[sid] = list(day_spans)
        if a < b:
            for sid, span in self._counter_days_sql(conn, m, field, a, b, sid_filter).items():
                spans.setdefault(sid, []).append(span)
        for sid, day_spans in self._counter_edge_sql(conn, m, field, b, end_ns, sid_filter).items():
            spans.setdefault(sid, []).extend(day_spans)
        return spans

    @staticmethod
    def _counter_edge_sql(conn, m: str, field: str, lo: int, hi: int,
                          sid_filter: str) -> dict[int, list[counters.CounterSpan]]:
        """Per series, the UTC days of [lo, hi) (whole hours, all in rollup_hour) as counter buckets, in
        time order: a day's first value is its first hour's, its last its last hour's, its max
        the hours' largest, which is what the default's (first, last, max) per day reads."""
        if lo >= hi:
            return {}
        n = _q(field + "_n")
        # Three plain GROUP BYs over the counter's rollup_hour index (window functions cost ~3 µs a
        # row). A lone min() or max() makes SQLite take the bare column from the row holding it.
        # An edge inside one UTC day (a quarter's) groups by series alone: rows come in key
        # order, no sorting by day.
        one_day = floor_ns(lo, NS_PER_DAY) == floor_ns(hi - 1, NS_PER_DAY)
        day = str(floor_ns(lo, NS_PER_DAY)) if one_day else _bucket_sql("ts", NS_PER_DAY, 0)
        where = (f"FROM rollup_hour_{m} WHERE ts >= ? AND ts < ? AND {n} > 0{sid_filter.format(p='')} "
                 f"GROUP BY series_id{'' if one_day else ', d'}")
        parts = [{(sid, d): v for sid, d, _, v in conn.execute(f"SELECT series_id, {day} AS d, {agg}(ts), {col} {where}",
                                                               (lo, hi))}
                 for agg, col in (("min", _q(field + "_first")), ("max", _q(field + "_last")))]
        tops = {(sid, d): v for sid, d, v in conn.execute(f"SELECT series_id, {day} AS d, max({_q(field + '_max')}) "
                                                           f"{where}", (lo, hi))}
        out: dict[int, list[counters.CounterSpan]] = {}
        for key in sorted(tops):
            out.setdefault(key[0], []).append(counters.bucket_span(parts[0][key], parts[1][key], tops[key]))
        return out

    @staticmethod
    def _counter_days_sql(conn, m: str, field: str, a: int, b: int, sid_filter: str) -> dict[int, counters.CounterSpan]:
        """Per series, its days in [a, b) as one span (``dcim.store.counters``): the first day's
        first value, the last day's last, and the increase and resets inside the days and across
        their junctions, from counter_day: each day's own increase, and its junction with the day before
        (prev) where that day lies in [a, b) too (pts >= a); the first day's lies before a."""
        junction = "CASE WHEN pts >= ?1 THEN (CASE WHEN first >= prev THEN first - prev ELSE first END) ELSE 0 END"
        # max(ts) the only min/max: the bare last comes from the series' last day.
        sql = (f"SELECT series_id, sum(CASE WHEN pts IS NULL OR pts < ?1 THEN first END), last, max(ts), "
               f"total(inc) + total({junction}), sum(resets) + sum(pts IS NOT NULL AND pts >= ?1 AND first < prev) "
               f"FROM counter_day_{m} WHERE field = ?3 AND ts >= ?1 AND ts < ?2{sid_filter.format(p='')} GROUP BY series_id")
        return {sid: counters.CounterSpan(first, final, increase, int(resets))
                for sid, first, final, _, increase, resets in conn.execute(sql, (a, b, field))}
