"""Month rows (``month_<m>``): kept by maintain() in the store's zone, read for whole months."""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

import dcim.store.counters as counters
import dcim.store.month_figures as month_figures
from dcim.metrics import MEASUREMENTS
from dcim.store.base import (
    BucketStats,
    Where,
    check_query,
)
from dcim.store.sqlite.common import _raw_waits, _set_meta
from dcim.store.sqlite.state import SqliteState
from dcim.store.timegrid import DAY_NS as NS_PER_DAY
from dcim.store.timegrid import HOUR_NS

log = logging.getLogger(__name__)


class MonthRows(SqliteState):
    """Month rows (``month_<m>``): kept by maintain() in the store's zone, read for whole months."""

    def _maintain_months(self, m: str, now_ns: int, touched: list[tuple[int, int]]) -> None:
        """Keep ``month_<m>`` in the store's zone (see the layout above): the months over since
        the last run (all series; on the first run every month from the oldest data's), and
        again the months before those of the series whose *touched* (series, UTC day) pairs
        (the raw rows just rolled up) lie in them. Nothing for a zone whose months do not start
        on a whole UTC hour: reads could not use them.

        Computed on a connection of its own in a read transaction (at 32,000 GPUs a month is
        ~10 s of reading), so writers wait only for the rows' insert; one run at a time, so an
        older snapshot never overwrites a newer one's rows."""
        spec = MEASUREMENTS[m]
        zone = self.timezone
        horizon = month_figures.month_start(zone, now_ns)  # the months before it are over
        if not any(month_figures.month_fields(spec)) or horizon % HOUR_NS:
            return
        key = f"mo_to:{m}:{zone}"
        with self._months_lock:
            conn = self._month_reader()
            shared = conn is self._conn
            if shared:
                self._lock.acquire()
            try:
                conn.execute("BEGIN")
                try:
                    rows, done = self._month_rows_due(conn, m, key, horizon, touched)
                finally:
                    conn.execute("COMMIT")
            finally:
                if shared:
                    self._lock.release()
            if rows or (done is not None and horizon > done):
                with self._write_txn() as wconn:
                    wconn.executemany(f"INSERT OR REPLACE INTO month_{m} VALUES ({', '.join('?' * 12)})", rows)
                    if done is not None and horizon > done:
                        _set_meta(wconn, key, horizon)

    def _month_reader(self) -> sqlite3.Connection:
        """The month upkeep's connection (read-only; the store's own for an in-memory file)."""
        if self._month_conn is None:
            if self.path in (":memory:", "") or self.path.startswith("file::memory:"):
                self._month_conn = self._conn
            else:
                self._month_conn = sqlite3.connect(Path(self.path).resolve().as_uri() + "?mode=ro", uri=True,
                                                   isolation_level=None, check_same_thread=False)
                self._month_conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        return self._month_conn

    def _month_rows_due(self, conn, m: str, key: str, horizon: int,
                        touched: list[tuple[int, int]]) -> tuple[list[tuple], int | None]:
        """(month rows to write, the end of the months written before: None if none ever were
        and there is no data) as of *conn*'s snapshot; see _maintain_months."""
        zone = self.timezone
        present = self._carried(conn, m)
        hour_fields, counter_fields = ([f for f in fs if f in present]
                                       for fs in month_figures.month_fields(MEASUREMENTS[m]))
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        done = meta.get(key)
        rows: list[tuple] = []
        if not hour_fields and not counter_fields:
            return rows, done
        if done is not None and touched:  # late points in months already written
            redo: dict[int, set[int]] = {}
            month_of: dict[int, int] = {}
            for sid, day in touched:
                for t in (day, day + NS_PER_DAY - 1):  # a UTC day may hold the start of a month
                    mo = month_of.get(t)
                    if mo is None:
                        mo = month_of[t] = month_figures.month_start(zone, t)
                    if mo < done:
                        redo.setdefault(mo, set()).add(sid)
            for mo, redo_sids in sorted(redo.items()):
                rows += self._month_rows(conn, m, hour_fields, counter_fields, mo, sorted(redo_sids), meta)
        if done is None:
            # The oldest hour any series holds: an index seek per series, not a scan.
            oldest = conn.execute(f"SELECT min((SELECT min(ts) FROM rollup_hour_{m} WHERE series_id = s.id)) FROM series AS s "
                                  f"WHERE s.measurement = ?", (m,)).fetchone()[0]
            if oldest is None:
                return rows, None
            done = month_figures.month_start(zone, oldest)
        sids = [sid for (sid,) in conn.execute("SELECT id FROM series WHERE measurement = ? ORDER BY id", (m,))]
        for mo in month_figures.month_starts(zone, done, horizon - 1):
            rows += self._month_rows(conn, m, hour_fields, counter_fields, mo, sids, meta)
        return rows, done

    def _month_rows(self, conn, m: str, hour_fields: list[str], counter_fields: list[str], month_ns: int,
                    sids: list[int], meta: dict) -> list[tuple]:
        """The month rows of the month starting at *month_ns* for series *sids*, computed from the
        rollups as counter_increase and bucket_stats read that month."""
        if not sids:
            return []
        zone = self.timezone
        end = month_figures.month_starts(zone, month_ns + 1, month_ns + 32 * NS_PER_DAY)[0]
        sid_filter = f" AND {{p}}series_id IN ({','.join(map(str, sids))})"
        whole = [(a, b) for src, a, b, tail in self._plan_pieces(conn, m, month_ns, end, NS_PER_DAY, meta)
                 if src == "rollup_day" and tail is None]
        a, b = whole[0] if len(whole) == 1 else (end, end)
        rows: list[tuple] = []
        for f in counter_fields:
            for sid, spans in self._counter_spans(conn, m, f, month_ns, end, a, b, sid_filter).items():
                increase, resets = counters.chain(spans)
                rows.append((zone, f, sid, month_ns, None, None, None, None, spans[0].first, spans[-1].last,
                             increase, resets))
        pieces = self._plan_pieces(conn, m, month_ns, end, None, meta)
        identity = {sid: sid for sid in sids}
        for f in hour_fields:
            means, days = self._series_means(m, f, pieces, HOUR_NS, month_ns, sid_filter)
            for sid, st in self._series_stats(conn, means, days, identity, sids, "sum").items():
                rows.append((zone, f, sid, month_ns, st.buckets, st.total, st.peak, st.peak_ns, None, None, None,
                             None))
        return rows

    def _month_results(self, conn, m: str, start_ns: int, end_ns: int, counter_fields: list[str],
                       hour_fields: list[str], group_of: dict[int, tuple], sid_filter: str, meta: dict,
                       combine: str) -> tuple[dict[str, dict], dict[str, dict]] | None:
        """``Store.period_figures`` of [start_ns, end_ns) from the month rows, for the series of
        *group_of* (their groups): ({counter: {group: (increase, resets)}}, {hourly field:
        {group: BucketStats}}). None unless the range is whole months of the store's zone (on
        whole hours) that maintain() wrote, with no raw row there waiting for it, and every
        group one series (hourly fields: or *combine* ``each``)."""
        zone = self.timezone
        spec = MEASUREMENTS[m]
        hourly, counted = month_figures.month_fields(spec)
        done = meta.get(f"mo_to:{m}:{zone}")
        if done is None or end_ns > done or any(f not in counted for f in counter_fields) or \
                any(f not in hourly for f in hour_fields) or not (counter_fields or hour_fields):
            return None
        starts = month_figures.month_starts(zone, start_ns, end_ns)
        if len(starts) < 2 or starts[0] != start_ns or starts[-1] != end_ns or any(t % HOUR_NS for t in starts) \
                or _raw_waits(conn, m, meta, start_ns, end_ns):
            return None
        fields = counter_fields + hour_fields
        rows = conn.execute(f"SELECT field, series_id, n, sum, max, maxts, first, last, inc, resets FROM month_{m} "
                            f"WHERE zone = ? AND field IN ({', '.join('?' * len(fields))}) AND ts >= ? AND ts < ?"
                            f"{sid_filter.format(p='')} ORDER BY field, series_id, ts",
                            (zone, *fields, start_ns, end_ns))
        series = ((f, group_of[sid], [counters.CounterSpan(r[6], r[7], r[8], r[9]) for r in months]
                   if f in counter_fields else [BucketStats(r[2], r[3], r[4], r[5]) for r in months])
                  for (f, sid), months in groupby(rows, key=operator.itemgetter(0, 1)))
        return month_figures.per_group(series, counter_fields, hour_fields, combine)

    def period_figures(self, measurement: str, start_ns: int, end_ns: int, *, counters: Sequence[str] = (),
                       hourly: Sequence[str] = (), group_by: Sequence[str] = (), where: Where | None = None
                       ) -> tuple[dict[str, dict[tuple, tuple[float, int]]], dict[str, dict[tuple, BucketStats]]]:
        """``Store.period_figures``: over whole months of the store's zone, one read of the month
        rows for every field; else a call per field."""
        for f in (*counters, *hourly):
            check_query(measurement, [f], "first", group_by, where)
        start_ns, end_ns = int(start_ns), int(end_ns)
        if start_ns < end_ns:
            with self._read_txn() as conn:
                group_of, _, sid_filter, meta = self._pieces(conn, measurement, start_ns, end_ns, None,
                                                             tuple(group_by), where)
                if group_of:
                    found = self._month_results(conn, measurement, start_ns, end_ns, list(counters), list(hourly),
                                                group_of, sid_filter, meta, "sum")
                    if found is not None:
                        return found
        return super().period_figures(measurement, start_ns, end_ns, counters=counters, hourly=hourly,
                                      group_by=group_by, where=where)
