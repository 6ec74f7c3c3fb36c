"""A query as SQL: SQLite merges the partials of every piece (rollups, raw edges, the unrolled
raw tail) per (group, bucket), one answer row per bucket with every field (one statement per
field for first/last); Python only cuts the answer's columns into Series. Groups of several
series map series to group through temp.dcim_query_group."""

from __future__ import annotations

import bisect
import sqlite3

from dcim.metrics import Measurement
from dcim.store.base import Series
from dcim.store.sqlite.common import (
    _KIND_CAST,
    _LEVELS,
    _bucket_sql,
    _first,
    _load_groups,
    _q,
)
from dcim.store.sqlite.state import Piece
from dcim.store.timegrid import floor_ns


class SqlQuery:
    """One query() over its *pieces* ((source, s, e, min_rid): see Queries._plan_pieces)."""

    def __init__(self, conn: sqlite3.Connection, m: str, fields: list[str], agg: str, spec: Measurement,
                 group_by: tuple, group_of: dict, pieces: list[Piece], every_ns: int | None, start_ns: int,
                 sid_filter: str):
        self.conn, self.m, self.fields, self.agg, self.spec = conn, m, fields, agg, spec
        self.group_by, self.group_of, self.pieces = group_by, group_of, pieces
        self.every_ns, self.sid_filter = every_ns, sid_filter
        self.groups = sorted(set(group_of.values()))
        self.single = len(self.groups) == len(group_of)  # every group is one series: group by series_id
        self.bucket = _bucket_sql("ts", every_ns, start_ns)
        step_of = dict(_LEVELS)
        self.direct = (self.single and len(pieces) == 1 and pieces[0][0] != "raw"
                       and every_ns == step_of[pieces[0][0]])
        # Buckets of many rollup rows (days from hours): one query per bucket grouped by series
        # alone, which the (series_id, ts) key delivers in order; grouping by an expression of
        # ts as well would sort every row in a temp b-tree (~25 % more time for days from hours).
        self.per_bucket = (self.single and not self.direct and every_ns is not None and len(pieces) == 1
                           and pieces[0][0] != "raw" and every_ns >= 8 * step_of[pieces[0][0]]
                           and pieces[0][2] - pieces[0][1] <= 4096 * every_ns)

    def run(self) -> list[Series]:
        if not self.pieces:
            return []
        if not self.single:
            _load_groups(self.conn, self.group_of, self.groups)
        mean_cols: list[int]
        if self.agg in ("first", "last"):
            rows, mean_cols = self._first_last_rows(), []
        else:
            rows, mean_cols = self._aggregate_rows()
        if not self.single:
            self.conn.execute("DELETE FROM temp.dcim_query_group")
        return self._series(rows, mean_cols) if rows else []

    # ---------------------------------------------------------------- SQL pieces

    def _source_sql(self, source: str, s: int, e: int, min_rid: int | None, cols: str, cond: str,
                    b: str | None = None) -> str:
        where, hint = f"ts >= {int(s)} AND ts < {int(e)}", ""
        if min_rid is not None:  # only the unrolled tail: walk the rowid range
            where, hint = f"rid > {int(min_rid)} AND +ts >= {int(s)} AND +ts < {int(e)}", " NOT INDEXED"
        where += self.sid_filter.format(p="+" if min_rid is not None else "")
        if b is None:
            b = self.bucket if not self.direct else "ts"
        return f"SELECT series_id AS sid, {b} AS b, {cols} FROM {source}_{self.m}{hint} WHERE {where}{cond}"

    def _grouped(self, make) -> list:
        """Rows of make(pieces, bucket literal or None, GROUP BY terms), in (sid, bucket) order."""
        every = self.every_ns
        if not self.per_bucket or every is None:  # per_bucket implies every_ns
            return self.conn.execute(make(self.pieces, None, "1, 2")).fetchall()
        source, s, e, _ = self.pieces[0]
        out: list = []
        for lo in range(floor_ns(s, every), e, every):
            a, z = max(s, lo), min(e, lo + every)
            if a < z:
                out += self.conn.execute(make([(source, a, z, None)], str(lo), "1")).fetchall()
        out.sort(key=_first)  # stable: buckets stay in order within a series
        return out

    # ---------------------------------------------------------------- first / last

    def _first_last_rows(self) -> list:
        answers = [self._first_last_field(f) for f in self.fields]
        if len(self.fields) == 1:
            return answers[0]
        merged: dict[tuple, list] = {}  # buckets where any field has a value, None for the others
        for i, ans in enumerate(answers):
            for r in ans:
                slot = merged.get((r[0], r[1]))
                if slot is None:
                    slot = merged[(r[0], r[1])] = [None] * len(self.fields)
                slot[i] = r[2]
        return [(k[0], k[1], *v) for k, v in sorted(merged.items())]

    def _picked(self, f: str, k: int | None, source: str, s: int, e: int, min_rid: int | None,
                b: str | None = None) -> str:
        """A piece's (t, v[, p]) candidates for the first or last value of *f*."""
        qf, tag = _q(f), "" if k is None else f", {k} AS p"
        if source == "raw":
            return self._source_sql(source, s, e, min_rid, f"ts AS t, {qf} AS v{tag}", f" AND {qf} IS NOT NULL", b)
        tcol = _q(f + ("_fts" if self.agg == "first" else "_lts"))
        return self._source_sql(source, s, e, None, f"{tcol} AS t, {_q(f + '_' + self.agg)} AS v{tag}",
                                f" AND {_q(f + '_n')} > 0", b)

    def _first_last_field(self, f: str) -> list:
        agg = self.agg
        if self.direct:
            source, s, e, _ = self.pieces[0]
            sql = self._source_sql(source, s, e, None, _q(f + "_" + agg), f" AND {_q(f + '_n')} > 0") + " ORDER BY 1, 2"
            return self.conn.execute(sql).fetchall()
        if not self.single:
            # Ties as the Python merge breaks them: first, the earliest time, then the earlier
            # piece, then the lower series id; last, the latest of all three.
            parts = [self._picked(f, k, *piece) for k, piece in enumerate(self.pieces)]
            order = "ASC" if agg == "first" else "DESC"
            sql = (f"SELECT gid, b, v FROM (SELECT g.gid AS gid, u.b AS b, u.v AS v, row_number() OVER "
                   f"(PARTITION BY g.gid, u.b ORDER BY u.t {order}, u.p {order}, u.sid {order}) AS rn "
                   f"FROM ({' UNION ALL '.join(parts)}) AS u JOIN temp.dcim_query_group AS g "
                   f"ON g.sid = u.sid) WHERE rn = 1 ORDER BY 1, 2")
            return self.conn.execute(sql).fetchall()
        pick = "min" if agg == "first" else "max"

        def make(pcs: list[Piece], b: str | None, by: str) -> str:
            parts = [self._picked(f, None, *piece, b) for piece in pcs]
            if agg == "last":  # a tie (a row re-written after its raw row expired): the
                parts.reverse()  # unrolled tail reads first and wins, as in the Python merge
            # The one min()/max() makes SQLite take v from the row holding it.
            return f"SELECT sid, b, v, {pick}(t) FROM ({' UNION ALL '.join(parts)}) GROUP BY {by} ORDER BY {by}"

        return self._grouped(make)

    # ---------------------------------------------------------------- mean, sum, min, max, count

    def _finals(self) -> tuple[list[str], list[str], list[int]]:
        """Per field its final SQL expression(s), its HAVING term, and the fields whose mean is
        divided in Python (int / int: true division, rounded once)."""
        finals, having, mean_cols = [], [], []
        agg = self.agg
        for i, f in enumerate(self.fields):
            n, v = (f"n{i}", f"v{i}") if self.direct else (f"sum(n{i})", f"{'sum' if agg in ('mean', 'sum') else agg}(v{i})")
            if agg == "mean" and self.spec.fields[f].kind is not float:
                mean_cols.append(i)
                finals += [f"CASE WHEN {n} > 0 THEN {n} END", f"CASE WHEN {n} > 0 THEN {v} END"]
            elif agg == "mean":
                finals.append(f"CASE WHEN {n} > 0 THEN {v} / {n} END")
            elif agg == "count":
                finals.append(f"CASE WHEN {n} > 0 THEN {n} END")
            else:
                finals.append(f"CASE WHEN {n} > 0 THEN {v} END")
            having.append(f"{n} > 0")
        return finals, having, mean_cols

    def _union(self, pcs, b: str | None = None) -> str:
        parts = []
        part = "sum" if self.agg in ("mean", "sum", "count") else self.agg
        for source, s, e, min_rid in pcs:
            cols = []
            for i, f in enumerate(self.fields):
                if source == "raw":
                    cols += [f"({_q(f)} IS NOT NULL) AS n{i}", f"{_q(f)} AS v{i}"]
                else:
                    cols += [f"{_q(f + '_n')} AS n{i}", f"{_q(f + '_' + part)} AS v{i}"]
            parts.append(self._source_sql(source, s, e, min_rid, ", ".join(cols), "", b))
        return " UNION ALL ".join(parts)

    def _aggregate_rows(self) -> tuple[list, list[int]]:
        finals, having, mean_cols = self._finals()
        sel, cond = ", ".join(finals), " OR ".join(having)
        if self.direct:
            sql = f"SELECT sid, b, {sel} FROM ({self._union(self.pieces)}) WHERE {cond} ORDER BY 1, 2"
        elif self.single:
            return self._grouped(lambda pcs, b, by: f"SELECT sid, b, {sel} FROM ({self._union(pcs, b)}) "
                                                    f"GROUP BY {by} HAVING {cond} ORDER BY {by}"), mean_cols
        else:
            sql = (f"SELECT g.gid, u.b, {sel} FROM ({self._union(self.pieces)}) AS u "
                   f"JOIN temp.dcim_query_group AS g ON g.sid = u.sid GROUP BY 1, 2 HAVING {cond} ORDER BY 1, 2")
        return self.conn.execute(sql).fetchall(), mean_cols

    # ---------------------------------------------------------------- answer → Series

    def _columns(self, cols: list, mean_cols) -> list[list]:
        """Each field's values from the answer's columns, cast to what the aggregate returns."""
        values: list = []
        j = 2
        for i, f in enumerate(self.fields):
            if i in mean_cols:
                col = [None if c is None else v / c for c, v in zip(cols[j], cols[j + 1])]
                j += 2
            else:
                col = cols[j]
                j += 1
                want = float if self.agg == "mean" else int if self.agg == "count" else self.spec.fields[f].kind
                if self.agg == "sum" and want is bool:
                    want = int  # a sum of flags counts the true ones
                if not {type(None), want}.issuperset(map(type, col)):
                    cast = _KIND_CAST[want]
                    col = [None if v is None else cast(v) for v in col]
            values.append(col)
        return values

    def _series(self, rows: list, mean_cols) -> list[Series]:
        cols = list(zip(*rows))
        del rows
        keys, times = cols[0], cols[1]
        values = self._columns(cols, mean_cols)
        label = (lambda k: self.group_of[k]) if self.single else self.groups.__getitem__
        out = []
        a, n = 0, len(keys)
        while a < n:
            k = keys[a]
            z = bisect.bisect_right(keys, k, a)
            g = label(k)
            s = Series(tags=dict(zip(self.group_by, g)), times_ns=list(times[a:z]))
            s.values = {f: list(col[a:z]) for f, col in zip(self.fields, values)}
            out.append((g, s))
            a = z
        if self.single:  # in series id order so far
            out.sort(key=_first)
        return [s for _, s in out]
