"""maintain(): raw rows merged into the minute, hour and day rollups and their summaries;
retention."""

from __future__ import annotations

import functools
import logging
import sqlite3
import time

from dcim.metrics import MEASUREMENTS
from dcim.store.base import (
    has_group_rollups,
)
from dcim.store.sqlite.common import (
    _INT_MIN,
    _LEVELS,
    _PARTS,
    GROUP_TAGS,
    MAINTAIN_EVERY_S,
    _bucket_sql,
    _counter_inc_sql,
    _q,
    _set_meta,
    _touched_days_sql,
)
from dcim.store.sqlite.state import SqliteState
from dcim.store.timegrid import DAY_NS as NS_PER_DAY
from dcim.store.timegrid import HOUR_NS

log = logging.getLogger(__name__)


class Rollups(SqliteState):
    """maintain(): raw rows merged into the minute, hour and day rollups and their summaries;"""

    def maintain(self, now_ns: int | None = None) -> None:
        """Merge raw rows not yet rolled up into the 1 m and 1 h rollups, then delete raw rows
        older than the raw retention and 1 m rows older than theirs (1 h rows are kept)."""
        now_ns = time.time_ns() if now_ns is None else int(now_ns)
        self._next_maintain = time.monotonic() + MAINTAIN_EVERY_S
        touched_of: dict[str, list[tuple[int, int]]] = {}
        with self._write_txn() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            for m in MEASUREMENTS.values():
                raw = f"raw_{m.name}"
                rolled = meta.get(f"rolled:{m.name}", 0)
                top = conn.execute(f"SELECT max(rid) FROM {raw}").fetchone()[0] or 0
                if top > rolled:
                    # Only fields some series carries: a GPU row holds ~6 of 20 fields.
                    present = self._carried(conn, m.name)
                    # Rows older than the 1 m retention skip rollup_minute: retention would delete them below
                    # (a backfill of past months writes only what it keeps).
                    cutoff_1m = now_ns - self.rollup_1m_retention_ns
                    for level, step in _LEVELS:
                        if present:
                            conn.execute(self._rollup_sql(m.name, level, step, present),
                                         (rolled, top, cutoff_1m if level == "rollup_minute" else _INT_MIN))
                    for f in present:  # after rollup_hour took the new rows: the days they touched
                        if m.fields[f].kind is not str:
                            conn.execute(self._hour_stats_sql(m.name, f), (rolled, top))
                        if m.fields[f].counter:  # after rollup_day: the days, then who precedes them
                            conn.execute(self._counter_days_update_sql(m.name, f), (rolled, top))
                            conn.execute(self._counter_prev_update_sql(m.name, f), (rolled, top))
                    touched = conn.execute(_touched_days_sql(m.name), (rolled, top)).fetchall()  # for the months
                    grouped = [f for f in present if m.fields[f].kind is not str and has_group_rollups(m, f)]
                    tags = [t for t in GROUP_TAGS if t in m.tags]
                    if grouped and tags:  # after rollup_hour: the group-hours, then the group-days, touched
                        self._load_members(conn, m.name, tags)
                        for f in grouped:
                            for t in tags:
                                conn.execute(self._group_hours_sql(m.name, f, t), (rolled, top))
                                conn.execute(self._group_days_sql(m.name, f, t), (rolled, top))
                    touched_of[m.name] = touched
                    rolled = top
                    _set_meta(conn, f"rolled:{m.name}", top)
                self._apply_retention(conn, m.name, meta, now_ns)
                # rid is a plain rowid: if retention deleted the highest one, SQLite hands it out
                # again. Lower the watermark so new rows always lie above it (all below are rolled).
                top = conn.execute(f"SELECT max(rid) FROM {raw}").fetchone()[0] or 0
                if top < rolled:
                    _set_meta(conn, f"rolled:{m.name}", top)
        for name in MEASUREMENTS:
            self._maintain_months(name, now_ns, touched_of.get(name, []))

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _hour_stats_sql(m: str, field: str) -> str:
        """INSERT OR REPLACE recomputing *field*'s daily hourly summaries (``day_hour_stats_<m>``) from rollup_hour,
        for the (series, day) pairs of the raw rows with rid in (?1, ?2]."""
        n, mean = f"h.{_q(field + '_n')}", f"(1.0 * h.{_q(field + '_sum')} / h.{_q(field + '_n')})"
        # The one max() makes SQLite take the bare h.ts from the row holding it; rows come in
        # (series_id, ts) order, so that is the earliest hour of equal means.
        return (f"INSERT OR REPLACE INTO day_hour_stats_{m} (field, series_id, ts, n, sum, max, maxts) "
                f"SELECT '{field}', d.sid, d.day, count(*), total({mean}), max({mean}), h.ts "
                f"FROM ({_touched_days_sql(m)}) AS d JOIN rollup_hour_{m} AS h ON h.series_id = d.sid AND h.ts >= d.day "
                f"AND h.ts < d.day + {NS_PER_DAY} WHERE {n} > 0 GROUP BY d.sid, d.day")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _counter_days_update_sql(m: str, field: str) -> str:
        """INSERT OR REPLACE recomputing the counter_day rows of counter *field* from rollup_day, for the
        (series, day) pairs of the raw rows with rid in (?1, ?2]; prev and pts are left for
        _counter_prev_update_sql."""
        n, first, last, top = (f"r.{_q(field + '_' + p)}" for p in ("n", "first", "last", "max"))
        return (f"INSERT OR REPLACE INTO counter_day_{m} (field, series_id, ts, first, last, inc, resets, prev, pts) "
                f"SELECT '{field}', r.series_id, r.ts, {first}, {last}, {_counter_inc_sql(first, last, top)}, "
                f"{last} < {top}, NULL, NULL "
                f"FROM ({_touched_days_sql(m)}) AS d JOIN rollup_day_{m} AS r ON r.series_id = d.sid AND r.ts = d.day "
                f"WHERE {n} > 0")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _counter_prev_update_sql(m: str, field: str) -> str:
        """UPDATE setting prev and pts (the last value and day of the series' previous counter_day row)
        on the counter_day rows of the days the raw rows with rid in (?1, ?2] touched, and on the row
        after each: a day's last value moved, or a day came in between."""
        k = f"counter_day_{m}"
        return (f"WITH d AS ({_touched_days_sql(m)}), t AS (SELECT sid, day FROM d UNION SELECT d.sid, "
                f"(SELECT min(n.ts) FROM {k} "
                f"AS n WHERE n.field = '{field}' AND n.series_id = d.sid AND n.ts > d.day) FROM d) "
                f"UPDATE {k} SET (prev, pts) = (SELECT p.last, p.ts FROM {k} AS p WHERE p.field = {k}.field "
                f"AND p.series_id = {k}.series_id AND p.ts < {k}.ts ORDER BY p.ts DESC LIMIT 1) "
                f"WHERE field = '{field}' AND (series_id, ts) IN (SELECT sid, day FROM t)")

    def _load_members(self, conn: sqlite3.Connection, m: str, tags: list[str]) -> None:
        """Fill temp.dcim_member: per grouping tag, each series of *m* and its value of the tag
        ('' where it has none, as group_by reads it)."""
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS dcim_member (tag TEXT NOT NULL, value TEXT NOT NULL, "
                     "sid INTEGER NOT NULL, PRIMARY KEY (tag, value, sid)) WITHOUT ROWID")
        conn.execute("CREATE INDEX IF NOT EXISTS temp.dcim_member_sid ON dcim_member (tag, sid)")
        conn.execute("DELETE FROM temp.dcim_member")
        self._refresh_series()
        rows = self._series_rows
        conn.executemany("INSERT INTO temp.dcim_member VALUES (?, ?, ?)",
                         [(t, rows[sid][1].get(t, ""), sid) for sid in self._sids_of.get(m, ()) for t in tags])

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _group_hours_sql(m: str, field: str, tag: str) -> str:
        """INSERT OR REPLACE recomputing group_hour rows of *field* per value of *tag* from rollup_hour, for the
        group-hours the raw rows with rid in (?1, ?2] touched (temp.dcim_member loaded)."""
        n, mean = f"h.{_q(field + '_n')}", f"(1.0 * h.{_q(field + '_sum')} / h.{_q(field + '_n')})"
        return (f"INSERT OR REPLACE INTO group_hour_{m} (field, tag, value, ts, n, sum, top) "
                f"SELECT '{field}', '{tag}', d.value, d.hr, count(*), total({mean}), max({mean}) "
                f"FROM (SELECT DISTINCT mm.value AS value, {_bucket_sql('r.ts', HOUR_NS, 0)} AS hr FROM raw_{m} AS r "
                f"JOIN temp.dcim_member AS mm ON mm.tag = '{tag}' AND mm.sid = r.series_id "
                f"WHERE r.rid > ?1 AND r.rid <= ?2) AS d "
                f"JOIN temp.dcim_member AS g ON g.tag = '{tag}' AND g.value = d.value "
                f"JOIN rollup_hour_{m} AS h ON h.series_id = g.sid AND h.ts = d.hr WHERE {n} > 0 GROUP BY d.value, d.hr")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _group_days_sql(m: str, field: str, tag: str) -> str:
        """INSERT OR REPLACE recomputing group_day rows of *field* per value of *tag* from group_hour, for the
        group-days the raw rows with rid in (?1, ?2] touched (temp.dcim_member loaded)."""
        # Each max() in a SELECT of its own: SQLite then takes the bare g.ts from the row holding
        # it, and group_hour rows come in (value, ts) order, so that is the earliest hour of equal ones.
        days = (f"SELECT DISTINCT mm.value AS value, {_bucket_sql('r.ts', NS_PER_DAY, 0)} AS day FROM raw_{m} AS r "
                f"JOIN temp.dcim_member AS mm ON mm.tag = '{tag}' AND mm.sid = r.series_id "
                f"WHERE r.rid > ?1 AND r.rid <= ?2")
        hours = (f"FROM days AS d JOIN group_hour_{m} AS g ON g.field = '{field}' AND g.tag = '{tag}' AND g.value = d.value "
                 f"AND g.ts >= d.day AND g.ts < d.day + {NS_PER_DAY} GROUP BY d.value, d.day")
        return (f"WITH days AS ({days}) "
                f"INSERT OR REPLACE INTO group_day_{m} (field, tag, value, ts, hours, n, sum, max, maxts, top, topts) "
                f"SELECT '{field}', '{tag}', a.value, a.day, a.hours, a.n, a.sum, a.mx, a.mxts, b.top, b.topts FROM "
                f"(SELECT d.value AS value, d.day AS day, count(*) AS hours, sum(g.n) AS n, total(g.sum) AS sum, "
                f"max(g.sum) AS mx, g.ts AS mxts {hours}) AS a JOIN "
                f"(SELECT d.value AS value, d.day AS day, max(g.top) AS top, g.ts AS topts {hours}) AS b "
                f"ON b.value = a.value AND b.day = a.day")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _rollup_sql(m: str, level: str, step_ns: int, fields: tuple[str, ...]) -> str:
        """INSERT ... SELECT merging raw rows with rid in (?, ?] and ts >= ? into the *level*
        rollup, for *fields* (columns of other fields stay NULL: no data)."""
        raw = f"raw_{m}"
        inner, outer, cols, upd = [], [], [], []
        for i, f in enumerate(fields):
            qf = _q(f)
            c = {p: _q(f"{f}_{p}") for p in _PARTS}
            a = {p: f"a{i}_{p}" for p in _PARTS}  # aliases in the grouped subquery
            # An int field's sum in REAL: SQLite's sum() raises "integer overflow" past 2**63, which six
            # workload points of one hour reach (start_ns ~1.8e18), and maintain() then failed for good.
            total = f"sum({qf} * 1.0)" if MEASUREMENTS[m].fields[f].kind is int else f"sum({qf})"
            inner += [f"count({qf}) AS {a['n']}", f"{total} AS {a['sum']}", f"min({qf}) AS {a['min']}",
                      f"max({qf}) AS {a['max']}", f"min(CASE WHEN {qf} IS NOT NULL THEN ts END) AS {a['fts']}",
                      f"max(CASE WHEN {qf} IS NOT NULL THEN ts END) AS {a['lts']}"]

            # Value at the first/last time: when min == max any row will do, else look it up by key.
            def at(ts_alias: str, a: dict = a, qf: str = qf) -> str:  # called in this iteration
                return (f"CASE WHEN g.{a['min']} IS g.{a['max']} THEN g.{a['min']} ELSE (SELECT x.{qf} FROM {raw} "
                        f"AS x WHERE x.series_id = g.series_id AND x.ts = g.{ts_alias}) END")

            outer += [f"g.{a['n']}", f"g.{a['sum']}", f"g.{a['min']}", f"g.{a['max']}",
                      f"g.{a['fts']}", at(a['fts']), f"g.{a['lts']}", at(a['lts'])]
            cols += [c[p] for p in _PARTS]
            e = {p: f"excluded.{c[p]}" for p in _PARTS}
            take_first = f"{c['fts']} IS NULL OR {e['fts']} < {c['fts']}"
            take_last = f"{c['lts']} IS NULL OR {e['lts']} >= {c['lts']}"
            upd += [
                f"{c['n']} = coalesce({c['n']}, 0) + {e['n']}",  # NULL: field absent until now
                f"{c['sum']} = CASE WHEN {c['sum']} IS NULL THEN {e['sum']} WHEN {e['sum']} IS NULL "
                f"THEN {c['sum']} ELSE {c['sum']} + {e['sum']} END",
                # two-argument min/max return NULL if either is NULL, hence the coalesce
                f"{c['min']} = coalesce(min({c['min']}, {e['min']}), {c['min']}, {e['min']})",
                f"{c['max']} = coalesce(max({c['max']}, {e['max']}), {c['max']}, {e['max']})",
                f"{c['fts']} = CASE WHEN {take_first} THEN {e['fts']} ELSE {c['fts']} END",
                f"{c['first']} = CASE WHEN {take_first} THEN {e['first']} ELSE {c['first']} END",
                f"{c['lts']} = CASE WHEN {take_last} THEN {e['lts']} ELSE {c['lts']} END",
                f"{c['last']} = CASE WHEN {take_last} THEN {e['last']} ELSE {c['last']} END",
            ]
        bucket = _bucket_sql("ts", step_ns, 0)
        # SET expressions all see the row as it was before the update (SQL semantics), so the
        # fts/first pair compares against the old fts consistently.
        return (f"INSERT INTO {level}_{m} (series_id, ts, {', '.join(cols)}) "
                f"SELECT g.series_id, g.b, {', '.join(outer)} FROM "
                f"(SELECT series_id, {bucket} AS b, {', '.join(inner)} FROM {raw} "
                f"WHERE rid > ? AND rid <= ? AND ts >= ? GROUP BY series_id, b) AS g WHERE true "
                f"ON CONFLICT (series_id, ts) DO UPDATE SET {', '.join(upd)}")

    def _apply_retention(self, conn: sqlite3.Connection, m: str, meta: dict, now_ns: int) -> None:
        self._refresh_series()
        sids = [sid for sid, (sm, _) in self._series_rows.items() if sm == m]
        for table, keep_ns, key in ((f"raw_{m}", self.raw_retention_ns, f"horizon_raw:{m}"),
                                    (f"rollup_minute_{m}", self.rollup_1m_retention_ns, f"horizon_1m:{m}")):
            cutoff = now_ns - keep_ns
            # Per series so that the (series_id, ts) index does the work, not a table scan.
            conn.executemany(f"DELETE FROM {table} WHERE series_id = ? AND ts < ?", [(s, cutoff) for s in sids])
            if cutoff > meta.get(key, -(1 << 62)):
                _set_meta(conn, key, cutoff)
