"""latest() and gpu_summary(): each series' newest raw row."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3

from dcim.metrics import MEASUREMENTS, Point
from dcim.store.base import (
    Where,
    check_tags,
    matches,
    measurement_spec,
)
from dcim.store.gpu_summary import CAP_MARGIN_W, GpuSummary
from dcim.store.sqlite.common import _q, _since
from dcim.store.sqlite.state import SqliteState

log = logging.getLogger(__name__)


class LatestReads(SqliteState):
    """latest() and gpu_summary(): each series' newest raw row."""

    def latest(self, measurement: str, *, where: Where | None = None,
               since_ns: int | None = None) -> list[Point]:
        """One query per call: per series, its newest raw row at or after *since_ns* (an index
        seek on (series_id, ts)); a field that row lacks but the series carries takes its newest
        non-null value (a backward walk of that series' index, done by SQLite). Points come in
        series id order."""
        spec = measurement_spec(measurement)
        check_tags(spec, list(where or {}))
        since = _since(since_ns)
        with self._read_txn() as conn:
            self._series_of(measurement)
            rows_of = self._series_rows
            sids = sorted(self._sids_of.get(measurement, ()))
            if where:
                sids = [sid for sid in sids if matches(rows_of[sid][1], where)]
            return self._latest_points(conn, measurement, sids, since, lambda sid: rows_of[sid][1])

    def _latest_points(self, conn: sqlite3.Connection, measurement: str, sids: list[int], since: int,
                       tags_of) -> list[Point]:
        """latest()'s Points for the series *sids*; *tags_of(sid)* gives a series' tags."""
        out: list[Point] = []
        if not sids:
            return out
        spec = MEASUREMENTS[measurement]
        cols = self._carried(conn, measurement)
        bools = [f for f in cols if spec.fields[f].kind is bool]
        nc = len(cols)
        append = out.append
        # Rows are (values..., series_id, ts): zip(cols, row) pairs the values only.
        for row in conn.execute(self._latest_sql(measurement, cols), (since, json.dumps(sids))):
            if None in row:  # the common case has every carried field
                fields = {f: v for f, v in zip(cols, row) if v is not None}
            else:
                fields = dict(zip(cols, row))
            for f in bools:
                if f in fields:
                    fields[f] = bool(fields[f])
            append(Point(measurement, dict(tags_of(row[nc])), fields, row[nc + 1]))
        return out

    def gpu_summary(self, throttle_mask: int, *, where: Where | None = None,
                    since_ns: int | None = None) -> GpuSummary:
        """``summarize_gpus`` computed by SQLite over each GPU's latest row (the same row and
        look-back as latest()), so a fleet of 32,000 GPUs costs one aggregate row, not 32,000
        Points. Only the flagged GPUs come back as Points."""
        check_tags(MEASUREMENTS["gpu"], list(where or {}))
        since = _since(since_ns)
        out = GpuSummary()
        with self._read_txn() as conn:
            cols = self._carried(conn, "gpu")
            if not cols:
                return out
            sids: list[int] = []
            if where:  # a subset: its ids from the series map; else every GPU series, in SQL
                self._series_of("gpu")
                rows_of = self._series_rows
                sids = [sid for sid in sorted(self._sids_of.get("gpu", ())) if matches(rows_of[sid][1], where)]
                if not sids:
                    return out

            def col(f: str) -> str:
                return _q(f) if f in cols else "NULL"

            pw, lim, dflt, tr = (col(f) for f in ("power_w", "power_limit_w", "power_limit_default_w",
                                                  "throttle_reasons"))
            capped = f"{lim} < {dflt} - {CAP_MARGIN_W!r}"
            sql = (f"WITH l AS ({self._latest_sql('gpu', cols, all_series=not where)}) "
                   f"SELECT count(*), total({pw}), count(*) FILTER (WHERE {capped}), "
                   f"total({lim}) FILTER (WHERE {capped}), total({dflt}) FILTER (WHERE {capped}), max(ts), "
                   f"json_group_array(series_id) FILTER (WHERE ({tr} & ?3) != 0) FROM l")
            n, power, ncap, cap_w, dflt_w, newest, flagged = conn.execute(
                sql, (since, json.dumps(sids), int(throttle_mask))).fetchone()
            out.count, out.power_w, out.capped = n, power, ncap
            out.capped_limit_w, out.capped_default_w, out.newest_ns = cap_w, dflt_w, newest
            flagged_sids = sorted(json.loads(flagged))
            if flagged_sids:
                tags = {sid: json.loads(t) for sid, t in conn.execute(
                    "SELECT id, tags FROM series WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(flagged_sids),))}
                out.flagged = self._latest_points(conn, "gpu", flagged_sids, since, tags.__getitem__)
        return out

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _latest_sql(m: str, cols: tuple[str, ...], all_series: bool = False) -> str:
        """latest()'s query: ?1 = since_ns, ?2 = JSON array of series ids (the outer loop, so
        the answer comes in that order), or, with *all_series*, every series of *m* (no ?2).
        Columns are named after the fields, then series_id and ts."""
        raw = f"raw_{m}"
        sel = []
        for f in cols:
            qf = _q(f)
            lit = "'" + f.replace("'", "''") + "'"
            # coalesce stops at the first non-null argument: the look-back runs only for a
            # field the newest row lacks, and only if the series ever carried it.
            sel.append(f"coalesce(r.{qf}, CASE WHEN EXISTS (SELECT 1 FROM series_field AS sf WHERE "
                       f"sf.series_id = r.series_id AND sf.field = {lit}) THEN (SELECT x.{qf} FROM {raw} AS x "
                       f"WHERE x.series_id = r.series_id AND x.ts >= ?1 AND x.{qf} IS NOT NULL "
                       f"ORDER BY x.ts DESC LIMIT 1) END) AS {qf}")
        if all_series:
            mlit = "'" + m.replace("'", "''") + "'"
            source, sid, cond = "series AS s", "s.id", f" WHERE s.measurement = {mlit}"
        else:
            source, sid, cond = "json_each(?2) AS s", "s.value", ""
        return (f"SELECT {''.join(e + ', ' for e in sel)}r.series_id AS series_id, r.ts AS ts FROM {source} "
                f"CROSS JOIN {raw} AS r ON r.rid = (SELECT y.rid FROM {raw} AS y WHERE y.series_id = {sid} "
                f"AND y.ts >= ?1 ORDER BY y.ts DESC LIMIT 1){cond}")

    @staticmethod
    def _carried(conn: sqlite3.Connection, m: str) -> tuple[str, ...]:
        """Fields some series of *m* ever carried, in the metric contract's order."""
        have = {f for (f,) in conn.execute("SELECT field FROM measurement_field WHERE measurement = ?", (m,))}
        return tuple(f for f in MEASUREMENTS[m].fields if f in have)
