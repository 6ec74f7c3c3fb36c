"""The series table cached in memory: ids by tags, tags by id, refreshed incrementally."""

from __future__ import annotations

import json
import logging

from dcim.store.base import StoreError
from dcim.store.sqlite.state import SqliteState

log = logging.getLogger(__name__)


class SeriesCache(SqliteState):
    """The series table cached in memory: ids by tags, tags by id, refreshed incrementally."""

    def _refresh_series(self) -> None:
        """Load series created since the last look (by this or another process)."""
        rows = self._conn.execute("SELECT id, measurement, tags FROM series WHERE id > ? ORDER BY id",
                                  (self._series_max_id,)).fetchall()
        if not rows:
            return
        # One json.loads for all of them: a reader's first look loads ~50k series.
        tags_of = json.loads("[" + ",".join([r[2] for r in rows]) + "]")
        by_key, by_id, sids_of = self._series_by_key, self._series_rows, self._sids_of
        for (sid, m, tags_json), tags in zip(rows, tags_of):
            by_key[(m, tags_json)] = sid
            by_id[sid] = (m, tags)
            sids = sids_of.get(m)
            if sids is None:
                sids = sids_of[m] = []
            sids.append(sid)
        self._series_max_id = max(self._series_max_id, rows[-1][0])

    def _series_of(self, m: str) -> None:
        """Load the series of *m* created since the last look. A writer loads every measurement's
        (it needs them all to find ids); a read-only store loads only the measurements it is asked
        about, so opening one costs nothing until a query, and a query of *m* parses only *m*'s tags."""
        if not self.readonly:
            self._refresh_series()
            return
        last = self._series_max_of.get(m, 0)
        # No ORDER BY: the (measurement, tags) index finds the rows, sorting them by id would cost
        # a temp b-tree (~40 % more); callers sort the ids they use.
        rows = self._conn.execute("SELECT id, tags FROM series WHERE measurement = ? AND id > ?",
                                  (m, last)).fetchall()
        if not rows:
            return
        tags_of = json.loads("[" + ",".join([r[1] for r in rows]) + "]")
        by_id = self._series_rows
        sids = self._sids_of.setdefault(m, [])
        for (sid, _), tags in zip(rows, tags_of):
            by_id[sid] = (m, tags)
            sids.append(sid)
        self._series_max_of[m] = max(sid for sid, _ in rows)

    def _remember_series(self, sid: int, m: str, tags_json: str) -> None:
        self._series_by_key[(m, tags_json)] = sid
        self._series_rows[sid] = (m, json.loads(tags_json))
        self._sids_of.setdefault(m, []).append(sid)
        self._series_max_id = max(self._series_max_id, sid)

    def _series_id(self, m: str, tags: dict[str, str], refreshed: bool = False) -> int:
        """Id of a series, created if new; called inside the write transaction (*refreshed*:
        the caller loaded the series table in it already, so no other process can add one)."""
        canon = {str(k): str(v) for k, v in tags.items()}
        key = (m, json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        sid = self._series_by_key.get(key)
        if sid is None and not refreshed:
            self._refresh_series()  # another process may have created it
            sid = self._series_by_key.get(key)
        if sid is None:
            sid = self._conn.execute("INSERT INTO series (measurement, tags) VALUES (?, ?)", key).lastrowid
            if sid is None:  # sqlite3 sets it after every INSERT of a row
                raise StoreError(f"{self.path}: no id for the new series {key}")
            self._remember_series(sid, *key)
            self._uncommitted_series.append(key)
        return sid

    def _forget_uncommitted_series(self) -> None:
        """A rolled-back transaction takes its new series ids with it: drop them from the caches."""
        dropped = getattr(self, "_uncommitted_series", [])
        if not dropped:
            return
        for key in dropped:
            sid = self._series_by_key.pop(key, None)
            if sid is not None:
                self._series_rows.pop(sid, None)
        self._sids_of = {}
        for sid, (m, _) in self._series_rows.items():
            self._sids_of.setdefault(m, []).append(sid)
        self._series_fast.clear()
        self._series_by_obj.clear()
        for shape in self._shapes.values():
            shape.seen.clear()
        self._series_max_id = max(self._series_rows, default=0)
        self._uncommitted_series = []

    # ------------------------------------------------------------------ write
