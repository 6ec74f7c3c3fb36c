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
- ``r1m_<measurement>`` / ``r1h_<measurement>`` / ``r1d_<measurement>(series_id, ts, <field>_n,
  _sum, _min, _max, _fts, _first, _lts, _last)``: per bucket (minute, hour, UTC day) partial
  aggregates that merge exactly.
- ``h1d_<measurement>(field, series_id, ts, n, sum, max, maxts)``: per numeric field, series and
  UTC day, the day's hourly means summarised (hours with a value, their sum, the largest and
  its hour), recomputed by maintain() from r1h for the days it touched. A quarter's hourly
  statistics read these, and summed groups read hours only where their peak can be
  (``peak_search``).
- ``k1d_<measurement>(field, series_id, ts, first, last, inc, resets, prev, pts)``: per counter
  field, series and UTC day with a value, the counter's first and last value, its increase and
  resets inside the day (``counters.bucket_span``), and the last value and day of the series'
  previous such day (prev, pts). maintain() recomputes the days it touched from r1d and the
  prev of those and of the day after each. A quarter's counter increase per GPU is one plain
  GROUP BY over these narrow rows (with LAG() over r1d's wide rows it was 3 µs a row). An
  index on r1h per counter field (series_id, ts, n, first, last, max) serves the hours at a
  period's edges without reading r1h's wide rows.
- ``g1h_<measurement>(field, tag, value, ts, n, sum, top)`` and ``g1d_<measurement>(field, tag,
  value, ts, hours, n, sum, max, maxts, top, topts)``: per grouped field (power, which adds up
  into a rack's or a room's demand, and GPU utilisation, which adds up into GPU-hours), per
  grouping tag (``rack``: GROUP_TAGS) and its value, and per hour or UTC day, the group's series
  together: series with a value in the hour (n), the sum of their hourly means, the largest of
  those means (top); a day adds hours with a value, Σ n, Σ sum, the largest hourly sum (max)
  and its hour, the largest top and its hour. maintain() recomputes them from r1h for the
  group-hours its new rows touched. A rack's GPU-hours and peak demand over a quarter read a
  row per rack and day, not per series and hour; a room's or a tenant's peak demand a row per
  rack and hour (their racks' g1h rows added up).
- ``m1mo_<m>(zone, field, series_id, ts, n, sum, max, maxts, first, last, inc, resets)``: per
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

import bisect
import functools
import gc
import json
import logging
import operator
import os
import sqlite3
import threading
import time
from itertools import chain, groupby
from pathlib import Path
from typing import Sequence

from dcim.metrics import MEASUREMENTS, Point, PointError, validate_point
from dcim.store.base import (GROUP_ROLLUP_TAGS, Aggregate, BucketStats, Series, Store, StoreError,
                             StoreUnavailable, Where, add_bucket_stats, check_bucket_stats, check_query, check_tags,
                             has_group_rollups, matches, measurement_spec)
from dcim.store import counters, month_figures
from dcim.store.gpu_summary import CAP_MARGIN_W, GpuSummary
from dcim.store.peak_search import day_bound, stats_from_day_bounds

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 3600 * NS_PER_S
MAINTAIN_EVERY_S = 30.0  # write() runs maintain() at most this often
BUSY_TIMEOUT_MS = 10_000
WAL_AUTOCHECKPOINT_PAGES = 10_000
SCHEMA_VERSION = 1

# Partial-aggregate columns kept per field in a rollup table.
_PARTS = ("n", "sum", "min", "max", "fts", "first", "lts", "last")
# Per numeric field, series and UTC day, ``h1d_<m>`` keeps the day's hourly buckets summarised:
# hours with a value (n), the sum of the hourly means, the largest hourly mean and that hour's
# start. A quarter's hourly statistics (bucket_stats) then read 92 rows per series instead of
# 2,208. A table of its own, keyed by field first: a fleet's GPU utilisation is one contiguous
# run of short rows, not a column of rows ~240 columns wide.
_SQL_TYPE = {float: "REAL", int: "INTEGER", bool: "INTEGER", str: "TEXT"}
# Aggregates that make no sense for strings: string fields are left out of their results.
_NUMERIC_AGGS = frozenset({"mean", "max", "min", "sum"})
# Coarsest first: a query reads each range from the coarsest level whose buckets fit it. Days
# serve the report's daily counters and whole-quarter aggregates at 1/24 of the hourly rows.
_LEVELS = (("r1d", NS_PER_DAY), ("r1h", HOUR_NS), ("r1m", MINUTE_NS))
# Grouping tags of g1h/g1d (see the layout above): the report's rack rows. Not rooms:
# maintain() recomputes a touched group-hour from all its series, and a room holds thousands
# (a backfill GPU by GPU would re-read a room's hours once per chunk).
GROUP_TAGS = GROUP_ROLLUP_TAGS
ROWS_PER_INSERT = 32  # x (2 + fields) parameters stays far below SQLite's 32766
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _floor(ts: int, step: int) -> int:
    return ts - ts % step  # Python's % is floored, so this is right for negative times too


def _ceil(ts: int, step: int) -> int:
    return -_floor(-ts, step)


def _bucket_sql(col: str, every_ns: int | None, start_ns: int) -> str:
    """SQL for the epoch-aligned bucket start of *col* (SQLite's % truncates, hence the dance)."""
    if every_ns is None:
        return str(int(start_ns))
    e = int(every_ns)
    return f"({col} - ((({col} % {e}) + {e}) % {e}))"


def _counter_inc_sql(first: str, last: str, top: str) -> str:
    """SQL for ``counters.bucket_span``'s increase inside a bucket of (first, last, max)."""
    return f"CASE WHEN {last} < {top} THEN ({top} - {first}) + {last} ELSE {top} - {first} END"


def _touched_days_sql(m: str) -> str:
    """SQL for the (sid, day) pairs, UTC days, of *m*'s raw rows with rid in (?1, ?2]."""
    return (f"SELECT DISTINCT series_id AS sid, {_bucket_sql('ts', NS_PER_DAY, 0)} AS day FROM raw_{m} "
            f"WHERE rid > ?1 AND rid <= ?2")


class _Shape:
    """Points of one measurement carrying one set of fields: their insert statements, the
    field order of their rows (the metric contract's), and per field the exact value types
    known valid."""

    __slots__ = ("m", "names", "keys", "width", "get", "sql", "sql_multi", "ok", "nan_cols", "seen")

    def __init__(self, m: str, names: tuple[str, ...]):
        specs = MEASUREMENTS[m].fields
        cols = ", ".join(_q(n) for n in names)
        self.m = m
        self.names = names
        self.keys = frozenset(names)
        self.width = 2 + len(names)  # a row: series_id, ts, values in *names* order
        if len(names) == 1:
            self.get = lambda fields, _n=names[0]: (fields[_n],)
        else:
            self.get = operator.itemgetter(*names)  # fields dict -> values tuple, in names order
        # Duplicate (series, time): fields of the newer write win, fields it lacks are kept.
        row = f"(?, ?{', ?' * len(names)})"
        upsert = " ON CONFLICT (series_id, ts) DO UPDATE SET " + ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names)
        self.sql = f"INSERT INTO raw_{m} (series_id, ts, {cols}) VALUES {row}{upsert}"
        rows = ", ".join([row] * ROWS_PER_INSERT)
        self.sql_multi = f"INSERT INTO raw_{m} (series_id, ts, {cols}) VALUES {rows}{upsert}"
        # Per field, the exact types whose values pass validate_point (NaN aside); grows with
        # the types validate_point is seen to accept (subclasses of int or float, say).
        self.ok = [set(_OK_TYPES[specs[n].kind]) for n in names]
        # Columns whose NaNs must be caught: a NaN (or inf - inf, which only costs a trip to
        # validate_point) poisons their sum.
        self.nan_cols = tuple(j for j, n in enumerate(names) if specs[n].kind is float)
        self.seen: set[int] = set()  # series ids whose series_field rows list these fields

    def columns_ok(self, flat: list) -> bool:
        """Every value of the rows in *flat* has a type known valid, and no float field is NaN.
        Column-wise (C loops). May raise OverflowError (an int too big for a float sum)."""
        w = self.width
        for j, ok in enumerate(self.ok):
            col = flat[2 + j::w]
            if not ok.issuperset(map(type, col)):
                return False
        for j in self.nan_cols:
            total = sum(flat[2 + j::w])
            if total != total:
                return False
        return True

    @staticmethod
    def ints_fit(values: tuple) -> bool:
        """SQLite integers are 64-bit: validate_point has no bound, the store needs one."""
        return all(_INT_MIN <= v <= _INT_MAX for v in values if isinstance(v, int))


_OK_TYPES = {float: (float, int), int: (int,), bool: (bool,), str: (str,)}


class SqliteStore(Store):
    """The embedded store. *path* is a file (parent folders are created) or ":memory:".

    ``strict=True``: an invalid point raises PointError and nothing of that write is stored.
    ``strict=False``: invalid points are skipped, counted in ``rejected`` and logged once per kind.
    """

    def __init__(self, path: str | os.PathLike, *, raw_retention_days: float = 7.0,
                 rollup_1m_retention_days: float = 90.0, readonly: bool = False, strict: bool = True,
                 timezone: str = "UTC"):
        self.timezone = month_figures.check_zone(timezone)  # the calendar of the month rows (m1mo): the site's
        self.path = str(path)
        self.readonly = readonly
        self.strict = strict
        self.raw_retention_ns = int(raw_retention_days * NS_PER_DAY)
        # 1m rollups never expire before raw: queries rely on them below the raw horizon.
        self.rollup_1m_retention_ns = max(int(rollup_1m_retention_days * NS_PER_DAY), self.raw_retention_ns)
        self.rejected = 0
        self._uncommitted_series: list[tuple] = []  # series created in the open write transaction
        self._logged_kinds: set[str] = set()
        self._lock = threading.RLock()
        self._series_by_key: dict[tuple[str, str], int] = {}  # (measurement, canonical tags) -> id
        self._series_fast: dict[tuple, int] = {}  # (measurement, tuple(tags.items())) -> id
        # id(tags dict) -> (that dict, measurement, copy of its items, series id): see _write
        self._series_by_obj: dict[int, tuple] = {}
        self._by_obj_max = 1 << 16
        self._series_rows: dict[int, tuple[str, dict[str, str]]] = {}  # id -> (measurement, tags)
        self._sids_of: dict[str, list[int]] = {}  # measurement -> its series ids
        self._series_max_id = 0
        self._series_max_of: dict[str, int] = {}  # read-only: measurement -> highest id loaded
        self._shapes: dict[tuple[str, tuple[str, ...]], _Shape] = {}  # (m, field names) -> shape
        self._next_maintain = time.monotonic() + MAINTAIN_EVERY_S
        self._months_lock = threading.Lock()  # one month upkeep at a time (see _maintain_months)
        self._month_conn: sqlite3.Connection | None = None
        self._conn = self._connect()
        if not readonly:
            self._create_schema()
        self._check_schema()

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
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
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

    def _create_schema(self) -> None:
        c = self._conn
        with self._write_txn():
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            c.execute("CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, measurement TEXT NOT NULL, "
                      "tags TEXT NOT NULL, UNIQUE (measurement, tags))")
            # Which fields each series ever carried, so latest() looks back only for those.
            c.execute("CREATE TABLE IF NOT EXISTS series_field (series_id INTEGER NOT NULL, field TEXT NOT NULL, "
                      "PRIMARY KEY (series_id, field)) WITHOUT ROWID")
            # The same per measurement (the union over its series): which columns latest() and
            # maintain() read. Files from before it get it filled from series_field once.
            fresh = c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'measurement_field'"
                              ).fetchone() is None
            c.execute("CREATE TABLE IF NOT EXISTS measurement_field (measurement TEXT NOT NULL, field TEXT NOT NULL, "
                      "PRIMARY KEY (measurement, field)) WITHOUT ROWID")
            if fresh:
                c.execute("INSERT OR IGNORE INTO measurement_field (measurement, field) SELECT DISTINCT s.measurement, "
                          "sf.field FROM series_field AS sf JOIN series AS s ON s.id = sf.series_id")
            for m in MEASUREMENTS.values():
                raw_cols = [(f, _SQL_TYPE[s.kind]) for f, s in m.fields.items()]
                c.execute(f"CREATE TABLE IF NOT EXISTS raw_{m.name} (rid INTEGER PRIMARY KEY, "
                          f"series_id INTEGER NOT NULL, ts INTEGER NOT NULL"
                          + "".join(f", {_q(f)} {t}" for f, t in raw_cols) + ")")
                c.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS raw_{m.name}_sts ON raw_{m.name} (series_id, ts)")
                self._add_missing_columns(f"raw_{m.name}", raw_cols)
                roll_cols = [(f"{f}_{p}", _SQL_TYPE[s.kind] if p not in ("n", "fts", "lts") else "INTEGER")
                             for f, s in m.fields.items() for p in _PARTS]
                # A file from before the daily level (no r1d) or before its hourly summaries: its
                # past is in rollups that lack them, so whole days are read from r1d only from
                # the first day after its newest rolled-up row. Summaries kept in r1d's own
                # columns (the first layout) move to the narrow table.
                have_r1d = self._table_exists(f"r1d_{m.name}")
                have_h1d = self._table_exists(f"h1d_{m.name}")
                old_cols = [r[1][:-3] for r in c.execute(f"PRAGMA table_info(r1d_{m.name})") if r[1].endswith("_hn")]
                if not have_h1d and not old_cols:
                    older = f"r1d_{m.name}" if have_r1d else f"r1h_{m.name}"
                    newest = c.execute(f"SELECT max(ts) FROM {older}").fetchone()[0] if self._table_exists(older) else None
                    since = _INT_MIN if newest is None else _floor(newest, NS_PER_DAY) + NS_PER_DAY
                    c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"r1d_from:{m.name}", since))
                for level, _ in _LEVELS:
                    table = f"{level}_{m.name}"
                    c.execute(f"CREATE TABLE IF NOT EXISTS {table} (series_id INTEGER NOT NULL, ts INTEGER NOT NULL"
                              + "".join(f", {_q(f)} {t}" for f, t in roll_cols)
                              + ", PRIMARY KEY (series_id, ts)) WITHOUT ROWID")
                    self._add_missing_columns(table, roll_cols)
                if not self._table_exists(f"g1d_{m.name}"):  # groups hold only days rolled from now on
                    newest = c.execute(f"SELECT max(ts) FROM r1h_{m.name}").fetchone()[0]
                    since = _INT_MIN if newest is None else _floor(newest, NS_PER_DAY) + NS_PER_DAY
                    c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"g1_from:{m.name}", since))
                c.execute(f"CREATE TABLE IF NOT EXISTS g1h_{m.name} (field TEXT NOT NULL, tag TEXT NOT NULL, "
                          f"value TEXT NOT NULL, ts INTEGER NOT NULL, n INTEGER NOT NULL, sum REAL NOT NULL, "
                          f"top REAL NOT NULL, PRIMARY KEY (field, tag, value, ts)) WITHOUT ROWID")
                c.execute(f"CREATE TABLE IF NOT EXISTS g1d_{m.name} (field TEXT NOT NULL, tag TEXT NOT NULL, "
                          f"value TEXT NOT NULL, ts INTEGER NOT NULL, hours INTEGER NOT NULL, n INTEGER NOT NULL, "
                          f"sum REAL NOT NULL, max REAL NOT NULL, maxts INTEGER NOT NULL, top REAL NOT NULL, "
                          f"topts INTEGER NOT NULL, PRIMARY KEY (field, tag, value, ts)) WITHOUT ROWID")
                c.execute(f"CREATE TABLE IF NOT EXISTS h1d_{m.name} (field TEXT NOT NULL, series_id INTEGER NOT NULL, "
                          f"ts INTEGER NOT NULL, n INTEGER NOT NULL, sum REAL NOT NULL, max REAL NOT NULL, "
                          f"maxts INTEGER NOT NULL, PRIMARY KEY (field, series_id, ts)) WITHOUT ROWID")
                counters = [f for f, spec in m.fields.items() if spec.counter]
                if counters:
                    self._create_counter_days(m.name, counters)
                if any(month_figures.month_fields(m)):
                    c.execute(f"CREATE TABLE IF NOT EXISTS m1mo_{m.name} (zone TEXT NOT NULL, field TEXT NOT NULL, "
                              f"series_id INTEGER NOT NULL, ts INTEGER NOT NULL, n INTEGER, sum REAL, max REAL, "
                              f"maxts INTEGER, first, last, inc REAL, resets INTEGER, "
                              f"PRIMARY KEY (zone, field, series_id, ts)) WITHOUT ROWID")
                if not have_h1d:
                    for f in old_cols:
                        c.execute(f"INSERT INTO h1d_{m.name} SELECT ?, series_id, ts, {_q(f + '_hn')}, "
                                  f"{_q(f + '_hsum')}, {_q(f + '_hmax')}, {_q(f + '_hmaxts')} FROM r1d_{m.name} "
                                  f"WHERE {_q(f + '_hn')} > 0", (f,))

    def _create_counter_days(self, m: str, counters: list[str]) -> None:
        """``k1d_<m>`` and the r1h indexes that counter_increase reads (see the layout above).
        A file from before them gets k1d filled from r1d and the indexes built once, here."""
        c = self._conn
        fresh = not self._table_exists(f"k1d_{m}")
        # Value columns without a type: an int counter (ECC errors) stays an int.
        c.execute(f"CREATE TABLE IF NOT EXISTS k1d_{m} (field TEXT NOT NULL, series_id INTEGER NOT NULL, "
                  f"ts INTEGER NOT NULL, first NOT NULL, last NOT NULL, inc NOT NULL, resets INTEGER NOT NULL, "
                  f"prev, pts INTEGER, PRIMARY KEY (field, series_id, ts)) WITHOUT ROWID")
        for f in counters:
            n, first, last, top = (_q(f"{f}_{p}") for p in ("n", "first", "last", "max"))
            c.execute(f"CREATE INDEX IF NOT EXISTS {_q(f'r1h_{m}_{f}_counter')} ON r1h_{m} "
                      f"(series_id, ts, {n}, {first}, {last}, {top})")
            if fresh:
                c.execute(f"INSERT INTO k1d_{m} SELECT ?, series_id, ts, {first}, {last}, "
                          f"{_counter_inc_sql(first, last, top)}, {last} < {top}, lag({last}) OVER w, lag(ts) OVER w "
                          f"FROM r1d_{m} WHERE {n} > 0 WINDOW w AS (PARTITION BY series_id ORDER BY ts)", (f,))

    def _table_exists(self, name: str) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (name,)).fetchone() is not None

    def _add_missing_columns(self, table: str, cols: list[tuple[str, str]]) -> None:
        """Fields added to the metric contract after the file was created become new columns."""
        have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
        for name, sql_type in cols:
            if name not in have:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {_q(name)} {sql_type}")

    def _check_schema(self) -> None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path} is not a dcim SQLite store: {e}") from e
        if row is None or row[0] != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {row and row[0]}, expected {SCHEMA_VERSION}")

    # ------------------------------------------------------------------ transactions

    class _Txn:
        def __init__(self, store: "SqliteStore", begin: str):
            self.store, self.begin = store, begin

        def __enter__(self):
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

        def __exit__(self, exc_type, exc, tb):
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
            if exc_type is not None and issubclass(exc_type, sqlite3.Error):
                raise _store_error(exc) from exc
            return False

    def _write_txn(self) -> "_Txn":
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        return self._Txn(self, "BEGIN IMMEDIATE")

    def _read_txn(self) -> "_Txn":
        return self._Txn(self, "BEGIN")

    # ------------------------------------------------------------------ series

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

    def _checked_shape(self, p: Point) -> "_Shape":
        validate_point(p)  # raises for an unknown measurement or field, or no fields
        m = p.measurement
        key = (m, frozenset(p.fields))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = _Shape(m, tuple(f for f in MEASUREMENTS[m].fields if f in key[1]))
        return shape

    def _reject(self, error: PointError) -> None:
        if self.strict:
            raise error
        self.rejected += 1
        kind = str(error).split(" got ")[0]
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            log.warning("skipping invalid points (logged once per kind, counted in rejected): %s", error)

    def _accept_slow(self, p: Point, shape: "_Shape") -> bool:
        """validate_point (and the 64-bit bound) decide; remember the value types accepted."""
        try:
            validate_point(p)
            if not shape.ints_fit(shape.get(p.fields)):
                raise PointError(f"{p.measurement}: integer outside the 64-bit range, got {p.fields!r}")
        except PointError as e:
            self._reject(e)
            return False
        for ok, v in zip(shape.ok, shape.get(p.fields)):
            ok.add(type(v))
        return True

    def write(self, points: Sequence[Point]) -> None:
        """Store *points* in one transaction. Raises PointError (strict) before anything is stored.
        A point at the same series and time as a stored one merges into it: its fields win."""
        if not points:
            return
        rejected = self.rejected
        try:
            self._write(points, careful=False)
        except OverflowError:
            # An int beyond 64 bits reached SQLite (or was too big for a float sum): the
            # transaction rolled back; redo the write checking every point on the slow path.
            self.rejected = rejected  # the redo counts the rejects again
            self._write(points, careful=True)
        if time.monotonic() >= self._next_maintain:
            self.maintain()

    def _write(self, points: Sequence[Point], careful: bool) -> None:
        shapes, fast, by_obj = self._shapes, self._series_fast, self._series_by_obj
        # Per shape: its rows (series_id, ts, values...), and the points behind them.
        flats: dict[_Shape, list[tuple]] = {}
        pts_of: dict[_Shape, list[Point]] = {}
        pending: list[tuple[tuple, _Shape, Point]] = []  # points of series not cached yet
        last_m = last_keys = shape = flat = plist = None
        for p in points:
            fields, m = p.fields, p.measurement
            if m is not last_m or fields.keys() != last_keys:  # batches mostly repeat one shape
                shape = shapes.get((m, frozenset(fields)))
                if shape is None:
                    try:
                        shape = self._checked_shape(p)
                    except PointError as e:
                        self._reject(e)
                        last_m = None
                        continue
                last_m, last_keys = m, shape.keys
                flat = flats.get(shape)
                if flat is None:
                    flat, plist = flats[shape], pts_of[shape] = [], []
                else:
                    plist = pts_of[shape]
            tags = p.tags
            # Collectors keep one tags dict per series: find its id by the dict's identity,
            # checked against a copy of its contents (the dict may have been changed since).
            hit = by_obj.get(id(tags))
            if hit is not None and hit[0] is tags and hit[1] == m and hit[2] == tags:
                sid = hit[3]
            else:
                tkey = (m, tuple(tags.items()))
                sid = fast.get(tkey)
                if sid is None:
                    pending.append((tkey, shape, p))
                    continue
                if len(by_obj) >= self._by_obj_max:
                    by_obj.clear()  # callers building a new dict per point: keep it bounded
                by_obj[id(tags)] = (tags, m, dict(tags), sid)
            flat.append((sid, p.time_ns, *shape.get(fields)))
            plist.append(p)
        for shape, rows in flats.items():
            if careful or not shape.columns_ok(list(chain.from_iterable(rows))):
                flats[shape] = [r for r, p in zip(rows, pts_of[shape]) if self._accept_slow(p, shape)]
        # Points of new series: checked one by one (tags too), given ids in the transaction.
        pending = [x for x in pending if self._accept_slow(x[2], x[1])]
        if not pending and not any(flats.values()):
            return
        new_seen: list[tuple[int, _Shape]] = []
        with self._write_txn() as conn:
            if pending:
                self._refresh_series()  # once: the write lock keeps other writers out from here on
            for tkey, shape, p in pending:
                sid = fast.get(tkey)
                if sid is None:
                    sid = fast[tkey] = self._series_id(p.measurement, p.tags, refreshed=True)
                flats.setdefault(shape, []).append((sid, p.time_ns, *shape.get(p.fields)))
            for shape, rows in flats.items():
                # Series by series (a stable sort: a series' rows keep their order, so the later
                # of two at one time still wins): neighbouring (series_id, ts) index entries go in
                # together, ~20 % less SQLite work than the collectors' time-major order.
                rows.sort(key=_first)
                flat = list(chain.from_iterable(rows))
                w = shape.width
                n = len(flat) // w
                whole = (n - n % ROWS_PER_INSERT) * w
                step = ROWS_PER_INSERT * w
                if whole:
                    conn.executemany(shape.sql_multi, [flat[i:i + step] for i in range(0, whole, step)])
                if whole < len(flat):
                    conn.executemany(shape.sql, [flat[i:i + w] for i in range(whole, len(flat), w)])
                new_seen += [(sid, shape) for sid in set(flat[0::w]).difference(shape.seen)]
            if new_seen:
                conn.executemany("INSERT OR IGNORE INTO series_field (series_id, field) VALUES (?, ?)",
                                 [(sid, f) for sid, shape in new_seen for f in shape.names])
                conn.executemany("INSERT OR IGNORE INTO measurement_field (measurement, field) VALUES (?, ?)",
                                 {(shape.m, f) for _, shape in new_seen for f in shape.names})
        for sid, shape in new_seen:
            shape.seen.add(sid)

    # ------------------------------------------------------------------ maintain

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
                    # Rows older than the 1 m retention skip r1m: retention would delete them below
                    # (a backfill of past months writes only what it keeps).
                    cutoff_1m = now_ns - self.rollup_1m_retention_ns
                    for level, step in _LEVELS:
                        if present:
                            conn.execute(self._rollup_sql(m.name, level, step, present),
                                         (rolled, top, cutoff_1m if level == "r1m" else _INT_MIN))
                    for f in present:  # after r1h took the new rows: the days they touched
                        if m.fields[f].kind is not str:
                            conn.execute(self._hour_stats_sql(m.name, f), (rolled, top))
                        if m.fields[f].counter:  # after r1d: the days, then who precedes them
                            conn.execute(self._counter_days_update_sql(m.name, f), (rolled, top))
                            conn.execute(self._counter_prev_update_sql(m.name, f), (rolled, top))
                    touched = conn.execute(_touched_days_sql(m.name), (rolled, top)).fetchall()  # for the months
                    grouped = [f for f in present if m.fields[f].kind is not str and has_group_rollups(m, f)]
                    tags = [t for t in GROUP_TAGS if t in m.tags]
                    if grouped and tags:  # after r1h: the group-hours, then the group-days, touched
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
        for m in MEASUREMENTS:
            self._maintain_months(m, now_ns, touched_of.get(m, []))

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _hour_stats_sql(m: str, field: str) -> str:
        """INSERT OR REPLACE recomputing *field*'s daily hourly summaries (``h1d_<m>``) from r1h,
        for the (series, day) pairs of the raw rows with rid in (?1, ?2]."""
        n, mean = f"h.{_q(field + '_n')}", f"(1.0 * h.{_q(field + '_sum')} / h.{_q(field + '_n')})"
        # The one max() makes SQLite take the bare h.ts from the row holding it; rows come in
        # (series_id, ts) order, so that is the earliest hour of equal means.
        return (f"INSERT OR REPLACE INTO h1d_{m} (field, series_id, ts, n, sum, max, maxts) "
                f"SELECT '{field}', d.sid, d.day, count(*), total({mean}), max({mean}), h.ts "
                f"FROM ({_touched_days_sql(m)}) AS d JOIN r1h_{m} AS h ON h.series_id = d.sid AND h.ts >= d.day "
                f"AND h.ts < d.day + {NS_PER_DAY} WHERE {n} > 0 GROUP BY d.sid, d.day")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _counter_days_update_sql(m: str, field: str) -> str:
        """INSERT OR REPLACE recomputing the k1d rows of counter *field* from r1d, for the
        (series, day) pairs of the raw rows with rid in (?1, ?2]; prev and pts are left for
        _counter_prev_update_sql."""
        n, first, last, top = (f"r.{_q(field + '_' + p)}" for p in ("n", "first", "last", "max"))
        return (f"INSERT OR REPLACE INTO k1d_{m} (field, series_id, ts, first, last, inc, resets, prev, pts) "
                f"SELECT '{field}', r.series_id, r.ts, {first}, {last}, {_counter_inc_sql(first, last, top)}, "
                f"{last} < {top}, NULL, NULL "
                f"FROM ({_touched_days_sql(m)}) AS d JOIN r1d_{m} AS r ON r.series_id = d.sid AND r.ts = d.day "
                f"WHERE {n} > 0")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _counter_prev_update_sql(m: str, field: str) -> str:
        """UPDATE setting prev and pts (the last value and day of the series' previous k1d row)
        on the k1d rows of the days the raw rows with rid in (?1, ?2] touched, and on the row
        after each: a day's last value moved, or a day came in between."""
        k = f"k1d_{m}"
        return (f"WITH d AS ({_touched_days_sql(m)}), t AS (SELECT sid, day FROM d UNION SELECT d.sid, (SELECT min(n.ts) FROM {k} "
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
        """INSERT OR REPLACE recomputing g1h rows of *field* per value of *tag* from r1h, for the
        group-hours the raw rows with rid in (?1, ?2] touched (temp.dcim_member loaded)."""
        n, mean = f"h.{_q(field + '_n')}", f"(1.0 * h.{_q(field + '_sum')} / h.{_q(field + '_n')})"
        return (f"INSERT OR REPLACE INTO g1h_{m} (field, tag, value, ts, n, sum, top) "
                f"SELECT '{field}', '{tag}', d.value, d.hr, count(*), total({mean}), max({mean}) "
                f"FROM (SELECT DISTINCT mm.value AS value, {_bucket_sql('r.ts', HOUR_NS, 0)} AS hr FROM raw_{m} AS r "
                f"JOIN temp.dcim_member AS mm ON mm.tag = '{tag}' AND mm.sid = r.series_id "
                f"WHERE r.rid > ?1 AND r.rid <= ?2) AS d "
                f"JOIN temp.dcim_member AS g ON g.tag = '{tag}' AND g.value = d.value "
                f"JOIN r1h_{m} AS h ON h.series_id = g.sid AND h.ts = d.hr WHERE {n} > 0 GROUP BY d.value, d.hr")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _group_days_sql(m: str, field: str, tag: str) -> str:
        """INSERT OR REPLACE recomputing g1d rows of *field* per value of *tag* from g1h, for the
        group-days the raw rows with rid in (?1, ?2] touched (temp.dcim_member loaded)."""
        # Each max() in a SELECT of its own: SQLite then takes the bare g.ts from the row holding
        # it, and g1h rows come in (value, ts) order, so that is the earliest hour of equal ones.
        days = (f"SELECT DISTINCT mm.value AS value, {_bucket_sql('r.ts', NS_PER_DAY, 0)} AS day FROM raw_{m} AS r "
                f"JOIN temp.dcim_member AS mm ON mm.tag = '{tag}' AND mm.sid = r.series_id "
                f"WHERE r.rid > ?1 AND r.rid <= ?2")
        hours = (f"FROM days AS d JOIN g1h_{m} AS g ON g.field = '{field}' AND g.tag = '{tag}' AND g.value = d.value "
                 f"AND g.ts >= d.day AND g.ts < d.day + {NS_PER_DAY} GROUP BY d.value, d.day")
        return (f"WITH days AS ({days}) "
                f"INSERT OR REPLACE INTO g1d_{m} (field, tag, value, ts, hours, n, sum, max, maxts, top, topts) "
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
            def at(ts_alias: str) -> str:
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
                                    (f"r1m_{m}", self.rollup_1m_retention_ns, f"horizon_1m:{m}")):
            cutoff = now_ns - keep_ns
            # Per series so that the (series_id, ts) index does the work, not a table scan.
            conn.executemany(f"DELETE FROM {table} WHERE series_id = ? AND ts < ?", [(s, cutoff) for s in sids])
            if cutoff > meta.get(key, -(1 << 62)):
                _set_meta(conn, key, cutoff)

    # ------------------------------------------------------------------ month rows

    def _maintain_months(self, m: str, now_ns: int, touched: list[tuple[int, int]]) -> None:
        """Keep ``m1mo_<m>`` in the store's zone (see the layout above): the months over since
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
                    wconn.executemany(f"INSERT OR REPLACE INTO m1mo_{m} VALUES ({', '.join('?' * 12)})", rows)
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
                self._month_conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return self._month_conn

    def _month_rows_due(self, conn, m: str, key: str, horizon: int,
                        touched: list[tuple[int, int]]) -> tuple[list[tuple], int | None]:
        """(m1mo rows to write, the end of the months written before: None if none ever were
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
            for mo, sids in sorted(redo.items()):
                rows += self._month_rows(conn, m, hour_fields, counter_fields, mo, sorted(sids), meta)
        if done is None:
            # The oldest hour any series holds: an index seek per series, not a scan.
            oldest = conn.execute(f"SELECT min((SELECT min(ts) FROM r1h_{m} WHERE series_id = s.id)) FROM series AS s "
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
        """The m1mo rows of the month starting at *month_ns* for series *sids*, computed from the
        rollups as counter_increase and bucket_stats read that month."""
        if not sids:
            return []
        zone = self.timezone
        end = month_figures.month_starts(zone, month_ns + 1, month_ns + 32 * NS_PER_DAY)[0]
        sid_filter = f" AND {{p}}series_id IN ({','.join(map(str, sids))})"
        whole = [(a, b) for src, a, b, tail in self._plan_pieces(conn, m, month_ns, end, NS_PER_DAY, meta)
                 if src == "r1d" and tail is None]
        a, b = whole[0] if len(whole) == 1 else (end, end)
        rows = []
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
        rows = conn.execute(f"SELECT field, series_id, n, sum, max, maxts, first, last, inc, resets FROM m1mo_{m} "
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

    # ------------------------------------------------------------------ query

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

    def bucket_stats(self, measurement: str, field: str, start_ns: int, end_ns: int, every_s: float, *,
                     group_by: Sequence[str] = (), where: Where | None = None,
                     combine: str = "sum") -> dict[tuple, BucketStats]:
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
                found = self._month_results(conn, m, start_ns, end_ns, [], [field], group_of, sid_filter, meta, combine)
                if found is not None:
                    return found[1][field]
            if (per_series or combine == "sum") and every_ns == HOUR_NS and self._table_exists(f"h1d_{m}"):
                by_day = self._plan_pieces(conn, m, start_ns, end_ns, None, meta)
                if not any(src == "r1d" and _raw_waits(conn, m, meta, a, z) for src, a, z, _ in by_day):
                    pieces = by_day
            if per_series:
                means, days = self._series_means(m, field, pieces, every_ns, start_ns, sid_filter)
                return self._series_stats(conn, means, days, group_of, groups, combine)
            _load_groups(conn, group_of, groups)
            day_pieces = [pc for pc in pieces if pc[0] == "r1d"]
            if day_pieces:  # only sums reach here with days: see peak_search
                found = self._summed_days(conn, m, field, day_pieces, group_of, groups, sid_filter)
                rest = [pc for pc in pieces if pc[0] != "r1d"]
                if rest:
                    for g, st in self._group_stats(conn, m, field, rest, every_ns, start_ns, sid_filter,
                                                   groups, combine).items():
                        found[g] = add_bucket_stats([found[g], st]) if g in found else st
                return found
            return self._group_stats(conn, m, field, pieces, every_ns, start_ns, sid_filter, groups, combine)

    def _grouped_stats(self, conn, m: str, field: str, start_ns: int, end_ns: int, every_ns: int,
                       group_by: tuple, group_of: dict, groups: list, combine: str,
                       meta: dict) -> dict[tuple, BucketStats] | None:
        """BucketStats per value of one grouping tag from the group rollups (g1d for whole UTC
        days, g1h for the hours at the edges): a row per group and day comes back. Sums per
        coarser tag (a room), or of no grouping (a where naming a tenant's racks), add up their
        whole racks' g1h rows instead (_stats_of_whole_racks). None where
        they cannot answer: not hourly buckets on hour bounds, not sum or each, another tag or
        field, a group the where cuts (the rollups hold whole groups), days from before the
        rollups, or raw rows waiting for maintain()."""
        spec = MEASUREMENTS[m]
        if (every_ns != HOUR_NS or combine not in ("sum", "each") or len(group_by) > 1
                or any(t not in spec.tags for t in group_by) or not has_group_rollups(spec, field)
                or start_ns % HOUR_NS or end_ns % HOUR_NS or start_ns < meta.get(f"g1_from:{m}", _INT_MIN)
                or not self._table_exists(f"g1d_{m}")):
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
        days = f"SELECT value, sum({buckets}), total(sum), max({peak}), {peak_ts} FROM g1d_{m} WHERE {cond} GROUP BY value"
        hours = f"SELECT value, sum({hour_buckets}), total(sum), max({hour_peak}), ts FROM g1h_{m} WHERE {cond} GROUP BY value"
        a, b = _ceil(start_ns, NS_PER_DAY), _floor(end_ns, NS_PER_DAY)  # the whole UTC days
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
        grouping) from the racks' g1h rows, added up per group and hour: a row per rack and hour
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
               f"FROM g1h_{m} AS g JOIN racks AS r ON r.value = g.value WHERE g.field = ?1 AND g.tag = ?2 "
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
        summaries (h1d), hours from r1h only for the days that can hold a group's peak
        (``peak_search``). temp.dcim_query_group is loaded; nothing waits in raw for these days."""
        gid_of = {g: i for i, g in enumerate(groups)}
        members: dict[int, list[int]] = {}
        for sid, g in group_of.items():
            members.setdefault(gid_of[g], []).append(sid)
        per_day: dict[tuple[int, int], list[tuple]] = {}
        for _, a, z, _ in day_pieces:
            for gid, day, peak, total, n in conn.execute(
                    f"SELECT g.gid, d.ts, d.max, d.sum, d.n FROM h1d_{m} AS d JOIN temp.dcim_query_group AS g "
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
                    f"JOIN r1h_{m} AS h ON h.series_id = c.sid AND h.ts >= c.day AND h.ts < c.day + {NS_PER_DAY} "
                    f"WHERE h.{n_col} > 0 GROUP BY c.gid, c.day, h.ts"):
                out.setdefault((gid, day), []).append((ts, v))
            conn.execute("DELETE FROM temp.dcim_peak_day")
            return out

        return {groups[gid]: st for gid, st in stats_from_day_bounds(bounds, read_hours).items()}

    @staticmethod
    def _bucket_parts(m: str, field: str, pieces: list, every_ns: int, start_ns: int,
                      sid_filter: str) -> tuple[list[str], list[str]]:
        """SQL per piece: (sid, b, s, n) partial sums per hourly-or-finer bucket, and (sid, n,
        total, peak, pts) hourly summaries of whole days (r1d pieces)."""
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
            elif step_of[source] > every_ns:  # days' hourly summaries (h1d)
                days.append(f"SELECT series_id AS sid, n, sum AS total, max AS peak, maxts AS pts FROM h1d_{m} "
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
    def _series_stats(conn, means: list[str], days: list[str], group_of: dict, groups: list,
                      combine: str) -> dict[tuple, BucketStats]:
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
        per_group: dict[tuple, list[BucketStats]] = {}
        for sid in sorted(stats):
            per_group.setdefault(group_of[sid], []).append(stats[sid])
        return {g: add_bucket_stats(parts) for g, parts in per_group.items()}

    def counter_increase(self, measurement: str, field: str, start_ns: int, end_ns: int, *,
                         group_by: Sequence[str] = (), where: Where | None = None) -> dict[tuple, tuple[float, int]]:
        """``Store.counter_increase``. Whole days are summed in SQL from k1d, one row per series
        coming back: each day's increase and resets inside it and across its junction with the
        day before (a year is a row per series, not 365). Edges of whole hours come from r1h's
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
                whole = [(s, e) for src, s, e, tail in pieces if src == "r1d" and tail is None]
                if len(whole) == 1 and len(set(group_of.values())) == len(group_of) and \
                        not _raw_waits(conn, measurement, meta, *whole[0]):
                    a, b = whole[0]
                    # Edges of whole hours (a quarter's in Asia/Seoul) from r1h, a statement each.
                    hours_only = all(src in ("r1d", "r1h") or tail is not None for src, _, _, tail in pieces) and \
                        not _raw_waits(conn, measurement, meta, start_ns, end_ns)
                    if hours_only:
                        per_sid = self._counter_spans(conn, measurement, field, start_ns, end_ns, a, b, sid_filter)
                        return {group_of[sid]: counters.chain(spans) for sid, spans in sorted(
                            per_sid.items(), key=lambda kv: group_of[kv[0]])}
                    days = a, b, self._counter_days_sql(conn, measurement, field, a, b, sid_filter)
        if days is None:
            return super().counter_increase(measurement, field, start_ns, end_ns, group_by=group_by, where=where)
        # Edges of finer rollups or raw rows: per day, as the default reads them.
        a, b, per_sid = days
        spans: dict[tuple, list[counters.CounterSpan]] = {}

        def add_edge(lo: int, hi: int) -> None:
            if lo < hi:
                for g, c in self.counter_days(measurement, field, lo, hi, group_by=group_by, where=where).items():
                    spans.setdefault(g, []).extend(map(counters.bucket_span, c.firsts, c.lasts, c.maxes))

        add_edge(start_ns, a)
        for sid, span in per_sid.items():
            spans.setdefault(group_of[sid], []).append(span)
        add_edge(b, end_ns)
        return {g: counters.chain(spans[g]) for g in sorted(spans)}

    def _counter_spans(self, conn, m: str, field: str, start_ns: int, end_ns: int, a: int, b: int,
                       sid_filter: str) -> dict[int, list["counters.CounterSpan"]]:
        """Per series, counter *field* over [start_ns, end_ns) as spans in time order: the UTC
        days of the edges [start_ns, a) and [b, end_ns) (whole hours, in r1h) a span each, the
        whole days [a, b) one span (k1d). Nothing may wait for maintain() there."""
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
                          sid_filter: str) -> dict[int, list["counters.CounterSpan"]]:
        """Per series, the UTC days of [lo, hi) (whole hours, all in r1h) as counter buckets, in
        time order: a day's first value is its first hour's, its last its last hour's, its max
        the hours' largest, which is what the default's (first, last, max) per day reads."""
        if lo >= hi:
            return {}
        n = _q(field + "_n")
        # Three plain GROUP BYs over the counter's r1h index (window functions cost ~3 µs a
        # row). A lone min() or max() makes SQLite take the bare column from the row holding it.
        # An edge inside one UTC day (a quarter's) groups by series alone: rows come in key
        # order, no sorting by day.
        one_day = _floor(lo, NS_PER_DAY) == _floor(hi - 1, NS_PER_DAY)
        day = str(_floor(lo, NS_PER_DAY)) if one_day else _bucket_sql("ts", NS_PER_DAY, 0)
        where = (f"FROM r1h_{m} WHERE ts >= ? AND ts < ? AND {n} > 0{sid_filter.format(p='')} "
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
    def _counter_days_sql(conn, m: str, field: str, a: int, b: int, sid_filter: str) -> dict[int, "counters.CounterSpan"]:
        """Per series, its days in [a, b) as one span (``dcim.store.counters``): the first day's
        first value, the last day's last, and the increase and resets inside the days and across
        their junctions, from k1d: each day's own increase, and its junction with the day before
        (prev) where that day lies in [a, b) too (pts >= a); the first day's lies before a."""
        junction = "CASE WHEN pts >= ?1 THEN (CASE WHEN first >= prev THEN first - prev ELSE first END) ELSE 0 END"
        # max(ts) the only min/max: the bare last comes from the series' last day.
        sql = (f"SELECT series_id, sum(CASE WHEN pts IS NULL OR pts < ?1 THEN first END), last, max(ts), "
               f"total(inc) + total({junction}), sum(resets) + sum(pts IS NOT NULL AND pts >= ?1 AND first < prev) "
               f"FROM k1d_{m} WHERE field = ?3 AND ts >= ?1 AND ts < ?2{sid_filter.format(p='')} GROUP BY series_id")
        return {sid: counters.CounterSpan(first, final, increase, int(resets))
                for sid, first, final, _, increase, resets in conn.execute(sql, (a, b, field))}

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
        if f"r1d_from:{m}" not in meta:  # a file from before the daily level, opened read-only
            levels = [lv for lv in levels if lv[0] != "r1d"]
        horizons = {"r1h": _INT_MIN, "r1m": meta.get(f"horizon_1m:{m}", -(1 << 62)),
                    "raw": meta.get(f"horizon_raw:{m}", -(1 << 62))}
        valid_from = {"r1d": meta.get(f"r1d_from:{m}", _INT_MIN)}

        def split(s: int, e: int, lv: list) -> list[tuple]:
            if s >= e:
                return []
            if not lv:
                return [("raw", s, e)]
            (level, step), rest = lv[0], lv[1:]
            finer_horizon = horizons[rest[0][0] if rest else "raw"]
            a = _floor(s, step) if s < finer_horizon else _ceil(s, step)
            b = _ceil(e, step) if e <= finer_horizon else _floor(e, step)
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
            for lo in range(_floor(s, every_ns), e, every_ns):
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

    # ------------------------------------------------------------------ latest

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
        try:
            have = {f for (f,) in conn.execute("SELECT field FROM measurement_field WHERE measurement = ?", (m,))}
        except sqlite3.OperationalError:  # a file written before measurement_field, opened read-only
            have = {f for (f,) in conn.execute(
                "SELECT DISTINCT sf.field FROM series_field AS sf JOIN series AS s ON s.id = sf.series_id "
                "WHERE s.measurement = ?", (m,))}
        return tuple(f for f in MEASUREMENTS[m].fields if f in have)

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


_KIND_CAST = {bool: bool, float: float, int: int, str: lambda v: v}
_first = operator.itemgetter(0)
# Merge two partials (n, v) of the same bucket: mean/sum add, min/max compare, count adds n.
_MERGE = {
    "mean": lambda cur, n, v: (cur[0] + n, cur[1] + v),
    "sum": lambda cur, n, v: (cur[0] + n, cur[1] + v),
    "min": lambda cur, n, v: (cur[0] + n, v if v < cur[1] else cur[1]),
    "max": lambda cur, n, v: (cur[0] + n, v if v > cur[1] else cur[1]),
    "count": lambda cur, n, v: (cur[0] + n, None),
}


def _means_sql(parts: list[str]) -> str:
    """(sid, b, v): each series' mean per bucket from the partial sums of *parts* ('' if none)."""
    if len(parts) == 1:  # one piece: a (series, bucket) appears once, no merge needed
        return f"SELECT sid, b, (1.0 * s) / n AS v FROM ({parts[0]})"
    if parts:
        return f"SELECT sid, b, total(s) / sum(n) AS v FROM ({' UNION ALL '.join(parts)}) GROUP BY 1, 2"
    return ""


def _raw_waits(conn: sqlite3.Connection, m: str, meta: dict, start_ns: int, end_ns: int) -> bool:
    """True if raw rows of [start_ns, end_ns) wait for maintain() (above the rolled watermark):
    the rollups do not hold those days whole yet."""
    return conn.execute(f"SELECT 1 FROM raw_{m} WHERE rid > ? AND +ts >= ? AND +ts < ? LIMIT 1",
                        (meta.get(f"rolled:{m}", 0), start_ns, end_ns)).fetchone() is not None


def _load_groups(conn: sqlite3.Connection, group_of: dict[int, tuple], groups: list[tuple]) -> None:
    """Fill temp.dcim_query_group: series id -> the number of its group in *groups* (sorted),
    for queries whose groups hold several series."""
    gid_of = {g: i for i, g in enumerate(groups)}
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS dcim_query_group (sid INTEGER PRIMARY KEY, gid INTEGER NOT NULL)")
    conn.execute("DELETE FROM temp.dcim_query_group")
    conn.executemany("INSERT INTO temp.dcim_query_group VALUES (?, ?)", [(sid, gid_of[g]) for sid, g in group_of.items()])


def _since(since_ns: int | None) -> int:
    """A *since_ns* bound as an integer SQLite can compare (no bound: the smallest int64)."""
    return _INT_MIN if since_ns is None else int(since_ns)


def _create_private(path: Path) -> None:
    """Create the store file 0600 if it is new (an empty file is an empty database): the site's
    telemetry is not for every local user, and SQLite gives its -wal and -shm files the mode of
    the database file. OSError (a path that cannot be created) goes to the caller."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (key, int(value)))


# The file's state, not the data's: a writer spools and retries (and counts a drop where the
# spool cannot take the points either, e.g. the same full disk).
_UNAVAILABLE = ("locked", "busy", "unable to open", "disk is full", "readonly", "disk i/o error")


def _store_error(e: BaseException) -> StoreError:
    msg = str(e)
    if isinstance(e, sqlite3.OperationalError) and any(k in msg.lower() for k in _UNAVAILABLE):
        return StoreUnavailable(f"SQLite store {msg}")
    return StoreError(f"SQLite: {msg}")
