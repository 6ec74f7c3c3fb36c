"""query(): the pieces a range reads (rollup levels, raw edges, the unrolled tail) merged in SQL."""

from __future__ import annotations

import bisect
import gc
import logging
from typing import Sequence

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
    _load_groups,
    _q,
)
from dcim.store.timegrid import NS_PER_S, ceil_ns, floor_ns

log = logging.getLogger(__name__)


class Queries:
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
        """The query as one SQL statement (one per field for first/last): SQLite merges the
        partials of every piece (rollups, raw edges, the unrolled raw tail) per (group, bucket),
        one answer row per bucket with every field; Python only cuts the answer's columns into
        Series. Groups of several series map series to group through a temp table."""
        groups = sorted(set(group_of.values()))
        single = len(groups) == len(group_of)  # every group is one series: group by series_id
        if not pieces:
            return []
        if not single:
            _load_groups(conn, group_of, groups)
        bucket = _bucket_sql("ts", every_ns, start_ns)
        step_of = dict(_LEVELS)
        direct = single and len(pieces) == 1 and pieces[0][0] != "raw" and every_ns == step_of[pieces[0][0]]
        # Buckets of many rollup rows (days from hours): one query per bucket grouped by series
        # alone, which the (series_id, ts) key delivers in order; grouping by an expression of
        # ts as well would sort every row in a temp b-tree (~25 % more time for days from hours).
        per_bucket = (single and not direct and every_ns is not None and len(pieces) == 1
                      and pieces[0][0] != "raw" and every_ns >= 8 * step_of[pieces[0][0]]
                      and pieces[0][2] - pieces[0][1] <= 4096 * every_ns)

        def source_sql(source, s, e, min_rid, cols, cond, b=None) -> str:
            where, hint = f"ts >= {int(s)} AND ts < {int(e)}", ""
            if min_rid is not None:  # only the unrolled tail: walk the rowid range
                where, hint = f"rid > {int(min_rid)} AND +ts >= {int(s)} AND +ts < {int(e)}", " NOT INDEXED"
            where += sid_filter.format(p="+" if min_rid is not None else "")
            if b is None:
                b = bucket if not direct else "ts"
            return f"SELECT series_id AS sid, {b} AS b, {cols} FROM {source}_{m}{hint} WHERE {where}{cond}"

        def grouped(make) -> list:
            """Rows of make(pieces, bucket literal or None, GROUP BY terms), in (sid, bucket) order."""
            if not per_bucket:
                return conn.execute(make(pieces, None, "1, 2")).fetchall()
            source, s, e, _ = pieces[0]
            out: list = []
            for lo in range(floor_ns(s, every_ns), e, every_ns):
                a, z = max(s, lo), min(e, lo + every_ns)
                if a < z:
                    out += conn.execute(make([(source, a, z, None)], str(lo), "1")).fetchall()
            out.sort(key=_first)  # stable: buckets stay in order within a series
            return out

        if agg in ("first", "last"):
            pick = "min" if agg == "first" else "max"
            answers = []
            for f in fields:
                qf = _q(f)
                if direct:
                    source, s, e, _ = pieces[0]
                    sql = source_sql(source, s, e, None, _q(f + "_" + agg), f" AND {_q(f + '_n')} > 0") + " ORDER BY 1, 2"
                    answers.append(conn.execute(sql).fetchall())
                    continue
                if not single:
                    # Ties as the Python merge breaks them: first, the earliest time, then the
                    # earlier piece, then the lower series id; last, the latest of all three.
                    parts = []
                    for k, (source, s, e, min_rid) in enumerate(pieces):
                        if source == "raw":
                            parts.append(source_sql(source, s, e, min_rid, f"ts AS t, {qf} AS v, {k} AS p",
                                                    f" AND {qf} IS NOT NULL"))
                        else:
                            tcol = _q(f + ("_fts" if agg == "first" else "_lts"))
                            parts.append(source_sql(source, s, e, None,
                                                    f"{tcol} AS t, {_q(f + '_' + agg)} AS v, {k} AS p",
                                                    f" AND {_q(f + '_n')} > 0"))
                    order = "ASC" if agg == "first" else "DESC"
                    sql = (f"SELECT gid, b, v FROM (SELECT g.gid AS gid, u.b AS b, u.v AS v, row_number() OVER "
                           f"(PARTITION BY g.gid, u.b ORDER BY u.t {order}, u.p {order}, u.sid {order}) AS rn "
                           f"FROM ({' UNION ALL '.join(parts)}) AS u JOIN temp.dcim_query_group AS g "
                           f"ON g.sid = u.sid) WHERE rn = 1 ORDER BY 1, 2")
                    answers.append(conn.execute(sql).fetchall())
                    continue

                def make(pcs, b, by, f=f, qf=qf) -> str:
                    parts = []
                    for source, s, e, min_rid in pcs:
                        if source == "raw":
                            parts.append(source_sql(source, s, e, min_rid, f"ts AS t, {qf} AS v",
                                                    f" AND {qf} IS NOT NULL", b))
                        else:
                            tcol = _q(f + ("_fts" if agg == "first" else "_lts"))
                            parts.append(source_sql(source, s, e, None, f"{tcol} AS t, {_q(f + '_' + agg)} AS v",
                                                    f" AND {_q(f + '_n')} > 0", b))
                    if agg == "last":  # a tie (a row re-written after its raw row expired): the
                        parts.reverse()  # unrolled tail reads first and wins, as in the Python merge
                    # The one min()/max() makes SQLite take v from the row holding it.
                    return (f"SELECT sid, b, v, {pick}(t) FROM ({' UNION ALL '.join(parts)}) "
                            f"GROUP BY {by} ORDER BY {by}")

                answers.append(grouped(make))
            if len(fields) == 1:
                rows = answers[0]
            else:  # buckets where any field has a value, None for the others
                merged: dict[tuple, list] = {}
                for i, ans in enumerate(answers):
                    for r in ans:
                        slot = merged.get((r[0], r[1]))
                        if slot is None:
                            slot = merged[(r[0], r[1])] = [None] * len(fields)
                        slot[i] = r[2]
                rows = [(k[0], k[1], *v) for k, v in sorted(merged.items())]
            mean_cols = ()
        else:
            finals, having, mean_cols = [], [], []
            for i, f in enumerate(fields):
                qf = _q(f)
                n, v = (f"n{i}", f"v{i}") if direct else (f"sum(n{i})", f"{'sum' if agg in ('mean', 'sum') else agg}(v{i})")
                if agg == "mean" and spec.fields[f].kind is not float:
                    mean_cols.append(i)  # int / int: Python's true division, rounded once
                    finals += [f"CASE WHEN {n} > 0 THEN {n} END", f"CASE WHEN {n} > 0 THEN {v} END"]
                elif agg == "mean":
                    finals.append(f"CASE WHEN {n} > 0 THEN {v} / {n} END")
                elif agg == "count":
                    finals.append(f"CASE WHEN {n} > 0 THEN {n} END")
                else:
                    finals.append(f"CASE WHEN {n} > 0 THEN {v} END")
                having.append(f"{n} > 0")

            def union(pcs, b=None) -> str:
                parts = []
                for source, s, e, min_rid in pcs:
                    cols = []
                    for i, f in enumerate(fields):
                        if source == "raw":
                            cols += [f"({_q(f)} IS NOT NULL) AS n{i}", f"{_q(f)} AS v{i}"]
                        else:
                            part = "sum" if agg in ("mean", "sum", "count") else agg
                            cols += [f"{_q(f + '_n')} AS n{i}", f"{_q(f + '_' + part)} AS v{i}"]
                    parts.append(source_sql(source, s, e, min_rid, ", ".join(cols), "", b))
                return " UNION ALL ".join(parts)

            rows = None
            if direct:
                sql = (f"SELECT sid, b, {', '.join(finals)} FROM ({union(pieces)}) "
                       f"WHERE {' OR '.join(having)} ORDER BY 1, 2")
            elif single:
                rows = grouped(lambda pcs, b, by: f"SELECT sid, b, {', '.join(finals)} FROM ({union(pcs, b)}) "
                                                  f"GROUP BY {by} HAVING {' OR '.join(having)} ORDER BY {by}")
            else:
                sql = (f"SELECT g.gid, u.b, {', '.join(finals)} FROM ({union(pieces)}) AS u "
                       f"JOIN temp.dcim_query_group AS g ON g.sid = u.sid "
                       f"GROUP BY 1, 2 HAVING {' OR '.join(having)} ORDER BY 1, 2")
            if rows is None:
                rows = conn.execute(sql).fetchall()
        if not single:
            conn.execute("DELETE FROM temp.dcim_query_group")
        if not rows:
            return []
        cols = list(zip(*rows))
        del rows
        keys, times = cols[0], cols[1]
        values: list = []
        j = 2
        for i, f in enumerate(fields):
            if i in mean_cols:
                col = [None if c is None else v / c for c, v in zip(cols[j], cols[j + 1])]
                j += 2
            else:
                col = cols[j]
                j += 1
                want = float if agg == "mean" else int if agg == "count" else spec.fields[f].kind
                if agg == "sum" and want is bool:
                    want = int  # a sum of flags counts the true ones
                if not {type(None), want}.issuperset(map(type, col)):
                    cast = _KIND_CAST[want]
                    col = [None if v is None else cast(v) for v in col]
            values.append(col)
        label = (lambda k: group_of[k]) if single else groups.__getitem__
        out = []
        a, n = 0, len(keys)
        while a < n:
            k = keys[a]
            z = bisect.bisect_right(keys, k, a)
            g = label(k)
            s = Series(tags=dict(zip(group_by, g)), times_ns=list(times[a:z]))
            s.values = {f: list(col[a:z]) for f, col in zip(fields, values)}
            out.append((g, s))
            a = z
        if single:  # in series id order so far
            out.sort(key=_first)
        return [s for _, s in out]

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
        if agg == "mean":
            finals = [lambda p: p[1] / p[0]] * nf
        elif agg == "count":
            finals = [lambda p: int(p[0])] * nf
        else:  # sum, min, max: (n, v); first, last: (t, v). Cast back to the contract's kind.
            kinds = [spec.fields[f].kind for f in fields]
            if agg == "sum":  # a sum of flags counts the true ones
                kinds = [int if k is bool else k for k in kinds]
            finals = [(lambda p, c=_KIND_CAST[k]: c(p[1])) for k in kinds]
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
