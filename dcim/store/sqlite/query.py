"""query(): the pieces a range reads (rollup levels, raw edges, the unrolled tail) merged in SQL."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from typing import Any

from dcim.store.base import (
    Aggregate,
    Series,
    StoreError,
    Where,
    check_query,
    matches,
)
from dcim.store.sqlite.common import (
    _INT_MIN,
    _KIND_CAST,
    _LEVELS,
    _MERGE,
    _NUMERIC_AGGS,
    _bucket_sql,
    _first,
    _q,
)
from dcim.store.sqlite.query_sql import SqlQuery
from dcim.store.sqlite.state import SqliteState
from dcim.store.timegrid import NS_PER_S, ceil_ns, floor_ns

log = logging.getLogger(__name__)


class Queries(SqliteState):
    """query(): the pieces a range reads (rollup levels, raw edges, the unrolled tail) merged in SQL."""

    def query(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int, *,
              every_s: float | None = None, agg: Aggregate = "mean", group_by: Sequence[str] = (),
              where: Where | None = None) -> list[Series]:
        spec, fields = check_query(measurement, fields, agg, group_by, where)
        every_ns = None
        if every_s is not None:
            every_ns = int(round(every_s * NS_PER_S))
            if every_ns <= 0:
                raise StoreError(f"every_s must be positive, got {every_s}")
        if agg in _NUMERIC_AGGS:
            fields = [f for f in fields if spec.fields[f].kind is not str]
        start_ns, end_ns = int(start_ns), int(end_ns)
        if not fields or start_ns >= end_ns:
            return []
        group_by = tuple(group_by)
        with self._read_txn() as conn:
            group_of, pieces, sid_filter, meta = self._pieces(conn, measurement, start_ns, end_ns, every_ns,
                                                              group_by, where)
            if not group_of:
                return []
            # Millions of row tuples and values, none in a reference cycle: collections triggered
            # while they pile up would only walk them, again and again.
            gc_was_on = gc.isenabled()
            gc.disable()
            try:
                fast = self._query_sql(conn, measurement, fields, agg, spec, group_by, group_of, pieces,
                                       every_ns, start_ns, sid_filter)
            finally:
                if gc_was_on:
                    gc.enable()
            if fast is not None:
                return fast
            # The Python merge: _query_sql declines nothing today; kept as the reference the
            # tests compare the SQL against (tests/store/test_sqlite_query_sql.py).
            acc: dict[tuple, list] = {}
            rolled = meta.get(f"rolled:{measurement}", 0)
            for source, s, e in self._plan(measurement, start_ns, end_ns, every_ns, meta):
                if source == "raw":
                    self._accumulate(conn, acc, group_of, measurement, fields, agg, "raw", s, e,
                                     every_ns, start_ns, sid_filter, None)
                else:
                    self._accumulate(conn, acc, group_of, measurement, fields, agg, source, s, e,
                                     every_ns, start_ns, sid_filter, None)
                    # Raw rows merged into no rollup yet, clipped to the asked range.
                    self._accumulate(conn, acc, group_of, measurement, fields, agg, "raw", max(s, start_ns),
                                     min(e, end_ns), every_ns, start_ns, sid_filter, rolled)
        return self._to_series(acc, fields, agg, spec, group_by)

    def _pieces(self, conn, m: str, start_ns: int, end_ns: int, every_ns: int | None, group_by: tuple,
                where: Where | None) -> tuple[dict, list, str, dict]:
        """What a query of *m* reads: {series id: its group's tag values} for the series *where*
        selects, the pieces (source, s, e, min_rid) — rollup pieces, the raw rows each has not
        merged yet (min_rid: rows above the watermark), raw pieces — the series filter's SQL
        (``{p}`` for a prefix), and the meta table."""
        self._series_of(m)
        rows_of = self._series_rows
        group_of = {sid: tuple(tags.get(t, "") for t in group_by)
                    for sid in self._sids_of.get(m, ()) for tags in (rows_of[sid][1],) if matches(tags, where)}
        if not group_of:
            return group_of, [], "", {}
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        # Always name the series: it is what lets SQLite seek the (series_id, ts) keys
        # instead of scanning every row the table holds.
        sid_filter = f" AND {{p}}series_id IN ({','.join(map(str, sorted(group_of)))})"
        return group_of, self._plan_pieces(conn, m, start_ns, end_ns, every_ns, meta), sid_filter, meta

    def _plan_pieces(self, conn, m: str, start_ns: int, end_ns: int, every_ns: int | None, meta: dict) -> list:
        """_plan()'s pieces as (source, s, e, min_rid), each rollup piece followed by the raw
        rows it has not merged yet (left out when nothing waits for maintain())."""
        rolled = meta.get(f"rolled:{m}", 0)
        pieces = []
        for source, s, e in self._plan(m, start_ns, end_ns, every_ns, meta):
            if source == "raw":
                pieces.append(("raw", s, e, None))
            else:
                pieces += [(source, s, e, None), ("raw", max(s, start_ns), min(e, end_ns), rolled)]
        pieces = [pc for pc in pieces if pc[1] < pc[2]]
        tails = [pc for pc in pieces if pc[3] is not None]
        if tails and conn.execute(f"SELECT 1 FROM raw_{m} WHERE rid > ? LIMIT 1", (tails[0][3],)).fetchone() is None:
            pieces = [pc for pc in pieces if pc[3] is None]  # nothing unrolled: no tail to read
        return pieces

    def _plan(self, m: str, start_ns: int, end_ns: int, every_ns: int | None, meta: dict) -> list[tuple]:
        """Split [start, end) into (source, s, e) pieces: rollup levels for whole rollup buckets,
        raw for the rest. Below a finer level's retention horizon, edges widen to the rollup
        bucket (the finer data is gone; the bucket is the best there is)."""
        if f"rolled:{m}" not in meta:  # never rolled up: everything is raw
            return [("raw", start_ns, end_ns)]
        levels = [(lvl, step) for lvl, step in _LEVELS if every_ns is None or every_ns % step == 0]
        horizons = {"rollup_hour": _INT_MIN, "rollup_minute": meta.get(f"horizon_1m:{m}", -(1 << 62)),
                    "raw": meta.get(f"horizon_raw:{m}", -(1 << 62))}
        valid_from = {"rollup_day": meta.get(f"day_rollup_from:{m}", _INT_MIN)}

        def split(s: int, e: int, lv: list) -> list[tuple]:
            if s >= e:
                return []
            if not lv:
                return [("raw", s, e)]
            (level, step), rest = lv[0], lv[1:]
            finer_horizon = horizons[rest[0][0] if rest else "raw"]
            a = floor_ns(s, step) if s < finer_horizon else ceil_ns(s, step)
            b = ceil_ns(e, step) if e <= finer_horizon else floor_ns(e, step)
            a = max(a, valid_from.get(level, _INT_MIN))  # the level holds nothing complete before
            if a >= b:
                return split(s, e, rest)
            return split(s, a, rest) + [(level, a, b)] + split(b, e, rest)

        return split(start_ns, end_ns, levels)

    def _query_sql(self, conn, m, fields, agg, spec, group_by, group_of, pieces, every_ns, start_ns,
                   sid_filter) -> list[Series] | None:
        """The query in SQL (``query_sql``); None would send it to the Python merge."""
        return SqlQuery(conn, m, fields, agg, spec, group_by, group_of, pieces, every_ns, start_ns, sid_filter).run()

    def _accumulate(self, conn, acc, group_of, m, fields, agg, source, s, e, every_ns, start_ns,
                    sid_filter, min_rid) -> None:
        """Merge the partial aggregates of one source over [s, e) into acc[(group, bucket)]."""
        if s >= e:
            return
        table = f"{source}_{m}"
        bucket = _bucket_sql("ts", every_ns, start_ns)
        raw = source == "raw"
        where = f"ts >= {int(s)} AND ts < {int(e)}"
        hint = ""
        if min_rid is not None:
            # Only the unrolled tail: walk the rowid range, not the (series_id, ts) index.
            where = f"rid > {int(min_rid)} AND +ts >= {int(s)} AND +ts < {int(e)}"
            hint = " NOT INDEXED"
        where += sid_filter.format(p="+" if min_rid is not None else "")
        nf = len(fields)
        # Rollup rows as wide as the asked buckets are the buckets: read them as they are.
        direct = not raw and every_ns == dict(_LEVELS)[source]
        group = "" if direct else " GROUP BY 1, 2"

        def fn(name: str, expr: str) -> str:
            return expr if direct else f"{name}({expr})"

        if agg in ("first", "last"):
            pick = "min" if agg == "first" else "max"
            for i, f in enumerate(fields):
                if raw:
                    sql = (f"SELECT series_id, {bucket}, {pick}(ts), {_q(f)} FROM {table}{hint} "
                           f"WHERE {where} AND {_q(f)} IS NOT NULL GROUP BY 1, 2")
                else:
                    tcol = _q(f + ("_fts" if agg == "first" else "_lts"))
                    sql = (f"SELECT series_id, {bucket}, {fn(pick, tcol)}, {_q(f + '_' + agg)} FROM {table} "
                           f"WHERE {where} AND {_q(f + '_n')} > 0{group}")
                later = agg == "last"
                for sid, b, t, v in conn.execute(sql):
                    g = group_of.get(sid)
                    if g is None:
                        continue
                    slot = acc.get((g, b))
                    if slot is None:
                        slot = acc[(g, b)] = [None] * nf
                    cur = slot[i]
                    if cur is None or (t >= cur[0] if later else t < cur[0]):
                        slot[i] = (t, v)
            return
        exprs = []
        for f in fields:
            n = f"count({_q(f)})" if raw else fn("sum", _q(f + "_n"))
            if agg in ("mean", "sum"):
                exprs += [n, f"sum({_q(f)})" if raw else fn("sum", _q(f + "_sum"))]
            elif agg in ("min", "max"):
                exprs += [n, f"{agg}({_q(f)})" if raw else fn(agg, _q(f + "_" + agg))]
            else:  # count
                exprs += [n, "NULL"]
        sql = f"SELECT series_id, {bucket}, {', '.join(exprs)} FROM {table}{hint} WHERE {where}{group}"
        merge = _MERGE[agg]
        pairs = range(2, 2 + 2 * nf, 2)  # row[j] = count, row[j + 1] = partial value
        for row in conn.execute(sql):
            g = group_of.get(row[0])
            if g is None:
                continue
            key = (g, row[1])
            slot = acc.get(key)
            if slot is None:  # the common case: first partial of this bucket
                acc[key] = [(row[j], row[j + 1]) if row[j] else None for j in pairs]
                continue
            for i, j in enumerate(pairs):
                n = row[j]
                if n:
                    cur = slot[i]
                    slot[i] = (n, row[j + 1]) if cur is None else merge(cur, n, row[j + 1])

    def _to_series(self, acc, fields, agg, spec, group_by) -> list[Series]:
        """Final values from the merged partials; buckets without any value are left out."""
        nf = len(fields)
        finals: list[Callable[[tuple], Any]]
        if agg == "mean":
            finals = [lambda p: p[1] / p[0]] * nf
        elif agg == "count":
            finals = [lambda p: int(p[0])] * nf
        else:  # sum, min, max: (n, v); first, last: (t, v). Cast back to the contract's kind.
            kinds = [spec.fields[f].kind for f in fields]
            if agg == "sum":  # a sum of flags counts the true ones
                kinds = [int if k is bool else k for k in kinds]
            finals = [_final_cast(_KIND_CAST[k]) for k in kinds]
        rows_of: dict[tuple, list] = {}
        for (g, b), slot in acc.items():
            if slot.count(None) != nf:
                rows_of.setdefault(g, []).append((b, slot))
        out = []
        for g in sorted(rows_of):
            rows = sorted(rows_of[g], key=_first)
            s = Series(tags=dict(zip(group_by, g)), times_ns=[int(b) for b, _ in rows])
            for i, (f, fin) in enumerate(zip(fields, finals)):
                s.values[f] = [None if slot[i] is None else fin(slot[i]) for _, slot in rows]
            out.append(s)
        return out


def _final_cast(cast: Callable[[Any], Any]) -> Callable[[tuple], Any]:
    """A partial's final value (its second item) cast back to the contract's kind."""
    def final(p: tuple) -> Any:
        return cast(p[1])

    return final
