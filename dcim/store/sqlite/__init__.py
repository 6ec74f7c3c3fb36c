"""The embedded store: SQLite in WAL mode, with 1-minute and 1-hour rollups and raw retention.

Layout (one database file):

- ``series(id, measurement, tags)``: one row per series; ``tags`` is canonical JSON (sorted
  keys). Cached in memory by every connection, refreshed incrementally (ids only grow); a
  read-only store loads a measurement's series only when first asked about it.
- ``raw_<measurement>(rid, series_id, ts, <one column per field>)``: the points, wide (one
  column per field of the metric contract), unique on (series_id, ts). New rows get a ``rid``
  above every rolled-up one, which is how the rollup knows what it has not seen yet.
- ``series_field(series_id, field)``: the fields each series ever carried (for latest()).
- ``measurement_field(measurement, field)``: their union per measurement, the columns latest()
  and maintain() read (filled from series_field when a writer opens a file from before it;
  a read-only open of such a file derives it from series_field on every call).
- ``rollup_minute_<measurement>`` / ``rollup_hour_<measurement>`` / ``rollup_day_<measurement>(series_id, ts, <field>_n,
  _sum, _min, _max, _fts, _first, _lts, _last)``: per bucket (minute, hour, UTC day) partial
  aggregates that merge exactly.
- ``day_hour_stats_<measurement>(field, series_id, ts, n, sum, max, maxts)``: per numeric field, series and
  UTC day, the day's hourly means summarised (hours with a value, their sum, the largest and
  its hour), recomputed by maintain() from rollup_hour for the days it touched. A quarter's hourly
  statistics read these, and summed groups read hours only where their peak can be
  (``peak_search``).
- ``counter_day_<measurement>(field, series_id, ts, first, last, inc, resets, prev, pts)``: per counter
  field, series and UTC day with a value, the counter's first and last value, its increase and
  resets inside the day (``counters.bucket_span``), and the last value and day of the series'
  previous such day (prev, pts). maintain() recomputes the days it touched from rollup_day and the
  prev of those and of the day after each. A quarter's counter increase per GPU is one plain
  GROUP BY over these narrow rows (with LAG() over rollup_day's wide rows it was 3 µs a row). An
  index on rollup_hour per counter field (series_id, ts, n, first, last, max) serves the hours at a
  period's edges without reading rollup_hour's wide rows.
- ``group_hour_<measurement>(field, tag, value, ts, n, sum, top)`` and ``group_day_<measurement>(field, tag,
  value, ts, hours, n, sum, max, maxts, top, topts)``: per grouped field (power, which adds up
  into a rack's or a room's demand, and GPU utilisation, which adds up into GPU-hours), per
  grouping tag (``rack``: GROUP_TAGS) and its value, and per hour or UTC day, the group's series
  together: series with a value in the hour (n), the sum of their hourly means, the largest of
  those means (top); a day adds hours with a value, Σ n, Σ sum, the largest hourly sum (max)
  and its hour, the largest top and its hour. maintain() recomputes them from rollup_hour for the
  group-hours its new rows touched. A rack's GPU-hours and peak demand over a quarter read a
  row per rack and day, not per series and hour; a room's or a tenant's peak demand a row per
  rack and hour (their racks' group_hour rows added up).
- ``month_<m>(zone, field, series_id, ts, n, sum, max, maxts, first, last, inc, resets)``: per
  calendar month of the store's time zone (``timezone``: the site's; ts: the month's start),
  per series and *month field* (``dcim.store.month_figures.month_fields``): an hourly field's
  hours with a value, Σ of the hourly means, the largest and its hour; a counter's first and
  last value, increase and resets, as bucket_stats and counter_increase read the month from the
  rollups. maintain() writes each month once it is over (``mo_to:<m>:<zone>``: the end of the
  last one written; the first run writes every month from the oldest data's), and again the
  months of the series whose late rows it rolls up. A period of whole months (a quarter, a
  month, the trailing twelve) reads a row per series and month: at 32,000 GPUs a quarter's
  energy, power and utilisation per GPU from the days took 14 s. Zones whose months do not
  start on a whole UTC hour (Asia/Kolkata) get none.
- ``meta(key, value)``: per measurement, ``rolled:<m>`` (highest rid merged into the rollups),
  ``horizon_raw:<m>`` and ``horizon_1m:<m>`` (ns cut-offs below which retention deleted rows),
  ``r1d_from:<m>`` (a file from before the daily level: the first day it holds whole),
  ``g1_from:<m>`` (a file from before the group rollups: the first day they hold).

``maintain()`` merges every raw row with rid above the watermark into every rollup (so late
and backfilled points are rolled up too), then applies retention, all in one transaction.
A query reads rollups for whole rollup buckets plus the raw rows not yet merged, and raw
rows for the partial buckets at the edges, in one read snapshot, so results do not depend
on when maintain() last ran. write() calls maintain() itself at most every 30 s.

latest() is one query per call: per series (ids sent as a JSON array), an index seek for its
newest raw row at or after since_ns; only a field that row lacks but the series carried makes
SQLite walk that series' index backwards. write() checks value types column-wise per batch
(exact types known valid, NaN by sum) and sends validate_point only what that cannot vouch for.

Known limits: a point re-written at the same series and time *after* it was rolled up
updates the raw row but not the rollups (identical replays are harmless); one re-written
after its raw row expired is counted twice in the rollups. latest() reads raw rows only, so a
series silent for longer than the raw retention drops out of it. A writer running code from
before measurement_field does not fill it: fields it alone introduces escape latest().

Times are UTC nanoseconds since the epoch throughout.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

import dcim.store.month_figures as month_figures
from dcim.store.base import Store, StoreError, StoreUnavailable
from dcim.store.sqlite import schema
from dcim.store.sqlite.common import MAINTAIN_EVERY_S, _create_private, _store_error
from dcim.store.sqlite.counter_reads import CounterReads
from dcim.store.sqlite.latest import LatestReads
from dcim.store.sqlite.months import MonthRows
from dcim.store.sqlite.query import Queries
from dcim.store.sqlite.rollup import Rollups
from dcim.store.sqlite.series import SeriesCache
from dcim.store.sqlite.stats import BucketStatistics
from dcim.store.sqlite.write import Writing
from dcim.store.timegrid import DAY_NS as NS_PER_DAY

__all__ = ["SqliteStore", "BUSY_TIMEOUT_MS"]

BUSY_TIMEOUT_MS = 10_000  # read when a store opens (a test lowers it)
WAL_AUTOCHECKPOINT_PAGES = 10_000


class SqliteStore(Writing, Rollups, MonthRows, Queries, BucketStatistics, CounterReads,
                  LatestReads, SeriesCache, Store):
    """The embedded store. *path* is a file (parent folders are created) or ":memory:".

    ``strict=True``: an invalid point raises PointError and nothing of that write is stored.
    ``strict=False``: invalid points are skipped, counted in ``rejected`` and logged once per kind.
    """

    def __init__(self, path: str | os.PathLike, *, raw_retention_days: float = 7.0,
                 rollup_1m_retention_days: float = 90.0, readonly: bool = False, strict: bool = True,
                 timezone: str = "UTC"):
        self.timezone = month_figures.check_zone(timezone)  # the calendar of the month rows (month): the site's
        self.path = str(path)
        self.readonly = readonly
        self.strict = strict
        self.raw_retention_ns = int(raw_retention_days * NS_PER_DAY)
        # 1m rollups never expire before raw: queries rely on them below the raw horizon.
        self.rollup_1m_retention_ns = max(int(rollup_1m_retention_days * NS_PER_DAY), self.raw_retention_ns)
        self.rejected = 0
        self._uncommitted_series = []  # series created in the open write transaction
        self._logged_kinds = set()
        self._lock = threading.RLock()
        self._series_by_key = {}  # (measurement, canonical tags) -> id
        self._series_fast = {}  # (measurement, tuple(tags.items())) -> id
        # id(tags dict) -> (that dict, measurement, copy of its items, series id): see _write
        self._series_by_obj = {}
        self._by_obj_max = 1 << 16
        self._series_rows = {}  # id -> (measurement, tags)
        self._sids_of = {}  # measurement -> its series ids
        self._series_max_id = 0
        self._series_max_of = {}  # read-only: measurement -> highest id loaded
        self._shapes = {}  # (measurement, field names) -> shape
        self._next_maintain = time.monotonic() + MAINTAIN_EVERY_S
        self._months_lock = threading.Lock()  # one month upkeep at a time (see _maintain_months)
        self._month_conn = None
        self.busy_timeout_ms = BUSY_TIMEOUT_MS
        self._conn = self._connect()
        self._open_schema()

    # ------------------------------------------------------------------ setup

    def _connect(self) -> sqlite3.Connection:
        memory = self.path in (":memory:", "") or self.path.startswith("file::memory:")
        try:
            if self.readonly and not memory:
                if not Path(self.path).exists():
                    raise StoreUnavailable(f"no SQLite store at {self.path}")
                uri = Path(self.path).resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                if not memory:
                    _create_private(Path(self.path))
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL
                # A 5,000-point batch dirties ~1,000 index pages: with the default (1,000 pages)
                # every commit checkpoints. 40 MiB of WAL between checkpoints copies a page re-
                # dirtied by several commits once: ~15 % less ingest CPU.
                conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            conn.execute("PRAGMA cache_size = -32768")  # 32 MiB page cache
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {e}") from e
        return conn

    def _open_schema(self) -> None:
        """A writer upgrades an older file once (``schema``); a reader needs the latest layout."""
        try:
            if self.readonly:
                schema.check_readable(self._conn, self.path)
                return
            with self._write_txn() as conn:
                schema.upgrade(conn, self.path)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a dcim SQLite store: {e}") from e
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ transactions

    class _Txn:
        def __init__(self, store: SqliteStore, begin: str):
            self.store, self.begin = store, begin

        def __enter__(self) -> sqlite3.Connection:
            if self.store._conn is None:
                raise StoreError(f"{self.store.path}: store is closed")
            self.store._lock.acquire()
            if self.begin != "BEGIN":
                self.store._uncommitted_series = []
            try:
                self.store._conn.execute(self.begin)
            except sqlite3.Error as e:
                self.store._lock.release()
                raise _store_error(e) from e
            return self.store._conn

        def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                     tb: TracebackType | None) -> Literal[False]:
            conn = self.store._conn
            try:
                if exc_type is None:
                    try:
                        conn.execute("COMMIT")
                    except sqlite3.Error as e:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        self.store._forget_uncommitted_series()
                        raise _store_error(e) from e
                    self.store._uncommitted_series = []
                else:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self.store._forget_uncommitted_series()
            finally:
                self.store._lock.release()
            if isinstance(exc, sqlite3.Error):
                raise _store_error(exc) from exc
            return False

    def _write_txn(self) -> _Txn:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        return self._Txn(self, "BEGIN IMMEDIATE")

    def _read_txn(self) -> _Txn:
        return self._Txn(self, "BEGIN")

    # ------------------------------------------------------------------ series
    # ------------------------------------------------------------------ misc

    def flush(self) -> None:
        """Every write() commits its own transaction; nothing is buffered."""

    def close(self) -> None:
        with self._lock:
            if self._month_conn is not None and self._month_conn is not self._conn:
                self._month_conn.close()
            self._month_conn = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
